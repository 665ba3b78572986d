"""Simulated attestation end to end: quote -> service -> proofData -> verify_worker_evidence.

Real keys and certificates throughout (a development root made in a temporary directory); every
refusal asserts its exact ``Reason``. Times are explicit: nothing depends on the wall clock.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from adytum import crypto
from adytum.attestation.errors import AttestationError, Reason
from adytum.attestation.policy import ALL_STATUSES, Policy, Verdict
from adytum.attestation.simulated import QUOTE_LEN, SIMULATED_IAS, Evidence, parse_quote, platform_id
from adytum.attestation.verify import TEE_SGX_DCAP, report_data_for, verify_evidence, verify_worker_evidence
from adytum.issuer.devroot import DevRoot, init_dev_root, load_dev_root
from adytum.issuer.quoter import DevRootError, SimulatedQuoter, load_quoting_key, make_quote
from adytum.issuer.service import SimulatedAttestationService, report_timestamp, sign_report

from .conftest import quote_bytes, suggested_time

CREATED = datetime(2030, 1, 1, tzinfo=UTC)
REPORTED = CREATED + timedelta(days=1)
CHECKED = REPORTED + timedelta(minutes=10)
MR_ENCLAVE = hashlib.sha256(b"enclave build 1").digest()
MR_SIGNER = hashlib.sha256(b"signer").digest()
WORKER_ID = "5f" * 32


@dataclass(frozen=True)
class Worker:
    verifying_key: str
    encryption_key: str
    worker_id: str = WORKER_ID

    def binding(self) -> bytes:
        return report_data_for(self.verifying_key, self.encryption_key, self.worker_id)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> DevRoot:
    return init_dev_root(tmp_path_factory.mktemp("devroot"), now=CREATED)


@pytest.fixture(scope="module")
def other_root(tmp_path_factory: pytest.TempPathFactory) -> DevRoot:
    return init_dev_root(tmp_path_factory.mktemp("other-devroot"), now=CREATED)


@pytest.fixture(scope="module")
def worker() -> Worker:
    return Worker(crypto.SigningKey().public_pem(), crypto.rsa_public_pem(crypto.rsa_generate()))


@pytest.fixture(scope="module")
def host_key() -> str:
    """An RSA key the host controls: what it would swap in for the worker's encryption key."""
    return crypto.rsa_public_pem(crypto.rsa_generate())


def quote_for(root: DevRoot, worker: Worker, **overrides: Any) -> bytes:
    fields: dict[str, Any] = dict(
        mr_enclave=MR_ENCLAVE, mr_signer=MR_SIGNER, isv_prod_id=7, isv_svn=3, debug=False, report_data=worker.binding()
    )
    fields.update(overrides)
    return make_quote(root.quoting_key, **fields)


def proof_for(root: DevRoot, worker: Worker, *, at: datetime = REPORTED, **overrides: Any) -> str:
    return (
        SimulatedAttestationService(root)
        .verify_quote(quote_for(root, worker, **overrides), "a1b2c3", at=at)
        .to_proof_data()
    )


def policy(**kwargs: Any) -> Policy:
    kwargs.setdefault("mr_enclaves", {MR_ENCLAVE})
    kwargs.setdefault("mr_signers", {MR_SIGNER})
    return Policy(**kwargs)


def verify(
    proof: str,
    root: DevRoot,
    worker: Worker,
    *,
    roots: list[x509.Certificate] | None = None,
    at: datetime = CHECKED,
    **kwargs: Any,
) -> Verdict:
    return verify_worker_evidence(
        SIMULATED_IAS,
        proof,
        verifying_key=worker.verifying_key,
        encryption_key=worker.encryption_key,
        worker_id=worker.worker_id,
        policy=kwargs.pop("policy", None) or policy(),
        at=at,
        trusted_roots=[root.root_certificate] if roots is None else roots,
        **kwargs,
    )


def refused(reason: Reason, call: Callable[[], object]) -> AttestationError:
    with pytest.raises(AttestationError) as err:
        call()
    assert err.value.reason is reason, str(err.value)
    return err.value


def edit_proof(proof: str, **changes: Any) -> str:
    obj = json.loads(proof)
    obj.update(changes)
    return json.dumps(obj)


