"""Requests to one enclave process and their replies, matched by seq over its stdin/stdout frames."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator

from ..channel import (
    HEADER,
    Anchor,
    ChannelError,
    CounterReply,
    CounterRequest,
    Fatal,
    HeadSigned,
    Hello,
    Identity,
    Message,
    Processed,
    Provision,
    StateRead,
    StateValue,
    Witness,
    frame_length,
    pack,
    unpack,
)
from .errors import EnclaveDied, EnclaveStartError

log = logging.getLogger("adytum.manager")

Reply = Processed | Identity | Provision | HeadSigned | CounterReply | Anchor | Witness
#: Carries a work-order enclave's sealed counter request to the key manager; its sealed reply (b"": unreachable).
RelayCounters = Callable[[bytes], Awaitable[bytes]]


class EnclaveLink:
    """The link to one spawned process; a restart makes a new one, so a dying process fails only its own requests.

    Replies may come back in any order (the enclave pipelines), so each request waits on its own future. The
    enclave may read the store in the middle of a work order; `read_state` answers it, and `counters` carries
    its counter requests to the key manager."""

    def __init__(
        self,
        name: str,
        proc: asyncio.subprocess.Process,
        *,
        timeout: float,
        seq: Iterator[int],
        read_state: Callable[[str], tuple[int, bytes] | None] | None,
        greet: bool,
        counters: RelayCounters | None = None,
    ) -> None:
        """`seq` is shared by every link of one enclave, so a number never means two requests. With `greet`
        the enclave introduces itself on `hello()`; the future exists before the reader so an early Fatal
        reaches it."""
        self.name = name
        self.timeout = timeout
        self.read_state = read_state
        self.counters = counters
        self._relays: set[asyncio.Task[None]] = set()
        self._proc = proc
        self._seq = seq
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._hello: asyncio.Future[Identity] | None = asyncio.get_running_loop().create_future() if greet else None
        self._reader = asyncio.create_task(self._read_loop(), name=f"{name}-reader")

    @property
    def reading(self) -> bool:
        """False once the process's stdout ended (or it sent Fatal): every request of it has then failed."""
        return not self._reader.done()

    @property
    def inflight(self) -> int:
        return len(self._pending)

    async def closed(self) -> None:
        """Return when the reader has finished and so failed the requests still in flight."""
        await asyncio.wait({self._reader})

    def cancel(self) -> None:
        self._reader.cancel()
        for task in list(self._relays):
            task.cancel()

    async def hello(self) -> Identity:
        """Ask the enclave who it is; a Fatal or an exit before it answers raises EnclaveStartError."""
        assert self._hello is not None
        self._send(Hello())
        return await self._hello

    async def request(self, make: Callable[[int], Message], what: str) -> Reply:
        """Send one request and wait for its reply; a timeout kills the process (it may be stuck in a workload)."""
        seq = next(self._seq)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Reply] = loop.create_future()
        self._pending[seq] = fut
        timer = loop.call_later(self.timeout, _expire, fut)  # one timer, no task: this is every order's path
        try:
            self._send(make(seq))
            return await fut
        except TimeoutError:
            log.error("enclave %s exceeded %.0f s on %s; killing it", self.name, self.timeout, what)
            self._kill()
            raise EnclaveDied(f"{self.name} timed out") from None
        except (ConnectionError, RuntimeError) as exc:
            raise EnclaveDied(f"{self.name}: {exc}") from None
        finally:
            timer.cancel()
            self._pending.pop(seq, None)

    def _kill(self) -> None:
        if self._proc.returncode is None:
            self._proc.kill()

    def _send(self, msg: Message) -> None:
        assert self._proc.stdin is not None
        if self._proc.stdin.is_closing():
            raise ConnectionError("enclave stdin is closed")
        self._proc.stdin.write(pack(msg))

    async def _read_loop(self) -> None:
        """Route each frame to its request until stdout ends; then fail what is left and make sure it is dead."""
        assert self._proc.stdout is not None
        out = self._proc.stdout
        reason = "exited"
        try:
            while True:
                msg = unpack(await out.readexactly(frame_length(await out.readexactly(HEADER.size))))
                if (
                    isinstance(msg, (Processed, Identity, Provision, HeadSigned, CounterReply, Anchor, Witness))
                    and msg.seq in self._pending
                ):
                    fut = self._pending[msg.seq]
                    if not fut.done():
                        fut.set_result(msg)
                elif isinstance(msg, StateRead):
                    self._send(self._state_value(msg))
                elif isinstance(msg, CounterRequest):
                    task = asyncio.create_task(self._relay(msg), name=f"{self.name}-counters")
                    self._relays.add(task)
                    task.add_done_callback(self._relays.discard)
                elif isinstance(msg, Identity) and self._hello and not self._hello.done():
                    self._hello.set_result(msg)
                elif isinstance(msg, Fatal):
                    reason = msg.message
                    if self._hello and not self._hello.done():
                        self._hello.set_exception(EnclaveStartError(msg.message))
                    return
        except (asyncio.IncompleteReadError, ChannelError, ConnectionError) as exc:
            reason = str(exc) or type(exc).__name__
        finally:
            died = EnclaveDied(f"{self.name} {reason}")
            if self._hello and not self._hello.done():
                self._hello.set_exception(EnclaveStartError(f"{self.name} exited during start: {reason}"))
            for fut in list(self._pending.values()):
                if not fut.done():
                    fut.set_exception(died)
            self._kill()

    async def _relay(self, msg: CounterRequest) -> None:
        """The key manager's answer to the enclave's counter request, while its order waits for it."""
        body = b""
        if self.counters is not None:
            try:
                body = await self.counters(msg.body)
            except Exception as exc:  # the enclave hears "unreachable" and says so in the order's answer
                log.warning("counter request of %s not relayed: %s", self.name, exc)
        try:
            self._send(CounterReply(seq=msg.seq, body=body))
        except ConnectionError:
            pass  # the enclave went away meanwhile: its reader fails the order

    def _state_value(self, msg: StateRead) -> StateValue:
        stored = self.read_state(msg.item_id) if self.read_state else None
        if stored is None:
            return StateValue(seq=msg.seq, item_id=msg.item_id)
        return StateValue(seq=msg.seq, item_id=msg.item_id, version=stored[0], value=stored[1])


def _expire(fut: asyncio.Future[Reply]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())
