"""The requester SDK over asyncio: look up a worker, check its keys, submit, wait, verify and decrypt.

    async with AsyncClient("http://localhost:1947") as c:
        outputs = await c.run("hello", [b"world"])          # [b"Hello world"], verified

`Client` (adytum.client.sync) is the same API without asyncio.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urljoin

import aiohttp
import msgspec

from .. import crypto, operator
from ..config import DEFAULT_PORT
from ..crypto import KeySuite
from ..errors import AdytumError
from ..protocol import EeaError, Status, encode, encryption_key_get_digest
from ..protocol.receipts import ConsistencyProof, ReceiptDocument, TreeHead
from .receipt import VerifiedReceipt, verify_receipt_document
from .worker import Trust, UntrustedWorker, WorkerInfo, require_active
from .workorder import PendingOrder, VerificationError, build, open_result, parse_suite

DEFAULT_URI = f"http://localhost:{DEFAULT_PORT}/"

_ids = itertools.count(1)
log = logging.getLogger("adytum.client")
T = TypeVar("T")


class NodeUnreachable(AdytumError, ConnectionError):
    """The node could not be reached or hung up; the work order may or may not have been accepted."""


class _Error(msgspec.Struct):
    code: int = Status.UNKNOWN_ERROR
    message: str = ""
    data: Any = None


class _Reply(msgspec.Struct):
    """A JSON-RPC reply with `result` kept raw, so a work-order result is decoded once, typed."""

    result: msgspec.Raw = msgspec.Raw(b"null")
    error: _Error | None = None


_reply_decoder = msgspec.json.Decoder(_Reply)


def _envelope(method: str, params: Any) -> bytes:
    return encode({"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params})


def _unwrap(body: bytes) -> msgspec.Raw:
    try:
        reply = _reply_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise EeaError(Status.UNKNOWN_ERROR, f"server sent no JSON-RPC reply: {body[:200]!r}") from None
    if reply.error is not None:
        raise EeaError(reply.error.code, reply.error.message, reply.error.data)
    return reply.result


def _typed(raw: msgspec.Raw, kind: type[T], method: str) -> T:
    try:
        return msgspec.json.decode(raw, type=kind)
    except ValueError as exc:  # msgspec's errors, and bytes that are not UTF-8
        raise EeaError(Status.UNKNOWN_ERROR, f"{method}: the node's answer is malformed ({exc})") from None


class AsyncClient:
    """A requester's connection to one node; workers it verified are cached until `forget`."""

    def __init__(
        self,
        uri: str = DEFAULT_URI,
        *,
        trust: Trust | None = None,
        signer: crypto.SigningKey | None = None,
        requester_id: str | None = None,
        session: aiohttp.ClientSession | None = None,
        token: str | None = None,
        suite: KeySuite | str | None = None,
    ) -> None:
        """`suite`: how work orders wrap their session key, "rsa", "hpke" or "mlkem-x25519" (`SUITES`);
        default: HPKE when the worker offers it, else RSA."""
        self.uri = uri
        #: The node's API token (`adytum up --api-token-file`), sent as `Authorization: Bearer`.
        self._headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
        self.trust = trust or Trust()
        self.signer = signer
        self.requester_id = requester_id or crypto.random_bytes(32).hex()
        self.suite = None if suite is None else parse_suite(suite)
        self._session = session
        self._own_session = session is None
        self._workers: dict[str, WorkerInfo] = {}
        #: Whether any call has reached the node: `run` waits out lost connections only to a node it has reached.
        self.reached = False
        #: Whether the node offers the result stream (GET /results); None: not asked yet, False: it has none.
        self.streams: bool | None = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
            self._session = None

    async def call(self, method: str, params: Any) -> Any:
        """One JSON-RPC call; the result as plain Python data, or EeaError."""
        return msgspec.json.decode(await self.call_raw(method, params))

    async def call_raw(self, method: str, params: Any) -> msgspec.Raw:
        """One JSON-RPC call; the result as raw JSON (params may be a dict or a protocol struct)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        try:
            async with self._session.post(self.uri, data=_envelope(method, params), headers=self._headers) as resp:
                body = await resp.read()
        except aiohttp.ClientError as exc:
            raise NodeUnreachable(f"{self.uri}: {exc}") from exc
        self.reached = True
        return _unwrap(body)

    async def _streamed(self, work_order_id: str, timeout: float) -> bytes | None:
        """The node's WorkOrderGetResult reply for the order once it is answered, from its result stream
        (`listener/stream.py`); None when the node offers no stream (the caller polls), or on a timeout."""
        if self.streams is False:
            return None
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        url = urljoin(self.uri, "/results")
        headers = {"Accept": "text/event-stream"} | {k: v for k, v in self._headers.items() if k == "Authorization"}
        try:
            async with asyncio.timeout(timeout):
                async with self._session.get(url, params={"workOrderId": work_order_id}, headers=headers) as resp:
                    self.reached = True
                    if resp.status in (404, 405):  # an older node, or not adytum: poll it
                        self.streams = False
                        return None
                    if resp.status != 200 or resp.content_type != "text/event-stream":
                        return None  # the poll that follows gets the node's own refusal
                    self.streams = True
                    return await _first_data(resp.content)
        except TimeoutError:
            return None
        except aiohttp.ClientError as exc:
            raise NodeUnreachable(f"{self.uri}: {exc}") from exc

    async def worker_ids(self, **filters: Any) -> list[str]:
        """WorkerLookUp: the ids of the node's workers (filters: workerType, organizationId, ...)."""
        return list((await self.call("WorkerLookUp", filters))["ids"])

    async def worker(self, worker_id: str | None = None) -> WorkerInfo:
        """The worker (if no id is given, the one the node hosts: `hosted_worker_id`), its keys and attestation
        verified."""
        if worker_id is None:
            worker_id = await self.hosted_worker_id()
        if worker_id not in self._workers:
            record = await self.call("WorkerRetrieve", {"workerId": worker_id})
            info = WorkerInfo.verified(worker_id, record, self.trust)
            require_active(info)
            self._workers[worker_id] = info
        return self._workers[worker_id]

    async def _open(self, order: PendingOrder, worker: WorkerInfo, result: msgspec.Raw) -> list[bytes]:
        """`open_result`; if it does not verify, and the worker's record now names a signing key that the key
        the order was built for handed over to (`adytum worker rotate-key --signing` meanwhile), under that."""
        try:
            return open_result(order, worker, result)
        except VerificationError:
            self.forget(worker.worker_id)
            newer = await self.worker(worker.worker_id)
            if newer.verifying_key == worker.verifying_key:
                raise
        newer.descends_from(worker.verifying_key)  # UntrustedWorker if another identity took the id
        return open_result(order, newer, result)

    async def hosted_worker_id(self) -> str:
        """The worker this node runs orders for, as its PoolStatus says: a registry may also list workers that
        are hosted elsewhere or decommissioned, so the first id WorkerLookUp returns is no answer."""
        status = await self.call("PoolStatus", {})  # a node without it (Avalon's) needs the worker id given
        worker_id = status.get("workerId") if isinstance(status, dict) else None
        if not isinstance(worker_id, str):
            raise EeaError(Status.UNKNOWN_ERROR, f"PoolStatus: the node's answer is malformed ({str(status)[:100]})")
        return worker_id

    def forget(self, worker_id: str) -> None:
        """Drop a cached worker record (e.g. after its key was rotated), so the next use re-verifies it."""
        self._workers.pop(worker_id, None)

    async def encryption_key(self, worker: WorkerInfo) -> tuple[str, str]:
        """EncryptionKeyGet, accepted only if the worker's attested signing key signed the answer: the
        worker's current encryption key and its nonce (Avalon returned an unsigned hash here)."""
        reply = await self.call("EncryptionKeyGet", {"workerId": worker.worker_id})
        try:
            key, nonce, tag = reply["encryptionKey"], reply["encryptionKeyNonce"], reply.get("tag", "")
            digest = encryption_key_get_digest(worker.worker_id, key, nonce, tag)
            crypto.verify_digest(worker.verifying_key, digest, crypto.b64decode(reply["signature"]))
        except (KeyError, TypeError, crypto.CryptoError) as exc:
            raise UntrustedWorker(f"EncryptionKeyGet answer is not signed by the worker: {exc}") from None
        return key, nonce

    async def receipt_document(self, work_order_id: str) -> ReceiptDocument:
        """WorkOrderReceiptDocument: the order's receipt trail with its proofs, as the node sent it (unchecked)."""
        raw = await self.call_raw("WorkOrderReceiptDocument", {"workOrderId": work_order_id})
        return _typed(raw, ReceiptDocument, "WorkOrderReceiptDocument")

    async def receipt(self, work_order_id: str) -> VerifiedReceipt:
        """The order's receipt trail, verified against this client's Trust (UntrustedWorker or LedgerError)."""
        return verify_receipt_document(await self.receipt_document(work_order_id), self.trust)

    async def ledger_head(self) -> TreeHead:
        """LedgerHead: the latest signed tree head (its signature is not checked here: `ledger.verify`)."""
        return _typed(await self.call_raw("LedgerHead", {}), TreeHead, "LedgerHead")

    async def ledger_consistency(self, first_size: int, second_size: int) -> ConsistencyProof:
        """LedgerConsistencyProof: the proof that the tree of `second_size` leaves extends that of `first_size`."""
        raw = await self.call_raw("LedgerConsistencyProof", {"firstSize": first_size, "secondSize": second_size})
        return _typed(raw, ConsistencyProof, "LedgerConsistencyProof")

    async def operator_call(self, method: str, params: dict[str, Any], key: crypto.SigningKey) -> Any:
        """A registry change signed with the operator key (see `adytum.operator`)."""
        return await self.call(method, operator.sign(method, params, key))

    async def submit(
        self, worker: WorkerInfo, workload: str, inputs: list[bytes], *, wait_ms: int = 0, notify_uri: str = ""
    ) -> tuple[PendingOrder, msgspec.Raw | None]:
        """Send one order once; returns it and the result if the node answered within `wait_ms` (a lost
        connection raises NodeUnreachable: `deliver` is the way that keeps the order and retries).
        `notify_uri`: the node POSTs a notification there once the order is answered (docs/push.md)."""
        order = build(
            worker,
            workload,
            inputs,
            requester_id=self.requester_id,
            signer=self.signer,
            response_timeout_ms=wait_ms,
            suite=self.suite,
        )
        order.params.notify_uri = notify_uri
        try:
            return order, await self.call_raw("WorkOrderSubmit", order.params)
        except EeaError as exc:
            if exc.code == Status.PENDING:
                return order, None
            raise

    async def deliver(self, order: PendingOrder, *, timeout: float = 60.0, submitted: bool = False) -> msgspec.Raw:
        """The order's raw result, across lost connections and node restarts (see `Delivery`); `submitted`:
        the node has acknowledged the order already, so start by asking for its result."""
        return await Delivery(self, order, timeout, submitted=submitted).result()

    async def result(
        self, order: PendingOrder, worker: WorkerInfo, *, timeout: float = 60.0, result: msgspec.Raw | None = None
    ) -> list[bytes]:
        """Wait for the result of a submitted order (across node restarts, see `Delivery`), verify, decrypt."""
        if result is None:
            result = await self.deliver(order, timeout=timeout, submitted=True)
        return await self._open(order, worker, result)

    async def run(
        self,
        workload: str,
        inputs: list[bytes],
        *,
        worker_id: str | None = None,
        timeout: float = 60.0,
        sequence: int = 0,
    ) -> list[bytes]:
        """Look up and verify the worker, submit, wait, verify and decrypt: the outputs.

        A node that restarts or drops the connection meanwhile costs time, not the order: the same order
        (same id and nonce, so the node can never run it twice) is asked for, or sent again, until it is
        answered or `timeout` runs out (NodeUnreachable naming the work-order id: ask for it later).
        `sequence` asks for strict ordering (needs a signer): the worker runs this order only as the signer's
        next after `sequence - 1`; a gap, reorder or repeat is refused (INVALID_PARAMETER, naming the next)."""
        deadline = time.monotonic() + timeout
        if not self.reached:  # a node never reached is a wrong address or a node not up: say so at once
            worker = await self.worker(worker_id)
        else:
            worker = await _until_reached(lambda: self.worker(worker_id), deadline)
        order = build(
            worker,
            workload,
            inputs,
            requester_id=self.requester_id,
            signer=self.signer,
            response_timeout_ms=int(timeout * 1000),
            sequence=sequence,
            suite=self.suite,
        )
        return await self._open(order, worker, await self.deliver(order, timeout=deadline - time.monotonic()))