# --- accepted ----------------------------------------------------------------------------------


def test_valid_evidence_is_accepted_and_says_simulated(root: DevRoot, worker: Worker) -> None:
    verdict = verify(proof_for(root, worker), root, worker)
    assert verdict.kind == "simulated"
    assert (verdict.mr_enclave, verdict.mr_signer) == (MR_ENCLAVE, MR_SIGNER)
    assert (verdict.isv_prod_id, verdict.isv_svn, verdict.debug) == (7, 3, False)
    assert verdict.tcb_status == "UpToDate" and verdict.raw_status == "OK"
    assert verdict.report_data == worker.binding()
    assert verdict.issued_at == REPORTED
    assert verdict.describe().startswith("simulated evidence")


def test_proof_data_and_report_are_ias_shaped_and_say_simulated(root: DevRoot, worker: Worker) -> None:
    quote = quote_for(root, worker)
    proof = json.loads(proof_for(root, worker))
    assert set(proof) == {"verification_report", "report_signature", "report_signing_certificate", "simulated"}
    assert proof["simulated"] is True
    report = json.loads(proof["verification_report"])
    assert set(report) == {
        "id",
        "timestamp",
        "version",
        "isvEnclaveQuoteStatus",
        "isvEnclaveQuoteBody",
        "nonce",
        "epidPseudonym",
        "simulated",
    }
    assert report["simulated"] is True and report["isvEnclaveQuoteStatus"] == "OK" and report["nonce"] == "a1b2c3"
    assert report["timestamp"] == report_timestamp(REPORTED)
    assert base64.b64decode(report["isvEnclaveQuoteBody"]) == quote[:176]
    chain = x509.load_pem_x509_certificates(proof["report_signing_certificate"].encode())
    assert [c.subject for c in chain] == [root.signing_certificate.subject, root.root_certificate.subject]


def test_the_quote_layout_round_trips(root: DevRoot, worker: Worker) -> None:
    quote = quote_for(root, worker, debug=True)
    parsed = parse_quote(quote)
    assert len(quote) == QUOTE_LEN
    assert (parsed.mr_enclave, parsed.mr_signer, parsed.isv_prod_id, parsed.isv_svn, parsed.debug) == (
        MR_ENCLAVE,
        MR_SIGNER,
        7,
        3,
        True,
    )
    assert parsed.report_data == worker.binding() and parsed.platform_id == platform_id(root.quoting_key.public_key())


def test_simulated_quoter_is_the_same_quote_interface(root: DevRoot, worker: Worker) -> None:
    quoter = SimulatedQuoter(root.quoting_key, MR_ENCLAVE, MR_SIGNER, isv_prod_id=7, isv_svn=3)
    evidence = SimulatedAttestationService(root).verify_quote(quoter.quote(worker.binding()), "n", at=REPORTED)
    assert verify(evidence.to_proof_data(), root, worker).kind == "simulated"
    assert "quoting_key" not in repr(quoter)


def test_report_data_binds_each_key_and_the_worker_id(worker: Worker, host_key: str) -> None:
    base = report_data_for(worker.verifying_key, worker.encryption_key, WORKER_ID)
    assert len(base) == 64 and base[32:] == bytes(32)
    assert report_data_for(worker.verifying_key, host_key, WORKER_ID) != base
    assert report_data_for(worker.encryption_key, worker.verifying_key, WORKER_ID) != base
    assert report_data_for(worker.verifying_key, worker.encryption_key, "6f" * 32) != base
    assert report_data_for(worker.verifying_key, worker.encryption_key, WORKER_ID.upper()) == base
    # Framing: moving a character from one field to the next must change the value.
    assert report_data_for("ab", "c", "d") != report_data_for("a", "bc", "d")


# --- refused: the quote at the service ---------------------------------------------------------


@pytest.mark.parametrize("offset", [4, 36, 68, 80, 150, 180, 239])
def test_tampered_quote_is_refused_by_the_service(root: DevRoot, worker: Worker, offset: int) -> None:
    quote = bytearray(quote_for(root, worker))
    quote[offset] ^= 0x01
    # A flipped byte of the platform id names an unknown platform (CHAIN); any other, a bad signature.
    expected = Reason.CHAIN if 144 <= offset < 176 else Reason.SIGNATURE
    refused(expected, lambda: SimulatedAttestationService(root).verify_quote(bytes(quote), "n", at=REPORTED))


