"""Intel's TCB-level rules on the real vectors' collateral, edited in memory (as dcap-qvl's override tests do).

Edited collateral can no longer carry Intel's signature, so these call the pure TCB evaluation
with the quote and PCK data of a verified set.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from adytum.attestation.errors import AttestationError, Reason
from adytum.attestation.sgx import verify_quote_signatures
from adytum.attestation.sgx.tcb import converge, evaluate_tcb

from .conftest import collateral, quote_bytes, suggested_time


def inputs(vectors: Path, name: str) -> tuple[dict[str, Any], dict[str, Any], Any]:
    coll = collateral(vectors, name)
    assert coll.tcb_info is not None and coll.qe_identity is not None
    check = verify_quote_signatures(quote_bytes(vectors, name), at=suggested_time(vectors, name))
    return copy.deepcopy(coll.tcb_info.body), copy.deepcopy(coll.qe_identity.body), check


def test_convergence_table() -> None:
    assert converge("UpToDate", "OutOfDate") == "OutOfDate"
    assert converge("SWHardeningNeeded", "OutOfDate") == "OutOfDate"
    assert converge("ConfigurationNeeded", "OutOfDate") == "OutOfDateConfigurationNeeded"
    assert converge("ConfigurationAndSWHardeningNeeded", "OutOfDate") == "OutOfDateConfigurationNeeded"
    assert converge("OutOfDate", "OutOfDate") == "OutOfDate"
    assert converge("ConfigurationNeeded", "UpToDate") == "ConfigurationNeeded"
    assert converge("UpToDate", "Revoked") == "Revoked"


def test_all_levels_out_of_date(sgx_vectors: Path) -> None:
    tcb, qe, check = inputs(sgx_vectors, "dcapqvl_tdx_v4_2025")
    for level in tcb["tcbLevels"]:
        level["tcbStatus"] = "OutOfDate"
    assert evaluate_tcb(tcb, qe, check.pck, check.quote).status == "OutOfDate"


def test_permissive_level_makes_no_match_set_up_to_date(sgx_vectors: Path) -> None:
    """dcap-qvl's only assertion on the v5 'outdated' set: an all-zero UpToDate level matches."""
    tcb, qe, check = inputs(sgx_vectors, "dcapqvl_tdx_v5_2026_no_tcb_match")
    with pytest.raises(AttestationError) as err:
        evaluate_tcb(tcb, qe, check.pck, check.quote)
    assert err.value.reason == Reason.NO_TCB_MATCH
    zero = copy.deepcopy(tcb["tcbLevels"][-1])
    for key in ("sgxtcbcomponents", "tdxtcbcomponents"):
        for comp in zero["tcb"][key]:
            comp["svn"] = 0
    zero["tcb"]["pcesvn"] = 0
    zero["tcbStatus"] = "UpToDate"
    zero.pop("advisoryIDs", None)
    tcb["tcbLevels"].append(zero)
    assert evaluate_tcb(tcb, qe, check.pck, check.quote).status == "UpToDate"


@pytest.mark.parametrize("key", ["sgxtcbcomponents", "tdxtcbcomponents"])
def test_component_count_mismatch(sgx_vectors: Path, key: str) -> None:
    tcb, qe, check = inputs(sgx_vectors, "dcapqvl_tdx_v4_2025")
    for level in tcb["tcbLevels"]:
        level["tcb"][key] = level["tcb"][key][:15]
    with pytest.raises(AttestationError) as err:
        evaluate_tcb(tcb, qe, check.pck, check.quote)
    assert err.value.reason == Reason.MALFORMED and "count mismatch" in err.value.message


