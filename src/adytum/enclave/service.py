"""The two kinds of enclave and their serving loop: frames in on stdin, frames out on stdout, logs on stderr."""

from __future__ import annotations

import logging
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import msgspec

from ..attestation.measurement import Measurement
from ..attestation.verify import report_data_for
from ..channel import (
    Anchor,
    ChannelError,
    CounterReply,
    CounterRequest,
    Fatal,
    Hello,
    Identity,
    Message,
    PreviousKey,
    Process,
    Processed,
    Provision,
    RotateKey,
    SignHead,
    StateRead,
    StateValue,
    Witness,
    pack,
    read_frame,
)
from ..datadir import DataDir, PolicyError
from ..files import write_atomic
from ..protocol import EeaError, Status
from ..workloads import load_workloads
from .anchor import SEAL_LABEL as WITNESSED_LABEL
from .anchor import AnchorCheck, WitnessTable, make_record, subject
from .budget import Budget, alarm_held
from .counters import SEAL_LABEL as COUNTERS_LABEL
from .counters import CounterClient, CounterServer, CounterStore
from .keys import SEAL_LABEL as KEYS_LABEL
from .keys import WorkerKeys, load_or_create, rotate
from .ledger import HeadRefused, TreeHeadSigner
from .processor import Refused, RunAgain, WorkOrderProcessor
from .provisioning import (
    KME_PRODUCT,
    WPE_PRODUCT,
    KeyManagerSessions,
    ProvisioningError,
    Step,
    Succession,
    WpeHandshake,
)
from .sealing import Sealer, UnsealError
from .tee import Tee, select_tee

log = logging.getLogger("adytum.enclave")
#: The label a received succession is sealed under until it is installed (`KeyManager._install_succession`).
SUCCESSION_LABEL = "succession.sealed"


class Platform:
    """What any enclave has from its TEE (`tee.select_tee`): its measurement and evidence for its product."""

    def __init__(self, data: DataDir, product: int, plugins: bool = True) -> None:
        self.tee: Tee = select_tee(data, product, plugins)
        self.measurement: Measurement = self.tee.measurement

    def identity(self, keys: WorkerKeys, seq: int, workloads: list[str], avalon_compat: bool) -> Identity:
        """Public keys and evidence; the quote binds the keys as they are now (report data)."""
        quote = self.tee.quote(report_data_for(keys.verifying_key, keys.encryption_key, keys.worker_id, keys.hpke_keys))
        return Identity(
            worker_id=keys.worker_id,
            verifying_key=keys.verifying_key,
            encryption_key=keys.encryption_key,
            encryption_key_signature=keys.encryption_key_signature,
            encryption_key_nonce=keys.encryption_key_nonce,
            simulated=self.tee.simulated,
            avalon_compat=avalon_compat,
            workloads=workloads,
            mr_enclave=self.measurement.mr_enclave.hex(),
            mr_signer=self.measurement.mr_signer.hex(),
            quote=quote,
            key_get_signature=keys.key_get_signature,
            seq=seq,
            previous_keys=[
                PreviousKey(r.encryption_key, r.nonce, r.retired_at, keys.serves_until(r)) for r in keys.history
            ],
            handovers=keys.handovers,
            hpke_keys=keys.hpke_keys,
        )

    def reply(self, seq: int, step: Step) -> Provision:
        return Provision(seq=seq, body=step.body, quote=self.tee.quote(step.report_data) if step.report_data else b"")


