"""Work-order execution inside the enclave.

Order of checks (cheap and signature checks first, so a forged request never costs a session-key unwrap):
shape -> worker -> replay -> workload -> requester signature -> session-key unwrap -> request hash
-> input decryption -> workload -> output encryption -> response hash and signature.

Every answer given once the order is known to be this worker's and fresh carries the worker's receipt update,
signed with the worker's key (EEA receipts): COMPLETED with the response hash, or FAILED with the hash of the error.

Freshness that must outlive this process is the key manager's (`counters.py`): before an order that is strictly
ordered (`requesterSequence`) or reads or writes state answers, its sequence number and state versions are
checked and recorded there. A strictly ordered order that fails after its signature verified uses its number
too, so the host cannot run it again later on other state.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import rsa

from .. import crypto
from ..channel import ChannelError, StateWrite
from ..crypto import primitives
from ..protocol import (
    DataItem,
    EeaError,
    Status,
    WorkOrderParams,
    WorkOrderResult,
    canonical,
    decode_params,
    encode,
    request_hash,
    response_hash,
    session_key_info,
    strict_order_digest,
    workload_name,
)
from ..protocol.limits import MAX_DATA_BYTES, MAX_ITEMS, MAX_RESULT_BYTES
from ..protocol.receipts import ReceiptStatus, receipt_update_digest
from ..workloads import Context, Workload, WorkloadError
from .budget import Budget, OverBudget
from .counters import Commit, Decision
from .keys import WorkerKeys
from .replay import ReplayGuard
from .state import ReadItem, StateKeys, StateRollback, StateSession

#: Sends one commit to the key manager (through the host) and returns its decision.
CommitCounters = Callable[[Commit], Decision]

log = logging.getLogger("adytum.enclave")
SESSION_KEY_ITEM = ("", "null")
PLAINTEXT_ITEM = "-"


@dataclass(frozen=True)
class ReceiptUpdate:
    """The worker's update of an order's receipt: EEA updateType, updateData and updateSignature (base64 DER
    over `receipt_update_digest` of the canonical work-order id)."""

    update_type: int
    data: str
    signature: str


@dataclass
class Answer:
    """A processed order: the signed result, the state writes the host must store with it, the receipt update."""

    result: bytes
    update: ReceiptUpdate
    writes: list[StateWrite] = field(default_factory=list)


class RunAgain(EeaError):
    """No answer now; the host runs the order again later (`Processed.retry`): it read state another order
    has written but the host has not stored yet, or the key manager's answer did not come back."""

    def __init__(self, message: str) -> None:
        super().__init__(Status.BUSY, message)


class OutOfOrder(EeaError):
    """A strictly ordered order whose sequence number is not the requester's next: refused like a replay,
    without a signed update (the order may have one already, or get one once it is in turn)."""

    def __init__(self, message: str) -> None:
        super().__init__(Status.INVALID_PARAMETER, message)


class Refused(EeaError):
    """An order refused once it was known to be this worker's and fresh: the error with the worker's signed
    FAILED update (an earlier refusal is a plain EeaError: the enclave signs nothing for it)."""

    def __init__(self, code: int, message: str, update: ReceiptUpdate) -> None:
        super().__init__(code, message)
        self.update = update


def failure_data(code: int, message: str) -> str:
    """A FAILED update's updateData: base64 of SHA-256 of the error as the requester receives it."""
    return crypto.b64encode(crypto.sha256(f"{code}:{message}".encode()))


@dataclass
class _Session:
    key: bytes
    iv: bytes
    legacy: bool  # an Avalon client: OAEP-SHA1 and one IV for everything


