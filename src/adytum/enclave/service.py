"""The two kinds of enclave and their serving loop: frames in on stdin, frames out on stdout, logs on stderr."""

from __future__ import annotations

import json
import logging
import sys
from collections import deque
from pathlib import Path
from typing import BinaryIO, Callable

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ..attestation.measurement import Measurement, measure
from ..attestation.verify import report_data_for
from ..issuer.quoter import DevRootError, SimulatedQuoter, load_quoting_key
from ..protocol import EeaError, Status
from ..workloads import load_workloads
from ..workloads.registry import configured_modules, use_plugin_dir
from .budget import Budget, alarm_held
from .channel import (ChannelError, Fatal, Hello, Identity, Message, Process, Processed, Provision, RotateKey,
                      StateRead, StateValue, pack, read_frame)
from .keys import KEYS_FILE, WorkerKeys, load_or_create, rotate
from .processor import WorkOrderProcessor
from .provisioning import (KME_PRODUCT, WPE_PRODUCT, KeyManagerSessions, ProvisioningError, Step,
                           WpeHandshake)
from .sealing import Sealer, UnsealError, platform_secret

log = logging.getLogger("adytum.enclave")
#: The simulated platform: its quoting key plays the role of SGX's quoting enclave.
PLATFORM_DIR = "devroot"
#: Development roots of other hosts whose enclaves this one may provision or be provisioned by.
TRUSTED_ROOTS_DIR = "trusted-roots"
#: The key manager's sealed keys and its policy of work-order enclave measurements.
KME_DIR = "kme"
POLICY_FILE = "policy.json"


class Platform:
    """What any enclave on this (simulated) platform has: its measurement and a quoter for its product."""

    def __init__(self, data_dir: Path, product: int, plugins: bool = True) -> None:
        if plugins:  # workloads.toml plug-ins may live in DATA_DIR/workloads; they are part of the build
            use_plugin_dir(data_dir)
            self.measurement: Measurement = measure(extra_modules=configured_modules(data_dir))
        else:
            self.measurement = measure(include_plugins=False)
        self.quoter = SimulatedQuoter(_quoting_key(data_dir), self.measurement.mr_enclave,
                                      self.measurement.mr_signer, isv_prod_id=product)

    def identity(self, keys: WorkerKeys, seq: int, workloads: list[str], avalon_compat: bool) -> Identity:
        """Public keys and evidence; the quote binds the keys as they are now (report data)."""
        quote = self.quoter.quote(report_data_for(keys.verifying_key, keys.encryption_key, keys.worker_id))
        return Identity(worker_id=keys.worker_id, verifying_key=keys.verifying_key,
                        encryption_key=keys.encryption_key, encryption_key_signature=keys.encryption_key_signature,
                        encryption_key_nonce=keys.encryption_key_nonce, simulated=True,
                        avalon_compat=avalon_compat, workloads=workloads,
                        mr_enclave=self.measurement.mr_enclave.hex(), mr_signer=self.measurement.mr_signer.hex(),
                        quote=quote, key_get_signature=keys.key_get_signature, seq=seq)

    def reply(self, seq: int, step: Step) -> Provision:
        return Provision(seq=seq, body=step.body, quote=self.quoter.quote(step.report_data) if step.report_data else b"")


def trusted_roots(data_dir: Path) -> list[x509.Certificate]:
    """The roots a peer enclave's evidence must chain to, read afresh for each handshake: this platform's
    development root and any in DATA_DIR/trusted-roots (`adytum pool trust`). On SGX: Intel's, built in."""
    paths = [data_dir / PLATFORM_DIR / "root.pem", *sorted((data_dir / TRUSTED_ROOTS_DIR).glob("*.pem"))]
    roots = []
    for path in paths:
        try:
            roots.append(x509.load_pem_x509_certificate(path.read_bytes()))
        except (OSError, ValueError) as exc:
            log.warning("trusted root %s is not usable: %s", path, exc)
    return roots


def _quoting_key(data_dir: Path) -> ec.EllipticCurvePrivateKey:
    try:
        return load_quoting_key(data_dir / PLATFORM_DIR)
    except DevRootError as exc:
        raise ValueError(f"no simulated platform to quote with: {exc}") from None


