"""A node as a real `adytum up` process on this machine, for commands that need one (demo, bench)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..client import Client
from ..protocol import EeaError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_node(data_dir: Path, port: int, *options: str, timeout: float = 90.0) -> Iterator[str]:
    """Run `adytum up` on 127.0.0.1:`port` (logging to DATA_DIR/node.log) until the block ends; yield its
    URI once it lists its worker. Raises RuntimeError if it exits or stays silent for `timeout` s."""
    uri = f"http://127.0.0.1:{port}/"
    log = data_dir / "node.log"
    with open(log, "wb", opener=_private) as log_file:
        node = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "adytum",
                "up",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--log-format",
                "text",
                *options,
            ],
            stdout=log_file,
            stderr=log_file,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        with Client(uri) as probe:
            _wait_ready(probe, node, log, timeout)
        yield uri
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            node.kill()


def _wait_ready(client: Client, node: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.poll() is not None:
            raise RuntimeError(f"the node exited with code {node.returncode}; see {log}")
        try:
            if client.call("WorkerLookUp", {})["ids"]:
                return
        except (OSError, EeaError):
            client.close()
        time.sleep(0.1)
    raise RuntimeError(f"the node did not answer within {timeout:.0f} s; see {log}")


def _private(path: str, flags: int) -> int:
    """The node's log may name work orders and workers: 0600 like the rest of the data directory."""
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return fd
