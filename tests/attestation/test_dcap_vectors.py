"""Every DCAP set in shared/vectors/sgx gives its expected verdict, and every negative is refused."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from adytum.attestation.errors import AttestationError, Reason
from adytum.attestation.policy import ALL_STATUSES, Policy
from adytum.attestation.sgx import load_collateral, verify_dcap_quote, verify_quote_signatures
from adytum.attestation.sgx.anchors import ias_report_signing_ca
from adytum.attestation.sgx.collateral import Collateral, load_crl

from .conftest import (
    DCAP_SETS,
    VERDICT_SETS,
    at,
    collateral,
    dcap_entry,
    expected,
    lenient,
    manifest,
    quote_bytes,
    set_dir,
    suggested_time,
)


def test_manifest_covers_every_set(sgx_vectors: Path) -> None:
    on_disk = sorted(p.name for p in (sgx_vectors / "dcap").iterdir() if p.is_dir())
    assert sorted(manifest(sgx_vectors)["dcap"]) == on_disk == DCAP_SETS


@pytest.mark.parametrize("name", DCAP_SETS)
def test_set_gives_expected_verdict(sgx_vectors: Path, name: str) -> None:
    entry = dcap_entry(sgx_vectors, name)
    exp = expected(sgx_vectors, name)
    status = entry["expected_status"]
    policy = lenient(sgx_vectors, name)
    if status is None:
        with pytest.raises(AttestationError) as err:
            verify_dcap_quote(
                quote_bytes(sgx_vectors, name),
                collateral(sgx_vectors, name),
                policy,
                at=suggested_time(sgx_vectors, name),
            )
        assert err.value.reason == Reason.COLLATERAL
        return
    if status == "NoMatchingTcbLevel":
        with pytest.raises(AttestationError) as err:
            verify_dcap_quote(
                quote_bytes(sgx_vectors, name),
                collateral(sgx_vectors, name),
                policy,
                at=suggested_time(sgx_vectors, name),
            )
        assert err.value.reason == Reason.NO_TCB_MATCH
        return
    verdict = verify_dcap_quote(
        quote_bytes(sgx_vectors, name), collateral(sgx_vectors, name), policy, at=suggested_time(sgx_vectors, name)
    )
    tcb = exp["collector_check"]["tcb"]
    assert verdict.tcb_status == status == tcb["converged_status"]
    assert list(verdict.advisory_ids) == tcb["advisory_ids"]
    assert verdict.platform_status == tcb["platform_tcb_status"]
    assert verdict.qe_status == tcb["qe_identity_checks"]["qe_tcb_status"]
    assert verdict.tdx_module_status == tcb.get("tdx_module_status")
    assert verdict.fmspc == entry["fmspc"]
    assert [verdict.valid_from, verdict.valid_until] == [at(t) for t in entry["validity_window"]]


@pytest.mark.parametrize("name", DCAP_SETS)
def test_quote_fields_are_decoded(sgx_vectors: Path, name: str) -> None:
    """The decoded measurements are the ones the collector decoded (checked from the quote alone)."""
    fields = expected(sgx_vectors, name)["quote_fields"]
    check = verify_quote_signatures(quote_bytes(sgx_vectors, name), at=suggested_time(sgx_vectors, name))
    body = check.quote.body
    assert check.pck.fmspc.hex() == fields["pck_leaf"]["fmspc"]
    assert check.pck.cpu_svn.hex() == fields["pck_leaf"]["cpusvn"]
    assert check.pck.pce_svn == fields["pck_leaf"]["pcesvn"]
    assert check.quote.header.version == fields["version"]
    if "td_report" in fields:
        td = fields["td_report"]
        assert body.mr_td.hex() == td["mr_td"]
        assert [r.hex() for r in body.rtmrs] == [td[f"rtmr{i}"] for i in range(4)]
        assert body.report_data.hex() == td["report_data"]
        assert body.tee_tcb_svn.hex() == td["tee_tcb_svn"]
        assert check.quote.body_type == fields.get("body_type", 2)
    else:
        rb = fields["report_body"]
        assert body.mr_enclave.hex() == rb["mr_enclave"]
        assert body.mr_signer.hex() == rb["mr_signer"]
        assert body.report_data.hex() == rb["report_data"]
        assert body.debug == rb["debug"]
        assert (body.isv_prod_id, body.isv_svn) == (rb["isv_prod_id"], rb["isv_svn"])
    assert check.quote.signature.qe_report.isv_svn == fields["qe_report"]["isv_svn"]


@pytest.mark.parametrize("name", DCAP_SETS)
def test_now_is_expired(sgx_vectors: Path, name: str) -> None:
    """Verified now, every set's collateral is past its time."""
    policy = lenient(sgx_vectors, name)
    with pytest.raises(AttestationError) as err:
        verify_dcap_quote(quote_bytes(sgx_vectors, name), collateral(sgx_vectors, name), policy, at=datetime.now(UTC))
    assert err.value.reason == Reason.EXPIRED