class KeyManager:
    """The key-manager enclave (KME): makes the worker's keys once, seals them, and provisions them to
    work-order enclaves its policy lists: DATA_DIR/kme/policy.json (see `adytum.datadir`), read at every
    handshake so that an upgrade is allowed without a restart. It runs no workloads, so
    its own measurement leaves the plug-ins out: changing them changes the work-order enclaves' build,
    not the key manager's, and its sealed keys still open."""

    def __init__(self, data: DataDir, worker_id: str, succeed: bool = False) -> None:
        """`succeed`: if this build cannot unseal the worker's keys, wait for the key-manager build that sealed
        them to hand them over (`provisioning.Succession`; the operator allows this build in its policy)."""
        self.data, self.worker_id = data, worker_id
        self.platform = Platform(data, KME_PRODUCT, plugins=False)
        data.kme.mkdir(exist_ok=True)
        self.sealer = Sealer(self.platform.tee.sealing_secret(), self.platform.measurement.mr_enclave)
        self.anchor = AnchorCheck(self.platform.measurement, self.platform.tee.peer_roots)
        self.refusal = ""  # why this key manager does not serve (its counters are older than its anchor's)
        self.handed_over = ""  # the build this key manager handed everything to: it serves nothing any more
        self._held: dict[int, bytes] = {}  # counter version -> the answer released once the anchor acknowledged it
        self._successor: WpeHandshake | None = None  # set while waiting for the previous build's hand-over
        try:
            self._install_succession()
            keys = load_or_create(data.kme_keys, self.sealer, worker_id)
        except UnsealError as exc:
            if not succeed:
                raise UnsealError(
                    f"{exc}. This key manager measures {self.platform.measurement.mr_enclave.hex()}; its sealed "
                    f"keys belong to another build. Run the build that sealed them, let it hand them over "
                    f"(`adytum up --kme-predecessor`, docs/deployment.md), or move {data.kme_keys} aside to "
                    "start a new worker identity."
                ) from None
            roots = self.platform.tee.peer_roots()
            self._successor = WpeHandshake(worker_id, self.platform.measurement, roots, successor=True)
            return
        self._serve(keys)

    def _serve(self, keys: WorkerKeys) -> None:
        self.keys = keys
        self.sessions = KeyManagerSessions(
            lambda: self.keys,
            self.platform.measurement,
            self.platform.tee.peer_roots(),
            self.allowed,
            successors=self.allowed_successors,
            hand_over=self._hand_over,
        )
        try:
            self.store = CounterStore(self.data.kme_counters, self.sealer)
            self.witness = WitnessTable(self.data.kme_witnessed, self.sealer, lambda: self.anchor_keys)
        except UnsealError as exc:
            raise UnsealError(f"{exc}; the key manager cannot vouch for order or state freshness without it") from None
        self.counters = CounterServer(self.store, lambda: self.keys.root_secret)

    # -- handing the key manager to a new build (an upgrade) -------------------------------------------

    def _sealed_files(self) -> tuple[tuple[Path, str], ...]:
        return (
            (self.data.kme_keys, KEYS_LABEL),
            (self.data.kme_counters, COUNTERS_LABEL),
            (self.data.kme_witnessed, WITNESSED_LABEL),
        )

    def _hand_over(self, build: bytes) -> bytes:
        """The whole key manager for its successor `build`; from now on this one serves nothing (a second
        holder of the counters would let a host fork them)."""
        plain = [
            self.sealer.unseal(label, path.read_bytes()) if path.exists() else b""
            for path, label in self._sealed_files()
        ]
        self.handed_over = build.hex()
        log.warning("the worker's keys are handed over to key-manager build %s; this build serves no more", build.hex())
        return msgspec.msgpack.encode(Succession(*plain))

    def _succeed(self, msg: Provision) -> Message:
        """The new build's side of the hand-over: offer, answer the old key manager's challenge, take and seal
        what it delivers, then serve as the key manager."""
        assert self._successor is not None
        if not msg.body:
            return Provision(seq=msg.seq, body=self._successor.offer)
        if not self._successor.answered:
            return self.platform.reply(msg.seq, self._successor.answer(msg.body, msg.proof_type, msg.proof))
        succession = self._successor.accept_succession(msg.body)
        write_atomic(self.data.kme_succession, self.sealer.seal(SUCCESSION_LABEL, msgspec.msgpack.encode(succession)))
        self._install_succession()  # the hand-over is committed once the file above is written
        self._successor = None
        self._serve(load_or_create(self.data.kme_keys, self.sealer, self.worker_id))
        log.info("took the worker's keys over from the previous key-manager build, sealed under this one")
        return self.platform.identity(self.anchor_keys, msg.seq, [], False)

    def _install_succession(self) -> None:
        """Seal a received succession into the key manager's three files, then drop it: repeated after a crash
        until done. A succession this build cannot open was made for another build (the keys went there)."""
        path = self.data.kme_succession
        if not path.exists():
            return
        try:
            succession = msgspec.msgpack.decode(
                self.sealer.unseal(SUCCESSION_LABEL, path.read_bytes()), type=Succession
            )
        except UnsealError:
            raise UnsealError(
                f"{path}: the worker's keys were handed over to another key-manager build; run that build"
            ) from None
        for (target, label), plain in zip(
            self._sealed_files(), (succession.keys, succession.counters, succession.witnessed), strict=True
        ):
            if plain:
                write_atomic(target, self.sealer.seal(label, plain))
            else:
                target.unlink(missing_ok=True)
        path.unlink()

    @property
    def keys(self) -> WorkerKeys:
        return self._keys

    @keys.setter
    def keys(self, keys: WorkerKeys) -> None:
        self._keys = keys
        #: The key manager's own face (identity, anchor records, witness statements): the worker's first
        #: signing key whatever rotations since, so that its witnesses' records and pins stay valid.
        self.anchor_keys = keys.anchor_view()

    def allowed(self) -> frozenset[bytes]:
        """The policy as it is now; a malformed one refuses the handshake with what is wrong with it."""
        try:
            return frozenset(bytes.fromhex(m) for m in self.data.allowed_builds())
        except PolicyError as exc:
            raise ProvisioningError(str(exc)) from None

    def allowed_successors(self) -> frozenset[bytes]:
        """The key-manager builds the policy lists as successors (`adytum pool allow --key-manager`)."""
        try:
            return frozenset(bytes.fromhex(m) for m in self.data.allowed_key_managers())
        except PolicyError as exc:
            raise ProvisioningError(str(exc)) from None

    def _not_serving(self) -> str:
        if self.refusal:
            return self.refusal
        return "" if self.anchor.checked else "the key manager has not checked its counters against its anchor yet"

    def _counters(self, msg: CounterRequest) -> CounterReply:
        """Answer at once, or (anchored, and the counters changed) hold the answer until the anchor has the
        new version: the host gets the record to have acknowledged first."""
        before = self.store.version
        body = self.counters.handle(msg.body)
        if not self.anchor.peers or self.store.version == before:
            return CounterReply(seq=msg.seq, body=body)
        version = self.store.version
        self._held[version] = body
        while len(self._held) > 4096:  # answers whose acknowledgement never came: the orders run again
            del self._held[next(iter(self._held))]
        return CounterReply(
            seq=msg.seq, anchor=make_record(self.anchor_keys, version, self.store.digest), version=version
        )

    def _anchor(self, msg: Anchor) -> Message:
        about = subject(self.anchor_keys.worker_id, self.anchor_keys.verifying_key)
        if msg.step == "challenge":
            challenge = self.anchor.start(msg.peers)
            if not msg.peers and self.store.state.witnesses:
                self.refusal = (
                    f"these counters were anchored to {len(self.store.state.witnesses)} peers, and the node was "
                    "started with none: a rollback of the whole host could not be detected; start it with --anchor-peer"
                )
            return Anchor(seq=msg.seq, step="challenge", body=challenge, message=self.refusal, subject=about)
        if msg.step == "check":
            state = self.store.state
            self.refusal = self.anchor.check(about, msg.witnesses, state.version, self.store.digest, state.witnesses)
            if self.refusal:
                log.error("refusing to serve: %s", self.refusal)
                return Anchor(seq=msg.seq, step="checked", message=self.refusal)
            self.store.anchored_to(sorted(self.anchor.pinned))
            record = make_record(self.anchor_keys, self.store.version, self.store.digest)
            return Anchor(seq=msg.seq, step="checked", ready=True, body=record, version=self.store.version)
        if msg.step == "acks":
            body = self._held.pop(msg.version, b"")
            acks = self.anchor.acknowledged(about, msg.version, msg.witnesses)
            if body and acks >= self.anchor.required:
                return CounterReply(seq=msg.seq, body=body)
            why = "" if body else " (its answer is no longer held)"
            return Processed(
                seq=msg.seq,
                code=Status.BUSY,
                message=f"{acks} of {self.anchor.peers} anchor peers acknowledged counter version {msg.version}, "
                f"{self.anchor.required} needed{why}",
            )
        return Processed(seq=msg.seq, code=Status.INVALID_PARAMETER, message=f"unknown anchor step {msg.step[:32]!r}")

    def handle(self, msg: Message, link: HostLink) -> Message | None:
        if self._successor is not None:  # this build waits for the previous one's keys
            if not isinstance(msg, Provision):
                return _denied(
                    msg, "this key-manager build waits for the previous build to hand the worker's keys over"
                )
            try:
                return self._succeed(msg)
            except ProvisioningError as exc:
                log.warning("taking the keys over refused: %s", exc)
                return _denied(msg, str(exc))
        if self.handed_over and not isinstance(msg, Hello):
            return _denied(msg, f"this key manager handed the worker's keys to key-manager build {self.handed_over}")
        if isinstance(msg, Hello):
            return self.platform.identity(self.anchor_keys, msg.seq, [], False)
        if isinstance(msg, RotateKey):
            try:
                self.keys = rotate(self.data.kme_keys, self.sealer, self.keys, msg.history_seconds, msg.new_signing)
            except OSError as exc:  # keep serving with the keys it has
                log.error("key rotation failed: %s", exc)
                return Processed(seq=msg.seq, code=Status.UNKNOWN_ERROR, message=f"key rotation failed: {exc}")
            return self.platform.identity(self.anchor_keys, msg.seq, [], False)
        if isinstance(msg, Anchor):
            return self._anchor(msg)
        if isinstance(msg, Witness):
            try:
                return Witness(seq=msg.seq, body=self.witness.handle(msg.body))
            except (ValueError, OSError) as exc:
                log.warning("witness request refused: %s", exc)
                return Processed(seq=msg.seq, code=Status.ACCESS_DENIED, message=str(exc))
        if isinstance(msg, (CounterRequest, Provision)) and self._not_serving():
            return Processed(seq=msg.seq, code=Status.ACCESS_DENIED, message=self._not_serving())
        if isinstance(msg, CounterRequest):
            try:
                return self._counters(msg)
            except ValueError as exc:
                log.warning("counter request refused: %s", exc)
                return Processed(seq=msg.seq, code=Status.ACCESS_DENIED, message=str(exc))
            except OSError as exc:  # the counters could not be sealed: nothing was promised
                log.error("sealing the counters failed: %s", exc)
                return Processed(seq=msg.seq, code=Status.BUSY, message=f"sealing the counters failed: {exc}")
        if isinstance(msg, Provision) and not msg.body:  # a successor's start, and this build holds the keys
            return self.platform.identity(self.anchor_keys, msg.seq, [], False)
        if isinstance(msg, Provision):
            if msg.proof:  # a response to check: with the roots trusted now (`adytum pool trust` needs no restart)
                self.sessions.roots = self.platform.tee.peer_roots()
            try:
                return self.platform.reply(msg.seq, self.sessions.handle(msg.body, msg.proof_type, msg.proof))
            except ProvisioningError as exc:
                log.warning("provisioning refused: %s", exc)
                return Processed(seq=msg.seq, code=Status.ACCESS_DENIED, message=str(exc))
        return None


