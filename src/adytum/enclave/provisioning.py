"""Key provisioning: the key-manager enclave (KME) gives the worker's keys to work-order enclaves (WPEs).

A WPE seals nothing of its own. It receives the worker's keys from the KME after the two have attested
to each other, over a channel only they can read. Hosts and the network between them relay four
messages and learn nothing they could use:

    WPE -> KME  Offer      worker id, WPE ephemeral X25519 key, nonce
    KME -> WPE  Challenge  session id, KME ephemeral X25519 key       + KME evidence over H("kme", t)
    WPE -> KME  Response   session id                                 + WPE evidence over H("wpe", t)
    KME -> WPE  Delivery   session id, AES-GCM(k, worker keys, associated data t)

    t = SHA-256(domain ‖ Offer bytes ‖ session ‖ KME key),  k = HKDF(X25519 secret, salt t)

Each side's evidence binds the whole transcript, so a relay that swaps a key, or replays a message from
another handshake, breaks the binding. The KME forgets a session when it answers or refuses its
Response, so a Response works once. The evidence itself comes from the host's attestation service (on
SGX, a quote verified with Intel's collateral); the enclave checks it against its trusted roots.

The KME releases keys only to an enclave with its own signer, the WPE product id and a measurement its
policy lists (an empty policy allows nothing); a WPE takes keys only from an enclave with its own signer and the KME product id, and only
for the worker it was started for. Refusals raise `ProvisioningError`, whose message never holds a key.

The same handshake hands the whole key manager over to a new key-manager build (an upgrade): the new KME
takes the WPE's side with `successor` set in its Response, so the old KME checks its evidence for the KME
product and a build the policy lists as a key manager (`kme_mr_enclaves`), and delivers a `Succession`: the
worker's keys, its counters and its witness records, which the new build seals under its own identity.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from .. import crypto
from ..attestation.errors import AttestationError
from ..attestation.measurement import Measurement
from ..attestation.policy import Policy, Verdict
from ..attestation.verify import verify_evidence
from ..errors import AdytumError
from .keys import WorkerKeys
from .tee import peer_tcb_statuses

#: Product ids in the enclaves' signed identity (ISVPRODID on SGX): the role is part of what is attested.
WPE_PRODUCT = 1
KME_PRODUCT = 2
#: A KME holds at most this many unanswered handshakes, each for at most SESSION_SECONDS.
MAX_SESSIONS = 256
SESSION_SECONDS = 120.0
_DOMAIN = b"adytum-provision/1\0"


class Offer(msgspec.Struct, tag="offer", forbid_unknown_fields=True):
    worker_id: str
    public_key: bytes
    nonce: bytes


class Challenge(msgspec.Struct, tag="challenge", forbid_unknown_fields=True):
    session: bytes
    public_key: bytes


class Response(msgspec.Struct, tag="response", forbid_unknown_fields=True):
    session: bytes
    successor: bool = False  # a new key-manager build asking for the whole key manager (its evidence says so)


class Delivery(msgspec.Struct, tag="delivery", forbid_unknown_fields=True):
    session: bytes
    iv: bytes
    sealed_keys: bytes


_to_kme = msgspec.msgpack.Decoder(Offer | Response)
_to_wpe_challenge = msgspec.msgpack.Decoder(Challenge)
_to_wpe_delivery = msgspec.msgpack.Decoder(Delivery)


class Succession(msgspec.Struct, forbid_unknown_fields=True):
    """What a key manager hands to its successor build: the plaintexts of its three sealed files."""

    keys: bytes
    counters: bytes
    witnessed: bytes


class ProvisioningError(AdytumError):
    """A handshake step was refused; the message says why (and never carries key material)."""


@dataclass(frozen=True)
class Step:
    """What an enclave sends back: the next message, and report data the host must have quoted (or empty)."""

    body: bytes
    report_data: bytes = b""


def transcript(offer: bytes, session: bytes, kme_public: bytes) -> bytes:
    return crypto.sha256(_DOMAIN + len(offer).to_bytes(4, "big") + offer + session + kme_public)


def report_data(role: str, t: bytes) -> bytes:
    """The 64 report-data bytes of one side's evidence: SHA-256(domain ‖ role ‖ transcript) ‖ zeros."""
    return crypto.sha256(_DOMAIN + role.encode() + b"\0" + t) + bytes(32)


