"""The embedded store: SQLite in WAL mode, one file (0600, in a 0700 directory), durable commits."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from ..errors import AdytumError
from .base import Store
from .records import StoreError
from .schema import RECEIPT_COLUMNS


class SqliteStore(Store):
    dialect = "sqlite"

    def __init__(self, path: Path | str, *, durable: bool = True) -> None:
        """Open (or create, 0600 in a 0700 directory) the database; StoreError if it cannot be used."""
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the node makes it 0700 first
        _create_private(self.path)
        try:
            self.sqlite = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.sqlite.execute("PRAGMA journal_mode=WAL")
            self.sqlite.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self.sqlite.execute("PRAGMA busy_timeout=10000")
            self.sqlite.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None
        self.db = self.sqlite
        self.durable = durable
        for suffix in ("-wal", "-shm"):  # SQLite gives them the database's mode; older files may be wider
            _narrow(self.path.with_name(self.path.name + suffix))

    def describe(self) -> str:
        return str(self.path)

    def migrate(self) -> list[int]:
        """Check the database (`PRAGMA quick_check`), then migrate; StoreError if it is damaged or cannot be
        written."""
        try:
            rows = [str(r[0]) for r in self.sqlite.execute("PRAGMA quick_check(10)")]
            if rows != ["ok"]:
                problems = [line for row in rows for line in row.splitlines() if not line.startswith("***")]
                more = f"; {len(problems) - 1} more" if len(problems) > 1 else ""
                raise StoreError(
                    f"{self.path} fails its integrity check ({(problems or rows)[0]}{more}): "
                    "restore it from a backup or move it aside"
                )
            with self.transaction():
                self._drop_unwritten_receipts()
            return super().migrate()
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None

    def _unusable(self, exc: sqlite3.Error) -> StoreError:
        if type(exc) is sqlite3.DatabaseError:  # "file is not a database", "database disk image is malformed"
            return StoreError(
                f"{self.path} is not a usable SQLite database ({exc}): restore it from a backup or move it aside"
            )
        return StoreError(f"{self.path} cannot be opened for reading and writing ({type(exc).__name__}: {exc})")

    def _drop_unwritten_receipts(self) -> None:
        """The `receipts` table of earlier versions was never written: replace it if empty, refuse if not."""
        columns = {r[1] for r in self.sqlite.execute("PRAGMA table_info(receipts)")}
        if not columns or RECEIPT_COLUMNS <= columns:
            return
        if self.sqlite.execute("SELECT 1 FROM receipts LIMIT 1").fetchone():
            raise AdytumError(
                f"{self.path}: the receipts table has rows but not the columns {sorted(RECEIPT_COLUMNS - columns)} "
                "of this version; no version of adytum wrote it, so it was changed by hand: move it aside or "
                "empty it before starting the node"
            )
        self.sqlite.execute("DROP TABLE receipts")

    def _has_table(self, name: str) -> bool:
        return (
            self.sqlite.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
            is not None
        )

    def close(self) -> None:
        self.sqlite.close()

    def is_fault(self, exc: BaseException) -> bool:
        """An I/O error or SQLite's operational or corruption error (an IntegrityError is the transition's own;
        the store turns the expected ones into Duplicate)."""
        return isinstance(exc, (OSError, sqlite3.OperationalError)) or type(exc) is sqlite3.DatabaseError

    def _transaction(self, durable: bool) -> _Transaction:
        return _Transaction(self.sqlite, relaxed=self.durable and not durable)

    def _savepoint(self, name: str) -> _Savepoint:
        return _Savepoint(self.sqlite, name)


class _Transaction:
    """`relaxed`: this commit is not synced (WAL, synchronous=NORMAL); the next synced one covers it, since the
    WAL is synced as a whole."""

    def __init__(self, db: sqlite3.Connection, *, relaxed: bool) -> None:
        self.db, self.relaxed = db, relaxed

    def __enter__(self) -> None:
        if self.relaxed:
            self.db.execute("PRAGMA synchronous=NORMAL")
        try:
            self.db.execute("BEGIN IMMEDIATE")  # the write lock now: the schema lock and the ledger's order
        except BaseException:
            if self.relaxed:  # no __exit__ follows a failed __enter__: every later commit must sync again
                self.db.execute("PRAGMA synchronous=FULL")
            raise

    def __exit__(self, exc_type: object, *_: object) -> None:
        """A failed COMMIT (disk full, I/O error) is rolled back, so the next transaction can begin."""
        try:
            self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        except sqlite3.Error:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        finally:
            if self.relaxed:
                self.db.execute("PRAGMA synchronous=FULL")


class _Savepoint:
    def __init__(self, db: sqlite3.Connection, name: str) -> None:
        self.db, self.name = db, name

    def __enter__(self) -> None:
        self.db.execute(f"SAVEPOINT {self.name}")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.db.execute(f"ROLLBACK TO {self.name}")
        self.db.execute(f"RELEASE {self.name}")


def _create_private(path: Path) -> None:
    """A new database file is made 0600 before SQLite opens it (whatever the umask); an existing one is kept."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _narrow(path)
        return
    except OSError:
        return  # SQLite's own open will name the problem
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _narrow(path: Path) -> None:
    """Take group and other permissions off a file of the store (never adds any: a read-only file stays so)."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            os.chmod(path, mode & 0o700)
    except OSError:
        pass