def test_quote_from_an_unregistered_platform_is_refused(root: DevRoot, other_root: DevRoot, worker: Worker) -> None:
    quote = quote_for(other_root, worker)
    err = refused(Reason.CHAIN, lambda: SimulatedAttestationService(root).verify_quote(quote, "n", at=REPORTED))
    assert "unregistered platform" in str(err)


def test_quote_signed_by_another_key_claiming_a_registered_platform_is_refused(
    root: DevRoot, other_root: DevRoot, worker: Worker
) -> None:
    forged = bytearray(quote_for(other_root, worker))
    forged[144:176] = platform_id(root.quoting_key.public_key())
    refused(Reason.SIGNATURE, lambda: SimulatedAttestationService(root).verify_quote(bytes(forged), "n", at=REPORTED))


@pytest.mark.parametrize("quote", [b"", bytes(QUOTE_LEN - 1), bytes(QUOTE_LEN + 1)])
def test_truncated_or_padded_quote_is_malformed(root: DevRoot, quote: bytes) -> None:
    refused(Reason.MALFORMED, lambda: SimulatedAttestationService(root).verify_quote(quote, "n", at=REPORTED))


def test_unprintable_nonce_is_refused(root: DevRoot, worker: Worker) -> None:
    refused(
        Reason.MALFORMED,
        lambda: SimulatedAttestationService(root).verify_quote(quote_for(root, worker), "a\nb", at=REPORTED),
    )


# --- refused: the evidence at the verifier -----------------------------------------------------


def test_tampered_quote_body_in_report_is_refused(root: DevRoot, worker: Worker) -> None:
    proof = json.loads(proof_for(root, worker))
    report = json.loads(proof["verification_report"])
    body = bytearray(base64.b64decode(report["isvEnclaveQuoteBody"]))
    body[4] ^= 0x01  # first byte of mr_enclave
    report["isvEnclaveQuoteBody"] = base64.b64encode(bytes(body)).decode()
    tampered = edit_proof(json.dumps(proof), verification_report=json.dumps(report, separators=(",", ":")))
    refused(Reason.SIGNATURE, lambda: verify(tampered, root, worker))


@pytest.mark.parametrize(
    ("old", "new"), [('"nonce":"a1b2c3"', '"nonce":"a1b2c4"'), ('"OK"', '"ok"'), ('"version":4', '"version":5')]
)
def test_tampered_report_is_refused(root: DevRoot, worker: Worker, old: str, new: str) -> None:
    proof = proof_for(root, worker)
    report = json.loads(proof)["verification_report"]
    assert old in report
    refused(
        Reason.SIGNATURE, lambda: verify(edit_proof(proof, verification_report=report.replace(old, new)), root, worker)
    )


def test_tampered_signature_is_refused(root: DevRoot, worker: Worker) -> None:
    proof = proof_for(root, worker)
    signature = bytearray(base64.b64decode(json.loads(proof)["report_signature"]))
    signature[-1] ^= 0x01
    refused(
        Reason.SIGNATURE,
        lambda: verify(edit_proof(proof, report_signature=base64.b64encode(bytes(signature)).decode()), root, worker),
    )


def test_signature_over_a_different_report_is_refused(root: DevRoot, worker: Worker) -> None:
    first, second = json.loads(proof_for(root, worker)), json.loads(proof_for(root, worker))
    assert first["verification_report"] != second["verification_report"]  # fresh report id each time
    mixed = edit_proof(json.dumps(first), report_signature=second["report_signature"])
    refused(Reason.SIGNATURE, lambda: verify(mixed, root, worker))