@pytest.mark.parametrize("name", [n for n in DCAP_SETS if n != "mobilecoin_sgx_v3_2022"])
def test_window_edges(sgx_vectors: Path, name: str) -> None:
    """Valid exactly on both ends of the validity window, refused one second outside."""
    start, end = (at(t) for t in dcap_entry(sgx_vectors, name)["validity_window"])
    quote, coll = quote_bytes(sgx_vectors, name), collateral(sgx_vectors, name)
    inside = Reason.NO_TCB_MATCH if dcap_entry(sgx_vectors, name)["expected_status"] == "NoMatchingTcbLevel" else None
    for when in (start, end):
        if inside is None:
            assert verify_dcap_quote(quote, coll, lenient(sgx_vectors, name), at=when).verified_at == when
        else:
            with pytest.raises(AttestationError) as err:
                verify_dcap_quote(quote, coll, lenient(sgx_vectors, name), at=when)
            assert err.value.reason == inside
    for when, reason in (
        (start - timedelta(seconds=1), Reason.NOT_YET_VALID),
        (end + timedelta(seconds=1), Reason.EXPIRED),
    ):
        with pytest.raises(AttestationError) as err:
            verify_dcap_quote(quote, coll, lenient(sgx_vectors, name), at=when)
        assert err.value.reason == reason


def test_phala_source_time_is_before_the_collateral(sgx_vectors: Path) -> None:
    """Phala's own test time (2023-11-06) precedes the collateral's issueDate: a strict verifier refuses."""
    name = "phala_sgx_v3_2023"
    when = at(expected(sgx_vectors, name)["source_test"]["time_iso"])
    with pytest.raises(AttestationError) as err:
        verify_dcap_quote(
            quote_bytes(sgx_vectors, name), collateral(sgx_vectors, name), lenient(sgx_vectors, name), at=when
        )
    assert err.value.reason == Reason.NOT_YET_VALID


@pytest.mark.parametrize("name", VERDICT_SETS)
def test_debug_enclaves_refused_by_production_policy(sgx_vectors: Path, name: str) -> None:
    fields = expected(sgx_vectors, name)["quote_fields"]
    debug = fields.get("report_body", {}).get("debug", False)
    policy = dataclasses.replace(lenient(sgx_vectors, name), allow_debug=False)
    quote, coll = quote_bytes(sgx_vectors, name), collateral(sgx_vectors, name)
    if debug:
        with pytest.raises(AttestationError) as err:
            verify_dcap_quote(quote, coll, policy, at=suggested_time(sgx_vectors, name))
        assert err.value.reason == Reason.DEBUG
        assert err.value.verdict is not None and err.value.verdict.debug
    else:
        assert not verify_dcap_quote(quote, coll, policy, at=suggested_time(sgx_vectors, name)).debug


@pytest.mark.parametrize("name", DCAP_SETS)
def test_production_policy(sgx_vectors: Path, name: str) -> None:
    """Default policy: UpToDate, non-debug, CRLs present, else refused with the first failing rule."""
    entry = dcap_entry(sgx_vectors, name)
    debug = expected(sgx_vectors, name)["quote_fields"].get("report_body", {}).get("debug", False)
    policy = Policy()
    quote, coll = quote_bytes(sgx_vectors, name), collateral(sgx_vectors, name)
    if (set_dir(sgx_vectors, name) / "pck_crl.der").is_file() and (
        set_dir(sgx_vectors, name) / "root_ca_crl.der"
    ).is_file():
        want = {None: Reason.COLLATERAL, "NoMatchingTcbLevel": Reason.NO_TCB_MATCH}.get(entry["expected_status"])
    else:
        want = Reason.COLLATERAL
    if want is None:
        want = Reason.DEBUG if debug else (None if entry["expected_status"] == "UpToDate" else Reason.TCB_STATUS)
    if want is None:
        assert verify_dcap_quote(quote, coll, policy, at=suggested_time(sgx_vectors, name)).tcb_status == "UpToDate"
    else:
        with pytest.raises(AttestationError) as err:
            verify_dcap_quote(quote, coll, policy, at=suggested_time(sgx_vectors, name))
        assert err.value.reason == want