def _denied(msg: Message, message: str) -> Processed:
    return Processed(seq=getattr(msg, "seq", 0), code=Status.ACCESS_DENIED, message=message)


class WorkOrderEnclave:
    """A work-order enclave (WPE): holds the worker's keys only in memory, as the KME provisioned them,
    processes work orders with them and signs the receipt ledger's tree heads."""

    def __init__(self, data: DataDir, worker_id: str, avalon_compat: bool, budget: Budget) -> None:
        self.data = data
        self.platform = Platform(data, WPE_PRODUCT)
        self.worker_id = worker_id
        self.avalon_compat = avalon_compat
        self.budget = budget
        self.workloads = load_workloads(data.path)
        self.processor: WorkOrderProcessor | None = None
        self.counters: CounterClient | None = None
        self._handshake: WpeHandshake | None = None
        self.heads = TreeHeadSigner()

    def handle(self, msg: Message, link: HostLink) -> Message | None:
        if isinstance(msg, (Process, SignHead)) and self.processor is None:
            return Processed(seq=msg.seq, code=Status.FAILED, message="this enclave has no keys yet")
        if isinstance(msg, Process):
            assert self.processor is not None and self.counters is not None
            return handle(self.processor, msg, link, self.counters)
        if isinstance(msg, SignHead):
            assert self.processor is not None
            try:
                return self.heads.sign(self.processor.keys, msg)
            except HeadRefused as exc:
                log.warning("tree head refused: %s", exc.message)
                return Processed(seq=msg.seq, code=exc.code, message=exc.message)
        if isinstance(msg, Provision):
            try:
                return self._provision(msg)
            except ProvisioningError as exc:
                self._handshake = None
                log.warning("provisioning refused: %s", exc)
                return Processed(seq=msg.seq, code=Status.ACCESS_DENIED, message=str(exc))
        if isinstance(msg, Hello) and self.processor is not None:
            return self._identity(msg.seq)
        return None

    def _provision(self, msg: Provision) -> Message:
        if not msg.body:  # a new handshake (also to take rotated keys): offer
            self._handshake = WpeHandshake(self.worker_id, self.platform.measurement, self.platform.tee.peer_roots())
            return Provision(seq=msg.seq, body=self._handshake.offer)
        if self._handshake is None:
            raise ProvisioningError("no handshake in progress")
        if not self._handshake.answered:
            return self.platform.reply(msg.seq, self._handshake.answer(msg.body, msg.proof_type, msg.proof))
        keys = self._handshake.accept(msg.body)
        self._handshake = None
        if self.processor is None:
            self.processor = WorkOrderProcessor(
                keys, self.workloads, avalon_compat=self.avalon_compat, budget=self.budget
            )
            self.counters = CounterClient(keys.root_secret)
        elif self.processor.keys.verifying_key not in keys.verifying_keys:  # the same key, or handed over from it
            raise ProvisioningError("delivered keys are another worker identity than the ones this enclave serves")
        else:
            self.processor.keys = keys
        return self._identity(msg.seq)

    def _identity(self, seq: int) -> Identity:
        assert self.processor is not None
        return self.platform.identity(self.processor.keys, seq, sorted(self.processor.workloads), self.avalon_compat)


