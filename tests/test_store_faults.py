"""Store faults and a bad data directory (issue 19, items 1, 8 and 9), against real nodes and real files.

Two write faults, each under a load of acknowledged orders whose enclave is held (SIGSTOP) until the fault is on:

* read-only: `PRAGMA query_only=ON` on the node's writer connection. SQLite then refuses every write with
  SQLITE_READONLY ("attempt to write a readonly database"), the error and code path of a read-only database
  file; `chmod` cannot give that fault when the tests run as root (root writes anyway), the pragma can, for
  root or not.
* disk full: the data directory on a 32 MiB tmpfs (root only: mount; skipped with the reason elsewhere),
  its WAL truncated first so that writes need new space, then filled with a file; removing the file clears it.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import pytest

from adytum.client import Client, build, open_result
from adytum.datadir import DataDir
from adytum.protocol import EeaError, Status, to_builtins
from adytum.store import SqliteStore, Store, StoreError
from test_crash import fib_by_iteration, free_port, start_node, wait_for_result, wait_ready


def _metric(url: str, name: str) -> float:
    import urllib.request

    with urllib.request.urlopen(url + "metrics") as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def test_store_write_fault_under_load_strands_nothing(tmp_path, caplog):
    from support import running_node

    caplog.set_level(logging.INFO)
    expected = fib_by_iteration(20000)
    with running_node(tmp_path) as n, Client(n.url, trust=n.trust) as client:
        worker = client.worker()
        writer = n.node.committer.store.db
        enclave = n.node.manager.enclaves[0]
        os.kill(enclave.pid, signal.SIGSTOP)  # every acknowledged order is still unanswered when the fault starts
        acknowledged = [build(worker, "fib", [b"20000"]) for _ in range(40)]
        for order in acknowledged:
            with pytest.raises(EeaError) as pending:
                client.call("WorkOrderSubmit", to_builtins(order.params))
            assert pending.value.code == Status.PENDING
        writer.execute("PRAGMA query_only=ON")  # the store cannot write from here on
        db = sqlite3.connect(tmp_path / "adytum.sqlite3")
        answered_at_fault = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        assert answered_at_fault == 0

        busy = []
        for _ in range(20):  # submits during the fault: BUSY, nothing stored
            order = build(worker, "fib", [b"20000"])
            with pytest.raises(EeaError) as refused:
                client.call("WorkOrderSubmit", to_builtins(order.params))
            busy.append(refused.value)
        assert {e.code for e in busy} == {Status.BUSY}
        assert all("the store cannot write right now" in e.message and "retry later" in e.message for e in busy)
        os.kill(enclave.pid, signal.SIGCONT)  # the enclave answers; its answers wait in memory while commits fail
        held = n.node.config.manager.pipeline_depth  # each of the enclave's slots holds one answer, then waits
        deadline = time.monotonic() + 60
        while enclave.served < held and time.monotonic() < deadline:
            time.sleep(0.05)
        assert enclave.served == held
        assert _metric(n.url, "adytum_store_writable") == 0
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == answered_at_fault
        failed_during_fault = n.node.committer.failed_commits

        writer.execute("PRAGMA query_only=OFF")  # the fault clears; no restart
        for order in acknowledged:
            assert open_result(order, worker, wait_for_result(client, order)) == [expected]
        assert _metric(n.url, "adytum_store_writable") == 1
        assert enclave.served == len(acknowledged)  # none ran twice for the store's sake
        assert enclave.restarts == 0

    db = sqlite3.connect(tmp_path / "adytum.sqlite3")
    assert db.execute("SELECT COUNT(*) FROM work_orders").fetchone()[0] == len(acknowledged)
    assert db.execute("SELECT COUNT(*) FROM responses WHERE code = 0").fetchone()[0] == len(acknowledged)
    assert db.execute("SELECT COUNT(*) FROM schedule").fetchone()[0] == 0
    store_lines = [r for r in caplog.records if r.name == "adytum.store"]
    faults = [r for r in store_lines if "cannot write" in r.getMessage()]
    assert failed_during_fault > 20  # every BUSY submit and every retried answer failed a commit ...
    assert len(faults) == 1, [r.getMessage() for r in faults]  # ... and the log said so once (interval 10 s)
    assert "attempt to write a readonly database" in faults[0].getMessage()
    assert len([r for r in store_lines if "writes again" in r.getMessage()]) == 1
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks for a store fault"


def test_transition_failures_of_their_own_reach_the_caller_at_once(tmp_path):
    import asyncio

    from adytum.store import Duplicate, GroupCommit, NewOrder, StoreUnavailable

    async def main() -> None:
        store = SqliteStore(tmp_path / "db.sqlite3")
        store.migrate()
        committer = GroupCommit(store, retry_initial=0.01)
        committer.start()
        order = NewOrder("aa" * 32, "bb" * 32, "cc" * 32, "01", b"{}")
        await committer.persist(Store.insert_order, order)
        with pytest.raises(Duplicate):  # the transition's own refusal: not retried
            await committer.persist(Store.insert_order, order)
        store.db.execute("PRAGMA query_only=ON")
        with pytest.raises(StoreUnavailable, match="cannot write right now"):
            await committer.run(Store.claim, order.worker_id, "node-a", 1)
        held = asyncio.ensure_future(committer.persist(Store.insert_response, order.work_order_id, 0, b"[]"))
        await asyncio.sleep(0.2)
        assert not held.done() and not committer.writable
        store.db.execute("PRAGMA query_only=OFF")
        assert await asyncio.wait_for(held, 10) is True
        assert committer.writable
        await committer.stop()
        assert store.response(order.work_order_id) is not None
        store.close()

    asyncio.run(main())


# -- a bad database at start -----------------------------------------------------------------------------------


def _up(data_dir: Path, *extra: str, port: int | None = None) -> subprocess.Popen:
    return start_node(data_dir, port or free_port(), subprocess.PIPE, *extra)


def _refused(data_dir: Path, *extra: str) -> str:
    proc = _up(data_dir, *extra)
    out, _ = proc.communicate(timeout=120)
    text = out.decode()
    assert proc.returncode == 1, text
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if "ERROR" in line]
    assert len(errors) == 1, text
    return errors[0]


def _filled_store(path: Path, rows: int = 3000) -> None:
    store = SqliteStore(path)
    store.migrate()
    with store.transaction():
        for i in range(rows):
            store.db.execute("INSERT INTO settings (name, value) VALUES (?, ?)", (f"k{i}", "v" * 100))
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()


def _damage(path: Path, offset: int, length: int = 512) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(os.urandom(length))


def test_damaged_header_is_refused_with_one_line(tmp_path):
    _filled_store(tmp_path / "adytum.sqlite3")
    _damage(tmp_path / "adytum.sqlite3", 0, 100)
    line = _refused(tmp_path)
    assert str(tmp_path / "adytum.sqlite3") in line and "not a usable SQLite database" in line


def test_damaged_pages_fail_the_integrity_check(tmp_path):
    path = tmp_path / "adytum.sqlite3"
    _filled_store(path)
    page = sqlite3.connect(path).execute("PRAGMA page_size").fetchone()[0]
    _damage(path, page * 40 + 16, 2048)  # inside the settings table, header intact
    with pytest.raises(StoreError, match=str(path)) as caught:
        SqliteStore(path).migrate()
    assert "\n" not in str(caught.value)
    line = _refused(tmp_path)
    assert str(path) in line and ("integrity check" in line or "not a usable SQLite database" in line)


def test_unopenable_database_is_refused(tmp_path):
    (tmp_path / "adytum.sqlite3").mkdir()  # a directory where the file should be: cannot be opened
    line = _refused(tmp_path)
    assert str(tmp_path / "adytum.sqlite3") in line and "cannot be opened" in line


def test_read_only_database_is_refused(tmp_path):
    """A database the node cannot write: a read-only file, or (as root, whom file modes do not stop) a file on
    a file system remounted read-only."""
    if os.geteuid() != 0:
        path = tmp_path / "adytum.sqlite3"
        _filled_store(path)
        path.chmod(0o400)
        with pytest.raises(StoreError, match=str(path)):
            SqliteStore(path).migrate()
        return
    mount = tmp_path / "ro"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        path = mount / "adytum.sqlite3"
        _filled_store(path)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True, capture_output=True)
        with pytest.raises(StoreError, match=str(path)):
            SqliteStore(path).migrate()
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture(scope="module")
def used_data_dir(tmp_path_factory) -> Path:
    """A data directory a node has run in: a store with a worker and sealed worker keys."""
    from support import running_node

    path = tmp_path_factory.mktemp("used")
    with running_node(path):
        pass
    assert DataDir(path).kme_keys.exists()
    return path


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_empty_or_missing_store_next_to_sealed_keys_needs_start_empty(used_data_dir, tmp_path):
    data = _copy(used_data_dir, tmp_path / "data")
    store = DataDir(data).store
    for suffix in ("-wal", "-shm"):
        store.with_name(store.name + suffix).unlink(missing_ok=True)
    store.write_bytes(b"")
    line = _refused(data)
    assert str(store) in line and "is empty" in line and "--start-empty" in line
    store.unlink()
    line = _refused(data)
    assert str(store) in line and "is missing" in line

    port = free_port()
    node = _up(data, "--start-empty", port=port)
    try:
        wait_ready(f"http://127.0.0.1:{port}/", node)
    finally:
        node.send_signal(signal.SIGTERM)
        node.communicate(timeout=30)
    assert node.returncode == 0
    assert store.stat().st_size > 0


def test_missing_platform_secret_is_named(used_data_dir, tmp_path):
    data = _copy(used_data_dir, tmp_path / "data")
    DataDir(data).platform_secret.unlink()
    line = _refused(data)
    assert f"the platform secret {DataDir(data).platform_secret} is missing" in line


# -- permissions ------------------------------------------------------------------------------------------------

#: Public files of the data directory (certificates, public keys, the platform registry) may be world-readable.
PUBLIC = {"devroot/root.pem", "devroot/report-signing.pem", "devroot/platforms.json", "operator/operator.pub.pem"}


def test_data_dir_is_private_under_umask_zero(tmp_path):
    from adytum.cli.pool import trust_root
    from support import running_node

    data = tmp_path / "data"
    old = os.umask(0)
    try:
        with running_node(data) as n:
            trust_root(data, n.root_pem)
            modes = _modes(data)  # while running: the -wal and -shm files exist
        modes.update(_modes(data))
    finally:
        os.umask(old)
    assert {
        "adytum.sqlite3",
        "adytum.sqlite3-wal",
        "adytum.sqlite3-shm",
        "platform.secret",
        "kme",
        "kme/worker-keys.sealed",
        "operator/operator-key.pem",
        "trusted-roots",
    } <= set(modes)
    wrong = {
        name: oct(mode)
        for name, (is_dir, mode) in modes.items()
        if mode != (0o700 if is_dir else 0o600) and not (name in PUBLIC and mode == 0o644)
    }
    assert wrong == {}


def _modes(root: Path) -> dict[str, tuple[bool, int]]:
    out = {}
    for path in root.rglob("*"):
        st = path.lstat()
        out[str(path.relative_to(root))] = (stat.S_ISDIR(st.st_mode), stat.S_IMODE(st.st_mode))
    out["."] = (True, stat.S_IMODE(root.stat().st_mode))
    return out


@pytest.fixture
def small_tmpfs(tmp_path) -> Path:
    """A 32 MiB tmpfs to fill up (root only: mount)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs to fill needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(directory: Path) -> Path:
    """Write zeros until the file system is full."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (1 << 16, 512):
            try:
                while f.write(b"\0" * size):
                    pass
            except OSError:
                pass
    return filler


def test_disk_full_under_load_strands_nothing(small_tmpfs, caplog):
    from support import running_node

    caplog.set_level(logging.INFO)
    expected = fib_by_iteration(20000)
    data = small_tmpfs / "data"
    with running_node(data) as n, Client(n.url, trust=n.trust) as client:
        worker = client.worker()
        n.node.committer.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL must grow to write
        enclave = n.node.manager.enclaves[0]
        os.kill(enclave.pid, signal.SIGSTOP)  # every acknowledged order is still unanswered when the disk fills
        acknowledged = [build(worker, "fib", [b"20000"]) for _ in range(30)]
        for order in acknowledged:
            with pytest.raises(EeaError) as pending:
                client.call("WorkOrderSubmit", to_builtins(order.params))
            assert pending.value.code == Status.PENDING
        filler = _fill(small_tmpfs)
        busy = 0
        for _ in range(200):  # submits until one needs space the disk has not
            order = build(worker, "fib", [b"20000"])
            try:
                client.call("WorkOrderSubmit", to_builtins(order.params))
            except EeaError as exc:
                if exc.code == Status.BUSY:
                    assert "the store cannot write right now" in exc.message
                    busy += 1
                    if busy == 5:
                        break
                    continue
                assert exc.code == Status.PENDING, exc
                acknowledged.append(order)
        assert busy == 5, "the full disk never refused a write"
        assert _metric(n.url, "adytum_store_writable") == 0
        db = sqlite3.connect(f"file:{data / 'adytum.sqlite3'}?mode=ro", uri=True)
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 0
        os.kill(enclave.pid, signal.SIGCONT)
        held = n.node.config.manager.pipeline_depth  # each of the enclave's slots holds one answer, then waits
        deadline = time.monotonic() + 60
        while enclave.served < held and time.monotonic() < deadline:
            time.sleep(0.05)
        assert enclave.served == held
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 0
        db.close()
        filler.unlink()  # space again; no restart
        for order in acknowledged:
            assert open_result(order, worker, wait_for_result(client, order)) == [expected]
        assert n.node.manager.enclaves[0].served == len(acknowledged)
    faults = [r for r in caplog.records if r.name == "adytum.store" and "cannot write" in r.getMessage()]
    assert len(faults) == 1 and "full" in faults[0].getMessage(), [r.getMessage() for r in faults]
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks for a store fault"
