"""The narrow message channel between host and enclave: length-prefixed msgpack frames.

Owned by neither side: the host (`adytum.manager.link`) and the enclave (`adytum.enclave.service`)
both speak it, and nothing else crosses the process boundary. Only these message types cross it, and none carries a secret in clear. The host may pipeline
several `Process` frames; the enclave answers each with a `Processed` frame carrying the same seq. A work-order
enclave also signs the receipt ledger's tree heads (`SignHead`, answered by `HeadSigned`).
"""

from __future__ import annotations

import struct
from typing import BinaryIO

import msgspec

from .errors import AdytumError

MAX_FRAME = 64 * 1024 * 1024
HEADER = struct.Struct(">I")


class Hello(msgspec.Struct, tag="hello"):
    """Host -> enclave: who are you? (answered with Identity)."""

    seq: int = 0


class RotateKey(msgspec.Struct, tag="rotate-key"):
    """Host -> KME: make and seal a new encryption key; previous keys serve `history_seconds` after the
    rotation that retired them (answered with the key manager's Identity)."""

    seq: int
    history_seconds: float = 0.0
    new_signing: bool = False  # a new signing key too, handed over to by the current one


class Handover(msgspec.Struct, array_like=True):
    """One step of the worker's signing-key chain: `previous_key` signed (base64 DER) over
    `protocol.key_handover_digest` its handover to `next_key` (PEM both)."""

    previous_key: str
    next_key: str
    signature: str


class PreviousKey(msgspec.Struct):
    """A previous encryption key the worker's enclaves still decrypt with, until `until` (seconds since the
    epoch, the key manager's clock)."""

    encryption_key: str
    nonce: str
    retired_at: float
    until: float


class Process(msgspec.Struct, tag="process"):
    """Host -> enclave: process these raw WorkOrderSubmit params."""

    seq: int
    params: bytes


class Identity(msgspec.Struct, tag="identity"):
    """Enclave -> host: the worker's public keys and what the enclave is, with the seq of the request."""

    worker_id: str
    verifying_key: str
    encryption_key: str
    encryption_key_signature: str
    encryption_key_nonce: str
    simulated: bool
    avalon_compat: bool
    workloads: list[str]
    mr_enclave: str
    mr_signer: str
    quote: bytes
    key_get_signature: str = ""
    seq: int = 0
    previous_keys: list[PreviousKey] = []  # the history, newest first
    handovers: list[Handover] = []  # the signing key's chain, from the worker's first key to `verifying_key`
    hpke_keys: dict[str, str] = {}  # HPKE suite name -> hex public key, bound into the quote with the others


class StateWrite(msgspec.Struct):
    """One encrypted state item to store as `version`, only if the stored version is `version - 1`."""

    item_id: str
    version: int
    value: bytes


class Processed(msgspec.Struct, tag="processed"):
    """Enclave -> host: a signed result (JSON bytes) with the state writes to store alongside it, or an
    EEA error code and message. Either way, once the enclave knew the order's id, the worker's receipt
    update: its EEA updateType and updateData, signed (base64 DER) over `protocol.receipts.receipt_update_digest`;
    no signature: the enclave made no update."""

    seq: int
    result: bytes = b""
    code: int = 0
    message: str = ""
    writes: list[StateWrite] = []
    receipt_type: int = 0
    receipt_data: str = ""
    receipt_signature: str = ""
    retry: bool = False  # no answer yet: another order's state write must be stored first; run it again later


class SignHead(msgspec.Struct, tag="sign-head"):
    """Host -> WPE: sign the ledger's tree head after appending `leaves` (leaf hashes) to the previous head.

    The previous head comes with its signature and frontier: the enclave keeps nothing across requests,
    so it checks both before it extends the frontier and signs the root it computed. `previous_size` 0 is
    the empty tree (nothing to check). Answered by HeadSigned, or Processed with an error code (refused)."""

    seq: int
    worker_id: str
    previous_size: int
    previous_root: bytes
    previous_timestamp: int
    previous_signature: str
    frontier: list[bytes]
    leaves: list[bytes]
    timestamp: int  # milliseconds since the epoch, the host's clock


class HeadSigned(msgspec.Struct, tag="head-signed"):
    """WPE -> host: the new tree head, signed (base64 DER) over `protocol.receipts.tree_head_digest`."""

    seq: int
    tree_size: int
    root: bytes
    timestamp: int
    signature: str


class StateRead(msgspec.Struct, tag="state-read"):
    """Enclave -> host, while processing order `seq`: send me this state item."""

    seq: int
    item_id: str


class StateValue(msgspec.Struct, tag="state-value"):
    """Host -> enclave: the stored item (version 0 and no value: the host has none)."""

    seq: int
    item_id: str
    version: int = 0
    value: bytes = b""