def test_qe_out_of_date_converges(sgx_vectors: Path) -> None:
    tcb, qe, check = inputs(sgx_vectors, "phala_sgx_v3_2023")
    qe["tcbLevels"] = [
        {"tcb": {"isvsvn": 99}, "tcbDate": "2030-01-01T00:00:00Z", "tcbStatus": "UpToDate"},
        {
            "tcb": {"isvsvn": 0},
            "tcbDate": "2020-01-01T00:00:00Z",
            "tcbStatus": "OutOfDate",
            "advisoryIDs": ["INTEL-SA-99999"],
        },
    ]
    result = evaluate_tcb(tcb, qe, check.pck, check.quote)
    assert (result.platform_status, result.qe_status, result.status) == (
        "ConfigurationAndSWHardeningNeeded",
        "OutOfDate",
        "OutOfDateConfigurationNeeded",
    )
    assert result.advisory_ids == ("INTEL-SA-00289", "INTEL-SA-00615", "INTEL-SA-99999")
    qe["tcbLevels"] = qe["tcbLevels"][:1]
    with pytest.raises(AttestationError) as err:
        evaluate_tcb(tcb, qe, check.pck, check.quote)
    assert err.value.reason == Reason.NO_TCB_MATCH


@pytest.mark.parametrize(
    ("field", "value"),
    [("mrsigner", "00" * 32), ("isvprodid", 7), ("miscselect", "00000001"), ("attributes", "ff" * 16)],
)
def test_different_qe_is_refused(sgx_vectors: Path, field: str, value: Any) -> None:
    tcb, qe, check = inputs(sgx_vectors, "integritee_sgx_v3_2022")
    qe[field] = value
    with pytest.raises(AttestationError) as err:
        evaluate_tcb(tcb, qe, check.pck, check.quote)
    assert err.value.reason == Reason.QE_IDENTITY


def test_tdx_module_identity(sgx_vectors: Path) -> None:
    tcb, qe, check = inputs(sgx_vectors, "dcapqvl_tdx_v4_2025")
    assert check.quote.body.tee_tcb_svn[:2] == bytes([6, 1])  # module TDX_01, SVN 6
    module = next(m for m in tcb["tdxModuleIdentities"] if m["id"] == "TDX_01")
    module["tcbLevels"][0]["tcb"]["isvsvn"] = 7  # SVN 6 now only meets the OutOfDate level
    result = evaluate_tcb(tcb, qe, check.pck, check.quote)
    assert (result.tdx_module_status, result.status) == ("OutOfDate", "OutOfDate")
    module["mrsigner"] = "11" * 48
    with pytest.raises(AttestationError) as err:
        evaluate_tcb(tcb, qe, check.pck, check.quote)
    assert err.value.reason == Reason.TDX_MODULE
    tcb["tdxModuleIdentities"] = [m for m in tcb["tdxModuleIdentities"] if m["id"] != "TDX_01"]
    with pytest.raises(AttestationError) as err:
        evaluate_tcb(tcb, qe, check.pck, check.quote)
    assert err.value.reason == Reason.TDX_MODULE


def test_td15_relaunch_advised(sgx_vectors: Path) -> None:
    """TD 1.5: module out of date at launch (TEE_TCB_SVN) but current now (TEE_TCB_SVN2)."""
    tcb, qe, check = inputs(sgx_vectors, "automata_tdx_v5_2025")
    td = check.quote.body
    assert td.tee_tcb_svn2 is not None
    version = td.tee_tcb_svn[1]
    module = next(m for m in tcb["tdxModuleIdentities"] if m["id"] == f"TDX_{version:02X}")
    module["tcbLevels"] = [
        {"tcb": {"isvsvn": td.tee_tcb_svn[0] + 1}, "tcbDate": "2025-01-01T00:00:00Z", "tcbStatus": "UpToDate"},
        {"tcb": {"isvsvn": 0}, "tcbDate": "2020-01-01T00:00:00Z", "tcbStatus": "OutOfDate"},
    ]
    assert evaluate_tcb(tcb, qe, check.pck, check.quote).status == "OutOfDate"  # SVN2 == SVN: not current either
    newer = bytes([td.tee_tcb_svn[0] + 1]) + td.tee_tcb_svn2[1:]
    quote = dataclasses.replace(check.quote, body=dataclasses.replace(td, tee_tcb_svn2=newer))
    assert evaluate_tcb(tcb, qe, check.pck, quote).status == "TDRelaunchAdvised"


def test_revoked_level(sgx_vectors: Path) -> None:
    tcb, qe, check = inputs(sgx_vectors, "integritee_sgx_v3_2022")
    for level in tcb["tcbLevels"]:
        level["tcbStatus"] = "Revoked"
    assert evaluate_tcb(tcb, qe, check.pck, check.quote).status == "Revoked"
