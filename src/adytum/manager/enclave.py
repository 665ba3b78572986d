"""The host's handle on one enclave process: spawn it, admit it, restart it when it dies, stop it."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from ..channel import (
    Anchor,
    CounterReply,
    CounterRequest,
    HeadSigned,
    Identity,
    Message,
    Process,
    Processed,
    Provision,
    RotateKey,
    SignHead,
    Witness,
)
from .errors import EnclaveDied, EnclaveStartError, HeadRefused, ProvisioningRefused, SpawnFailed
from .link import EnclaveLink, RelayCounters, Reply

log = logging.getLogger("adytum.manager")
_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
RESTART_BACKOFF = (0.1, 5.0)  # seconds: the first pause before a restart, and the cap it doubles up to
STABLE_AFTER = 60.0  # seconds served after which a death counts as the first of a new streak


def succeeds(ident: Identity, verifying_key: str) -> bool:
    """Whether `ident` signs with `verifying_key` or a key that key handed over to (its chain names it;
    the chain's signatures are the enclave's own work, checked by requesters in `client.worker`)."""
    return verifying_key in (ident.verifying_key, *(h.previous_key for h in ident.handovers))


@dataclass
class Restarts:
    """When to restart an enclave: each restart in a row waits twice as long as the one before
    (RESTART_BACKOFF); an enclave that served STABLE_AFTER seconds before it died starts a new streak."""

    count: int = 0  # restarts since the node started
    streak: int = 0  # restarts in a row since the enclave last served STABLE_AFTER seconds
    last_error: str = ""  # why the last start failed ("" once it started)
    spawn_failed: bool = False  # the last start could not even create the process
    started_at: float | None = None

    def pause(self) -> float:
        """Seconds to wait before the next restart, counting it."""
        if self.started_at is not None and time.monotonic() - self.started_at >= STABLE_AFTER:
            self.streak = 0
        self.started_at = None
        first, cap = RESTART_BACKOFF
        delay = min(cap, first * 2 ** min(self.streak, 10))
        self.streak += 1
        self.count += 1
        return delay

    def started(self) -> None:
        self.last_error, self.started_at = "", time.monotonic()


class EnclaveProcess:
    """One enclave's lifecycle across restarts; each spawned process gets its own `EnclaveLink` for the work."""

    def __init__(
        self,
        name: str,
        data_dir: Path,
        worker_id: str,
        *,
        role: str = "wpe",
        avalon_compat: bool = False,
        timeout: float = 60.0,
        provision: Callable[[EnclaveProcess], Awaitable[Identity]] | None = None,
        admit: Callable[[Identity], None] | None = None,
        read_state: Callable[[str], tuple[int, bytes] | None] | None = None,
        counters: RelayCounters | None = None,
        prepare: Callable[[EnclaveProcess, Identity], Awaitable[None]] | None = None,
        extra_args: tuple[str, ...] = (),
        executable: str = sys.executable,
    ) -> None:
        """A work-order enclave (`role` "wpe") learns its keys through `provision` at every start; a key
        manager ("kme") unseals its own. `admit` checks the identity (evidence, keys) of every start
        and restart; it raises EnclaveStartError to keep an enclave it refuses out of service.
        `read_state` answers the enclave's state reads from the store; `counters` carries its counter requests
        to the key manager. `prepare` runs after every admission, before the enclave serves (the key manager's
        anchor check); it raises EnclaveStartError to refuse. `executable` is the interpreter
        that runs the enclave (tests point it at a missing file to make the spawn fail)."""
        self.name = name
        self.role = role
        self.provision = provision
        self.admit = admit
        self.read_state = read_state
        self.counters = counters
        self.prepare = prepare
        self.extra_args = extra_args
        self.executable = executable
        self.data_dir = data_dir
        self.worker_id = worker_id
        self.avalon_compat = avalon_compat
        self.timeout = timeout
        self.identity: Identity | None = None
        self.served = 0
        self.restart = Restarts()
        self._proc: asyncio.subprocess.Process | None = None
        self._link: EnclaveLink | None = None
        self._seq = itertools.count(1)
        self._stderr: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._starting = False

    @property
    def restarts(self) -> int:
        return self.restart.count

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def alive(self) -> bool:
        return (
            self._proc is not None and self._proc.returncode is None and self._link is not None and self._link.reading
        )

    @property
    def serving(self) -> bool:
        """Running, provisioned and admitted (`alive` is already true while it is being provisioned)."""
        return self.alive and not self._starting

    @property
    def inflight(self) -> int:
        return self._link.inflight if self._link else 0

    async def start(self) -> Identity:
        """Spawn the process and learn its identity; a restarted enclave must present the same keys."""
        args = [self.executable, "-m", "adytum.enclave", "--data-dir", str(self.data_dir)]
        args += ["--worker-id", self.worker_id, "--role", self.role]
        if self.avalon_compat:
            args.append("--avalon-compat")
        args.extend(self.extra_args)
        try:
            pipe, env = asyncio.subprocess.PIPE, {**os.environ, "PYTHONUNBUFFERED": "1"}
            self._proc = await asyncio.create_subprocess_exec(
                *args, stdin=pipe, stdout=pipe, stderr=pipe, env=env, limit=2**20
            )
        except OSError as exc:  # EMFILE, ENOMEM, a missing interpreter: nothing was started
            self._proc = self._link = None
            self.restart.spawn_failed = True
            raise SpawnFailed(f"{self.name} could not be spawned: {exc}") from exc
        self.restart.spawn_failed = False
        self._link = EnclaveLink(
            self.name,
            self._proc,
            timeout=self.timeout,
            seq=self._seq,
            read_state=self.read_state,
            greet=not self.provision,
            counters=self.counters,
        )
        self._stderr = asyncio.create_task(self._log_loop(), name=f"{self.name}-stderr")
        self._starting = True
        try:
            ident = await asyncio.wait_for(self._introduce(), timeout=120)
            if self.identity is not None and not succeeds(ident, self.identity.verifying_key):
                raise EnclaveStartError(f"{self.name} came back with a different signing key")
            if self.admit is not None:
                self.admit(ident)
            self.identity = ident
            if self.prepare is not None:
                await self.prepare(self, ident)
        except BaseException:
            self.kill()
            await self._proc.wait()  # no longer `alive` once this returns
            raise
        finally:
            self._starting = False
        self.identity = ident
        self.restart.started()
        log.info("enclave %s started (pid %s)", self.name, self.pid)
        return ident

    async def _introduce(self) -> Identity:
        if self.provision is not None:
            return await self.provision(self)
        assert self._link is not None
        return await self._link.hello()

    async def ensure_running(self) -> None:
        """Restart a dead enclave once, however many callers notice at the same time, after the pause
        `Restarts` says. A start that fails (any cause: a spawn error, an exit or timeout during provisioning,
        a refusal) is logged at ERROR with that cause and raises EnclaveStartError; the next call tries again."""
        async with self._lock:
            stdin = self._proc.stdin if self._proc else None
            if self.alive and not (stdin and stdin.is_closing()):
                return
            if self._link is not None and self._link.reading:  # dead, its end not read yet: let the old
                await self._link.closed()  # link fail the old process's requests before a restart
            delay = self.restart.pause()
            if not self.restart.last_error:
                log.warning("enclave %s is down; restarting in %.1f s", self.name, delay)
            await asyncio.sleep(delay)
            try:
                await self.start()
            except Exception as exc:  # whatever the cause, the callers see one kind of failure: not started
                error = self.restart.last_error = str(exc) or type(exc).__name__
                log.error("enclave %s did not start (attempt %d): %s", self.name, self.restart.streak, error)
                if isinstance(exc, EnclaveStartError):
                    raise
                raise EnclaveStartError(f"{self.name} did not start: {error}") from exc

    async def process(self, params: bytes) -> Processed:
        reply = await self._request(lambda seq: Process(seq=seq, params=params), "one work order")
        assert isinstance(reply, Processed)
        self.served += 1
        return reply

    async def sign_head(self, request: SignHead) -> HeadSigned:
        """Work-order enclave: the ledger's tree head after `request.leaves`, signed (the request's seq and
        worker id are this link's and this enclave's); HeadRefused if it will not sign."""
        request = msgspec.structs.replace(request, worker_id=self.worker_id)
        reply = await self._request(lambda seq: msgspec.structs.replace(request, seq=seq), "a tree head")
        if not isinstance(reply, HeadSigned):
            raise HeadRefused(
                f"{self.name} refused to sign a tree head: {getattr(reply, 'message', 'unexpected reply')}"
            )
        return reply

    async def rotate_keys(self, history_seconds: float, new_signing: bool = False) -> Identity:
        """Key manager: make, seal and return a new worker encryption key (previous keys serve
        `history_seconds` after their retirement); `new_signing`: a new signing key too, handed over to."""
        reply = await self._request(
            lambda seq: RotateKey(seq=seq, history_seconds=history_seconds, new_signing=new_signing), "a key rotation"
        )
        if not isinstance(reply, Identity):
            raise RuntimeError(f"{self.name}: {getattr(reply, 'message', 'unexpected reply')}")
        self.identity = reply
        return reply

    async def counters_step(self, body: bytes) -> CounterReply:
        """Key manager: its sealed answer to a work-order enclave's sealed counter request (or, anchored, the
        record to have acknowledged first: see `anchor_step`)."""
        reply = await self._request(lambda seq: CounterRequest(seq=seq, body=body), "a counter request")
        if not isinstance(reply, CounterReply):
            raise EnclaveDied(f"{self.name} refused a counter request: {getattr(reply, 'message', 'unexpected')}")
        return reply

    async def anchor_step(self, msg: Anchor) -> Anchor | CounterReply:
        """Key manager: one step of its anchor (see `adytum.channel.Anchor`); a refusal raises EnclaveStartError."""
        reply = await self._request(lambda seq: msgspec.structs.replace(msg, seq=seq), f"an anchor {msg.step}")
        if not isinstance(reply, (Anchor, CounterReply)):
            raise EnclaveStartError(f"{self.name}: {getattr(reply, 'message', 'unexpected reply')}")
        return reply

    async def witness_step(self, body: bytes) -> bytes:
        """Key manager: its signed statement of what it holds for another key manager, after `body`."""
        reply = await self._request(lambda seq: Witness(seq=seq, body=body), "a witness request")
        if not isinstance(reply, Witness):
            raise ProvisioningRefused(f"{self.name} refused: {getattr(reply, 'message', 'unexpected reply')}")
        return reply.body

    async def provision_step(self, body: bytes = b"", proof_type: str = "", proof: str = "") -> Provision | Identity:
        """One handshake step (see `adytum.enclave.provisioning`); a refusal raises ProvisioningRefused."""
        reply = await self._request(
            lambda seq: Provision(seq=seq, body=body, proof_type=proof_type, proof=proof), "a provisioning step"
        )
        if isinstance(reply, Processed):
            raise ProvisioningRefused(f"{self.name} refused: {reply.message}")
        if not isinstance(reply, (Provision, Identity)):
            raise ProvisioningRefused(f"{self.name} answered a provisioning step with a {type(reply).__name__}")
        if isinstance(reply, Identity):
            self.identity = reply
        return reply

    async def _request(self, make: Callable[[int], Message], what: str) -> Reply:
        if not self.alive or self._link is None:
            raise EnclaveDied(f"{self.name} is not running")
        return await self._link.request(make, what)

    async def wait_exit(self) -> None:
        """Return when the current process has exited (at once if there is none)."""
        if self._proc is not None:
            await self._proc.wait()

    async def keep_alive(self) -> None:
        """Restart this enclave as soon as its process dies, idle or not (not at the next request that needs
        it): a key manager unseals the same keys, a work-order enclave is provisioned again. Runs until
        cancelled; `ensure_running` backs off between failed starts and logs each one."""
        while True:
            await self.wait_exit()
            try:
                await self.ensure_running()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep watching; the next turn tries again after the backoff
                log.error("enclave %s did not come back: %s; retrying", self.name, exc)

    def kill(self) -> None:
        if self._proc and self._proc.returncode is None:
            self._proc.kill()

    async def stop(self) -> None:
        if self._proc and self._proc.returncode is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                await asyncio.wait_for(self._proc.wait(), timeout=5)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        if self._link:
            self._link.cancel()
        if self._stderr:
            self._stderr.cancel()

    async def _log_loop(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        async for line in self._proc.stderr:
            level, _, message = line.decode(errors="replace").rstrip().partition(" ")
            log.log(
                logging.getLevelName(level) if level in _LEVELS else logging.INFO,
                "%s: %s",
                self.name,
                message if level in _LEVELS else f"{level} {message}",
            )