class KeyManager:
    """The key-manager enclave (KME): makes the worker's keys once, seals them, and provisions them to
    work-order enclaves its policy lists: DATA_DIR/kme/policy.json (``{"wpe_mr_enclaves": [hex, ...]}``),
    read at every handshake so that an upgrade is allowed without a restart. It runs no workloads, so
    its own measurement leaves the plug-ins out: changing them changes the work-order enclaves' build,
    not the key manager's, and its sealed keys still open."""

    def __init__(self, data_dir: Path, worker_id: str) -> None:
        self.data_dir = data_dir
        self.platform = Platform(data_dir, KME_PRODUCT, plugins=False)
        self.keys_dir = data_dir / KME_DIR
        self.keys_dir.mkdir(exist_ok=True)
        self.sealer = Sealer(platform_secret(data_dir), self.platform.measurement.mr_enclave)
        try:
            self.keys = load_or_create(self.keys_dir, self.sealer, worker_id)
        except UnsealError as exc:
            raise UnsealError(
                f"{exc}. This key manager measures {self.platform.measurement.mr_enclave.hex()}; its sealed "
                f"keys belong to another build. Run the build that sealed them, or move "
                f"{self.keys_dir / KEYS_FILE} aside to start a new worker identity.") from None
        self.sessions = KeyManagerSessions(lambda: self.keys, self.platform.measurement, trusted_roots(data_dir),
                                           self.allowed)

    def allowed(self) -> frozenset[bytes]:
        path = self.keys_dir / POLICY_FILE
        try:
            return frozenset(bytes.fromhex(m) for m in json.loads(path.read_text())["wpe_mr_enclaves"])
        except FileNotFoundError:
            log.error("no policy %s: no work-order enclave is allowed", path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("policy %s is unreadable (%s): no work-order enclave is allowed", path, exc)
        return frozenset()

    def handle(self, msg: Message, link: "HostLink") -> Message | None:
        if isinstance(msg, Hello):
            return self.platform.identity(self.keys, msg.seq, [], False)
        if isinstance(msg, RotateKey):
            try:
                self.keys = rotate(self.keys_dir, self.sealer, self.keys)
            except OSError as exc:  # keep serving with the keys it has
                log.error("key rotation failed: %s", exc)
                return Processed(seq=msg.seq, code=Status.UNKNOWN_ERROR, message=f"key rotation failed: {exc}")
            return self.platform.identity(self.keys, msg.seq, [], False)
        if isinstance(msg, Provision):
            if msg.proof:  # a response to check: with the roots trusted now (`adytum pool trust` needs no restart)
                self.sessions.roots = trusted_roots(self.data_dir)
            try:
                return self.platform.reply(msg.seq, self.sessions.handle(msg.body, msg.proof_type, msg.proof))
            except ProvisioningError as exc:
                log.warning("provisioning refused: %s", exc)
                return Processed(seq=msg.seq, code=Status.ACCESS_DENIED, message=str(exc))
        return None


class WorkOrderEnclave:
    """A work-order enclave (WPE): holds the worker's keys only in memory, as the KME provisioned them,
    and processes work orders with them."""

    def __init__(self, data_dir: Path, worker_id: str, avalon_compat: bool, budget: Budget) -> None:
        self.data_dir = data_dir
        self.platform = Platform(data_dir, WPE_PRODUCT)
        self.worker_id = worker_id
        self.avalon_compat = avalon_compat
        self.budget = budget
        self.workloads = load_workloads(data_dir)
        self.processor: WorkOrderProcessor | None = None
        self._handshake: WpeHandshake | None = None

    def handle(self, msg: Message, link: "HostLink") -> Message | None:
        if isinstance(msg, Process):
            if self.processor is None:
                return Processed(seq=msg.seq, code=Status.FAILED, message="this enclave has no keys yet")
            return handle(self.processor, msg, link)
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
            self._handshake = WpeHandshake(self.worker_id, self.platform.measurement, trusted_roots(self.data_dir))
            return Provision(seq=msg.seq, body=self._handshake.offer)
        if self._handshake is None:
            raise ProvisioningError("no handshake in progress")
        if not self._handshake.answered:
            return self.platform.reply(msg.seq, self._handshake.answer(msg.body, msg.proof_type, msg.proof))
        keys = self._handshake.accept(msg.body)
        self._handshake = None
        if self.processor is None:
            self.processor = WorkOrderProcessor(keys, self.workloads, avalon_compat=self.avalon_compat,
                                                budget=self.budget)
        elif keys.verifying_key != self.processor.keys.verifying_key:
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
            with alarm_held():  # a time budget never interrupts a frame half read
                self.send(StateRead(seq=seq, item_id=item_id))
                while True:
                    msg = read_frame(self.inp)
                    if msg is None:
                        raise ChannelError("the host went away during a state read")
                    if isinstance(msg, StateValue) and msg.seq == seq and msg.item_id == item_id:
                        return (msg.version, msg.value) if msg.version else None
                    if isinstance(msg, StateValue):
                        raise ChannelError("a state value for another request")
                    self.backlog.append(msg)
        return read


def handle(proc: WorkOrderProcessor, msg: Process, link: HostLink) -> Processed:
    try:
        result, writes = proc.process_order(msg.params, link.reader(msg.seq))
        return Processed(seq=msg.seq, result=result, writes=writes)
    except EeaError as exc:
        return Processed(seq=msg.seq, code=exc.code, message=exc.message)
    except ChannelError:
        raise
    except Exception as exc:  # never die on one bad order; never leak internals either
        log.exception("unexpected error processing a work order")
        return Processed(seq=msg.seq, code=Status.UNKNOWN_ERROR,
                         message=f"enclave error ({type(exc).__name__})")


def serve(data_dir: Path, worker_id: str, avalon_compat: bool, budget: Budget | None = None, *,
          role: str = "wpe", inp: BinaryIO = sys.stdin.buffer, out: BinaryIO = sys.stdout.buffer) -> int:
    link = HostLink(inp, out)
    enclave: KeyManager | WorkOrderEnclave
    try:
        enclave = KeyManager(data_dir, worker_id) if role == "kme" else \
            WorkOrderEnclave(data_dir, worker_id, avalon_compat, budget or Budget())
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
