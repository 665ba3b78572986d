"""The key-provisioning handshake in process: a KME (`KeyManagerSessions`) and WPEs (`WpeHandshake`)
exchange the four messages by hand while the test plays the hosts (quoting each side's report data and
turning the quote into evidence with the simulated attestation service). Each refusal is checked by its
reason: tampering, replay, impersonation and malformed input end in `ProvisioningError` and nothing else."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import msgspec
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from adytum import crypto
from adytum.attestation.measurement import Measurement
from adytum.attestation.simulated import SIMULATED_IAS
from adytum.enclave import provisioning
from adytum.enclave.keys import WorkerKeys
from adytum.enclave.provisioning import (
    KME_PRODUCT,
    MAX_SESSIONS,
    SESSION_SECONDS,
    WPE_PRODUCT,
    Challenge,
    Delivery,
    KeyManagerSessions,
    Offer,
    ProvisioningError,
    Response,
    WpeHandshake,
)
from adytum.issuer.devroot import init_dev_root
from adytum.issuer.quoter import SimulatedQuoter
from adytum.issuer.service import SimulatedAttestationService

WORKER = "a1" * 32
OTHER_WORKER = "b2" * 32
SIGNER = crypto.sha256(b"test build signer")
BUILD = Measurement(mr_enclave=crypto.sha256(b"enclave build 1"), mr_signer=SIGNER, python_version=(3, 11, 7))
UPGRADE = Measurement(mr_enclave=crypto.sha256(b"enclave build 2"), mr_signer=SIGNER, python_version=(3, 11, 7))
NONCE = "provisioning-test"
Attest = Callable[[bytes], str]


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def reencode(body: bytes, kind: type, **changes: object) -> bytes:
    """Decode a handshake message, change some fields and encode it again (what a relay could do)."""
    return msgspec.msgpack.encode(msgspec.structs.replace(msgspec.msgpack.decode(body, type=kind), **changes))


class World:
    """One simulated platform (dev root, attestation service), one KME and the host's plumbing."""

    def __init__(self, tmp_path, name: str = "devroot") -> None:
        self.root = init_dev_root(tmp_path / name)
        self.service = SimulatedAttestationService(self.root)
        self.roots = [self.root.root_certificate]
        self.keys = WorkerKeys.generate(WORKER)
        self.allowed = {BUILD.mr_enclave}
        self.now = 1000.0
        self.sessions = KeyManagerSessions(
            lambda: self.keys, BUILD, self.roots, lambda: frozenset(self.allowed), clock=lambda: self.now
        )
        self.kme_attest = self.attester(BUILD, KME_PRODUCT)
        self.wpe_attest = self.attester(BUILD, WPE_PRODUCT)

    def attester(self, me: Measurement, product: int) -> Attest:
        """What this host does with the report data of an enclave it runs: quote it on its platform and
        have its attestation service turn the quote into evidence (proof data)."""
        quoter = SimulatedQuoter(self.root.quoting_key, me.mr_enclave, me.mr_signer, isv_prod_id=product)
        return lambda report_data: self.service.verify_quote(quoter.quote(report_data), nonce=NONCE).to_proof_data()

    def wpe(self, me: Measurement = BUILD, worker_id: str = WORKER) -> WpeHandshake:
        return WpeHandshake(worker_id, me, self.roots)

    def challenge(self, wpe: WpeHandshake, offer: bytes | None = None) -> tuple[bytes, str]:
        """Offer -> KME; the Challenge and the KME's evidence over its report data."""
        step = self.sessions.handle(wpe.offer if offer is None else offer)
        return step.body, self.kme_attest(step.report_data)

    def response(
        self, wpe: WpeHandshake, challenge: tuple[bytes, str], attest: Attest | None = None
    ) -> tuple[bytes, str]:
        """Challenge -> WPE; the Response and the WPE's evidence over its report data."""
        step = wpe.answer(challenge[0], SIMULATED_IAS, challenge[1])
        return step.body, (attest or self.wpe_attest)(step.report_data)

    def delivery(self, response: tuple[bytes, str]) -> bytes:
        """Response -> KME; the Delivery (nothing to quote)."""
        step = self.sessions.handle(response[0], SIMULATED_IAS, response[1])
        assert step.report_data == b""
        return step.body

    def provision(self, wpe: WpeHandshake, attest: Attest | None = None) -> WorkerKeys:
        return wpe.accept(self.delivery(self.response(wpe, self.challenge(wpe), attest)))


