"""SEV-SNP, Nitro and NVIDIA GPU verifiers against the real samples in tests/vectors/tee (manifest.json).

Every sample verifies or is refused as its manifest says, at its stated time; on top of the shipped
negatives, each format is refused with the right reason for one flipped byte in the signed part, a
wrong root, an expired chain and (Nitro, SEV-SNP) a debug guest under the default policy.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adytum.attestation import AttestationError, Policy, Reason
from adytum.attestation.bundle import CollateralCache, load_bundle
from adytum.attestation.certpool import chain_to_root, load_certificates
from adytum.attestation.nitro import verify_nitro_document
from adytum.attestation.nvidia import verify_gpu_evidence
from adytum.attestation.rim import verify_rim
from adytum.attestation.roots import amd_chain, aws_nitro_root, nvidia_device_root
from adytum.attestation.sevsnp import _hwid, _vek_tcb, verify_snp_report

TEE = Path(__file__).resolve().parents[1] / "vectors" / "tee"
MANIFEST = json.loads((TEE / "manifest.json").read_text())["vectors"]
LENIENT = Policy(allow_debug=True, require_crls=False)  # AMD ships no CRL offline; debug judged separately


def entries(fmt: str, need: str) -> list[dict[str, Any]]:
    return [v for v in MANIFEST if v["format"] == fmt and need in v["files"]]


def at_of(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["verify_at"].replace("Z", "+00:00"))


def read(name: str) -> bytes:
    data = (TEE / name).read_bytes()
    return bytes.fromhex(data.decode()) if "AttestationReport" in name else data


def refused(call: Any) -> Reason:
    with pytest.raises(AttestationError) as err:
        call()
    return err.value.reason


# --- SEV-SNP -----------------------------------------------------------------------------------


def snp_certs(entry: dict[str, Any]) -> list[Any]:
    return load_certificates(read(entry["files"]["vek"]), "vek") + load_certificates(read(entry["files"]["chain"]), "c")


@pytest.mark.parametrize("entry", entries("amd-sev-snp", "report"), ids=lambda e: e["id"])
def test_snp_vectors(entry: dict[str, Any]) -> None:
    report, certs, expected = read(entry["files"]["report"]), snp_certs(entry), entry["expected"]
    if not expected["valid"]:
        failing = {k for k, v in expected["crosscheck"].items() if v is not True}
        reason = refused(lambda: verify_snp_report(report, certs, LENIENT, at=at_of(entry)))
        allowed = {
            "report_sig": Reason.SIGNATURE,
            "vek_by_ask": Reason.CHAIN,
            "time_valid": Reason.EXPIRED,
            "reported_tcb_matches_vek": Reason.TCB_MISMATCH,
            "chip_id_matches_hwid": Reason.TCB_MISMATCH,
        }
        assert reason in {allowed[k] for k in failing if k in allowed}
        return
    verdict = verify_snp_report(report, certs, LENIENT, at=at_of(entry))
    assert dict(verdict.measurements)["MEASUREMENT"].hex() == expected["measurement"]
    assert verdict.report_data.hex() == expected["report_data"]
    svns = dict(verdict.svns)
    assert {k: svns[k] for k in expected["reported_tcb"]} == expected["reported_tcb"]
    assert dict(verdict.details)["signing_key"] == expected["signing_key"]
    assert verdict.debug == bool(int(expected["policy"], 16) & (1 << 19))


def test_snp_tampered_reported_tcb_is_named() -> None:
    entry = next(e for e in MANIFEST if e["id"] == "trustee-report-tampered-reported-tcb")
    report, certs = read(entry["files"]["report"]), snp_certs(entry)
    with pytest.raises(AttestationError, match="REPORTED_TCB") as err:
        verify_snp_report(report, certs, LENIENT, at=at_of(entry))
    assert err.value.reason == Reason.TCB_MISMATCH


def test_snp_debug_guest_refused_unless_allowed() -> None:
    entry = next(e for e in MANIFEST if e["id"] == "go-sev-guest-milan-attestation")
    strict = Policy(require_crls=False)
    report, certs = read(entry["files"]["report"]), snp_certs(entry)
    assert refused(lambda: verify_snp_report(report, certs, strict, at=at_of(entry))) == Reason.DEBUG
    assert verify_snp_report(report, certs, LENIENT, at=at_of(entry)).debug


def test_snp_refusals_flipped_wrong_root_expired_no_crl_policy() -> None:
    entry = next(e for e in MANIFEST if e["id"] == "trustee-milan-vcek-report")
    report, certs, at = read(entry["files"]["report"]), snp_certs(entry), at_of(entry)
    flipped = bytearray(report)
    flipped[0x90] ^= 0x01  # first MEASUREMENT byte, inside the signed part
    assert refused(lambda: verify_snp_report(bytes(flipped), certs, LENIENT, at=at)) == Reason.SIGNATURE
    genoa_ark = amd_chain("Genoa")[0]
    assert refused(lambda: verify_snp_report(report, certs, LENIENT, at=at, roots=[genoa_ark])) == Reason.CHAIN
    assert (
        refused(
            lambda: verify_snp_report(report, certs, LENIENT, at=datetime.fromisoformat("2031-01-01T00:00:00+00:00"))
        )
        == Reason.EXPIRED
    )
    assert refused(lambda: verify_snp_report(report, certs, Policy(allow_debug=True), at=at)) == Reason.COLLATERAL
    measured = dict(verify_snp_report(report, certs, LENIENT, at=at).measurements)["MEASUREMENT"]
    assert verify_snp_report(report, certs, Policy(require_crls=False, measurements={"MEASUREMENT": {measured}}), at=at)
    other = Policy(require_crls=False, measurements={"MEASUREMENT": {bytes(48)}})
    assert refused(lambda: verify_snp_report(report, certs, other, at=at)) == Reason.MEASUREMENT
    newer = Policy(require_crls=False, min_svns={"microcode": 116})
    assert refused(lambda: verify_snp_report(report, certs, newer, at=at)) == Reason.SVN
    assert refused(lambda: verify_snp_report(report, [], LENIENT, at=at)) == Reason.COLLATERAL


def test_snp_vcek_alone_chains_through_the_built_in_ask() -> None:
    entry = next(e for e in MANIFEST if e["id"] == "virtee-milan-report")
    vcek = load_certificates(read(entry["files"]["vek"]), "vcek")
    assert verify_snp_report(read(entry["files"]["report"]), vcek, LENIENT, at=at_of(entry))


def test_turin_vcek_chain_tcb_and_hwid() -> None:
    entry = next(e for e in MANIFEST if e["id"] == "virtee-turin-vcek-chain-only")
    (vcek,) = load_certificates(read(entry["files"]["vek"]), "vcek")
    chain = load_certificates(read(entry["files"]["chain"]), "chain")
    path = chain_to_root(vcek, chain, [amd_chain("Turin")[0]], at_of(entry))
    assert [c.subject.rfc4514_string().split(",")[0] for c in path] == ["CN=SEV-VCEK", "CN=SEV-Turin", "CN=ARK-Turin"]
    assert _vek_tcb(vcek, "Turin") == entry["expected"]["vek_tcb"]
    assert (_hwid(vcek) or b"").hex() == entry["expected"]["vek_hwid"]


# --- AWS Nitro ---------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", entries("aws-nitro", "doc"), ids=lambda e: e["id"])
def test_nitro_vectors(entry: dict[str, Any]) -> None:
    doc, expected = read(entry["files"]["doc"]), entry["expected"]
    if not expected["valid"]:
        reason = refused(lambda: verify_nitro_document(doc, Policy(allow_debug=True), at=at_of(entry)))
        assert reason == (Reason.EXPIRED if entry["id"].endswith("-expired") else Reason.MALFORMED)
        return
    verdict = verify_nitro_document(doc, Policy(allow_debug=True), at=at_of(entry))
    assert verdict.debug == expected["debug_mode"]
    assert {k[3:]: v.hex() for k, v in verdict.measurements if k.startswith("PCR")} == expected["pcrs"]
    assert (dict(verdict.measurements).get("public_key", b"").hex() or None) == expected["public_key"]
    assert dict(verdict.details)["module_id"] == expected["module_id"]
    assert (verdict.nonce.hex() if verdict.nonce is not None else None) == expected["nonce"]
    if expected["debug_mode"]:
        assert refused(lambda: verify_nitro_document(doc, Policy(), at=at_of(entry))) == Reason.DEBUG


def test_nitro_refusals_and_policy() -> None:
    entry = next(e for e in MANIFEST if e["id"] == "blocky-2024-09-07")
    doc, at = read(entry["files"]["doc"]), at_of(entry)
    verdict = verify_nitro_document(doc, Policy(), at=at)
    pcr0 = dict(verdict.measurements)["PCR0"]
    index = doc.index(pcr0)  # inside the signed payload
    flipped = doc[:index] + bytes([doc[index] ^ 1]) + doc[index + 1 :]
    assert refused(lambda: verify_nitro_document(flipped, Policy(), at=at)) == Reason.SIGNATURE
    assert refused(lambda: verify_nitro_document(doc, Policy(), at=at, roots=[nvidia_device_root()])) == Reason.CHAIN
    assert refused(lambda: verify_nitro_document(doc, Policy(), at=at + timedelta(hours=4))) == Reason.EXPIRED
    assert refused(lambda: verify_nitro_document(doc, Policy(nonce=bytes(32)), at=at)) == Reason.NONCE
    assert verify_nitro_document(doc, Policy(nonce=b"\x01" * 1024, measurements={"PCR0": {pcr0}}), at=at)
    assert (
        refused(lambda: verify_nitro_document(doc, Policy(measurements={"PCR0": {bytes(48)}}), at=at))
        == Reason.MEASUREMENT
    )
    aged = Policy(max_collateral_age=timedelta(minutes=5))
    assert refused(lambda: verify_nitro_document(doc, aged, at=at + timedelta(minutes=6))) == Reason.STALE
    graced = Policy(max_collateral_age=timedelta(minutes=5), collateral_grace=timedelta(minutes=2))
    assert verify_nitro_document(doc, graced, at=at + timedelta(minutes=6))
    assert refused(lambda: verify_nitro_document(doc[:-1], Policy(), at=at)) == Reason.MALFORMED


def test_nitro_user_data_binds_the_certificate_key() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    entry = next(e for e in MANIFEST if e["id"] == "evervault-ga-2023-09-18")
    verdict = verify_nitro_document(read(entry["files"]["doc"]), Policy(allow_debug=True), at=at_of(entry))
    cert = x509.load_der_x509_certificate(read(entry["files"]["bound_cert"]))
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert verdict.report_data == spki
    assert aws_nitro_root().subject.rfc4514_string() == "CN=aws.nitro-enclaves,OU=AWS,O=Amazon,C=US"


# --- NVIDIA GPU --------------------------------------------------------------------------------


def gpu(entry: dict[str, Any]) -> tuple[bytes, list[Any]]:
    return read(entry["files"]["report"]), load_certificates(read(entry["files"]["cert_chain"]), "chain")


@pytest.mark.parametrize("entry", entries("nvidia-gpu", "cert_chain"), ids=lambda e: e["id"])
def test_gpu_vectors(entry: dict[str, Any]) -> None:
    evidence, certs = gpu(entry)
    policy = Policy(nonce=bytes.fromhex(entry["expected"]["expected_nonce"]))
    if not entry["expected"]["valid"]:
        failing = {k for k, v in entry["expected"]["crosscheck"].items() if v is not True}
        reason = refused(lambda: verify_gpu_evidence(evidence, certs, policy, at=at_of(entry)))
        assert reason in {
            {"report_sig": Reason.SIGNATURE, "nonce_matches": Reason.NONCE}[k]
            for k in failing
            if k in ("report_sig", "nonce_matches")
        }
        return
    verdict = verify_gpu_evidence(evidence, certs, policy, at=at_of(entry))
    assert any(c.startswith("measurements-vs-rim") for c in verdict.unchecked)
    assert "ocsp (device chain)" in verdict.unchecked
    opaque = entry["expected"]["opaque"]
    assert dict(verdict.details)["driver_version"] == opaque["driver_version"]
    assert ("fwid-vs-leaf-certificate" in verdict.checked) == bool(opaque.get("fwid"))


def test_gpu_refusals() -> None:
    entry = next(e for e in MANIFEST if e["id"] == "nvtrust-hopper-sample")
    evidence, certs = gpu(entry)
    at = at_of(entry)
    flipped = bytearray(evidence)
    flipped[60] ^= 0x01  # inside the first measurement block's value
    assert refused(lambda: verify_gpu_evidence(bytes(flipped), certs, Policy(), at=at)) == Reason.SIGNATURE
    assert (
        refused(lambda: verify_gpu_evidence(evidence, certs, Policy(), at=at, roots=[aws_nitro_root()])) == Reason.CHAIN
    )
    assert refused(lambda: verify_gpu_evidence(evidence, certs[:1], Policy(), at=at)) == Reason.CHAIN
    before = datetime.fromisoformat("2020-01-01T00:00:00+00:00")
    assert refused(lambda: verify_gpu_evidence(evidence, certs, Policy(), at=before)) == Reason.NOT_YET_VALID


def test_gpu_measurements_against_rims() -> None:
    entry = next(e for e in MANIFEST if e["id"] == "nvsdk-hopper-535.86.09")
    evidence, certs = gpu(entry)
    good = read("nvidia-gpu/attestation-sdk/nvtrust_1010_0200_882_96005E0001_PROD.swidtag")
    at = datetime.fromisoformat("2024-06-01T00:00:00+00:00")  # inside the RIM signer's validity
    verdict = verify_gpu_evidence(evidence, certs, Policy(), at=at, rims=[good])
    assert "rim-signature-and-chain" in verdict.checked
    assert "measurements-vs-rim: GH100 96.00.5E.00.01" in verdict.checked
    assert "ocsp (RIM chain)" in verdict.unchecked
    after = datetime.fromisoformat("2025-07-01T00:00:00+00:00")  # the RIM signer's certificate ended 2025-06-22
    assert refused(lambda: verify_gpu_evidence(evidence, certs, Policy(), at=after, rims=[good])) == Reason.EXPIRED
    bad = read("nvidia-gpu/attestation-sdk/sample_rims/NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml")
    with pytest.raises(AttestationError, match="block 10") as err:
        verify_gpu_evidence(evidence, certs, Policy(), at=at_of(entry), rims=[bad])
    assert err.value.reason == Reason.MEASUREMENT
    edited = good.replace(b'index="1" active="True"', b'index="1" active="False"')
    assert refused(lambda: verify_gpu_evidence(evidence, certs, Policy(), at=at, rims=[edited])) == Reason.SIGNATURE


@pytest.mark.parametrize("entry", entries("nvidia-gpu", "rim"), ids=lambda e: e["id"])
def test_rim_vectors(entry: dict[str, Any]) -> None:
    data, root = read(entry["files"]["rim"]), load_certificates(read(entry["files"]["rim_root"]), "root")
    if entry["expected"]["valid"]:
        rim = verify_rim(data, at=at_of(entry), roots=root)
        if "active_measurement_indices" in entry["expected"]:
            assert sorted(rim.golden) == entry["expected"]["active_measurement_indices"]
            assert rim.version == entry["expected"]["colloquialVersion"]
        return
    failing = {k for k, v in entry["expected"]["crosscheck"].items() if v is not True}
    reason = refused(lambda: verify_rim(data, at=at_of(entry), roots=root))
    by_check = {
        "xml_signature": Reason.SIGNATURE,
        "chain_links": Reason.CHAIN,
        "root_matches_trusted": Reason.CHAIN,
        "time_valid": Reason.EXPIRED,
    }
    assert reason in {by_check[k] for k in failing}


# --- collateral by content, and the cache ------------------------------------------------------


def test_bundle_recognises_content_and_cache_serves_only_current(tmp_path: Path) -> None:
    entry = next(e for e in MANIFEST if e["id"] == "trustee-milan-vlek-report")
    given = tmp_path / "given"
    given.mkdir()
    (given / "x").write_bytes(read(entry["files"]["vek"]))
    (given / "y.txt").write_bytes(read(entry["files"]["chain"]))
    (given / "notes").write_text("not collateral")
    bundle = load_bundle([given])
    assert len(bundle.certificates) == 4 and bundle.ignored == [str(given / "notes")]
    cache = CollateralCache(tmp_path / "cache")
    assert cache.store(bundle) == 2 and cache.store(bundle) == 0
    now = cache.current(at_of(entry))
    assert verify_snp_report(read(entry["files"]["report"]), now.certificates, LENIENT, at=at_of(entry))
    later = cache.current(datetime.fromisoformat("2026-01-01T00:00:00+00:00"))
    assert len(later.certificates) == 3  # the VLEK expired 2025-12-10: no longer offered


# --- Intel TDX (the existing DCAP verifier on the collection's TDX samples) ----------------------

TDX_COLLATERAL = {
    "tcb_info": "tcb_info.json",
    "tcb_info_issuer_chain": "tcb_info_issuer_chain.pem",
    "qe_identity": "qe_identity.json",
    "qe_identity_issuer_chain": "qe_identity_issuer_chain.pem",
    "pck_crl": "pck_crl.der",
    "root_crl": "root_ca_crl.der",
}


@pytest.mark.parametrize("entry", entries("intel-tdx", "quote"), ids=lambda e: e["id"])
def test_tdx_vectors(entry: dict[str, Any], tmp_path: Path) -> None:
    """``valid`` here is the manifest's scope for TDX: quote, QE report and PCK chain at the time. With
    the shipped collateral a full appraisal must still refuse: the 2023 v4 quote's TCB matches no
    level, and the 2026 v5 quote's 2023 CRLs and QE identity are out of date."""
    import shutil

    from adytum.attestation.sgx.collateral import load_collateral
    from adytum.attestation.sgx.dcap import verify_dcap_quote, verify_quote_signatures

    quote, at = read(entry["files"]["quote"]), at_of(entry)
    if not entry["expected"]["valid"]:
        failing = {k for k, v in entry["expected"]["crosscheck"].items() if v is not True}
        by_check = {
            "quote_sig": Reason.SIGNATURE,
            "pck_chain_links": Reason.CHAIN,
            "pck_chain_time_valid": Reason.EXPIRED,
        }
        assert refused(lambda: verify_quote_signatures(quote, at=at)) in {by_check[k] for k in failing}
        return
    assert verify_quote_signatures(quote, at=at).quote
    for key, name in TDX_COLLATERAL.items():
        shutil.copy(TEE / entry["files"][key], tmp_path / name)
    full = refused(lambda: verify_dcap_quote(quote, load_collateral(tmp_path), Policy(allow_debug=True), at=at))
    assert full == (Reason.NO_TCB_MATCH if entry["id"] == "gotdx-v4-spr-e4" else Reason.EXPIRED)