class CounterRequest(msgspec.Struct, tag="counter-request"):
    """WPE -> host while order `seq` runs, then host -> KME (with the KME link's seq): a sealed request for the
    key manager's monotonic counters (`enclave/counters.py`); the host can neither read nor alter it."""

    seq: int
    body: bytes


class CounterReply(msgspec.Struct, tag="counter-reply"):
    """KME -> host, then host -> WPE (with the order's seq): the key manager's sealed answer. Empty: the host
    could not reach the key manager. From an anchored KME whose counters changed, first no answer but the
    signed `anchor` record of counter `version`: the answer comes once the anchor acknowledged it (`Anchor`)."""

    seq: int
    body: bytes = b""
    anchor: bytes = b""
    version: int = 0


class AnchorPeer(msgspec.Struct):
    """One witness of the key manager's counters (another host's key manager) as its host relayed it: its
    attested identity (needed once, at the start check), its signed statement, or why it did not answer."""

    address: str
    statement: bytes = b""
    verifying_key: str = ""
    encryption_key: str = ""
    worker_id: str = ""
    proof_type: str = ""
    proof: str = ""
    error: str = ""
    hpke_keys: dict[str, str] = {}


class Anchor(msgspec.Struct, tag="anchor"):
    """Host <-> KME, the anchor of its counters (`enclave/anchor.py`). Steps, host -> KME:

    * "challenge" (`peers`: how many witnesses the host has; 0: no anchor): answered with a "challenge" whose
      `body` the witnesses must sign with their latest record of this key manager, filed under `subject`
      (`message`: why it refuses to serve at all);
    * "check" (`witnesses`: their statements and evidence): answered "checked", `ready` or `message` (why
      not: e.g. the counters are older than the anchor's), with the KME's own record in `body` to hand on;
    * "acks" (`version`, `witnesses`' statements after a put): answered with the CounterReply held for it."""

    seq: int
    step: str
    body: bytes = b""
    peers: int = 0
    version: int = 0
    witnesses: list[AnchorPeer] = []
    ready: bool = False
    message: str = ""
    subject: str = ""


class WitnessRequest(msgspec.Struct, forbid_unknown_fields=True):
    """To a witness: hold `record` (a signed record of another key manager's counters), or (no record) say
    what it holds for `subject` (`enclave.anchor.subject`: the worker id and its key), over `challenge`."""

    record: bytes = b""
    subject: str = ""
    challenge: bytes = b""


class Witness(msgspec.Struct, tag="witness"):
    """Host -> KME: another key manager's record to hold, or its request for the latest one held; KME -> host:
    the signed statement of what it holds (`enclave/anchor.py`)."""

    seq: int
    body: bytes


class Provision(msgspec.Struct, tag="provision"):
    """One step of the key-provisioning handshake (see `provisioning`), either way.

    Host -> WPE: an empty body starts a handshake; then the KME's challenge with its evidence; then
    the delivery (answered with Identity). Host -> KME: an offer, or a response with the WPE's
    evidence. Enclave -> host: the next message, and a quote the host turns into evidence for the peer.
    Refusals come back as `Processed` with an error code."""

    seq: int
    body: bytes = b""
    quote: bytes = b""
    proof_type: str = ""
    proof: str = ""


class Fatal(msgspec.Struct, tag="fatal"):
    """Enclave -> host: the enclave cannot serve (e.g. sealed keys do not unseal) and will exit."""

    message: str


Message = (
    Hello
    | RotateKey
    | Process
    | Provision
    | StateValue
    | SignHead
    | Identity
    | Processed
    | StateRead
    | HeadSigned
    | CounterRequest
    | CounterReply
    | Anchor
    | Witness
    | Fatal
)
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


class ChannelError(AdytumError):
    """The peer sent something that is not a frame of this protocol, or went away."""


def pack(msg: Message) -> bytes:
    body = _encoder.encode(msg)
    return HEADER.pack(len(body)) + body


def unpack(body: bytes) -> Message:
    try:
        return _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ChannelError(f"bad frame: {exc}") from None


def frame_length(header: bytes) -> int:
    (length,) = HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ChannelError(f"frame of {length} bytes exceeds {MAX_FRAME}")
    return length


def read_frame(stream: BinaryIO) -> Message | None:
    """Blocking read of one frame; None on a clean end of stream."""
    header = stream.read(HEADER.size)
    if not header:
        return None
    if len(header) < HEADER.size:
        raise ChannelError("truncated frame header")
    length = frame_length(header)
    body = stream.read(length)
    if len(body) < length:
        raise ChannelError("truncated frame body")
    return unpack(body)
