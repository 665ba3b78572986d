"""Result notifications: a POST to an order's `notifyUri` once it is answered, from the store's durable outbox.

The outbox row is stored with the order (`store.outbox`), so a crash or a restart loses none; a failed POST
is retried with doubling pauses, and after `attempts` tries the row is abandoned. Delivery is at least once,
and every POST names its work order (body and `Idempotency-Key`), so a receiver drops repeats by that id.
A notification is a hint, never the result: the result stays with WorkOrderGetResult.

The body carries what the host can show without the worker's private key, which only the enclaves hold: for a
completed order, the response hash and the worker's signature over it, exactly as the enclave signed them in
the result (`crypto.verify_digest(worker verifying key, responseHash, workerSignature)` checks it); for a
failed one, its code, unsigned.

Which hosts may be notified (`NotifyPolicy`) stops the node from being used to reach its own network: without
an allow-list only public addresses are contacted, and a name is checked on the addresses it resolves to when
the connection is made (so a name that later resolves elsewhere cannot slip past); with one (`adytum up
--notify-allow HOST[:PORT]`) only the listed hosts are, whatever their addresses. Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

import aiohttp
import msgspec
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from ..errors import AdytumError
from ..protocol import EeaError, decode_result, response_hash
from ..store import GroupCommit, Store, outbox

log = logging.getLogger("adytum.notify")

#: Seconds an attempt holds its row: longer than a POST may take, so no other sender starts it meanwhile.
_HOLD = 60.0
#: POSTs in flight at once.
_CONCURRENT = 16


class NotifyRefused(AdytumError):
    """This notifyUri may not be notified (its message says why and what the operator can allow)."""


def _entry(text: str) -> tuple[str, int | None]:
    """HOST, HOST:PORT or [IPv6]:PORT as (host, port or None)."""
    refused = ValueError(f"--notify-allow {text!r} is not HOST or HOST:PORT")
    try:
        parts = urlsplit("//" + text.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        raise refused from None
    if not host or parts.path or parts.query or parts.username:
        raise refused
    return host.lower().rstrip("."), port


class NotifyPolicy:
    """Which notifyUris the node POSTs to: the allow-list's hosts if there is one; else public addresses only."""

    def __init__(self, allow: Iterable[str] = ()) -> None:
        self.allow = frozenset(_entry(a) for a in allow)

    def target(self, uri: str) -> tuple[str, int]:
        """The (host, port) to notify for `uri`; NotifyRefused if it is malformed or not allowed. A name's
        addresses are checked again when it is resolved (`resolver`)."""
        try:
            parts = urlsplit(uri)
            host, port = (parts.hostname or "").lower().rstrip("."), parts.port
        except ValueError:
            raise NotifyRefused(f"notifyUri {uri[:100]!r} is not a URL") from None
        if parts.scheme not in ("http", "https") or not host:
            raise NotifyRefused(f"notifyUri {uri[:100]!r} must be an http:// or https:// URL with a host")
        if parts.username or parts.password:
            raise NotifyRefused("notifyUri must not carry credentials")
        port = port or (443 if parts.scheme == "https" else 80)
        if self.allow:
            if (host, port) not in self.allow and (host, None) not in self.allow:
                raise NotifyRefused(
                    f"notifyUri host {host}:{port} is not on this node's allow-list (adytum up --notify-allow)"
                )
            return host, port
        address = _ip(host)
        if address is not None and not _public(address):
            raise NotifyRefused(
                f"notifyUri address {host} is private, loopback or reserved; the operator may allow it with "
                f"adytum up --notify-allow {host}:{port}"
            )
        return host, port

    def refusal(self, uri: str) -> str | None:
        """Why `uri` may not be notified, or None: the listener's check at submit."""
        try:
            self.target(uri)
        except NotifyRefused as exc:
            return str(exc)
        return None

    def resolver(self) -> AbstractResolver:
        return _PublicResolver() if not self.allow else ThreadedResolver()


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


class _PrivateOnly(OSError):
    """A name resolved to no public address: the policy's refusal."""


class _PublicResolver(AbstractResolver):
    """Resolves as usual, then keeps only public addresses: the check is made on what is connected to."""

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        public = [r for r in found if _public(ipaddress.ip_address(r["host"]))]
        if not public:
            raise _PrivateOnly(f"notifyUri host {host} resolves only to private, loopback or reserved addresses")
        return public

    async def close(self) -> None:
        await self._inner.close()


def notification_body(work_order_id: str, worker_id: str, code: int, body: bytes) -> bytes:
    """What is POSTed: the order, its status, and for a result the enclave's signed response hash."""
    note: dict[str, object] = {"workOrderId": work_order_id, "workerId": worker_id, "code": code}
    if code != 0:
        return msgspec.json.encode(note | {"status": "failed"})
    note["status"] = "completed"
    try:
        result = decode_result(body)
    except (EeaError, ValueError):  # a result of another shape (never from this node's enclaves): unsigned
        return msgspec.json.encode(note)
    note |= {"responseHash": response_hash(result).hex(), "workerSignature": result.worker_signature}
    return msgspec.json.encode(note)