def _channel_key(secret: X25519PrivateKey, peer: bytes, t: bytes) -> bytes:
    try:
        shared = secret.exchange(X25519PublicKey.from_public_bytes(peer))
    except ValueError:
        raise ProvisioningError("the peer's ephemeral key is not an X25519 public key") from None
    return crypto.hkdf(shared, b"adytum-provision/1 kme->wpe", salt=t)


def _public(secret: X25519PrivateKey) -> bytes:
    return secret.public_key().public_bytes_raw()


def _decode(decoder: msgspec.msgpack.Decoder[Any], body: bytes, what: str) -> Any:
    try:
        return decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ProvisioningError(f"malformed {what}: {exc}") from None


def _verify_peer(role: str, proof_type: str, proof: str, policy: Policy, roots: Sequence[x509.Certificate]) -> Verdict:
    try:
        return verify_evidence(proof_type, proof, policy=policy, at=datetime.now(UTC), trusted_roots=roots)
    except AttestationError as exc:
        raise ProvisioningError(f"the {role}'s evidence is refused ({exc.reason.value}): {exc}") from None


class WpeHandshake:
    """A work-order enclave's side of one handshake: offer, answer the challenge, accept the keys."""

    def __init__(
        self, worker_id: str, me: Measurement, roots: Sequence[x509.Certificate], successor: bool = False
    ) -> None:
        """`successor`: this is a new key-manager build taking the whole key manager over (see the module)."""
        self.worker_id = worker_id
        self._me, self._roots, self._successor = me, roots, successor
        self._secret = X25519PrivateKey.generate()
        self.offer = msgspec.msgpack.encode(Offer(worker_id, _public(self._secret), crypto.random_bytes(16)))
        self._t = b""
        self._key = b""
        self._session = b""

    @property
    def answered(self) -> bool:
        return bool(self._key)

    def answer(self, body: bytes, proof_type: str, proof: str) -> Step:
        """Check the KME's evidence over this transcript; return the Response and what to quote."""
        challenge = _decode(_to_wpe_challenge, body, "challenge")
        t = transcript(self.offer, challenge.session, challenge.public_key)
        _verify_peer(
            "key manager",
            proof_type,
            proof,
            Policy(
                mr_signers=frozenset({self._me.mr_signer}),
                isv_prod_id=KME_PRODUCT,
                report_data_prefix=report_data("kme", t),
                accepted_statuses=peer_tcb_statuses(),
            ),
            self._roots,
        )
        self._t, self._session = t, challenge.session
        self._key = _channel_key(self._secret, challenge.public_key, t)
        response = Response(challenge.session, successor=self._successor)
        return Step(msgspec.msgpack.encode(response), report_data("wpe", t))

    def accept(self, body: bytes) -> WorkerKeys:
        """Open the delivered keys; they must be for this session and this enclave's worker."""
        return self._worker_keys(self._open(body))

    def accept_succession(self, body: bytes) -> Succession:
        """A successor's `accept`: the whole key manager, its keys for this enclave's worker."""
        try:
            succession = msgspec.msgpack.decode(self._open(body), type=Succession)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise ProvisioningError("the delivery is not a key manager's succession") from None
        self._worker_keys(succession.keys)
        return succession

    def _open(self, body: bytes) -> bytes:
        if not self.answered:
            raise ProvisioningError("keys delivered before the key manager was verified")
        delivery = _decode(_to_wpe_delivery, body, "delivery")
        if delivery.session != self._session:
            raise ProvisioningError("a delivery for another handshake")
        try:
            return crypto.aead_decrypt(self._key, crypto.Encrypted(delivery.iv, delivery.sealed_keys), self._t)
        except crypto.CryptoError:
            raise ProvisioningError(
                "the delivered keys do not open under this handshake's channel key "
                "(altered, or sealed for another enclave)"
            ) from None

    def _worker_keys(self, plain: bytes) -> WorkerKeys:
        try:
            keys = WorkerKeys.from_bytes(plain)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
            raise ProvisioningError("the delivery opens but holds no worker key set") from None
        if keys.worker_id.lower() != self.worker_id.lower():
            raise ProvisioningError(f"keys delivered for worker {keys.worker_id}; this enclave serves {self.worker_id}")
        return keys


