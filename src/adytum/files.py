"""Durable file writes: a file is either wholly there, fsync'd, or not there at all."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, exclusive: bool = False, mode: int = 0o600) -> bool:
    """Write via a temporary file, fsync, then rename into place (or, if `exclusive`, link: an existing
    file is kept). Returns False only when `exclusive` and the file already existed."""
    make_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    created = True
    try:
        if exclusive:
            os.link(tmp, path)
        else:
            os.replace(tmp, path)
    except FileExistsError:
        created = False  # someone else made it first: keep theirs
    finally:
        if exclusive:
            tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return created


def make_private_dir(path: Path) -> None:
    """Create `path` and any missing parents 0700, whatever the umask; directories that exist are kept as they are."""
    missing: list[Path] = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made meanwhile by another process: theirs
        os.chmod(directory, 0o700)