def _impostor_chain(root: DevRoot) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    """A signing certificate with the real one's names, issued by a key that is not the root's."""
    key = ec.generate_private_key(ec.SECP256R1())
    fake_issuer = ec.generate_private_key(ec.SECP256R1())
    real = root.signing_certificate
    cert = (
        x509.CertificateBuilder()
        .subject_name(real.subject)
        .issuer_name(real.issuer)
        .public_key(key.public_key())
        .serial_number(real.serial_number)
        .not_valid_before(real.not_valid_before_utc)
        .not_valid_after(real.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(fake_issuer, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM) + root.root_pem


def test_tampered_certificate_chain_is_refused(root: DevRoot, worker: Worker) -> None:
    key, chain = _impostor_chain(root)
    report = json.loads(proof_for(root, worker))["verification_report"].encode()
    forged = Evidence(report, key.sign(report, ec.ECDSA(hashes.SHA256())), chain).to_proof_data()
    err = refused(Reason.CHAIN, lambda: verify(forged, root, worker))
    assert "not issued by" in str(err)


def test_chain_with_swapped_signing_certificate_is_refused(root: DevRoot, other_root: DevRoot, worker: Worker) -> None:
    """The other root's signing certificate in front of our root: the link does not verify."""
    proof = proof_for(root, worker)
    chain = other_root.signing_certificate.public_bytes(serialization.Encoding.PEM) + root.root_pem
    refused(Reason.CHAIN, lambda: verify(edit_proof(proof, report_signing_certificate=chain.decode()), root, worker))


def test_report_signed_by_the_root_itself_is_refused(root: DevRoot, worker: Worker) -> None:
    root_key = serialization.load_pem_private_key((root.directory / "root.key").read_bytes(), None)
    assert isinstance(root_key, ec.EllipticCurvePrivateKey)
    report = json.loads(proof_for(root, worker))["verification_report"].encode()
    forged = Evidence(report, root_key.sign(report, ec.ECDSA(hashes.SHA256())), root.root_pem).to_proof_data()
    refused(Reason.CHAIN, lambda: verify(forged, root, worker))


def test_evidence_from_another_root_is_refused(root: DevRoot, other_root: DevRoot, worker: Worker) -> None:
    proof = proof_for(other_root, worker)
    assert verify(proof, other_root, worker).kind == "simulated"
    err = refused(Reason.CHAIN, lambda: verify(proof, root, worker))
    assert "trusted development root" in str(err)


def test_simulated_evidence_without_a_trusted_root_is_refused(root: DevRoot, worker: Worker) -> None:
    refused(Reason.CHAIN, lambda: verify(proof_for(root, worker), root, worker, roots=[]))


def test_intel_anchor_does_not_vouch_for_simulated_evidence(root: DevRoot, worker: Worker) -> None:
    from adytum.attestation.sgx.anchors import ias_report_signing_ca, intel_sgx_root_ca

    refused(
        Reason.CHAIN,
        lambda: verify(proof_for(root, worker), root, worker, roots=[intel_sgx_root_ca(), ias_report_signing_ca()]),
    )


def test_report_older_than_the_policy_allows_is_refused(root: DevRoot, worker: Worker) -> None:
    proof = proof_for(root, worker)
    aged = policy(max_collateral_age=timedelta(hours=1))
    assert verify(proof, root, worker, policy=aged, at=REPORTED + timedelta(minutes=59)).kind == "simulated"
    refused(Reason.STALE, lambda: verify(proof, root, worker, policy=aged, at=REPORTED + timedelta(hours=1, seconds=1)))


def test_report_after_its_signing_certificate_expired_is_refused(root: DevRoot, worker: Worker) -> None:
    proof = proof_for(root, worker)
    after = root.signing_certificate.not_valid_after_utc + timedelta(seconds=1)
    refused(Reason.EXPIRED, lambda: verify(proof, root, worker, at=after))


def test_report_from_the_future_is_refused(root: DevRoot, worker: Worker) -> None:
    proof = proof_for(root, worker)
    refused(Reason.NOT_YET_VALID, lambda: verify(proof, root, worker, at=REPORTED - timedelta(seconds=1)))


def test_measurement_not_allowed_is_refused(root: DevRoot, worker: Worker) -> None:
    proof = proof_for(root, worker)
    other = hashlib.sha256(b"enclave build 2").digest()
    err = refused(Reason.MEASUREMENT, lambda: verify(proof, root, worker, policy=policy(mr_enclaves={other})))
    assert "mr_enclave" in str(err) and err.verdict is not None and err.verdict.kind == "simulated"
    err = refused(Reason.MEASUREMENT, lambda: verify(proof, root, worker, policy=policy(mr_signers={other})))
    assert "mr_signer" in str(err)


def test_report_data_that_does_not_bind_the_keys_is_refused(root: DevRoot, worker: Worker) -> None:
    avalon_style = hashlib.sha256(worker.verifying_key.encode()).digest() + bytes(32)  # binds only the verifying key
    proof = proof_for(root, worker, report_data=avalon_style)
    err = refused(Reason.REPORT_DATA, lambda: verify(proof, root, worker))
    assert err.verdict is not None and err.verdict.report_data == avalon_style


def test_encryption_key_swapped_by_the_host_is_refused(root: DevRoot, worker: Worker, host_key: str) -> None:
    proof = proof_for(root, worker)
    assert verify(proof, root, worker).kind == "simulated"
    swapped = Worker(worker.verifying_key, host_key)
    refused(Reason.REPORT_DATA, lambda: verify(proof, root, swapped))


def test_verifying_key_or_worker_id_swapped_is_refused(root: DevRoot, worker: Worker) -> None:
    proof = proof_for(root, worker)
    refused(
        Reason.REPORT_DATA, lambda: verify(proof, root, Worker(crypto.SigningKey().public_pem(), worker.encryption_key))
    )
    refused(
        Reason.REPORT_DATA, lambda: verify(proof, root, Worker(worker.verifying_key, worker.encryption_key, "6f" * 32))
    )


def test_debug_enclave_under_no_debug_policy_is_refused(root: DevRoot, worker: Worker) -> None:
    proof = proof_for(root, worker, debug=True)
    refused(Reason.DEBUG, lambda: verify(proof, root, worker))
    assert verify(proof, root, worker, policy=policy(allow_debug=True)).debug is True


def test_quote_status_goes_through_the_policy(root: DevRoot, worker: Worker) -> None:
    report = json.loads(json.loads(proof_for(root, worker))["verification_report"])
    report["isvEnclaveQuoteStatus"] = "GROUP_OUT_OF_DATE"
    proof = sign_report(root, report).to_proof_data()
    refused(Reason.TCB_STATUS, lambda: verify(proof, root, worker))
    assert verify(proof, root, worker, policy=policy(accepted_statuses=ALL_STATUSES)).tcb_status == "OutOfDate"
    report["isvEnclaveQuoteStatus"] = "KEY_REVOKED"
    refused(Reason.REVOKED, lambda: verify(sign_report(root, report).to_proof_data(), root, worker))


def test_report_that_does_not_say_simulated_is_refused(root: DevRoot, worker: Worker) -> None:
    report = json.loads(json.loads(proof_for(root, worker))["verification_report"])
    report["simulated"] = False
    refused(Reason.MALFORMED, lambda: verify(sign_report(root, report).to_proof_data(), root, worker))
    refused(Reason.MALFORMED, lambda: verify(edit_proof(proof_for(root, worker), simulated=False), root, worker))


@pytest.mark.parametrize(
    "proof",
    [
        "{",
        "[]",
        '{"simulated": true}',
        '{"simulated": true, "verification_report": "{}", "report_signature": "", "report_signing_certificate": "none"}',
        '{"simulated": true, "verification_report": 1, "report_signature": "", "report_signing_certificate": ""}',
    ],
)
def test_malformed_proof_data_is_refused(root: DevRoot, worker: Worker, proof: str) -> None:
    refused(Reason.MALFORMED, lambda: verify(proof, root, worker))


@pytest.mark.parametrize(
    ("kind", "proof"), [("SIMULATED", ""), ("", ""), ("TEE-SGX-EPID", "{}"), ("SIMULATED-IAS", "")]
)
def test_missing_or_unknown_evidence_is_unsupported(root: DevRoot, worker: Worker, kind: str, proof: str) -> None:
    refused(
        Reason.UNSUPPORTED,
        lambda: verify_worker_evidence(
            kind,
            proof,
            verifying_key=worker.verifying_key,
            encryption_key=worker.encryption_key,
            worker_id=WORKER_ID,
            policy=policy(),
            at=CHECKED,
            trusted_roots=[root.root_certificate],
        ),
    )


# --- hardware kinds go through the same function -----------------------------------------------


def test_ias_proof_data_dispatches_to_the_ias_verifier_and_checks_binding(sgx_vectors: Path, worker: Worker) -> None:
    folder = sgx_vectors / "ias" / "avalon"
    proof = json.dumps(
        {
            "verification_report": (folder / "report.json").read_text(),
            "ias_report_signature": (folder / "report.sig.b64").read_text().strip(),
            "ias_report_signing_certificate": (folder / "signing_cert.pem").read_text(),
        }
    )
    lenient = Policy(accepted_statuses=ALL_STATUSES, allow_debug=True)
    when = datetime(2018, 7, 11, 19, 31, tzinfo=UTC)
    err = refused(
        Reason.REPORT_DATA,
        lambda: verify_worker_evidence(
            "TEE-SGX-IAS",
            proof,
            verifying_key=worker.verifying_key,
            encryption_key=worker.encryption_key,
            worker_id=WORKER_ID,
            policy=lenient,
            at=when,
            trusted_roots=[],
        ),
    )
    assert err.verdict is not None and err.verdict.kind == "sgx-ias"  # the IAS checks passed; only the binding failed
    bad_sig = json.dumps({**json.loads(proof), "ias_report_signature": base64.b64encode(bytes(256)).decode()})
    refused(
        Reason.SIGNATURE,
        lambda: verify_worker_evidence(
            "TEE-SGX-IAS",
            bad_sig,
            verifying_key=worker.verifying_key,
            encryption_key=worker.encryption_key,
            worker_id=WORKER_ID,
            policy=lenient,
            at=when,
            trusted_roots=[],
        ),
    )


def test_dcap_proof_data_dispatches_to_the_dcap_verifier_and_checks_binding(sgx_vectors: Path, worker: Worker) -> None:
    name = "dcapqvl_sgx_v3_2025"
    collateral = json.loads((sgx_vectors / "dcap" / name / "collateral.dcap-qvl.json").read_text())
    proof = json.dumps({"quote": base64.b64encode(quote_bytes(sgx_vectors, name)).decode(), "collateral": collateral})
    lenient = Policy(accepted_statuses=ALL_STATUSES, allow_debug=True, require_crls=False)
    when = suggested_time(sgx_vectors, name)
    err = refused(
        Reason.REPORT_DATA,
        lambda: verify_worker_evidence(
            TEE_SGX_DCAP,
            proof,
            verifying_key=worker.verifying_key,
            encryption_key=worker.encryption_key,
            worker_id=WORKER_ID,
            policy=lenient,
            at=when,
            trusted_roots=[],
        ),
    )
    assert err.verdict is not None and err.verdict.kind == "sgx-dcap"
    no_collateral = json.dumps({"quote": json.loads(proof)["quote"]})
    refused(
        Reason.COLLATERAL,
        lambda: verify_worker_evidence(
            "TEE-SGX-DCAP",
            no_collateral,
            verifying_key=worker.verifying_key,
            encryption_key=worker.encryption_key,
            worker_id=WORKER_ID,
            policy=lenient,
            at=when,
            trusted_roots=[],
        ),
    )


# --- the verification time is the caller's -----------------------------------------------------


def test_one_policy_judges_the_same_evidence_at_each_given_time(root: DevRoot, worker: Worker) -> None:
    """The time is an argument, not part of the policy: no clock is read, and the verdict records it."""
    proof, rules = proof_for(root, worker), policy()
    assert "at" not in Policy.__dataclass_fields__
    assert verify(proof, root, worker, policy=rules, at=CHECKED).verified_at == CHECKED
    later = root.signing_certificate.not_valid_after_utc
    assert verify(proof, root, worker, policy=rules, at=later).verified_at == later
    refused(Reason.EXPIRED, lambda: verify(proof, root, worker, policy=rules, at=later + timedelta(seconds=1)))


def test_the_verification_time_is_required_and_timezone_aware(root: DevRoot, worker: Worker) -> None:
    proof = proof_for(root, worker)
    with pytest.raises(TypeError):
        verify_evidence(SIMULATED_IAS, proof, policy=policy(), trusted_roots=[root.root_certificate])  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="timezone-aware"):
        verify(proof, root, worker, at=datetime(2030, 1, 2, 0, 10))


# --- the development root ----------------------------------------------------------------------


def test_dev_root_names_itself_a_development_root(root: DevRoot) -> None:
    cn = root.root_certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert "DEVELOPMENT" in str(cn) and "simulated" in str(cn) and "not hardware" in str(cn)
    root.signing_certificate.verify_directly_issued_by(root.root_certificate)
    assert root.root_certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert root.signing_certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_dev_root_private_keys_are_private(root: DevRoot) -> None:
    for name in ("root.key", "report-signing.key", "platform.key"):
        assert stat.S_IMODE(os.stat(root.directory / name).st_mode) == 0o600, name
    assert not [p.name for p in root.directory.iterdir() if p.name.endswith(".tmp")]
    assert "PRIVATE" not in repr(root)


def test_init_is_idempotent_and_keeps_keys(tmp_path: Path) -> None:
    first = init_dev_root(tmp_path, now=CREATED)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    second = init_dev_root(tmp_path, now=CREATED + timedelta(days=30))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files
    assert second.root_certificate == first.root_certificate
    assert platform_id(load_quoting_key(tmp_path).public_key()) == platform_id(first.quoting_key.public_key())


def test_init_completes_a_partial_root(tmp_path: Path) -> None:
    first = init_dev_root(tmp_path, now=CREATED)
    (tmp_path / "report-signing.pem").unlink()
    second = init_dev_root(tmp_path, now=CREATED)
    assert second.root_certificate == first.root_certificate
    assert second.signing_certificate != first.signing_certificate
    assert second.signing_certificate.public_key() == first.signing_certificate.public_key()


def test_mixed_up_dev_root_is_refused(tmp_path: Path, other_root: DevRoot) -> None:
    init_dev_root(tmp_path, now=CREATED)
    (tmp_path / "root.pem").write_bytes(other_root.root_pem)
    with pytest.raises(DevRootError):
        load_dev_root(tmp_path)
    with pytest.raises(DevRootError):
        load_dev_root(tmp_path / "absent")


# --- bad input never crashes -------------------------------------------------------------------


@pytest.fixture(scope="module")
def valid_proof(root: DevRoot, worker: Worker) -> str:
    return proof_for(root, worker)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_mutated_proof_data_is_refused_never_crashes(
    root: DevRoot, worker: Worker, valid_proof: str, data: st.DataObject
) -> None:
    """Random edits of a valid proofData's fields raise AttestationError, or change nothing that matters."""
    proof = json.loads(valid_proof)
    key = data.draw(st.sampled_from(sorted(proof)))
    value = proof[key]
    if isinstance(value, str) and value:
        at = data.draw(st.integers(0, len(value) - 1))
        value = value[:at] + data.draw(st.text(max_size=3)) + value[at + 1 :]
    else:
        value = data.draw(st.one_of(st.none(), st.integers(), st.text(max_size=5), st.booleans()))
    mutated = json.dumps({**proof, key: value})
    try:
        verdict = verify(mutated, root, worker)
    except AttestationError:
        return
    assert verdict.report_data == worker.binding() and verdict.mr_enclave == MR_ENCLAVE


@settings(max_examples=150, deadline=None)
@given(blob=st.one_of(st.binary(max_size=300), st.binary(min_size=QUOTE_LEN, max_size=QUOTE_LEN)))
def test_random_quote_bytes_are_refused_by_the_service(root: DevRoot, blob: bytes) -> None:
    with pytest.raises(AttestationError):
        SimulatedAttestationService(root).verify_quote(blob, "n", at=REPORTED)


def test_a_certificate_with_an_unusable_key_is_malformed_not_a_crash(root: DevRoot) -> None:
    """Found by the fuzz test above: a chain certificate whose public key is not a point on its curve."""
    from adytum.attestation.sgx.x509chain import key_id

    der = root.root_certificate.public_bytes(serialization.Encoding.DER)
    point = root.root_certificate.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert der.count(point) == 1
    broken = x509.load_der_x509_certificate(der.replace(point, point[:-1] + bytes([point[-1] ^ 1])))
    with pytest.raises(AttestationError) as refused:
        key_id(broken)
    assert refused.value.reason == Reason.MALFORMED