@dataclass
class _Session:
    secret: X25519PrivateKey
    peer: bytes
    t: bytes
    started: float


class KeyManagerSessions:
    """The KME's side: a challenge for every offer, keys for every response whose evidence its policy allows."""

    def __init__(
        self,
        keys: Callable[[], WorkerKeys],
        me: Measurement,
        roots: Sequence[x509.Certificate],
        allowed: Callable[[], frozenset[bytes]],
        clock: Callable[[], float] = time.monotonic,
        successors: Callable[[], frozenset[bytes]] = frozenset,
        hand_over: Callable[[bytes], bytes] | None = None,
    ) -> None:
        """`successors`: the key-manager builds the policy lists; `hand_over(build)`: the Succession (bytes) to
        deliver to one of them, after which this key manager serves no more (None: no upgrades)."""
        self._keys, self._me, self._allowed, self._clock = keys, me, allowed, clock
        self._successors, self._hand_over = successors, hand_over
        self.roots = roots  # replaceable: the KME re-reads its trusted roots before each handshake
        self._sessions: OrderedDict[bytes, _Session] = OrderedDict()

    def handle(self, body: bytes, proof_type: str = "", proof: str = "") -> Step:
        msg = _decode(_to_kme, body, "provisioning message")
        if isinstance(msg, Offer):
            return self.challenge(msg, body)
        return self.deliver(msg, proof_type, proof)

    def challenge(self, offer: Offer, raw: bytes) -> Step:
        worker_id = self._keys().worker_id
        if offer.worker_id.lower() != worker_id.lower():
            raise ProvisioningError(
                f"an offer for worker {offer.worker_id[:64]!r}; this key manager holds worker {worker_id}"
            )
        if len(offer.public_key) != 32 or len(offer.nonce) != 16:
            raise ProvisioningError("malformed offer: a 32-byte X25519 key and a 16-byte nonce are required")
        self._expire()
        secret = X25519PrivateKey.generate()
        session = crypto.random_bytes(16)
        t = transcript(raw, session, _public(secret))
        self._sessions[session] = _Session(secret, offer.public_key, t, self._clock())
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return Step(msgspec.msgpack.encode(Challenge(session, _public(secret))), report_data("kme", t))

    def deliver(self, response: Response, proof_type: str, proof: str) -> Step:
        self._expire()
        session = self._sessions.pop(response.session, None)
        if session is None:
            raise ProvisioningError("no open handshake with this session id (replayed, expired or invented)")
        successor = response.successor and self._hand_over is not None
        verdict = _verify_peer(
            "key-manager build" if successor else "work-order enclave",
            proof_type,
            proof,
            Policy(
                mr_signers=frozenset({self._me.mr_signer}),
                isv_prod_id=KME_PRODUCT if successor else WPE_PRODUCT,
                report_data_prefix=report_data("wpe", session.t),
                accepted_statuses=peer_tcb_statuses(),
            ),
            self.roots,
        )
        build = (verdict.mr_enclave or b"").hex()
        if successor and verdict.mr_enclave not in self._successors():
            raise ProvisioningError(
                f"key-manager build {build} is not in the key manager's policy; if the operator wants it "
                f"(an upgrade of the key manager), `adytum pool allow {build} --key-manager`"
            )
        if not successor and verdict.mr_enclave not in self._allowed():
            raise ProvisioningError(
                f"work-order enclave build {build} is not in the key manager's policy; "
                f"if the operator wants it (an upgrade), `adytum pool allow {build}`"
            )
        key = _channel_key(session.secret, session.peer, session.t)
        assert verdict.mr_enclave is not None  # the policy lists it
        payload = self._hand_over(verdict.mr_enclave) if successor and self._hand_over else self._keys().to_bytes()
        sealed = crypto.aead_encrypt(key, payload, session.t)
        return Step(msgspec.msgpack.encode(Delivery(response.session, sealed.iv, sealed.ciphertext)))

    @property
    def open_sessions(self) -> int:
        return len(self._sessions)

    def _expire(self) -> None:
        cutoff = self._clock() - SESSION_SECONDS
        while self._sessions and next(iter(self._sessions.values())).started < cutoff:
            self._sessions.popitem(last=False)