class HostLink:
    """The enclave's end of the channel. While an order runs, the enclave may ask the host for state
    items; frames the host pipelined meanwhile wait in `backlog` for their turn."""

    def __init__(self, inp: BinaryIO, out: BinaryIO) -> None:
        self.inp, self.out = inp, out
        self.backlog: deque[Message] = deque()

    def next(self) -> Message | None:
        return self.backlog.popleft() if self.backlog else read_frame(self.inp)

    def send(self, msg: Message) -> None:
        self.out.write(pack(msg))
        self.out.flush()

    def reader(self, seq: int) -> Callable[[str], tuple[int, bytes] | None]:
        """State reads for order `seq`, answered by the host's store."""

        def read(item_id: str) -> tuple[int, bytes] | None:
            msg = self._ask(StateRead(seq=seq, item_id=item_id), StateValue)
            assert isinstance(msg, StateValue)
            if msg.seq != seq or msg.item_id != item_id:
                raise ChannelError("a state value for another request")
            return (msg.version, msg.value) if msg.version else None

        return read

    def relay(self, seq: int) -> Callable[[bytes], bytes]:
        """Counter requests for order `seq`, carried by the host to the key manager and back."""

        def send(body: bytes) -> bytes:
            msg = self._ask(CounterRequest(seq=seq, body=body), CounterReply)
            assert isinstance(msg, CounterReply)
            if msg.seq != seq:
                raise ChannelError("a counter reply for another request")
            return msg.body

        return send

    def _ask(self, request: Message, kind: type[StateValue] | type[CounterReply]) -> StateValue | CounterReply:
        """Send `request` and wait for the host's answer of `kind`; other frames wait in the backlog."""
        with alarm_held():  # a time budget never interrupts a frame half read
            self.send(request)
            while True:
                msg = read_frame(self.inp)
                if msg is None:
                    raise ChannelError("the host went away while the enclave waited for it")
                if isinstance(msg, (StateValue, CounterReply)) and isinstance(msg, kind):
                    return msg
                if isinstance(msg, (StateValue, CounterReply)):
                    raise ChannelError(f"an unexpected {type(msg).__name__}")
                self.backlog.append(msg)