def test_dcap_qvl_collateral_json_gives_the_same_verdict(sgx_vectors: Path) -> None:
    for name in DCAP_SETS:
        file = set_dir(sgx_vectors, name) / "collateral.dcap-qvl.json"
        if not file.is_file():
            continue
        policy = lenient(sgx_vectors, name)
        try:
            split = verify_dcap_quote(
                quote_bytes(sgx_vectors, name),
                collateral(sgx_vectors, name),
                policy,
                at=suggested_time(sgx_vectors, name),
            )
        except AttestationError as exc:
            with pytest.raises(AttestationError) as err:
                verify_dcap_quote(
                    quote_bytes(sgx_vectors, name), load_collateral(file), policy, at=suggested_time(sgx_vectors, name)
                )
            assert err.value.reason == exc.reason
            continue
        assert (
            verify_dcap_quote(
                quote_bytes(sgx_vectors, name), load_collateral(file), policy, at=suggested_time(sgx_vectors, name)
            )
            == split
        )


# --- negative vectors -------------------------------------------------------------------------

MOBILECOIN_NEGATIVES = {
    "negative/isv_report_byte48_plus1.bin": Reason.SIGNATURE,
    "negative/qe_report_byte564_plus1.bin": Reason.QE_SIGNATURE,
    "negative/attestation_key_byte500_plus1.bin": Reason.MALFORMED,
    # Intel's QVL checks the QE report-data binding before the quote signature, so a swapped key
    # is caught there (the source, checking only the signature, reports SignatureVerification).
    "negative/attestation_key_replaced_by_pck_key.bin": Reason.QE_BINDING,
}


def test_mobilecoin_quote_verifies_without_collateral(sgx_vectors: Path) -> None:
    name = "mobilecoin_sgx_v3_2022"
    check = verify_quote_signatures(quote_bytes(sgx_vectors, name), at=suggested_time(sgx_vectors, name))
    assert check.pck.fmspc.hex() == "00906ed50000"
    assert check.chain[0].serial_number == int(expected(sgx_vectors, name)["quote_fields"]["pck_leaf"]["serial"], 16)


@pytest.mark.parametrize("file", sorted(MOBILECOIN_NEGATIVES))
def test_mobilecoin_negatives(sgx_vectors: Path, file: str) -> None:
    name = "mobilecoin_sgx_v3_2022"
    assert file in dcap_entry(sgx_vectors, name)["negatives"]
    data = (set_dir(sgx_vectors, name) / file).read_bytes()
    with pytest.raises(AttestationError) as err:
        verify_quote_signatures(data, at=suggested_time(sgx_vectors, name))
    assert err.value.reason == MOBILECOIN_NEGATIVES[file]
    with pytest.raises(AttestationError):
        verify_dcap_quote(
            data, collateral(sgx_vectors, name), lenient(sgx_vectors, name), at=suggested_time(sgx_vectors, name)
        )


@pytest.mark.parametrize("member", ["tcb_info", "qe_identity"])
def test_fortanix_corrupted_collateral(sgx_vectors: Path, member: str) -> None:
    name = "fortanix_sgx_v3_2020"
    folder = set_dir(sgx_vectors, name)
    bad = folder / "negative_corrupted"
    parts = {
        "tcb_info": (folder / "tcb_info.json").read_bytes(),
        "tcb_info_issuer_chain": (folder / "tcb_info_issuer_chain.pem").read_bytes(),
        "qe_identity": (folder / "qe_identity.json").read_bytes(),
        "qe_identity_issuer_chain": (folder / "qe_identity_issuer_chain.pem").read_bytes(),
        "pck_crl": (folder / "pck_crl.der").read_bytes(),
    }
    parts[member] = (bad / f"{member}.json").read_bytes()
    parts[f"{member}_issuer_chain"] = (bad / f"{member}_issuer_chain.pem").read_bytes()
    with pytest.raises(AttestationError) as err:
        verify_dcap_quote(
            quote_bytes(sgx_vectors, name),
            Collateral.from_bytes(**parts),
            lenient(sgx_vectors, name),
            at=suggested_time(sgx_vectors, name),
        )
    assert err.value.reason == Reason.COLLATERAL_SIGNATURE


def test_integritee_mismatched_pck_crl(sgx_vectors: Path) -> None:
    """A Platform-CA CRL cannot vouch for a Processor-CA PCK certificate."""
    name = "integritee_sgx_v3_2022"
    folder = set_dir(sgx_vectors, name)
    crl = load_crl((folder / "mismatched_platform_ca_pck_crl.der").read_bytes(), "PCK CRL")
    coll = dataclasses.replace(collateral(sgx_vectors, name), pck_crl=crl)
    with pytest.raises(AttestationError) as err:
        verify_dcap_quote(
            quote_bytes(sgx_vectors, name), coll, lenient(sgx_vectors, name), at=suggested_time(sgx_vectors, name)
        )
    assert err.value.reason == Reason.CRL
    issuer = x509.load_pem_x509_certificates((folder / "processor_ca_issuer_chain.pem").read_bytes())[0]
    assert not crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]


