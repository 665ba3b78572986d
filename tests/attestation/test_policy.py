"""Policy rules on synthetic verdicts: the same object must work for simulated evidence too."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adytum.attestation.errors import AttestationError, Reason
from adytum.attestation.policy import ALL_STATUSES, Policy, Verdict, normalize_status

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def verdict(**changes: object) -> Verdict:
    base: dict[str, object] = dict(
        kind="simulated",
        tcb_status="UpToDate",
        verified_at=T0,
        mr_enclave=b"\x11" * 32,
        mr_signer=b"\x22" * 32,
        isv_prod_id=3,
        isv_svn=5,
        report_data=b"nonce" + bytes(59),
        valid_from=T0 - timedelta(days=1),
        valid_until=T0 + timedelta(days=1),
        issued_at=T0 - timedelta(hours=1),
    )
    base.update(changes)
    return Verdict(**base)  # type: ignore[arg-type]


def refused(policy: Policy, v: Verdict, at: datetime = T0) -> Reason:
    with pytest.raises(AttestationError) as err:
        policy.enforce(v, at=at)
    assert err.value.verdict is v
    return err.value.reason


def test_production_defaults() -> None:
    policy = Policy()
    assert policy.accepted_statuses == {"UpToDate"} and not policy.allow_debug and policy.require_crls
    assert policy.enforce(verdict(), at=T0) is not None
    assert refused(policy, verdict(tcb_status="SWHardeningNeeded")) == Reason.TCB_STATUS
    assert refused(policy, verdict(tcb_status=None)) == Reason.TCB_STATUS
    assert refused(policy, verdict(debug=True)) == Reason.DEBUG


def test_debug_is_checked_before_status() -> None:
    assert refused(Policy(), verdict(debug=True, tcb_status="OutOfDate")) == Reason.DEBUG
    assert Policy(allow_debug=True).enforce(verdict(debug=True), at=T0).debug


def test_ias_names_are_normalised() -> None:
    assert Policy(accepted_statuses={"OK", "GROUP_OUT_OF_DATE"}).accepted_statuses == {"UpToDate", "OutOfDate"}
    assert normalize_status("SW_HARDENING_NEEDED") == "SWHardeningNeeded"
    with pytest.raises(ValueError):
        normalize_status("Fine")
    with pytest.raises(ValueError):
        Policy(accepted_statuses={"Revoked"})


def test_time_must_be_aware() -> None:
    with pytest.raises(ValueError):
        Policy().enforce(verdict(), at=datetime(2025, 1, 1))


def test_window_and_age() -> None:
    v = verdict()
    assert refused(Policy(), v, v.valid_until + timedelta(seconds=1)) == Reason.EXPIRED  # type: ignore[operator]
    assert refused(Policy(), v, v.valid_from - timedelta(seconds=1)) == Reason.NOT_YET_VALID  # type: ignore[operator]
    assert Policy().enforce(v, at=v.valid_until) is v  # type: ignore[arg-type]
    assert refused(Policy(max_collateral_age=timedelta(minutes=59)), v) == Reason.STALE
    assert Policy(max_collateral_age=timedelta(hours=1)).enforce(v, at=T0) is v
    assert refused(Policy(max_collateral_age=timedelta(days=9)), verdict(issued_at=None)) == Reason.STALE


def test_identity_rules() -> None:
    v = verdict()
    assert (
        Policy(mr_enclaves={"11" * 32}, mr_signers={b"\x22" * 32}, isv_prod_id=3, min_isv_svn=5).enforce(v, at=T0) is v
    )
    assert refused(Policy(mr_enclaves={"12" * 32}), v) == Reason.MEASUREMENT
    assert refused(Policy(mr_signers={"12" * 32}), v) == Reason.MEASUREMENT
    assert refused(Policy(mr_tds={"12" * 48}), v) == Reason.MEASUREMENT  # no MRTD at all
    assert refused(Policy(isv_prod_id=4), v) == Reason.PRODUCT
    assert refused(Policy(min_isv_svn=6), v) == Reason.SVN
    assert refused(Policy(report_data_prefix=b"other"), v) == Reason.REPORT_DATA
    assert Policy(report_data_prefix=b"nonce").enforce(v, at=T0) is v


def test_tdx_rules() -> None:
    rtmrs = tuple(bytes([i]) * 48 for i in range(4))
    td = verdict(
        kind="tdx-dcap",
        mr_enclave=None,
        mr_signer=None,
        isv_prod_id=None,
        isv_svn=None,
        mr_td=b"\x33" * 48,
        rtmrs=rtmrs,
    )
    assert Policy(mr_tds={"33" * 48}, rtmrs=(frozenset(), {rtmrs[1]})).enforce(td, at=T0) is td
    assert refused(Policy(rtmrs=(frozenset(), frozenset(), {b"\x09" * 48})), td) == Reason.MEASUREMENT
    assert refused(Policy(mr_enclaves={"11" * 32}), td) == Reason.MEASUREMENT
    assert refused(Policy(min_isv_svn=0), td) == Reason.SVN
    with pytest.raises(ValueError):
        Policy(rtmrs=(frozenset(),) * 5)


@settings(max_examples=40, deadline=None)
@given(measurement=st.binary(min_size=32, max_size=32), others=st.sets(st.binary(min_size=32, max_size=32), max_size=4))
def test_allow_list_membership_decides(measurement: bytes, others: set[bytes]) -> None:
    v = verdict(mr_enclave=measurement)
    assert Policy(mr_enclaves=others | {measurement}).enforce(v, at=T0) is v
    if measurement not in others and others:
        assert refused(Policy(mr_enclaves=others), v) == Reason.MEASUREMENT


def test_verdict_json_and_words() -> None:
    v = verdict(advisory_ids=("INTEL-SA-00334",), unchecked=("pck-crl",))
    data = json.loads(json.dumps(v.to_json()))
    assert data["mr_enclave"] == "11" * 32 and data["valid_until"] == "2025-01-02T00:00:00Z"
    assert data["advisory_ids"] == ["INTEL-SA-00334"]
    words = v.describe()
    assert "UpToDate" in words and "INTEL-SA-00334" in words and "pck-crl" in words and "debug mode: no" in words


def test_error_reasons_are_strings() -> None:
    err = AttestationError("expired", "TCB info expired")
    assert err.reason == Reason.EXPIRED == "expired" and "TCB info expired" in str(err)
    with pytest.raises(ValueError):
        AttestationError("nope", "unknown reasons are a programming error")
    assert "Revoked" not in ALL_STATUSES
