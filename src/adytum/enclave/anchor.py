"""The anchor: the key manager's counters committed off this host, so a rollback of the whole host is seen.

Sealed counters protect against a host that rolls back rows of its store, not against one that restores its
whole data directory from an older copy: the older sealed file opens as well as the newer. So the key manager
commits each version of its counters (a `Record`: worker id, version, SHA-256 of the sealed state, signed with
the worker's key) to witnesses on other hosts, and answers an order that changed them only once a majority
has acknowledged. A witness is another node's key-manager enclave (`adytum up --kme-listen`): it seals the
highest record it has been given for each key manager (worker id and key: `subject`) in
`DATA_DIR/kme/witnessed.sealed`, and signs `Statement`s of what it holds with its own worker key, which its
attestation binds.

At every start, before it provisions anything, the key manager asks a majority of its witnesses for their
latest record of its worker, over a fresh challenge, after verifying each witness's evidence (its own
signer, the key-manager product, a root it trusts) and pinning its key. Counters older than a witness's
record, or the same version with another digest, mean this directory was rolled back (or forked): it
refuses to serve and says so. Counters that were anchored once refuse to start with no anchor.

With no anchor the key manager runs, and says everywhere that a rollback of the whole host cannot be
detected. The chain anchor (a later issue) is a third kind of witness: its statements would be checked here,
against the chain's finality, in place of a peer enclave's signature.

A witness holds at most MAX_WITNESSED key managers' records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from cryptography import x509

from .. import crypto
from ..attestation.errors import AttestationError
from ..attestation.measurement import Measurement
from ..attestation.policy import Policy
from ..attestation.verify import report_data_for, verify_evidence
from ..channel import AnchorPeer, WitnessRequest
from ..files import write_atomic
from .keys import WorkerKeys
from .provisioning import KME_PRODUCT
from .sealing import Sealer
from .tee import peer_tcb_statuses

SEAL_LABEL = "witnessed.sealed"
MAX_WITNESSED = 1024
_RECORD = b"adytum-anchor-record/1\0"
_STATEMENT = b"adytum-anchor-statement/1\0"


class Record(msgspec.Struct, array_like=True):
    """One version of a key manager's counters, signed with its worker's key."""

    worker_id: str
    version: int
    digest: bytes
    verifying_key: str
    signature: bytes


class Statement(msgspec.Struct, array_like=True):
    """A witness's word: the record it holds for `subject` (version 0: none), over `challenge`."""

    subject: str
    version: int
    digest: bytes
    challenge: bytes
    signature: bytes


def subject(worker_id: str, verifying_key: str) -> str:
    """What a witness files a record under: the worker id and the key that signs its records. A new identity
    under the same worker id (new keys) is another subject, and starts from nothing."""
    return crypto.sha256(worker_id.lower().encode() + b"\0" + verifying_key.strip().encode()).hex()


def _record_digest(worker_id: str, version: int, digest: bytes) -> bytes:
    return crypto.sha256(_RECORD + worker_id.lower().encode() + b"\0" + version.to_bytes(8, "big") + digest)


def _statement_digest(subject: str, version: int, digest: bytes, challenge: bytes) -> bytes:
    return crypto.sha256(_STATEMENT + subject.encode() + b"\0" + version.to_bytes(8, "big") + digest + challenge)


def make_record(keys: WorkerKeys, version: int, digest: bytes) -> bytes:
    signature = keys.signing.sign_digest(_record_digest(keys.worker_id, version, digest))
    return msgspec.msgpack.encode(Record(keys.worker_id, version, digest, keys.verifying_key, signature))


class _Held(msgspec.Struct, array_like=True):
    version: int
    digest: bytes


class WitnessTable:
    """A witness's side: the highest record of each worker it was given, sealed after every change."""

    def __init__(self, path: Path, sealer: Sealer, keys: Callable[[], WorkerKeys]) -> None:
        self.path, self._sealer, self._keys = path, sealer, keys
        self.held: dict[str, _Held] = {}
        if path.exists():
            self.held = msgspec.msgpack.decode(sealer.unseal(SEAL_LABEL, path.read_bytes()), type=dict[str, _Held])

    def handle(self, body: bytes) -> bytes:
        """A signed Statement of what is held after the request; ValueError for one it refuses."""
        try:
            request = msgspec.msgpack.decode(body, type=WitnessRequest)
            record = msgspec.msgpack.decode(request.record, type=Record) if request.record else None
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ValueError(f"malformed witness request: {exc}") from None
        about = subject(record.worker_id, record.verifying_key) if record else request.subject
        if record is not None:
            self._hold(about, record)
        held = self.held.get(about)
        version, digest = (held.version, held.digest) if held else (0, b"")
        keys = self._keys()
        signature = keys.signing.sign_digest(_statement_digest(about, version, digest, request.challenge))
        return msgspec.msgpack.encode(Statement(about, version, digest, request.challenge, signature))

    def _hold(self, about: str, record: Record) -> None:
        try:
            crypto.verify_digest(
                record.verifying_key,
                _record_digest(record.worker_id, record.version, record.digest),
                record.signature,
            )
        except crypto.CryptoError:
            raise ValueError("a record whose signature does not verify with the key it names") from None
        held = self.held.get(about)
        if held is None and len(self.held) >= MAX_WITNESSED:
            raise ValueError(f"this witness holds the records of {MAX_WITNESSED} key managers already")
        if held is not None and record.version <= held.version:
            return  # an older (or the same) record: the statement says what is held
        self.held[about] = _Held(record.version, record.digest)
        write_atomic(self.path, self._sealer.seal(SEAL_LABEL, msgspec.msgpack.encode(self.held)))