#: The largest event a result stream may send: a result's outData in base64, and then some.
_MAX_EVENT = 64 * 1024 * 1024


async def _first_data(stream: aiohttp.StreamReader) -> bytes | None:
    """The data of the stream's first event that has any (None: the stream ended first)."""
    buffer = b""
    async for chunk in stream.iter_any():
        buffer += chunk
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            data = [line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
            if data:
                return b"\n".join(data)
        if len(buffer) > _MAX_EVENT:
            raise EeaError(Status.UNKNOWN_ERROR, "the node's result stream sent an oversized event")
    return None


async def _until_reached(call: Callable[[], Awaitable[T]], deadline: float) -> T:
    """A call that changes nothing (a lookup), made again across lost connections until the deadline."""
    delay, cap = Delivery.RECONNECT_BACKOFF
    while True:
        try:
            return await call()
        except NodeUnreachable as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.info("%s; trying again in %.2f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, cap)


class Delivery:
    """Get one order answered however often the connection to the node drops, never running it twice.

    Two states, one pending order (its id, nonce and session key kept throughout):

    * SUBMIT: send WorkOrderSubmit. The result: done. PENDING: the node has it, go to POLL. BUSY: not taken,
      submit again after a backoff. A lost connection: the node may or may not have it, go to POLL.
      INVALID_PARAMETER after an earlier attempt: maybe the refusal of a duplicate id (an earlier attempt
      was accepted after all), so go to POLL and let the node say; on the first attempt it is the answer.
    * POLL: wait on the node's result stream when it offers one (GET /results: the same reply as a poll, sent
      once the order is answered), else send WorkOrderGetResult. The result: done. PENDING: poll again (backoff up to 1 s). A lost
      connection: poll again once the node answers (reconnect backoff up to 2 s). INVALID_PARAMETER ("not
      known here"): the node never stored it, go to SUBMIT, unless a resubmit was just refused, then that
      refusal is the answer.

    Resubmitting is safe because it is the same order: the node refuses a second order with the same id
    or requester nonce, so it runs at most once. Every wait ends at the deadline: PENDING then raises the
    node's PENDING error, a node still unreachable raises NodeUnreachable with the work-order id.
    """

    POLL_BACKOFF = (0.02, 1.0)  # (first pause, cap) in seconds, doubling
    RECONNECT_BACKOFF = (0.05, 2.0)
    AT_ONCE = (0.0, 0.0)

    def __init__(self, client: AsyncClient, order: PendingOrder, timeout: float, *, submitted: bool = False) -> None:
        self.client = client
        self.order = order
        self.deadline = time.monotonic() + timeout
        self.submitting = not submitted
        self.submits = 0
        self.refusal: EeaError | None = None
        self._backoff = self.AT_ONCE
        self._delay = 0.0

    async def result(self) -> msgspec.Raw:
        while True:
            step = await (self._submit() if self.submitting else self._poll())
            if not isinstance(step, _Wait):
                return step
            await self._pause(step)

    async def _submit(self) -> msgspec.Raw | _Wait:
        self.submits += 1
        try:
            return await self._call("WorkOrderSubmit", self.order.params)
        except NodeUnreachable as exc:
            self.submitting = False  # accepted or not: ask before sending it again
            return _Wait(self.RECONNECT_BACKOFF, exc)
        except EeaError as exc:
            if exc.code == Status.PENDING:
                self.submitting = False
                return _Wait(self.POLL_BACKOFF, exc)
            if exc.code == Status.BUSY:  # refused before it was stored
                return _Wait(self.RECONNECT_BACKOFF, exc)
            if exc.code == Status.INVALID_PARAMETER and self.submits > 1:  # maybe its id is taken by itself
                self.submitting, self.refusal = False, exc
                return _Wait(self.AT_ONCE, exc)
            raise

    async def _poll(self) -> msgspec.Raw | _Wait:
        try:
            remaining = max(self.deadline - time.monotonic(), 0.0)
            streamed = await self.client._streamed(self.order.work_order_id, remaining)
            if streamed is not None:
                return _unwrap(streamed)
            return await self._call("WorkOrderGetResult", {"workOrderId": self.order.work_order_id})
        except NodeUnreachable as exc:
            return _Wait(self.RECONNECT_BACKOFF, exc)
        except EeaError as exc:
            if exc.code == Status.PENDING:
                return _Wait(self.POLL_BACKOFF, exc)
            if exc.code != Status.INVALID_PARAMETER:  # the order's own failure
                raise
            if self.refusal is not None:  # not known here, and the node refused to take it: that is the answer
                raise self.refusal from None
            self.submitting = True  # not known here: the node never stored it
            log.info("work order %s is not known to the node: sending it again", self.order.work_order_id)
            return _Wait(self.AT_ONCE, exc)

    async def _call(self, method: str, params: Any) -> msgspec.Raw:
        """One call, cut off a little after the deadline (a held submit ends when the node's wait does)."""
        remaining = max(self.deadline - time.monotonic(), 0.0)
        try:
            return await asyncio.wait_for(self.client.call_raw(method, params), remaining + 5.0)
        except TimeoutError:
            raise NodeUnreachable(f"{self.client.uri}: no answer to {method} within the timeout") from None

    async def _pause(self, wait: _Wait) -> None:
        """Sleep the next step of this kind of backoff; at the deadline raise what the caller should see."""
        first, cap = wait.backoff
        self._delay = min(self._delay * 2, cap) if wait.backoff == self._backoff else first
        self._backoff = wait.backoff
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            if isinstance(wait.reason, NodeUnreachable):
                raise NodeUnreachable(
                    f"work order {self.order.work_order_id} is not answered yet ({wait.reason}); "
                    "it may still run: ask WorkOrderGetResult for it later"
                ) from wait.reason
            raise wait.reason
        if isinstance(wait.reason, NodeUnreachable):
            log.info("work order %s: %s; trying again in %.2f s", self.order.work_order_id, wait.reason, self._delay)
        await asyncio.sleep(min(self._delay, remaining))


@dataclass(frozen=True)
class _Wait:
    """A step that did not end the delivery: pause on `backoff` (first, cap), then take the next step."""

    backoff: tuple[float, float]
    reason: NodeUnreachable | EeaError