def test_missing_crl_is_refused_unless_waived(sgx_vectors: Path) -> None:
    name = "dcapqvl_tdx_v4_2025"
    coll = dataclasses.replace(collateral(sgx_vectors, name), pck_crl=None)
    with pytest.raises(AttestationError) as err:
        verify_dcap_quote(
            quote_bytes(sgx_vectors, name), coll, lenient(sgx_vectors, name), at=suggested_time(sgx_vectors, name)
        )
    assert err.value.reason == Reason.COLLATERAL
    waived = dataclasses.replace(lenient(sgx_vectors, name), require_crls=False)
    assert verify_dcap_quote(
        quote_bytes(sgx_vectors, name), coll, waived, at=suggested_time(sgx_vectors, name)
    ).unchecked == ("pck-crl",)


def test_collateral_for_another_platform_is_refused(sgx_vectors: Path) -> None:
    """The SGX quote with the TDX set's collateral: wrong TEE / FMSPC."""
    coll = collateral(sgx_vectors, "dcapqvl_tdx_v4_2025")
    sgx = collateral(sgx_vectors, "dcapqvl_sgx_v3_2025")
    mixed = dataclasses.replace(sgx, tcb_info=coll.tcb_info)
    policy = lenient(sgx_vectors, "dcapqvl_sgx_v3_2025")
    with pytest.raises(AttestationError) as err:
        verify_dcap_quote(
            quote_bytes(sgx_vectors, "dcapqvl_sgx_v3_2025"),
            mixed,
            policy,
            at=suggested_time(sgx_vectors, "dcapqvl_sgx_v3_2025"),
        )
    assert err.value.reason == Reason.COLLATERAL
    mixed = dataclasses.replace(sgx, qe_identity=coll.qe_identity)
    with pytest.raises(AttestationError) as err:
        verify_dcap_quote(
            quote_bytes(sgx_vectors, "dcapqvl_sgx_v3_2025"),
            mixed,
            policy,
            at=suggested_time(sgx_vectors, "dcapqvl_sgx_v3_2025"),
        )
    assert err.value.reason == Reason.COLLATERAL


# --- trust anchors ------------------------------------------------------------------------------


def test_anchor_is_matched_by_key_not_bytes(sgx_vectors: Path) -> None:
    """Fortanix's chain embeds the 2033 issue of the Root CA; both issues anchor it (same key)."""
    name = "fortanix_sgx_v3_2020"
    reissue = x509.load_der_x509_certificate(
        (sgx_vectors / "common" / "intel_sgx_root_ca_reissue_2033.der").read_bytes()
    )
    current = x509.load_pem_x509_certificate((sgx_vectors / "common" / "intel_sgx_root_ca.pem").read_bytes())
    assert reissue.fingerprint(reissue.signature_hash_algorithm) != current.fingerprint(
        current.signature_hash_algorithm
    )  # type: ignore[arg-type]
    for anchor in (reissue, current):
        verdict = verify_dcap_quote(
            quote_bytes(sgx_vectors, name),
            collateral(sgx_vectors, name),
            lenient(sgx_vectors, name),
            anchors=[anchor],
            at=suggested_time(sgx_vectors, name),
        )
        assert verdict.tcb_status == "SWHardeningNeeded"


def test_wrong_anchor_is_refused(sgx_vectors: Path) -> None:
    name = "dcapqvl_tdx_v4_2025"
    with pytest.raises(AttestationError) as err:
        verify_dcap_quote(
            quote_bytes(sgx_vectors, name),
            collateral(sgx_vectors, name),
            lenient(sgx_vectors, name),
            anchors=[ias_report_signing_ca()],
            at=suggested_time(sgx_vectors, name),
        )
    assert err.value.reason == Reason.CHAIN


def test_trailing_padding_is_ignored(sgx_vectors: Path) -> None:
    """The TDX v4 quote carries 70 zero bytes after its signature data: unsigned, not part of the quote."""
    name = "dcapqvl_tdx_v4_2025"
    quote = quote_bytes(sgx_vectors, name)
    assert quote.endswith(bytes(70))
    policy = lenient(sgx_vectors, name)
    base = verify_dcap_quote(quote, collateral(sgx_vectors, name), policy, at=suggested_time(sgx_vectors, name))
    assert (
        verify_dcap_quote(quote[:-70], collateral(sgx_vectors, name), policy, at=suggested_time(sgx_vectors, name))
        == base
    )
    assert (
        verify_dcap_quote(
            quote[:-70] + b"\xff" * 70, collateral(sgx_vectors, name), policy, at=suggested_time(sgx_vectors, name)
        )
        == base
    )


def test_all_statuses_are_known() -> None:
    assert "UpToDate" in ALL_STATUSES and "Revoked" not in ALL_STATUSES
