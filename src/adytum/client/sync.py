"""`Client`: the `AsyncClient` API for code that does not use asyncio (scripts, notebooks, the CLI).

Each call runs the async client's coroutine on one event loop that lives in a daemon thread of its own,
shared by every `Client` of the process, and blocks until it is done. The caller's thread never runs an
event loop, so `Client` works the same whether or not one is already running there (a Jupyter cell,
an async framework's handler).

    with Client("http://localhost:1947/", trust=trust) as client:
        outputs = client.run("hello", [b"world"])          # [b"Hello world"], verified
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import msgspec

from .. import crypto
from ..crypto import KeySuite
from ..protocol.receipts import ConsistencyProof, ReceiptDocument, TreeHead
from .client import DEFAULT_URI, AsyncClient
from .receipt import VerifiedReceipt
from .worker import Trust, WorkerInfo
from .workorder import PendingOrder

T = TypeVar("T")


class _LoopThread:
    """The event loop every `Client` runs its calls on, started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop thread and wait for its result (or exception)."""
        loop = self._running_loop()
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a sync Client cannot be called from its own event loop; use AsyncClient there")
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt: do not leave the call running behind the caller's back
            raise

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=loop.run_forever, name="adytum-client-loop", daemon=True)
                self._thread.start()
                self._loop = loop
            return self._loop


_loop_thread = _LoopThread()


class Client:
    """The same API as `AsyncClient`, blocking: every method waits for its result."""

    def __init__(
        self,
        uri: str = DEFAULT_URI,
        *,
        trust: Trust | None = None,
        signer: crypto.SigningKey | None = None,
        requester_id: str | None = None,
        token: str | None = None,
        suite: KeySuite | str | None = None,
    ) -> None:
        """`suite`: "rsa", "hpke" or "mlkem-x25519" (default: HPKE when the worker offers it, see `AsyncClient`)."""
        self._async = AsyncClient(uri, trust=trust, signer=signer, requester_id=requester_id, token=token, suite=suite)

    @property
    def uri(self) -> str:
        return self._async.uri

    @property
    def trust(self) -> Trust:
        return self._async.trust

    @property
    def signer(self) -> crypto.SigningKey | None:
        return self._async.signer

    @property
    def requester_id(self) -> str:
        return self._async.requester_id

    @property
    def suite(self) -> KeySuite | None:
        return self._async.suite

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection; the client reconnects on its next call."""
        _loop_thread.run(self._async.close())

    def call(self, method: str, params: Any) -> Any:
        """One JSON-RPC call; the result as plain Python data, or EeaError."""
        return _loop_thread.run(self._async.call(method, params))

    def call_raw(self, method: str, params: Any) -> msgspec.Raw:
        """One JSON-RPC call; the result as raw JSON (params may be a dict or a protocol struct)."""
        return _loop_thread.run(self._async.call_raw(method, params))

    def worker_ids(self, **filters: Any) -> list[str]:
        return _loop_thread.run(self._async.worker_ids(**filters))

    def worker(self, worker_id: str | None = None) -> WorkerInfo:
        """The worker (if no id is given, the one the node hosts), its keys and attestation verified."""
        return _loop_thread.run(self._async.worker(worker_id))

    def hosted_worker_id(self) -> str:
        """The worker this node runs orders for (see `AsyncClient.hosted_worker_id`)."""
        return _loop_thread.run(self._async.hosted_worker_id())

    def forget(self, worker_id: str) -> None:
        """Drop a cached worker record (e.g. after its key was rotated), so the next use re-verifies it."""
        self._async.forget(worker_id)

    def encryption_key(self, worker: WorkerInfo) -> tuple[str, str]:
        """EncryptionKeyGet, accepted only if the worker's attested signing key signed the answer."""
        return _loop_thread.run(self._async.encryption_key(worker))

    def receipt_document(self, work_order_id: str) -> ReceiptDocument:
        """WorkOrderReceiptDocument: the order's receipt trail with its proofs, as the node sent it (unchecked)."""
        return _loop_thread.run(self._async.receipt_document(work_order_id))

    def receipt(self, work_order_id: str) -> VerifiedReceipt:
        """The order's receipt trail, verified against this client's Trust (UntrustedWorker or LedgerError)."""
        return _loop_thread.run(self._async.receipt(work_order_id))

    def ledger_head(self) -> TreeHead:
        """LedgerHead: the latest signed tree head (its signature is not checked here: `ledger.verify`)."""
        return _loop_thread.run(self._async.ledger_head())

    def ledger_consistency(self, first_size: int, second_size: int) -> ConsistencyProof:
        """LedgerConsistencyProof: the proof that the tree of `second_size` leaves extends that of `first_size`."""
        return _loop_thread.run(self._async.ledger_consistency(first_size, second_size))

    def operator_call(self, method: str, params: dict[str, Any], key: crypto.SigningKey) -> Any:
        """A registry change signed with the operator key (see `adytum.operator`)."""
        return _loop_thread.run(self._async.operator_call(method, params, key))

    def submit(
        self, worker: WorkerInfo, workload: str, inputs: list[bytes], *, wait_ms: int = 0, notify_uri: str = ""
    ) -> tuple[PendingOrder, msgspec.Raw | None]:
        """Send one order once; returns it and the result if the node answered within `wait_ms` (`notify_uri`:
        see `AsyncClient.submit`)."""
        return _loop_thread.run(self._async.submit(worker, workload, inputs, wait_ms=wait_ms, notify_uri=notify_uri))

    def deliver(self, order: PendingOrder, *, timeout: float = 60.0, submitted: bool = False) -> msgspec.Raw:
        """The order's raw result, across lost connections and node restarts (see `AsyncClient.deliver`)."""
        return _loop_thread.run(self._async.deliver(order, timeout=timeout, submitted=submitted))

    def result(
        self, order: PendingOrder, worker: WorkerInfo, *, timeout: float = 60.0, result: msgspec.Raw | None = None
    ) -> list[bytes]:
        """Wait for the result of a submitted order (across node restarts), verify and decrypt it."""
        return _loop_thread.run(self._async.result(order, worker, timeout=timeout, result=result))

    def run(
        self,
        workload: str,
        inputs: list[bytes],
        *,
        worker_id: str | None = None,
        timeout: float = 60.0,
        sequence: int = 0,
    ) -> list[bytes]:
        """Look up and verify the worker, submit, wait, verify and decrypt: the outputs. A node restart
        meanwhile costs time, not the order, and never runs it twice; `sequence`: strict ordering (see
        `AsyncClient.run`)."""
        return _loop_thread.run(
            self._async.run(workload, inputs, worker_id=worker_id, timeout=timeout, sequence=sequence)
        )
