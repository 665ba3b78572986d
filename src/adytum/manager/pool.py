"""The pool: one key-manager enclave (KME) provisions the worker's keys to every work-order enclave (WPE).

The host relays the handshake of `adytum.enclave.provisioning` and turns each enclave's quote into
evidence with its attestation service; it never holds a key. The key manager is either this node's
own enclave process (`LocalKeyManager`) or another node's, reached over TCP (`RemoteKeyManager`, for
`adytum up --join HOST:PORT`). A node serves its local key manager to others with `--kme-listen`.

Over TCP each message is a `Relay` frame (`relay.py`). The same port carries work-order enclaves' counter
requests to the key manager, and other key managers' anchor records to it as their witness (`anchor.py`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from typing import Protocol

import msgspec

from ..channel import Anchor as AnchorStep
from ..channel import AnchorPeer, CounterReply, Identity, Provision, WitnessRequest
from ..protocol import KeyManagerStatus
from .anchor import NO_ANCHOR, Anchor, NoAnchor
from .enclave import EnclaveProcess
from .errors import EnclaveDied, EnclaveStartError, ProvisioningRefused
from .evidence import AttestationService
from .relay import Relay, parse_address, read_relay, write_relay

log = logging.getLogger("adytum.pool")
#: Seconds between a joined node's probes of the key manager it joined.
PROBE_SECONDS = 5.0


class KeyManagerLink(Protocol):
    async def exchange(self, body: bytes, proof_type: str = "", proof: str = "") -> Relay: ...

    async def counters(self, body: bytes) -> bytes: ...

    def status(self) -> KeyManagerStatus: ...


async def provision(
    wpe: EnclaveProcess, kme: KeyManagerLink, attestation: AttestationService, offer: Provision | None = None
) -> Identity:
    """Run one handshake between a work-order enclave (or a key manager's successor build) and the key manager;
    return the enclave's identity. `offer`: the enclave's first step, if the caller asked for it already."""
    first = offer or await wpe.provision_step()
    if not isinstance(first, Provision):
        raise ProvisioningRefused(f"{wpe.name} answered a new handshake with its identity, not an offer")
    offer = first
    challenge = await kme.exchange(offer.body)
    response = await wpe.provision_step(challenge.body, challenge.proof_type, challenge.proof)
    assert isinstance(response, Provision)
    delivery = await kme.exchange(response.body, attestation.proof_data_type, attestation.attest(response.quote))
    ident = await wpe.provision_step(delivery.body)
    if not isinstance(ident, Identity):
        raise ProvisioningRefused(f"{wpe.name} did not take the delivered keys")
    return ident


class LocalKeyManager:
    """This node's key-manager enclave process; restarted (same sealed keys) whenever it is needed dead.
    Before it serves, at every start, its counters are checked against its anchor (`check_anchor`)."""

    def __init__(self, process: EnclaveProcess, attestation: AttestationService, anchor: Anchor | None = None) -> None:
        self.process = process
        self.attestation = attestation
        self.anchor: Anchor = anchor or NoAnchor()
        self.provisioned = 0
        self.anchored = 0  # counter versions the anchor acknowledged
        self._evidence: tuple[bytes, str] = (b"", "")  # the key manager's quote and its evidence, for witnessing
        process.prepare = self.check_anchor

    async def check_anchor(self, process: EnclaveProcess, ident: Identity) -> None:
        """Tell the key manager its anchor; with witnesses, bring it their latest records of this worker. It
        refuses to serve (EnclaveStartError, saying why) if its counters are older than theirs."""
        reply = await process.anchor_step(AnchorStep(seq=0, step="challenge", peers=self.anchor.peers))
        assert isinstance(reply, AnchorStep)
        if reply.message:
            raise EnclaveStartError(f"the key manager refuses to serve: {reply.message}")
        if not self.anchor.peers:
            log.warning("key manager anchor %s", NO_ANCHOR)
            return
        witnesses = await self.anchor.latest(reply.subject, reply.body)
        checked = await process.anchor_step(AnchorStep(seq=0, step="check", witnesses=witnesses))
        assert isinstance(checked, AnchorStep)
        if not checked.ready:
            raise EnclaveStartError(f"the key manager refuses to serve: {checked.message}")
        await self.anchor.put(checked.body)  # a version no witness has yet (a first start, a crash before acks)
        log.info("key manager counters (version %d) checked against its anchor, %s", checked.version, self.describe())

    def describe(self) -> str:
        return self.anchor.describe()

    async def start(self) -> Identity:
        return await self.process.start()

    async def stop(self) -> None:
        await self.process.stop()

    async def exchange(self, body: bytes, proof_type: str = "", proof: str = "") -> Relay:
        await self.process.ensure_running()
        reply = await self.process.provision_step(body, proof_type, proof)
        assert isinstance(reply, Provision)
        if not reply.quote:
            self.provisioned += 1  # a delivery
            return Relay(body=reply.body)
        return Relay(
            body=reply.body, proof_type=self.attestation.proof_data_type, proof=self.attestation.attest(reply.quote)
        )

    async def counters(self, body: bytes) -> bytes:
        """A work-order enclave's sealed counter request, answered by the key manager (restarted if need be);
        a change of the counters is answered once the anchor acknowledged it."""
        await self.process.ensure_running()
        reply = await self.process.counters_step(body)
        if reply.anchor:
            witnesses = await self.anchor.put(reply.anchor)
            released = await self.process.anchor_step(
                AnchorStep(seq=0, step="acks", version=reply.version, witnesses=witnesses)
            )
            assert isinstance(released, CounterReply)
            self.anchored += 1
            return released.body
        return reply.body

    async def witness(self, body: bytes) -> AnchorPeer:
        """Another key manager's request of this one as its witness: the signed statement, with this key
        manager's identity, and its evidence when asked for the latest record (the asker pins its key then)."""
        await self.process.ensure_running()
        statement = await self.process.witness_step(body)
        ident = self.process.identity
        assert ident is not None
        peer = AnchorPeer(
            "", statement, ident.verifying_key, ident.encryption_key, ident.worker_id, hpke_keys=ident.hpke_keys
        )
        if not msgspec.msgpack.decode(body, type=WitnessRequest).record:
            if self._evidence[0] != ident.quote:
                self._evidence = (ident.quote, self.attestation.attest(ident.quote))
            peer.proof_type, peer.proof = self.attestation.proof_data_type, self._evidence[1]
        return peer

    async def rotate(self, history_seconds: float, new_signing: bool = False) -> Identity:
        await self.process.ensure_running()
        return await self.process.rotate_keys(history_seconds, new_signing)

    def status(self) -> KeyManagerStatus:
        p, ident = self.process, self.process.identity
        state = "running" if p.serving else "starting" if p.alive else "down"
        return KeyManagerStatus(
            name=p.name,
            role="kme",
            location="local",
            state=state,
            pid=p.pid,
            mr_enclave=ident.mr_enclave if ident else "",
            restarts=p.restarts,
            provisioned=self.provisioned,
            anchor=self.describe(),
        )


class RemoteKeyManager:
    """Another node's key manager, over TCP. Unreachable is retryable (EnclaveDied); refused is not.

    Whether it is reachable is what the last contact showed: a provisioning step, a counter request, or the
    probe `watch` sends every `probe_seconds`, so that an idle node notices the key manager went away
    (and came back) without an order needing it."""

    def __init__(self, address: str, timeout: float = 30.0, probe_seconds: float = PROBE_SECONDS) -> None:
        self.host, self.port = parse_address(address)
        self.timeout = timeout
        self.probe_seconds = probe_seconds
        self.provisioned = 0
        self.reachable: bool | None = None
        self.last_error = ""  # why the last contact failed

    async def watch(self) -> None:
        """Probe the key manager every `probe_seconds` until cancelled."""
        while True:
            await asyncio.sleep(self.probe_seconds)
            await self.probe()

    async def probe(self) -> bool:
        """Ask the key manager's node whether its key manager serves; record and return the answer."""
        try:
            reply = await asyncio.wait_for(self._call(Relay(kind="status")), self.timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, msgspec.DecodeError, ValueError) as exc:
            return self._contact(f"unreachable: {exc or type(exc).__name__}")
        return self._contact(reply.error)

    def _contact(self, error: str) -> bool:
        if error and self.reachable is not False:
            log.warning("key manager at %s:%d %s", self.host, self.port, error)
        elif not error and self.reachable is False:
            log.info("key manager at %s:%d is reachable again", self.host, self.port)
        self.reachable, self.last_error = not error, error
        return self.reachable

    async def exchange(self, body: bytes, proof_type: str = "", proof: str = "") -> Relay:
        try:
            reply = await asyncio.wait_for(self._call(Relay(body, proof_type, proof)), self.timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, msgspec.DecodeError, ValueError) as exc:
            self._contact(f"unreachable: {exc or type(exc).__name__}")
            raise EnclaveDied(
                f"key manager at {self.host}:{self.port} unreachable: {exc or type(exc).__name__}"
            ) from None
        self._contact("")
        if reply.error:
            raise ProvisioningRefused(f"key manager at {self.host}:{self.port} refused: {reply.error}")
        if not reply.proof:
            self.provisioned += 1
        return reply

    async def counters(self, body: bytes) -> bytes:
        try:
            reply = await asyncio.wait_for(self._call(Relay(body, kind="counters")), self.timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, msgspec.DecodeError, ValueError) as exc:
            self._contact(f"unreachable: {exc or type(exc).__name__}")
            raise EnclaveDied(
                f"key manager at {self.host}:{self.port} unreachable: {exc or type(exc).__name__}"
            ) from None
        self._contact("")
        if reply.error:
            raise EnclaveDied(f"key manager at {self.host}:{self.port} refused a counter request: {reply.error}")
        return reply.body

    async def _call(self, request: Relay) -> Relay:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            await write_relay(writer, request)
            return await read_relay(reader)
        finally:
            writer.close()

    def status(self) -> KeyManagerStatus:
        state = {None: "not contacted yet", True: "reachable", False: "unreachable"}[self.reachable]
        return KeyManagerStatus(
            name="kme", role="kme", location=f"{self.host}:{self.port}", state=state, provisioned=self.provisioned
        )


class KeyManagerServer:
    """Serves the local key manager to other nodes' work-order enclaves (`adytum up --kme-listen`).

    Each address may open at most `offers_per_minute` handshakes a minute, so that one peer cannot
    crowd honest handshakes out of the key manager's bounded session table."""

    def __init__(self, kme: LocalKeyManager, address: str, offers_per_minute: int = 60) -> None:
        self.kme = kme
        self.host, self.port = parse_address(address)
        self.offers_per_minute = offers_per_minute
        self._offers: dict[str, deque[float]] = defaultdict(deque)
        self._server: asyncio.Server | None = None

    def _allow_offer(self, peer: str) -> bool:
        now = time.monotonic()
        recent = self._offers[peer]
        while recent and recent[0] < now - 60:
            recent.popleft()
        if len(recent) >= self.offers_per_minute:
            return False
        recent.append(now)
        return True

    @property
    def address(self) -> str:
        if self._server and self._server.sockets:
            host, port = self._server.sockets[0].getsockname()[:2]
            return f"{host}:{port}"
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)
        log.info("key manager accepting work-order enclaves of other nodes on %s", self.address)

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            while True:
                try:
                    request = await asyncio.wait_for(read_relay(reader), 60)
                except asyncio.IncompleteReadError:
                    return  # the peer is done
                if request.kind == "counters":
                    await write_relay(writer, await self._counters(request.body))
                    continue
                if request.kind == "witness":
                    await write_relay(writer, await self._witness(request.body))
                    continue
                if request.kind == "status":
                    await write_relay(writer, self._status())
                    continue
                if request.kind:
                    await write_relay(writer, Relay(error=f"unknown request kind {request.kind[:32]!r}"))
                    continue
                if not request.proof and not self._allow_offer(str(peer[0]) if peer else "?"):
                    log.warning(
                        "provisioning for %s refused: more than %d handshakes a minute", peer, self.offers_per_minute
                    )
                    await write_relay(writer, Relay(error="too many handshakes from this address; retry later"))
                    continue
                try:
                    reply = await self.kme.exchange(request.body, request.proof_type, request.proof)
                except ProvisioningRefused as exc:
                    log.warning("provisioning for %s refused: %s", peer, exc)
                    reply = Relay(error=str(exc))
                except EnclaveDied as exc:
                    reply = Relay(error=f"the key manager is restarting ({exc}); try again")
                await write_relay(writer, reply)
        except (TimeoutError, OSError, msgspec.DecodeError, ValueError) as exc:
            log.warning("provisioning connection from %s dropped: %s", peer, exc or type(exc).__name__)
        finally:
            writer.close()

    def _status(self) -> Relay:
        """A joined node's probe: answered empty while the key manager serves, else with its state."""
        state = self.kme.status().state
        return Relay() if state == "running" else Relay(error=f"the key manager is {state}")

    async def _witness(self, body: bytes) -> Relay:
        try:
            return Relay(body=msgspec.msgpack.encode(await self.kme.witness(body)))
        except (EnclaveDied, ProvisioningRefused, msgspec.DecodeError, msgspec.ValidationError) as exc:
            return Relay(error=str(exc))

    async def _counters(self, body: bytes) -> Relay:
        try:
            return Relay(body=await self.kme.counters(body))
        except EnclaveDied as exc:  # also the key manager's refusal of a request that does not open
            return Relay(error=str(exc))