class AnchorCheck:
    """The anchored key manager's side: verify and pin its witnesses at start, then count acknowledgements."""

    def __init__(self, me: Measurement, roots: Callable[[], Sequence[x509.Certificate]]) -> None:
        self._me, self._roots = me, roots
        self.peers = 0  # witnesses the host has (0: no anchor)
        self.checked = False  # until the start check passed, the key manager serves nothing
        self.pinned: set[str] = set()  # verifying keys of the witnesses whose evidence verified
        self.challenge = b""

    @property
    def required(self) -> int:
        """A majority of the witnesses."""
        return self.peers // 2 + 1

    def start(self, peers: int) -> bytes:
        self.peers, self.pinned, self.challenge = peers, set(), crypto.random_bytes(32)
        self.checked = not peers
        return self.challenge

    def check(self, about: str, witnesses: list[AnchorPeer], version: int, digest: bytes, before: list[str]) -> str:
        """Why the counters (`version`, `digest`) must not be served ("" if they may), pinning the witnesses.
        `before`: the witnesses they were anchored to last time; a majority of those must vouch too, so that a
        host cannot swap them for witnesses that never heard of this key manager."""
        latest: list[tuple[int, bytes, str]] = []
        errors = []
        for w in witnesses:
            try:
                statement = self._verified(w, about, self.challenge, pin=True)
                latest.append((statement.version, statement.digest, w.address))
            except ValueError as exc:
                errors.append(f"{w.address}: {exc}")
        if len(latest) < self.required:
            return (
                f"only {len(latest)} of {self.peers} anchor peers vouched for this key manager's counters, "
                f"{self.required} needed ({'; '.join(errors) or 'no answers'})"
            )
        known = len(self.pinned & {key.strip() for key in before})
        if before and known < len(before) // 2 + 1:
            return (
                f"only {known} of the {len(before)} witnesses these counters were anchored to vouched for them "
                "(the others are not among the anchor peers, or did not answer); refusing to serve"
            )
        for held, held_digest, address in latest:
            if held > version:
                return (
                    f"this key manager's counters (version {version}) are older than its anchor's (version {held} "
                    f"at {address}): the data directory was rolled back, e.g. restored from a copy; refusing to "
                    "serve (restore the newest data directory)"
                )
            if held == version and held and held_digest != digest:
                return f"this key manager's counters (version {version}) differ from the anchor's at {address}: forked"
        self.checked = True
        return ""

    def acknowledged(self, about: str, version: int, witnesses: list[AnchorPeer]) -> int:
        """How many distinct pinned witnesses hold `version` or later."""
        keys = set()
        for w in witnesses:
            try:
                statement = self._verified(w, about, b"", pin=False)
            except ValueError:
                continue
            if statement.version >= version:
                keys.add(w.verifying_key.strip())
        return len(keys)

    def _verified(self, w: AnchorPeer, about: str, challenge: bytes, pin: bool) -> Statement:
        if w.error:
            raise ValueError(w.error)
        key = w.verifying_key.strip()
        if pin:
            self._verify_evidence(w)
            self.pinned.add(key)
        elif key not in self.pinned:
            raise ValueError("a witness this key manager has not verified")
        try:
            s = msgspec.msgpack.decode(w.statement, type=Statement)
            digest = _statement_digest(s.subject, s.version, s.digest, s.challenge)
            crypto.verify_digest(w.verifying_key, digest, s.signature)
        except (msgspec.DecodeError, msgspec.ValidationError, crypto.CryptoError):
            raise ValueError("its statement does not verify") from None
        if s.subject != about or s.challenge != challenge:
            raise ValueError("a statement about another key manager or over another challenge")
        return s

    def _verify_evidence(self, w: AnchorPeer) -> None:
        policy = Policy(
            mr_signers=frozenset({self._me.mr_signer}),
            isv_prod_id=KME_PRODUCT,
            report_data_prefix=report_data_for(w.verifying_key, w.encryption_key, w.worker_id, w.hpke_keys),
            accepted_statuses=peer_tcb_statuses(),
        )
        try:
            verify_evidence(w.proof_type, w.proof, policy=policy, at=datetime.now(UTC), trusted_roots=self._roots())
        except AttestationError as exc:
            raise ValueError(f"its evidence is refused ({exc.reason.value}): {exc}") from None