def handle(proc: WorkOrderProcessor, msg: Process, link: HostLink, counters: CounterClient) -> Processed:
    relay = link.relay(msg.seq)
    try:
        answer = proc.process_order(msg.params, link.reader(msg.seq), lambda c: counters.commit(c, relay))
        update = answer.update
        return Processed(
            seq=msg.seq,
            result=answer.result,
            writes=answer.writes,
            receipt_type=update.update_type,
            receipt_data=update.data,
            receipt_signature=update.signature,
        )
    except RunAgain as exc:
        return Processed(seq=msg.seq, code=exc.code, message=exc.message, retry=True)
    except Refused as exc:
        return Processed(
            seq=msg.seq,
            code=exc.code,
            message=exc.message,
            receipt_type=exc.update.update_type,
            receipt_data=exc.update.data,
            receipt_signature=exc.update.signature,
        )
    except EeaError as exc:
        return Processed(seq=msg.seq, code=exc.code, message=exc.message)
    except ChannelError:
        raise
    except Exception as exc:  # never die on one bad order; never leak internals either
        log.exception("unexpected error processing a work order")
        return Processed(seq=msg.seq, code=Status.UNKNOWN_ERROR, message=f"enclave error ({type(exc).__name__})")


def serve(
    data_dir: Path,
    worker_id: str,
    avalon_compat: bool,
    budget: Budget | None = None,
    *,
    role: str = "wpe",
    succeed: bool = False,
    inp: BinaryIO = sys.stdin.buffer,
    out: BinaryIO = sys.stdout.buffer,
) -> int:
    link = HostLink(inp, out)
    enclave: KeyManager | WorkOrderEnclave
    try:
        data = DataDir(data_dir)
        enclave = (
            KeyManager(data, worker_id, succeed)
            if role == "kme"
            else WorkOrderEnclave(data, worker_id, avalon_compat, budget or Budget())
        )
    except (UnsealError, ValueError, TypeError, ImportError, OSError) as exc:
        link.send(Fatal(message=str(exc)))
        return 2
    while True:
        try:
            msg = link.next()
            if msg is None:
                return 0
            reply = enclave.handle(msg, link)
            if reply is None:
                log.error("unexpected %s frame from host", type(msg).__name__)
                return 1
            link.send(reply)
        except ChannelError as exc:
            log.error("channel closed: %s", exc)
            return 1