@pytest.fixture
def world(tmp_path) -> World:
    return World(tmp_path)


def same_keys(a: WorkerKeys, b: WorkerKeys) -> bool:
    return (a.worker_id, a.verifying_key, a.encryption_key, a.signing.secret, a.encryption_key_nonce) == (
        b.worker_id,
        b.verifying_key,
        b.encryption_key,
        b.signing.secret,
        b.encryption_key_nonce,
    )


# --- the handshake ---------------------------------------------------------------------------------


def test_handshake_delivers_the_key_managers_keys(world):
    wpe = world.wpe()
    keys = world.provision(wpe)
    assert same_keys(keys, world.keys)
    assert crypto.rsa_private_to_der(keys.encryption) == crypto.rsa_private_to_der(world.keys.encryption)
    assert world.sessions.open_sessions == 0


def test_measurement_outside_policy_is_refused_until_the_policy_allows_it(world):
    upgraded = world.attester(UPGRADE, WPE_PRODUCT)
    wpe = world.wpe(UPGRADE)
    response = world.response(wpe, world.challenge(wpe), upgraded)
    with pytest.raises(ProvisioningError, match=f"{UPGRADE.mr_enclave.hex()} is not in the"):
        world.delivery(response)

    world.allowed.add(UPGRADE.mr_enclave)  # the operator lists the new build; the KME reads it per handshake
    assert same_keys(world.provision(world.wpe(UPGRADE), upgraded), world.keys)


def test_empty_policy_allows_no_build(world):
    world.allowed.clear()
    wpe = world.wpe()
    response = world.response(wpe, world.challenge(wpe))
    with pytest.raises(ProvisioningError, match=f"{BUILD.mr_enclave.hex()} is not in the"):
        world.delivery(response)


# --- replay ----------------------------------------------------------------------------------------


def test_response_is_single_use_and_bound_to_its_session(world):
    old = world.wpe()
    old_response = world.response(old, world.challenge(old))
    old.accept(world.delivery(old_response))
    with pytest.raises(ProvisioningError, match="no open handshake with this session id"):
        world.delivery(old_response)  # the same Response again

    new = world.wpe()
    new_challenge = world.challenge(new)
    with pytest.raises(ProvisioningError, match="no open handshake with this session id"):
        world.delivery(old_response)  # an old Response while another handshake is open
    session = msgspec.msgpack.decode(new_challenge[0], type=Challenge).session
    relabelled = (reencode(old_response[0], Response, session=session), old_response[1])
    with pytest.raises(ProvisioningError, match=r"work-order enclave's evidence is refused \(report-data\)"):
        world.delivery(relabelled)  # the old evidence under the new session id

    invented = world.wpe()
    invented_response = world.response(invented, world.challenge(invented))
    forged = (msgspec.msgpack.encode(Response(crypto.random_bytes(16))), invented_response[1])
    with pytest.raises(ProvisioningError, match="no open handshake with this session id"):
        world.delivery(forged)


def test_refused_response_closes_its_session(world):
    wpe = world.wpe()
    response = world.response(wpe, world.challenge(wpe))
    with pytest.raises(ProvisioningError, match=r"evidence is refused \(unsupported\)"):
        world.sessions.handle(response[0], SIMULATED_IAS, "")
    with pytest.raises(ProvisioningError, match="no open handshake with this session id"):
        world.delivery(response)  # the genuine evidence comes too late


# --- tampering -------------------------------------------------------------------------------------


