"""Test support: a real node (enclave processes, SQLite file, HTTP) on an event loop in a thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from adytum.cli import main as cli
from adytum.client import Trust
from adytum.config import NodeConfig
from adytum.datadir import DataDir
from adytum.issuer.devroot import init_dev_root
from adytum.node import Node


class RunningNode:
    def __init__(self, node: Node, loop: asyncio.AbstractEventLoop) -> None:
        self.node, self.loop = node, loop

    @property
    def url(self) -> str:
        return self.node.url

    @property
    def root_pem(self) -> Path:
        """The node's development attestation root: what a requester must trust explicitly."""
        return DataDir(self.node.config.data_dir).platform_root

    @property
    def trust(self) -> Trust:
        return Trust.from_files([self.root_pem])

    def call(self, coro_fn, *args):  # run something on the node's loop
        return asyncio.run_coroutine_threadsafe(coro_fn(*args), self.loop).result(60)


@contextmanager
def running_node(data_dir: Path, **options) -> Iterator[RunningNode]:
    options.setdefault("enclaves", 1)
    node = Node(NodeConfig.of(data_dir, port=0, **options))
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop: list[asyncio.Event] = []
    failure: list[BaseException] = []

    async def main() -> None:
        stop.append(asyncio.Event())
        try:
            await node.start()
        except BaseException as exc:
            failure.append(exc)
            started.set()
            return
        started.set()
        await stop[0].wait()
        await node.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    started.wait(120)
    if failure:
        raise failure[0]
    try:
        yield RunningNode(node, loop)
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(60)


class LocalPool:
    """A key manager and work-order enclaves as the node runs them, without the node around them."""

    def __init__(self, data_dir: Path, worker_id: str, wpe_data_dir: Path | None = None) -> None:
        from adytum.issuer.service import SimulatedAttestation
        from adytum.manager import EnclaveProcess
        from adytum.manager.pool import LocalKeyManager
        from adytum.workloads.registry import measure_work_order_build

        self.data_dir, self.worker_id = data_dir, worker_id
        self.wpe_data_dir = wpe_data_dir or data_dir
        build = measure_work_order_build(self.wpe_data_dir).mr_enclave.hex()
        DataDir(data_dir).allow_build(build)  # as a node's first start does
        self.attestation = SimulatedAttestation(DataDir(data_dir))
        self.kme = LocalKeyManager(EnclaveProcess("kme", data_dir, worker_id, role="kme"), self.attestation)

    def wpe(self, name: str = "wpe", worker_id: str | None = None):
        from adytum.manager import EnclaveProcess
        from adytum.manager.pool import provision

        return EnclaveProcess(
            name,
            self.wpe_data_dir,
            worker_id or self.worker_id,
            provision=lambda e: provision(e, self.kme, self.attestation),
        )


def two_hosts(tmp_path: Path) -> tuple[Path, Path]:
    """Two data directories, each its own simulated platform, each trusting the other's root (`pool trust`)."""
    a, b = tmp_path / "a", tmp_path / "b"
    for here in (a, b):
        init_dev_root(here / "devroot")
    for here, there in ((a, b), (b, a)):
        assert cli(["pool", "trust", str(there / "devroot" / "root.pem"), "--data-dir", str(here), "--json"]) == 0
    return a, b