class Notifier:
    """Sends the outbox's due notifications: woken when this node answers an order, and at each retry's time."""

    def __init__(
        self,
        reader: Store,
        committer: GroupCommit,
        worker_id: str,
        policy: NotifyPolicy,
        *,
        retry: float = 1.0,
        attempts: int = 10,
        timeout: float = 10.0,
    ) -> None:
        self.reader, self.committer, self.worker_id, self.policy = reader, committer, worker_id, policy
        self.retry, self.attempts, self.timeout = retry, attempts, timeout
        self._woken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        #: The rows this node holds for an attempt in progress, until the attempt is settled.
        self._holding: dict[str, outbox.Notification] = {}
        self._session: aiohttp.ClientSession | None = None

    def wake(self, work_order_id: str = "") -> None:
        """An order was answered here: its notification (if it has one) is due now."""
        self._woken.set()

    def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=self.policy.resolver(), limit=_CONCURRENT),
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            headers={"User-Agent": "adytum-notify/1"},
        )
        self._task = asyncio.create_task(self._run(), name="notifier")

    async def stop(self) -> None:
        """Stop sending. Attempts cut short are due again at once, for another node or the next start (one
        that cannot be given back, the store failing, is due again when its hold ends)."""
        cut = list(self._holding.values())
        tasks = [t for t in (self._task, *self._sends) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if cut:
            back = [self.committer.run(outbox.release, n.work_order_id, n.attempts + 1) for n in cut]
            try:
                await asyncio.wait_for(asyncio.gather(*back, return_exceptions=True), 5.0)
            except TimeoutError:
                log.warning("%d notifications cut short are due again only when their hold ends", len(cut))
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        while True:
            self._woken.clear()
            try:
                pause = await self._send_due()
            except Exception as exc:  # the store cannot read or write just now: look again shortly
                log.warning("sending notifications failed (%s); trying again shortly", exc)
                pause = 5.0
            try:
                await asyncio.wait_for(self._woken.wait(), pause)
            except TimeoutError:
                pass

    async def _send_due(self) -> float:
        """Start the due notifications there is room for; the seconds until the next one falls due."""
        now, room = time.time(), _CONCURRENT - len(self._sends)
        notes = outbox.due(self.reader, now, room) if room > 0 else []  # no row is held before it can be sent
        taken = await asyncio.gather(
            *(self.committer.run(outbox.take, n.work_order_id, n.attempts, now + _HOLD) for n in notes)
        )
        for note, mine in zip(notes, taken, strict=True):
            if mine:
                self._holding[note.work_order_id] = note
                task = asyncio.create_task(self._send(note), name=f"notify-{note.work_order_id[:16]}")
                self._sends.add(task)
                task.add_done_callback(self._sent)
        following = outbox.next_due(self.reader)
        return 30.0 if following is None else min(max(following - time.time(), 0.01), 30.0)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sends.discard(task)
        self._woken.set()  # a slot is free, and the next due time may have changed

    async def _send(self, note: outbox.Notification) -> None:
        attempt = note.attempts + 1
        try:
            body = self._body(note.work_order_id)
            self.policy.target(note.uri)  # the allow-list may have changed since the order was accepted
            error = await self._post(note, body, attempt)
        except NotifyRefused as exc:
            log.info("notification of %s to %s refused: %s", note.work_order_id, note.uri[:100], exc)
            await self._settle(note, outbox.REFUSED, str(exc))
            return
        if error is None:
            await self._settle(note, outbox.DELIVERED)
        elif attempt >= self.attempts:
            log.warning("notification of %s abandoned after %d attempts: %s", note.work_order_id, attempt, error)
            await self._settle(note, outbox.ABANDONED, error)
        else:
            pause = self.retry * 2 ** (attempt - 1)
            log.info(
                "notification of %s failed (%s); attempt %d in %.1f s", note.work_order_id, error, attempt + 1, pause
            )
            await self._settle(note, outbox.WAITING, error, time.time() + pause)

    def _body(self, work_order_id: str) -> bytes:
        outcome = self.reader.response(work_order_id)
        if outcome is None:  # pruned meanwhile: nothing to say any more
            raise NotifyRefused("the order's result was pruned before it could be notified")
        return notification_body(work_order_id, self.worker_id, outcome.code, outcome.body)

    async def _post(self, note: outbox.Notification, body: bytes, attempt: int) -> str | None:
        """None once the receiver answered 2xx; else what went wrong, in one line. NotifyRefused if the host's
        name resolved to no address the policy admits (final: no retry)."""
        assert self._session is not None
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": note.work_order_id,
            "Adytum-Attempt": str(attempt),
        }
        try:
            async with self._session.post(note.uri, data=body, headers=headers, allow_redirects=False) as resp:
                if 200 <= resp.status < 300:
                    return None
                return f"HTTP {resp.status}"
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, _PrivateOnly):
                raise NotifyRefused(str(exc.os_error)) from None
            return f"{type(exc).__name__}: {exc}"[:300]
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"[:300]

    async def _settle(self, note: outbox.Notification, state: str, error: str = "", next_at: float = 0.0) -> None:
        await self.committer.persist(outbox.settle, note.work_order_id, state, next_at or time.time(), error)
        self._holding.pop(note.work_order_id, None)