def test_challenge_with_a_swapped_kme_key_is_refused(world):
    wpe = world.wpe()
    body, proof = world.challenge(wpe)
    key = msgspec.msgpack.decode(body, type=Challenge).public_key
    with pytest.raises(ProvisioningError, match=r"key manager's evidence is refused \(report-data\)"):
        wpe.answer(reencode(body, Challenge, public_key=flip(key, 0)), SIMULATED_IAS, proof)
    assert not wpe.answered


def test_offer_altered_on_the_way_fails_at_the_wpe(world):
    wpe = world.wpe()
    attacker = X25519PrivateKey.generate().public_key().public_bytes_raw()
    challenge = world.challenge(wpe, reencode(wpe.offer, Offer, public_key=attacker))
    with pytest.raises(ProvisioningError, match=r"key manager's evidence is refused \(report-data\)"):
        wpe.answer(challenge[0], SIMULATED_IAS, challenge[1])
    assert not wpe.answered


def test_altered_delivery_is_refused(world):
    wpe = world.wpe()
    delivery = world.delivery(world.response(wpe, world.challenge(wpe)))
    sealed = msgspec.msgpack.decode(delivery, type=Delivery).sealed_keys
    with pytest.raises(ProvisioningError, match="do not open under this handshake's channel key"):
        wpe.accept(reencode(delivery, Delivery, sealed_keys=flip(sealed, len(sealed) // 2)))
    assert same_keys(wpe.accept(delivery), world.keys)  # the genuine one still opens


def test_delivery_for_another_handshake_is_refused(world):
    first, second = world.wpe(), world.wpe()
    first_delivery = world.delivery(world.response(first, world.challenge(first)))
    second_delivery = world.delivery(world.response(second, world.challenge(second)))
    with pytest.raises(ProvisioningError, match="a delivery for another handshake"):
        second.accept(first_delivery)
    session = msgspec.msgpack.decode(second_delivery, type=Delivery).session
    with pytest.raises(ProvisioningError, match="do not open under this handshake's channel key"):
        second.accept(reencode(first_delivery, Delivery, session=session))  # relabelled: other channel key


def test_delivery_before_the_kme_is_verified_is_refused(world):
    wpe = world.wpe()
    other = world.wpe()
    delivery = world.delivery(world.response(other, world.challenge(other)))
    with pytest.raises(ProvisioningError, match="keys delivered before the key manager was verified"):
        wpe.accept(delivery)


# --- impersonating the KME -------------------------------------------------------------------------


def kme_impostor_refused(world: World, proof_for: Attest, reason: str) -> None:
    wpe = world.wpe()
    step = world.sessions.handle(wpe.offer)
    with pytest.raises(ProvisioningError, match=rf"key manager's evidence is refused \({reason}\)"):
        wpe.answer(step.body, SIMULATED_IAS, proof_for(step.report_data))
    assert not wpe.answered


def test_wpe_product_cannot_answer_as_kme(world):
    kme_impostor_refused(world, world.wpe_attest, "product")


def test_kme_of_another_signer_is_refused(world):
    other = Measurement(mr_enclave=BUILD.mr_enclave, mr_signer=crypto.sha256(b"someone else"))
    kme_impostor_refused(world, world.attester(other, KME_PRODUCT), "measurement")


def test_kme_under_an_untrusted_root_is_refused(world, tmp_path):
    elsewhere = World(tmp_path, "other-devroot")
    kme_impostor_refused(world, elsewhere.kme_attest, "chain")


def test_kme_evidence_from_another_handshake_is_refused(world):
    earlier = world.wpe()
    _, earlier_proof = world.challenge(earlier)  # a genuine KME quote, over another transcript
    kme_impostor_refused(world, lambda _: earlier_proof, "report-data")


def test_kme_evidence_over_the_wpe_role_is_refused(world):
    """The report data names the role: evidence over the WPE's report data does not answer a challenge."""
    wpe = world.wpe()
    step = world.sessions.handle(wpe.offer)
    challenge = msgspec.msgpack.decode(step.body, type=Challenge)
    t = provisioning.transcript(wpe.offer, challenge.session, challenge.public_key)
    assert provisioning.report_data("kme", t) == step.report_data
    with pytest.raises(ProvisioningError, match=r"key manager's evidence is refused \(report-data\)"):
        wpe.answer(step.body, SIMULATED_IAS, world.kme_attest(provisioning.report_data("wpe", t)))


def test_kme_refuses_kme_product_answering_as_wpe(world):
    wpe = world.wpe()
    response = world.response(wpe, world.challenge(wpe), world.attester(BUILD, KME_PRODUCT))
    with pytest.raises(ProvisioningError, match=r"work-order enclave's evidence is refused \(product\)"):
        world.delivery(response)


def test_kme_refuses_a_wpe_of_another_signer(world):
    stranger = Measurement(mr_enclave=BUILD.mr_enclave, mr_signer=crypto.sha256(b"someone else"))
    wpe = world.wpe()
    response = world.response(wpe, world.challenge(wpe), world.attester(stranger, WPE_PRODUCT))
    with pytest.raises(ProvisioningError, match=r"work-order enclave's evidence is refused \(measurement\)"):
        world.delivery(response)


def test_kme_refuses_a_wpe_under_an_untrusted_root_until_it_is_trusted(world, tmp_path):
    elsewhere = World(tmp_path, "other-devroot")  # another host, whose WPE trusts this KME's root
    remote = world.wpe()
    response = world.response(remote, world.challenge(remote), elsewhere.wpe_attest)
    with pytest.raises(ProvisioningError, match=r"work-order enclave's evidence is refused \(chain\)"):
        world.delivery(response)

    world.sessions.roots = [*world.roots, elsewhere.root.root_certificate]  # `adytum pool trust`
    assert same_keys(world.provision(world.wpe(), elsewhere.wpe_attest), world.keys)


# --- another worker --------------------------------------------------------------------------------


def test_kme_refuses_an_offer_for_another_worker(world):
    with pytest.raises(
        ProvisioningError, match=f"an offer for worker '{OTHER_WORKER}'; this key manager holds worker {WORKER}"
    ):
        world.sessions.handle(world.wpe(worker_id=OTHER_WORKER).offer)
    assert world.sessions.open_sessions == 0


def test_wpe_refuses_keys_of_another_worker(world):
    wpe = world.wpe(worker_id=WORKER)
    delivery = world.delivery(world.response(wpe, world.challenge(wpe)))
    wpe.worker_id = OTHER_WORKER  # the enclave serves B; the offer said A and the KME holds A
    with pytest.raises(
        ProvisioningError, match=f"keys delivered for worker {WORKER}; this enclave serves {OTHER_WORKER}"
    ):
        wpe.accept(delivery)


# --- malformed input -------------------------------------------------------------------------------


def _encode(obj: object) -> bytes:
    return msgspec.msgpack.encode(obj)


NOISE = random.Random(20240607).randbytes(200)
MALFORMED_TO_KME = {
    "random bytes": (NOISE, "malformed provisioning message"),
    "empty": (b"", "malformed provisioning message"),
    "a challenge": (_encode(Challenge(bytes(16), bytes(32))), "malformed provisioning message"),
    "a delivery": (_encode(Delivery(bytes(16), bytes(12), bytes(40))), "malformed provisioning message"),
    "a list": (_encode([1, 2, 3]), "malformed provisioning message"),
    "a string": (_encode("offer"), "malformed provisioning message"),
    "untagged offer": (
        _encode({"worker_id": WORKER, "public_key": bytes(32), "nonce": bytes(16)}),
        "malformed provisioning message",
    ),
    "integer worker id": (
        _encode({"type": "offer", "worker_id": 7, "public_key": bytes(32), "nonce": bytes(16)}),
        "malformed provisioning message",
    ),
    "text key": (
        _encode({"type": "offer", "worker_id": WORKER, "public_key": "ab" * 16, "nonce": bytes(16)}),
        "malformed provisioning message",
    ),
    "extra field": (
        _encode({"type": "offer", "worker_id": WORKER, "public_key": bytes(32), "nonce": bytes(16), "keys": b"please"}),
        "malformed provisioning message",
    ),
    "short key": (_encode(Offer(WORKER, bytes(31), bytes(16))), "a 32-byte X25519 key and a 16-byte nonce"),
    "long nonce": (_encode(Offer(WORKER, bytes(32), bytes(17))), "a 32-byte X25519 key and a 16-byte nonce"),
    "response without session": (_encode({"type": "response"}), "malformed provisioning message"),
    "trailing bytes": (_encode(Response(bytes(16))) + b"\x00", "malformed provisioning message"),
}


@pytest.mark.parametrize("body, reason", MALFORMED_TO_KME.values(), ids=MALFORMED_TO_KME.keys())
def test_kme_refuses_malformed_messages(world, body, reason):
    with pytest.raises(ProvisioningError, match=reason):
        world.sessions.handle(body, SIMULATED_IAS, "{}")
    assert world.sessions.open_sessions == 0


MALFORMED_TO_WPE = {
    "random bytes": NOISE,
    "empty": b"",
    "an offer": _encode(Offer(WORKER, bytes(32), bytes(16))),
    "a response": _encode(Response(bytes(16))),
    "a list": _encode([b"session", b"key"]),
    "integer session": _encode({"type": "challenge", "session": 5, "public_key": bytes(32)}),
    "truncated": _encode(Challenge(bytes(16), bytes(32)))[:-3],
}


@pytest.mark.parametrize("body", MALFORMED_TO_WPE.values(), ids=MALFORMED_TO_WPE.keys())
def test_wpe_refuses_malformed_challenges_and_deliveries(world, body):
    wpe = world.wpe()
    challenge = world.challenge(wpe)
    with pytest.raises(ProvisioningError, match="malformed challenge"):
        wpe.answer(body, SIMULATED_IAS, challenge[1])
    world.delivery(world.response(wpe, challenge))
    with pytest.raises(ProvisioningError, match="malformed delivery"):
        wpe.accept(body)


MALFORMED_PROOFS = {
    "empty": (SIMULATED_IAS, "", "unsupported"),
    "not json": (SIMULATED_IAS, NOISE.hex(), "malformed"),
    "json list": (SIMULATED_IAS, "[]", "malformed"),
    "empty object": (SIMULATED_IAS, "{}", "malformed"),
    "fields of the wrong type": (
        SIMULATED_IAS,
        '{"simulated": true, "verification_report": 1, "report_signature": [], "report_signing_certificate": null}',
        "malformed",
    ),
    "unknown proof type": ("NO-SUCH-TYPE", "{}", "unsupported"),
    "dcap without collateral": ("TEE-SGX-DCAP", "{}", "collateral"),
    "ias garbage": ("TEE-SGX-IAS", '{"verification_report": "x"}', "malformed"),
}


@pytest.mark.parametrize("proof_type, proof, reason", MALFORMED_PROOFS.values(), ids=MALFORMED_PROOFS.keys())
def test_malformed_evidence_is_refused_by_both_sides(world, proof_type, proof, reason):
    wpe = world.wpe()
    step = world.sessions.handle(wpe.offer)
    with pytest.raises(ProvisioningError, match=rf"key manager's evidence is refused \({reason}\)"):
        wpe.answer(step.body, proof_type, proof)
    response = world.response(wpe, (step.body, world.kme_attest(step.report_data)))
    with pytest.raises(ProvisioningError, match=rf"work-order enclave's evidence is refused \({reason}\)"):
        world.sessions.handle(response[0], proof_type, proof)


def test_malformed_ephemeral_keys_are_refused(world):
    """Keys that pass the transcript but are no X25519 keys (wrong length, the all-zero point)."""
    wpe = world.wpe()
    session = crypto.random_bytes(16)
    for bad in (bytes(5), bytes(32)):
        t = provisioning.transcript(wpe.offer, session, bad)
        proof = world.kme_attest(provisioning.report_data("kme", t))
        with pytest.raises(ProvisioningError, match="ephemeral key is not an X25519 public key"):
            wpe.answer(_encode(Challenge(session, bad)), SIMULATED_IAS, proof)

    zero = _encode(Offer(WORKER, bytes(32), bytes(16)))  # accepted as an offer, unusable for the exchange
    body, proof = world.challenge(wpe, zero)
    challenge = msgspec.msgpack.decode(body, type=Challenge)
    t = provisioning.transcript(zero, challenge.session, challenge.public_key)
    response = (_encode(Response(challenge.session)), world.wpe_attest(provisioning.report_data("wpe", t)))
    with pytest.raises(ProvisioningError, match="ephemeral key is not an X25519 public key"):
        world.delivery(response)


# --- secrets stay secret ---------------------------------------------------------------------------


def secret_fragments(keys: WorkerKeys) -> list[str]:
    der = crypto.rsa_private_to_der(keys.encryption)
    pem = keys.encryption.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    pem_lines = [line for line in pem.splitlines() if "-----" not in line and len(line) >= 40]
    secret = keys.signing.secret.hex()
    return [
        secret,
        secret.upper(),
        der[-64:].hex(),
        der[-64:].hex().upper(),
        crypto.b64encode(der)[-40:],
        keys.signing.private_pem().splitlines()[1],
        *pem_lines[len(pem_lines) // 2 :][:3],
        "PRIVATE",
    ]


def test_no_key_material_in_logs_or_refusals(world, caplog):
    caplog.set_level(logging.DEBUG)
    refusals: list[str] = []

    def refused(call, *args) -> None:
        with pytest.raises(ProvisioningError) as info:
            call(*args)
        refusals.append(str(info.value))

    wpe = world.wpe()
    delivery = world.delivery(world.response(wpe, world.challenge(wpe)))
    sealed = msgspec.msgpack.decode(delivery, type=Delivery).sealed_keys
    refused(wpe.accept, reencode(delivery, Delivery, sealed_keys=flip(sealed, 3)))
    wpe.worker_id = OTHER_WORKER
    refused(wpe.accept, delivery)
    refused(wpe.accept, delivery[:-1])
    upgraded = world.wpe(UPGRADE)
    refused(world.delivery, world.response(upgraded, world.challenge(upgraded), world.attester(UPGRADE, WPE_PRODUCT)))
    refused(world.sessions.handle, world.keys.to_bytes())  # the keys themselves, sent as a message
    echoed = OTHER_WORKER + world.keys.signing.secret.hex()  # the KME echoes only the first 64 characters
    refused(world.sessions.handle, _encode(Offer(echoed, bytes(32), bytes(16))))

    keys = world.provision(world.wpe())
    assert same_keys(keys, world.keys)
    text = caplog.text + "\n".join(refusals)
    assert len(refusals) == 6
    for fragment in secret_fragments(world.keys):
        assert fragment not in text


# --- session bounds --------------------------------------------------------------------------------


def test_too_many_open_sessions_evict_the_oldest(world):
    oldest, next_oldest = world.wpe(), world.wpe()
    oldest_challenge, next_challenge = world.challenge(oldest), world.challenge(next_oldest)
    filler = world.wpe().offer
    for _ in range(MAX_SESSIONS - 1):
        world.sessions.handle(filler)
    assert world.sessions.open_sessions == MAX_SESSIONS

    response = world.response(oldest, oldest_challenge)
    with pytest.raises(ProvisioningError, match="no open handshake with this session id"):
        world.delivery(response)
    assert same_keys(next_oldest.accept(world.delivery(world.response(next_oldest, next_challenge))), world.keys)


def test_session_older_than_its_lifetime_is_refused_as_expired(world):
    old = world.wpe()
    old_challenge = world.challenge(old)
    world.now += SESSION_SECONDS / 2
    young = world.wpe()
    young_challenge = world.challenge(young)
    world.now += SESSION_SECONDS / 2 + 1  # old is past its lifetime, young is not

    with pytest.raises(ProvisioningError, match="expired"):
        world.delivery(world.response(old, old_challenge))
    assert world.sessions.open_sessions == 1
    assert same_keys(young.accept(world.delivery(world.response(young, young_challenge))), world.keys)


# --- handing the key manager to a new key-manager build (an upgrade) ---------------------------------


def successor_world(world: World) -> World:
    """The world's KME hands over to key-manager build UPGRADE when the policy lists it as a key manager."""
    world.successors = set()  # type: ignore[attr-defined]
    world.handed = []  # type: ignore[attr-defined]

    def hand_over(build: bytes) -> bytes:
        world.handed.append(build)  # type: ignore[attr-defined]
        return msgspec.msgpack.encode(provisioning.Succession(world.keys.to_bytes(), b"counters", b"witnessed"))

    world.sessions = KeyManagerSessions(
        lambda: world.keys,
        BUILD,
        world.roots,
        lambda: frozenset(world.allowed),
        clock=lambda: world.now,
        successors=lambda: frozenset(world.successors),  # type: ignore[attr-defined]
        hand_over=hand_over,
    )
    return world


def test_an_allowed_key_manager_build_takes_the_whole_key_manager(world):
    successor_world(world)
    upgraded = world.attester(UPGRADE, KME_PRODUCT)
    new = WpeHandshake(WORKER, UPGRADE, world.roots, successor=True)
    response = world.response(new, world.challenge(new), upgraded)
    with pytest.raises(ProvisioningError, match=f"key-manager build {UPGRADE.mr_enclave.hex()} is not in"):
        world.delivery(response)
    assert world.handed == []
    world.allowed.add(UPGRADE.mr_enclave)  # listed as a work-order enclave build: not a key manager
    new = WpeHandshake(WORKER, UPGRADE, world.roots, successor=True)
    with pytest.raises(ProvisioningError, match="--key-manager"):
        world.delivery(world.response(new, world.challenge(new), upgraded))
    world.successors.add(UPGRADE.mr_enclave)
    new = WpeHandshake(WORKER, UPGRADE, world.roots, successor=True)
    succession = new.accept_succession(world.delivery(world.response(new, world.challenge(new), upgraded)))
    assert same_keys(WorkerKeys.from_bytes(succession.keys), world.keys)
    assert (succession.counters, succession.witnessed) == (b"counters", b"witnessed")
    assert world.handed == [UPGRADE.mr_enclave]


def test_a_work_order_enclave_cannot_pose_as_a_successor(world):
    successor_world(world)
    world.successors.add(BUILD.mr_enclave)
    impostor = WpeHandshake(WORKER, BUILD, world.roots, successor=True)  # a WPE's quote: the WPE product
    response = world.response(impostor, world.challenge(impostor), world.wpe_attest)
    with pytest.raises(ProvisioningError, match=r"key-manager build's evidence is refused \(product\)"):
        world.delivery(response)
    # and a successor whose flag a relay dropped is checked as a work-order enclave, which its quote is not
    new = WpeHandshake(WORKER, UPGRADE, world.roots, successor=True)
    body, proof = world.response(new, world.challenge(new), world.attester(UPGRADE, KME_PRODUCT))
    dropped = reencode(body, provisioning.Response, successor=False)
    with pytest.raises(ProvisioningError, match=r"work-order enclave's evidence is refused \(product\)"):
        world.delivery((dropped, proof))
    assert world.handed == []
    # a work-order enclave handed a succession would not take it for keys
    world.successors.add(UPGRADE.mr_enclave)
    new = WpeHandshake(WORKER, UPGRADE, world.roots, successor=True)
    delivery = world.delivery(world.response(new, world.challenge(new), world.attester(UPGRADE, KME_PRODUCT)))
    with pytest.raises(ProvisioningError, match="holds no worker key set"):
        new.accept(delivery)