def test_an_ark_crl_not_signed_by_the_ark_is_refused() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa

    entry = next(e for e in MANIFEST if e["id"] == "trustee-milan-vcek-report")
    at = at_of(entry)
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(amd_chain("Milan")[0].subject)
        .last_update(at - timedelta(days=1))
        .next_update(at + timedelta(days=1))
        .sign(forger, hashes.SHA384())
    )
    report, certs = read(entry["files"]["report"]), snp_certs(entry)
    assert refused(lambda: verify_snp_report(report, certs, Policy(), at=at, crls=[crl])) == Reason.CRL


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("amd-sev-snp/virtee-sev/report_milan.bin", "sev-snp"),
        ("amd-sev-snp/virtee-sev/report_milan.hex", "sev-snp"),
        ("aws-nitro/blocky-nitrite/nitro_attestation.cbor", "aws-nitro"),
        ("aws-nitro/blocky-nitrite/nitro_attestation.b64", "aws-nitro"),
        ("aws-nitro/evervault-attestation-doc-validation/valid-attestation-doc-base64.txt", "aws-nitro"),
        ("nvidia-gpu/nvtrust/hopperAttestationReport.txt", "nvidia-gpu"),
        ("nvidia-gpu/nvtrust/ppcie/gpu0_evidence.bin", "nvidia-gpu"),
        ("intel-tdx/go-tdx-guest/quote_v5_sample.dat", "dcap-quote"),
    ],
)
def test_format_detected_by_content(name: str, kind: str) -> None:
    from adytum.attestation.detect import detect_format

    found = detect_format((TEE / name).read_bytes())
    assert found is not None and found[0] == kind
    assert detect_format(b'{"format": "adytum-ias/1"}') is None
