"""IAS (EPID) attestation reports: every entry in shared/vectors/sgx/ias gives its expected verdict."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from adytum.attestation.errors import AttestationError, Reason
from adytum.attestation.policy import ALL_STATUSES, IAS_STATUS_MAP, Policy
from adytum.attestation.sgx.ias import FORMAT, _report_time, load_ias_evidence, verify_ias_evidence, verify_ias_report

from .conftest import manifest, manifest_names

#: Where each manifest entry's evidence lives, in every shipped encoding.
FILES: dict[tuple[str, str], list[str]] = {
    **{
        ("integritee_ratls", t): [f"ra_dump_cert_{t}.der", f"extracted/{t}.report.json"]
        for t in ("TEST4", "TEST5", "TEST6", "TEST7", "TEST8_PRODUCTION")
    },
    ("mesatee_ratls", "valid"): ["mesatee_ratls_cert_valid.der", "extracted/mesatee.report.json"],
    ("phala", "crate_sample_2023"): ["crate_sample_2023.original.json", "extracted/crate_sample_2023.report.json"],
    ("phala", "pallet_sample_2021"): ["pallet_sample_2021.original.json", "extracted/pallet_sample_2021.report.json"],
    ("avalon", "valid"): ["report.json"],
}

NEGATIVES: dict[tuple[str, str], Reason] = {
    ("mesatee_ratls", "negative_wrong_platform_blob.der"): Reason.SIGNATURE,
    ("mesatee_ratls", "negative_fake_quote_status.der"): Reason.MALFORMED,
    ("mesatee_ratls", "negative_wrong_sig.der"): Reason.CHAIN,
    ("mesatee_ratls", "negative_too_short1.der"): Reason.MALFORMED,
    ("mesatee_ratls", "negative_too_short2.der"): Reason.MALFORMED,
    ("avalon", "negative_wrong_cert"): Reason.CHAIN,
}


def _entries() -> list[tuple[str, str]]:
    return [(group, entry) for group in manifest_names("ias") for entry in sorted(_group_entries(group))]


def _group_entries(group: str) -> dict[str, Any]:
    from .conftest import _MANIFEST

    return json.loads(_MANIFEST.read_text())["ias"][group]["entries"]


ENTRIES = _entries()


def test_every_manifest_entry_is_covered(sgx_vectors: Path) -> None:
    listed = {(g, e) for g, v in manifest(sgx_vectors)["ias"].items() for e in v["entries"]}
    assert listed == set(FILES) | set(NEGATIVES) == set(ENTRIES)


def _expected_report(vectors: Path, group: str, entry: str) -> dict[str, Any]:
    data = json.loads((vectors / "ias" / group / "expected.json").read_text())
    return data["entries"][entry]["report"]


LENIENT = Policy(accepted_statuses=ALL_STATUSES, allow_debug=True)


@pytest.mark.parametrize(("group", "entry"), [k for k in ENTRIES if k in FILES])
def test_valid_report(sgx_vectors: Path, group: str, entry: str) -> None:
    meta = manifest(sgx_vectors)["ias"][group]["entries"][entry]
    report = _expected_report(sgx_vectors, group, entry)
    when = _report_time(meta["timestamp"]) + timedelta(seconds=1)
    assert meta["sig_valid"] is True
    for file in FILES[(group, entry)]:
        verdict = verify_ias_evidence(load_ias_evidence(sgx_vectors / "ias" / group / file), LENIENT, at=when)
        assert verdict.kind == "sgx-ias"
        assert verdict.raw_status == meta["status"]
        assert verdict.tcb_status == IAS_STATUS_MAP[meta["status"]]
        body = report["report_body"]
        assert verdict.mr_enclave.hex() == body["mr_enclave"]
        assert verdict.mr_signer.hex() == body["mr_signer"]
        assert (verdict.isv_prod_id, verdict.isv_svn) == (body["isv_prod_id"], body["isv_svn"])
        assert verdict.debug == body["debug"]
        assert verdict.report_data.hex() == body["report_data"]
        assert list(verdict.advisory_ids) == report.get("advisoryIDs", [])
        assert verdict.issued_at == _report_time(meta["timestamp"])


@pytest.mark.parametrize(("group", "entry"), [k for k in ENTRIES if k in NEGATIVES])
def test_negative_report(sgx_vectors: Path, group: str, entry: str) -> None:
    folder = sgx_vectors / "ias" / group
    when = _report_time("2019-06-17T12:46:05")
    with pytest.raises(AttestationError) as err:
        if entry == "negative_wrong_cert":
            when = _report_time("2018-07-11T19:31:00")
            report = (folder / "report.json").read_bytes()
            signature = base64.b64decode((folder / "report.sig.b64").read_bytes())
            verify_ias_report(
                report, signature, (folder / "negative_wrong_cert_avalon_test_ca.pem").read_bytes(), LENIENT, at=when
            )
        else:
            verify_ias_evidence(load_ias_evidence(folder / entry), LENIENT, at=when)
    assert err.value.reason == NEGATIVES[(group, entry)]


def test_avalon_test_ca_as_trust_anchor_is_refused(sgx_vectors: Path) -> None:
    """Trusting a different CA does not make Intel's signing certificate chain to it."""
    folder = sgx_vectors / "ias" / "avalon"
    wrong = x509.load_pem_x509_certificate((folder / "negative_wrong_cert_avalon_test_ca.pem").read_bytes())
    evidence = load_ias_evidence(folder / "report.json")
    with pytest.raises(AttestationError) as err:
        verify_ias_evidence(evidence, LENIENT, at=_report_time("2018-07-11T19:31:00"), trust_anchor=wrong)
    assert err.value.reason == Reason.CHAIN