class WorkOrderProcessor:
    _keys: WorkerKeys | None = None

    def __init__(
        self,
        keys: WorkerKeys,
        workloads: dict[str, Workload],
        *,
        avalon_compat: bool = False,
        replay: ReplayGuard | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.keys = keys
        self.workloads = workloads
        self.avalon_compat = avalon_compat
        self.replay = replay or ReplayGuard()
        self.budget = budget or Budget()

    @property
    def keys(self) -> WorkerKeys:
        assert self._keys is not None, "set in __init__"
        return self._keys

    @keys.setter
    def keys(self, keys: WorkerKeys) -> None:  # rotation replaces the encryption key; the state key stays
        if self._keys is None or keys.root_secret != self._keys.root_secret:
            self.state_keys = StateKeys(keys.root_secret)
        self._keys = keys

    def process(self, raw_params: bytes) -> bytes:
        """Raw WorkOrderSubmit params in, signed result JSON out; EeaError for any refusal. For workers
        without a state store: a workload that touches state is refused."""
        answer = self.process_order(raw_params, _no_state_store)
        assert not answer.writes
        return answer.result

    def process_order(self, raw_params: bytes, read_state: ReadItem, counters: CommitCounters | None = None) -> Answer:
        """The signed result JSON, the state writes the host must store with it and the worker's COMPLETED
        update; Refused (with the FAILED update) or, before the order is known to be fresh and this worker's,
        EeaError; RunAgain if it must wait for another order's state. `counters` reaches the key manager
        (None: there is none, and strictly ordered orders are refused)."""
        p = decode_params(raw_params)
        if p.worker_id.lower() != self.keys.worker_id:
            raise EeaError(Status.INVALID_PARAMETER, "work order is addressed to another worker")
        self.replay.check(p)  # a replayed id gets no signed update: it may already have one
        try:
            return self._execute(p, read_state, counters)
        except (RunAgain, OutOfOrder):  # no signed update: a replayed order may already have one
            raise
        except EeaError as exc:
            raise Refused(exc.code, exc.message, self._failed(p, exc.code, exc.message)) from None
        except ChannelError:
            raise  # the host went away during a state read: no answer to give
        except Exception as exc:  # never die on one bad order; never leak internals either
            log.exception("unexpected error processing a work order")
            message = f"enclave error ({type(exc).__name__})"
            raise Refused(Status.UNKNOWN_ERROR, message, self._failed(p, Status.UNKNOWN_ERROR, message)) from None

    def _execute(self, p: WorkOrderParams, read_state: ReadItem, counters: CommitCounters | None) -> Answer:
        workload = self._workload(p.workload_id)
        req_hash = request_hash(p)
        if p.requester_sequence and not p.requester_signature:
            raise EeaError(Status.INVALID_PARAMETER, "requesterSequence needs a requester signature (verifyingKey)")
        if p.requester_sequence and counters is None:
            raise EeaError(Status.INVALID_PARAMETER, "strict ordering (requesterSequence) needs a key manager")
        if p.requester_signature:
            signed = strict_order_digest(req_hash, p.requester_sequence) if p.requester_sequence else req_hash
            self._verify_requester(p, signed)
        order = Commit(order=crypto.sha256(canonical(p.work_order_id).encode()))
        if p.requester_sequence:
            order.requester, order.sequence = _requester_key(p), p.requester_sequence
        try:
            session = self._unwrap(p)
            self._check_request_hash(p, session, req_hash)
            _check_ivs_unique(p, session)
            inputs = [self._decrypt_item(item, session) for item in sorted(p.in_data, key=_index)]
            state = StateSession(self.state_keys, read_state, workload.name)
            outputs = self._run(workload, p, inputs, state)
            writes: list[StateWrite] = []
            if state.changed:  # durable replay check: the order's marker is written with its changes
                state.mark_applied(p.work_order_id)
                writes = state.writes()
            order.reads, order.writes = state.versions()
            if order.requester or order.reads or order.writes:
                _commit(order, counters)
            if not state.changed:  # a stateful order may be run again after a write conflict: not recorded
                self.replay.record(p)
        except (RunAgain, OutOfOrder):
            raise
        except EeaError:
            if order.requester:  # a failed order uses its number too: it must not run later, on other state
                _commit(Commit(order=order.order, requester=order.requester, sequence=order.sequence), counters)
            raise
        result, resp_hash = self._sign(p, [self._encrypt_output(i, data, session) for i, data in enumerate(outputs)])
        return Answer(result, self._update(p, ReceiptStatus.COMPLETED, crypto.b64encode(resp_hash)), writes)

    # -- receipt updates -------------------------------------------------------------------------

    def _update(self, p: WorkOrderParams, update_type: int, data: str) -> ReceiptUpdate:
        digest = receipt_update_digest(canonical(p.work_order_id), update_type, data)
        return ReceiptUpdate(update_type, data, crypto.b64encode(self.keys.signing.sign_digest(digest)))

    def _failed(self, p: WorkOrderParams, code: int, message: str) -> ReceiptUpdate:
        return self._update(p, ReceiptStatus.FAILED, failure_data(code, message))

    # -- checks ----------------------------------------------------------------------------------

    def _workload(self, workload_id: str) -> Workload:
        name = workload_name(workload_id)
        try:
            return self.workloads[name]
        except KeyError:
            raise EeaError(Status.INVALID_WORKLOAD, f"workload {name[:64]!r} is not served by this worker") from None

    @staticmethod
    def _verify_requester(p: WorkOrderParams, req_hash: bytes) -> None:
        if not p.verifying_key:
            raise EeaError(Status.INVALID_SIGNATURE, "requesterSignature given without verifyingKey")
        try:
            crypto.verify_digest(p.verifying_key, req_hash, crypto.b64decode(p.requester_signature))
        except crypto.CryptoError as exc:
            raise EeaError(Status.INVALID_SIGNATURE, f"requester signature rejected: {exc}") from None

    def _unwrap(self, p: WorkOrderParams) -> _Session:
        wrapped = _hex_field(p.encrypted_session_key, "encryptedSessionKey")
        iv = _hex_field(p.session_key_iv, "sessionKeyIv")
        if len(iv) != crypto.IV_LEN:
            raise EeaError(Status.INVALID_PARAMETER, "sessionKeyIv must be 12 bytes of hex")
        if p.key_encryption_algorithm is not crypto.KeySuite.RSA_OAEP_3072:
            return _Session(self._unwrap_hpke(p, wrapped), iv, legacy=False)
        now = time.time()
        session = self._unwrap_with(self.keys.decryption_keys(now), wrapped, iv)  # the history serves orders
        if session is not None:  # encrypted to a key rotated out since
            return session
        for retired in self.keys.expired(now):
            if self._unwrap_with((retired.encryption,), wrapped, iv) is not None:
                raise EeaError(
                    Status.INVALID_PARAMETER,
                    f"encryptedSessionKey is encrypted to a previous encryption key of this worker (nonce "
                    f"{retired.nonce or '-'}) that stopped serving {_utc(self.keys.serves_until(retired))}: fetch "
                    "the worker record again and encrypt to its current key",
                )
        hint = (
            ""
            if self.avalon_compat
            else " (OAEP-SHA256 expected; Avalon clients need a worker started with --avalon-compat)"
        )
        raise EeaError(
            Status.INVALID_PARAMETER,
            f"encryptedSessionKey does not decrypt with this worker's encryption key or the "
            f"{len(self.keys.history)} previous key(s) it keeps{hint}; if the order was built from an older "
            "worker record, fetch the record again",
        )

    def _unwrap_hpke(self, p: WorkOrderParams, wrapped: bytes) -> bytes:
        """The session key from its HPKE wrapping, sealed under this order's `session_key_info`."""
        suite, now = p.key_encryption_algorithm, time.time()
        keys = self.keys.hpke_decryption_keys(suite, now)  # the history serves orders encrypted to keys rotated out
        if not keys:
            offered = ", ".join([crypto.KeySuite.RSA_OAEP_3072, *self.keys.hpke_keys])
            raise EeaError(
                Status.INVALID_PARAMETER,
                f"keyEncryptionAlgorithm {suite} is not offered by this worker (it offers {offered})",
            )
        info = session_key_info(p)
        session_key = _open_hpke(keys, wrapped, info)
        if session_key is not None:
            return session_key
        for retired in self.keys.expired(now):
            old = retired.suites.get(suite)
            if old is not None and _open_hpke((old,), wrapped, info) is not None:
                raise EeaError(
                    Status.INVALID_PARAMETER,
                    f"encryptedSessionKey is encrypted to a previous {suite} key of this worker (retired with "
                    f"encryption key nonce {retired.nonce or '-'}) that stopped serving "
                    f"{_utc(self.keys.serves_until(retired))}: fetch the worker record again and encrypt to its "
                    "current key",
                )
        raise EeaError(
            Status.INVALID_PARAMETER,
            f"encryptedSessionKey does not decrypt with this worker's {suite} key or the previous ones it keeps, "
            "under this order's ids (wrapped for another key, worker or order, or tampered with)",
        )

    def _unwrap_with(self, keys: tuple[rsa.RSAPrivateKey, ...], wrapped: bytes, iv: bytes) -> _Session | None:
        for legacy in (False, True) if self.avalon_compat else (False,):
            for private in keys:
                try:
                    key = crypto.unwrap_session_key(private, wrapped, legacy_sha1=legacy)
                except crypto.LengthError:
                    raise EeaError(Status.INVALID_PARAMETER, "session key must be 32 bytes") from None
                except crypto.CryptoError:
                    continue
                return _Session(key, iv, legacy)
        return None

    @staticmethod
    def _check_request_hash(p: WorkOrderParams, s: _Session, req_hash: bytes) -> None:
        try:
            sent = crypto.aead_decrypt(
                s.key, crypto.Encrypted(s.iv, _hex_field(p.encrypted_request_hash, "encryptedRequestHash"))
            )
        except crypto.CryptoError:
            raise EeaError(
                Status.INVALID_PARAMETER, "encryptedRequestHash does not decrypt: the request was tampered with"
            ) from None
        if sent != req_hash:
            raise EeaError(Status.INVALID_PARAMETER, "request hash mismatch: the request was tampered with")

    def _decrypt_item(self, item: DataItem, s: _Session) -> bytes:
        where = f"inData[{item.index}]"
        try:
            blob = crypto.b64decode(item.data)
        except crypto.CryptoError:
            raise EeaError(Status.INVALID_PARAMETER, f"{where}.data is not base64") from None
        if item.encrypted_data_encryption_key == PLAINTEXT_ITEM:
            plain = blob
        elif item.encrypted_data_encryption_key in SESSION_KEY_ITEM:
            plain = self._decrypt_session_item(item, blob, s, where)
        else:
            raise EeaError(
                Status.INVALID_PARAMETER,
                f"{where}: per-item data encryption keys are not supported; encrypt items with the session key",
            )
        if item.data_hash and hashlib.sha256(plain).hexdigest() != item.data_hash.lower():
            raise EeaError(Status.INVALID_PARAMETER, f"{where}.dataHash does not match its data")
        return plain

    @staticmethod
    def _decrypt_session_item(item: DataItem, blob: bytes, s: _Session, where: str) -> bytes:
        if item.iv:
            iv = _hex_field(item.iv, f"{where}.iv")
            if len(iv) != crypto.IV_LEN:
                raise EeaError(Status.INVALID_PARAMETER, f"{where}.iv must be 12 bytes of hex")
        elif s.legacy:
            iv = s.iv  # Avalon clients reuse the session IV; accepted only in compat mode
        else:
            raise EeaError(
                Status.INVALID_PARAMETER,
                f"{where}.iv is empty: every item needs its own IV "
                "(Avalon clients need a worker started with --avalon-compat)",
            )
        try:
            return crypto.aead_decrypt(s.key, crypto.Encrypted(iv, blob))
        except crypto.CryptoError:
            raise EeaError(Status.INVALID_PARAMETER, f"{where} does not decrypt: wrong key or tampered data") from None

    # -- execution and result --------------------------------------------------------------------

    def _run(self, workload: Workload, p: WorkOrderParams, inputs: list[bytes], state: StateSession) -> list[bytes]:
        requester_key = _requester_key(p) if p.requester_signature else ""
        ctx = Context(
            requester_id=p.requester_id,
            work_order_id=p.work_order_id,
            worker_id=self.keys.worker_id,
            random=crypto.random_bytes,
            state=state.scope(None),
            requester_state=state.scope(requester_key),
            requester_key=requester_key,
        )
        try:
            with self.budget.limit():
                outputs = workload.execute(ctx, inputs)
        except EeaError:
            raise  # state refused (rollback, tampering) or the host has no state store
        except WorkloadError as exc:
            raise EeaError(Status.INVALID_PARAMETER, str(exc)[:500]) from None
        except OverBudget as exc:
            log.warning("workload %s %s", workload.name, exc)
            raise EeaError(Status.FAILED, f"workload {workload.name} {exc}") from None
        except MemoryError:
            log.warning("workload %s ran out of memory", workload.name)
            raise EeaError(
                Status.FAILED,
                f"workload {workload.name} exceeded the enclave's memory budget ({self.budget.memory_mb} MB)",
            ) from None
        except Exception as exc:  # a plug-in bug must not take the enclave down
            log.warning("workload %s raised %s", workload.name, type(exc).__name__)
            raise EeaError(Status.FAILED, f"workload {workload.name} failed ({type(exc).__name__})") from None
        if not isinstance(outputs, list) or not all(isinstance(o, bytes) for o in outputs) or not outputs:
            raise EeaError(Status.FAILED, f"workload {workload.name} returned no list of bytes")
        if (
            len(outputs) > MAX_ITEMS
            or max(map(len, outputs)) > MAX_DATA_BYTES
            or sum(map(len, outputs)) > MAX_RESULT_BYTES
        ):
            raise EeaError(
                Status.FAILED,
                f"workload {workload.name} returned more than a result holds ({MAX_ITEMS} items, "
                f"{MAX_DATA_BYTES:,} bytes each, {MAX_RESULT_BYTES:,} in all)",
            )
        return outputs

    @staticmethod
    def _encrypt_output(index: int, data: bytes, s: _Session) -> DataItem:
        if s.legacy:  # answer an Avalon client in the only form it can decrypt: weaker, the session IV reused
            return DataItem(
                index=index,
                data=crypto.b64encode(primitives.aes_gcm_encrypt(s.key, s.iv, data)),
                encrypted_data_encryption_key="null",
            )
        out = crypto.aead_encrypt(s.key, data)
        return DataItem(index=index, data=crypto.b64encode(out.ciphertext), iv=out.iv.hex())

    def _sign(self, p: WorkOrderParams, out_data: list[DataItem]) -> tuple[bytes, bytes]:
        """The signed result JSON and the response hash it signs."""
        result = WorkOrderResult(
            work_order_id=p.work_order_id,
            workload_id=p.workload_id,
            worker_id=p.worker_id,
            requester_id=p.requester_id,
            worker_nonce=crypto.random_bytes(16).hex(),
            worker_signature="",
            out_data=out_data,
        )
        digest = response_hash(result)
        result.worker_signature = crypto.b64encode(self.keys.signing.sign_digest(digest))
        return encode(result), digest


def _requester_key(p: WorkOrderParams) -> str:
    """Who signed the order: SHA-256 of its verifying key (its state scope, and its sequence's owner)."""
    return hashlib.sha256(p.verifying_key.strip().encode()).hexdigest()


def _commit(order: Commit, counters: CommitCounters | None) -> None:
    """Have the key manager check and record `order`; its refusal becomes this order's."""
    if counters is None:
        if order.requester:
            raise EeaError(Status.INVALID_PARAMETER, "strict ordering (requesterSequence) needs a key manager")
        return  # no key manager (a worker without a node): this process's own checks are all there is
    decision = counters(order)
    if decision.refused == "retry":
        raise RunAgain(decision.message)
    if decision.refused == "sequence":
        raise OutOfOrder(decision.message)
    if decision.refused == "unreachable":  # it may have applied the commit: the same order runs again later
        raise RunAgain(decision.message)
    if decision.refused:
        raise StateRollback(decision.message)


def _no_state_store(item_id: str) -> None:
    raise EeaError(Status.FAILED, "this worker has no state store: stateful workloads need a node")


def _check_ivs_unique(p: WorkOrderParams, s: _Session) -> None:
    """No IV may serve twice under the session key: not two items, and not an item and the request hash."""
    seen = {s.iv.hex()}
    for item in p.in_data:
        if item.iv and item.encrypted_data_encryption_key in SESSION_KEY_ITEM:
            iv = item.iv.lower().removeprefix("0x")
            if iv in seen:
                raise EeaError(Status.INVALID_PARAMETER, f"inData[{item.index}].iv is reused under the session key")
            seen.add(iv)


def _index(item: DataItem) -> int:
    return item.index


def _hex_field(text: str, name: str) -> bytes:
    try:
        return crypto.hexdecode(text)
    except crypto.CryptoError:
        raise EeaError(Status.INVALID_PARAMETER, f"{name} is not hex") from None


def _open_hpke(keys: tuple[crypto.HpkeKey, ...], wrapped: bytes, info: bytes) -> bytes | None:
    """The session key from the first of `keys` it opens with (None: none)."""
    for key in keys:
        try:
            return crypto.hpke_unwrap_session_key(key, wrapped, info)
        except crypto.LengthError:
            raise EeaError(Status.INVALID_PARAMETER, "session key must be 32 bytes") from None
        except crypto.CryptoError:
            continue
    return None


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
