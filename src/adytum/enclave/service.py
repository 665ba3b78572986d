"""The enclave's serving loop: frames in on stdin, frames out on stdout, logs on stderr."""

from __future__ import annotations

import logging
import sys
from collections import deque
from pathlib import Path
from typing import BinaryIO, Callable

from cryptography.hazmat.primitives.asymmetric import ec

from ..attestation.devroot import DevRootError, load_quoting_key
from ..attestation.measurement import Measurement, measure
from ..attestation.quote import SimulatedQuoter, report_data_for
from ..protocol import EeaError, Status
from ..workloads import load_workloads
from ..workloads.registry import configured_modules, use_plugin_dir
from .budget import Budget, alarm_held
from .channel import (ChannelError, Fatal, Hello, Identity, Message, Process, Processed, ReloadKeys, RotateKey,
                      StateRead, StateValue, pack, read_frame)
from .keys import KEYS_FILE, WorkerKeys, load_or_create, rotate
from .processor import WorkOrderProcessor
from .sealing import Sealer, UnsealError, platform_secret

log = logging.getLogger("adytum.enclave")
#: The simulated platform: its quoting key plays the role of SGX's quoting enclave.
PLATFORM_DIR = "devroot"


class Enclave:
    """The enclave's state once started: its measurement, processor and attestation quote."""

    def __init__(self, data_dir: Path, worker_id: str, avalon_compat: bool, budget: Budget) -> None:
        use_plugin_dir(data_dir)  # workloads.toml plug-ins may live in DATA_DIR/workloads
        self.measurement: Measurement = measure(extra_modules=configured_modules(data_dir))
        self.keys_dir = data_dir / "enclave"
        self.sealer = Sealer(platform_secret(data_dir), self.measurement.mr_enclave)
        self.worker_id = worker_id
        self._quoter = SimulatedQuoter(_quoting_key(data_dir), self.measurement.mr_enclave,
                                       self.measurement.mr_signer)
        self.processor = WorkOrderProcessor(self._unseal(), load_workloads(data_dir), avalon_compat=avalon_compat,
                                            budget=budget)

    def _unseal(self) -> WorkerKeys:
        try:
            return load_or_create(self.keys_dir, self.sealer, self.worker_id)
        except UnsealError as exc:
            raise UnsealError(
                f"{exc}. This enclave build measures {self.measurement.mr_enclave.hex()}. To keep the worker's "
                f"identity, have a key manager provision the keys to this build; to start a new identity, move "
                f"{self.keys_dir / KEYS_FILE} aside.") from None

    def rotate_key(self) -> None:
        self.processor.keys = rotate(self.keys_dir, self.sealer, self.processor.keys)

    def reload_keys(self) -> None:
        self.processor.keys = self._unseal()

    def identity(self, seq: int = 0) -> Identity:
        """Public keys and evidence; the quote binds the keys as they are now (report data)."""
        k = self.processor.keys
        quote = self._quoter.quote(report_data_for(k.verifying_key, k.encryption_key, k.worker_id))
        return Identity(worker_id=k.worker_id, verifying_key=k.verifying_key,
                        encryption_key=k.encryption_key, encryption_key_signature=k.encryption_key_signature,
                        encryption_key_nonce=k.encryption_key_nonce, simulated=True,
                        avalon_compat=self.processor.avalon_compat, workloads=sorted(self.processor.workloads),
                        mr_enclave=self.measurement.mr_enclave.hex(), mr_signer=self.measurement.mr_signer.hex(),
                        quote=quote, key_get_signature=k.key_get_signature, seq=seq)


def _quoting_key(data_dir: Path) -> ec.EllipticCurvePrivateKey:
    try:
        return load_quoting_key(data_dir / PLATFORM_DIR)
    except DevRootError as exc:
        raise ValueError(f"no simulated platform to quote with: {exc}") from None


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


def serve(data_dir: Path, worker_id: str, avalon_compat: bool, budget: Budget | None = None,
          inp: BinaryIO = sys.stdin.buffer, out: BinaryIO = sys.stdout.buffer) -> int:
    link = HostLink(inp, out)
    try:
        enclave = Enclave(data_dir, worker_id, avalon_compat, budget or Budget())
    except (UnsealError, ValueError, TypeError, ImportError) as exc:
        link.send(Fatal(message=str(exc)))
        return 2
    while True:
        try:
            msg = link.next()
            if msg is None:
                return 0
            if isinstance(msg, Process):
                reply: Message = handle(enclave.processor, msg, link)
            elif isinstance(msg, Hello):
                reply = enclave.identity(msg.seq)
            elif isinstance(msg, (RotateKey, ReloadKeys)):
                try:
                    enclave.rotate_key() if isinstance(msg, RotateKey) else enclave.reload_keys()
                    reply = enclave.identity(msg.seq)
                except (OSError, UnsealError, ValueError) as exc:  # keep serving with the keys it has
                    log.error("%s failed: %s", type(msg).__name__, exc)
                    reply = Processed(seq=msg.seq, code=Status.UNKNOWN_ERROR, message=f"key change failed: {exc}")
            else:
                log.error("unexpected %s frame from host", type(msg).__name__)
                return 1
            link.send(reply)
        except ChannelError as exc:
            log.error("channel closed: %s", exc)
            return 1