def _evidence(vectors: Path, group: str = "phala", file: str = "pallet_sample_2021.original.json"):  # type: ignore[no-untyped-def]
    return load_ias_evidence(vectors / "ias" / group / file)


PALLET_TIME = _report_time("2021-09-12T18:06:20.402478")


def test_debug_reports_refused_by_production_policy(sgx_vectors: Path) -> None:
    evidence = _evidence(sgx_vectors, "integritee_ratls", "ra_dump_cert_TEST4.der")
    policy = Policy(accepted_statuses={"CONFIGURATION_NEEDED"})
    with pytest.raises(AttestationError) as err:
        verify_ias_evidence(evidence, policy, at=_report_time("2020-04-26T11:16:26"))
    assert err.value.reason == Reason.DEBUG


def test_production_report_accepted_only_with_its_status(sgx_vectors: Path) -> None:
    evidence = _evidence(sgx_vectors, "integritee_ratls", "ra_dump_cert_TEST8_PRODUCTION.der")
    when = _report_time("2021-10-13T20:25:01")
    with pytest.raises(AttestationError) as err:
        verify_ias_evidence(evidence, Policy(), at=when)
    assert err.value.reason == Reason.TCB_STATUS
    verdict = verify_ias_evidence(
        evidence, Policy(accepted_statuses={"CONFIGURATION_AND_SW_HARDENING_NEEDED"}), at=when
    )
    assert not verdict.debug


def test_now_is_expired(sgx_vectors: Path) -> None:
    """The IAS signing certificate ended 2026-11-20; every report is refused now."""
    with pytest.raises(AttestationError) as err:
        verify_ias_evidence(_evidence(sgx_vectors), LENIENT, at=datetime.now(UTC))
    assert err.value.reason == Reason.EXPIRED


def test_report_from_the_future_is_refused(sgx_vectors: Path) -> None:
    """Phala's pallet test time is 8 h before the report's own timestamp."""
    with pytest.raises(AttestationError) as err:
        verify_ias_evidence(_evidence(sgx_vectors), LENIENT, at=_report_time("2021-09-12T10:06:20"))
    assert err.value.reason == Reason.NOT_YET_VALID


def test_phala_pallet_rules(sgx_vectors: Path) -> None:
    """Phala's validator: max age 7200 s, allow-listed measurement, report data commits to a hash."""
    evidence = _evidence(sgx_vectors)
    stale = dataclasses.replace(LENIENT, max_collateral_age=timedelta(seconds=7200))
    with pytest.raises(AttestationError) as err:
        verify_ias_evidence(evidence, stale, at=PALLET_TIME + timedelta(seconds=10_000_000))
    assert err.value.reason == Reason.STALE
    mr_enclave = "518422fa769d2d55982015a0e0417c6a8521fdfc7308f5ec18aaa1b6924bd0f3"
    mr_signer = "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
    commit = "3178d13cb51f21159337cbe864c13ea2dff17dd5d49da05db3b53c1f0ff23e8c"
    good = Policy(
        accepted_statuses={"SW_HARDENING_NEEDED"},
        mr_enclaves={mr_enclave},
        mr_signers={mr_signer},
        isv_prod_id=0,
        min_isv_svn=0,
        report_data_prefix=commit,
        max_collateral_age=timedelta(seconds=7200),
    )
    when = PALLET_TIME + timedelta(seconds=60)
    assert verify_ias_evidence(evidence, good, at=when).mr_enclave.hex() == mr_enclave
    for change, reason in (
        ({"mr_enclaves": {"00" * 32}}, Reason.MEASUREMENT),
        ({"report_data_prefix": "00" * 32}, Reason.REPORT_DATA),
        ({"isv_prod_id": 1}, Reason.PRODUCT),
        ({"min_isv_svn": 1}, Reason.SVN),
    ):
        with pytest.raises(AttestationError) as err:
            verify_ias_evidence(evidence, dataclasses.replace(good, **change), at=when)
        assert err.value.reason == reason


def test_flipped_report_byte_is_refused(sgx_vectors: Path) -> None:
    evidence = _evidence(sgx_vectors)
    when = PALLET_TIME + timedelta(seconds=60)
    for offset in range(0, len(evidence.report), 41):
        report = bytearray(evidence.report)
        report[offset] ^= 0x01
        with pytest.raises(AttestationError) as err:
            verify_ias_report(bytes(report), evidence.signature, evidence.certificates, LENIENT, at=when)
        assert err.value.reason == Reason.SIGNATURE


def test_adytum_format_round_trip(sgx_vectors: Path, tmp_path: Path) -> None:
    evidence = _evidence(sgx_vectors)
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in evidence.certificates)
    doc = {
        "format": FORMAT,
        "report": evidence.report.decode(),
        "signature": base64.b64encode(evidence.signature).decode(),
        "certificates": pem.decode(),
    }
    (tmp_path / "evidence.json").write_text(json.dumps(doc))
    when = PALLET_TIME + timedelta(seconds=60)
    assert verify_ias_evidence(load_ias_evidence(tmp_path / "evidence.json"), LENIENT, at=when) == verify_ias_evidence(
        evidence, LENIENT, at=when
    )
