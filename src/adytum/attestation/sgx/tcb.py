"""Intel's TCB status rules: platform TCB levels, QE identity, TDX module identity, convergence.

Follows Intel's Quote Verification Library (``TcbLevelCheck``, ``TdxModuleCheck``,
``TDRelaunchCheck``, ``EnclaveReportVerifier``):

* platform: the first ``tcbLevels`` entry whose every SGX component SVN and PCESVN is <= the
  PCK certificate's; for TDX, the first such entry whose TDX components are also <= TEE_TCB_SVN
  (from byte 2 on when the TDX module version TEE_TCB_SVN[1] > 0);
* TDX module: identity ``TDX_<version as two hex digits>`` (or the plain ``tdxModule`` for
  version 0), MRSIGNER_SEAM equal, SEAM attributes zero and equal; first level with isvsvn <=
  TEE_TCB_SVN[0];
* QE: mrsigner, isvprodid, masked miscselect and attributes equal; first level with
  isvsvn <= the QE's ISVSVN;
* convergence: an OutOfDate QE or module turns UpToDate/SWHardeningNeeded into OutOfDate and
  Configuration* into OutOfDateConfigurationNeeded; Revoked anywhere is Revoked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adytum.attestation.errors import AttestationError, Reason
from adytum.attestation.sgx.collateral import parse_time
from adytum.attestation.sgx.pck import PckInfo
from adytum.attestation.sgx.quote import EnclaveReport, Quote, TdReport

__all__ = ["TcbResult", "evaluate_tcb", "platform_levels", "qe_identity_status", "tdx_module_status", "converge"]

UP_TO_DATE = "UpToDate"
SW_HARDENING = "SWHardeningNeeded"
CONFIG = "ConfigurationNeeded"
CONFIG_SW = "ConfigurationAndSWHardeningNeeded"
OUT_OF_DATE = "OutOfDate"
OUT_OF_DATE_CONFIG = "OutOfDateConfigurationNeeded"
REVOKED = "Revoked"
RELAUNCH = "TDRelaunchAdvised"
RELAUNCH_CONFIG = "TDRelaunchAdvisedConfigurationNeeded"
PLATFORM_STATUSES = frozenset({UP_TO_DATE, SW_HARDENING, CONFIG, CONFIG_SW, OUT_OF_DATE, OUT_OF_DATE_CONFIG, REVOKED})
IDENTITY_STATUSES = frozenset({UP_TO_DATE, OUT_OF_DATE, REVOKED})
_CONFIG_STATUSES = frozenset({CONFIG, CONFIG_SW, OUT_OF_DATE_CONFIG, RELAUNCH_CONFIG})


@dataclass(frozen=True)
class TcbResult:
    """The converged status and how it was reached."""

    status: str
    advisory_ids: tuple[str, ...]
    tcb_date: datetime | None
    platform_status: str
    qe_status: str
    tdx_module_status: str | None


def _bad(what: str) -> AttestationError:
    return AttestationError(Reason.MALFORMED, f"TCB info: {what}")


def _hex(value: Any, what: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except (TypeError, ValueError):
        raise _bad(f"{what} is not hex") from None


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _bad(f"{what} is not a non-negative integer")
    return value


def _status(level: dict[str, Any], allowed: frozenset[str], what: str) -> str:
    status = level.get("tcbStatus")
    if status not in allowed:
        raise _bad(f"{what} has unknown tcbStatus {status!r}")
    return str(status)


def _sgx_components(tcb: dict[str, Any], version: int) -> list[int]:
    if version >= 3:
        comps = tcb.get("sgxtcbcomponents")
        if not isinstance(comps, list) or len(comps) != 16:
            raise _bad("SGX component count mismatch (need 16)")
        return [_int(c.get("svn") if isinstance(c, dict) else None, "sgx svn") for c in comps]
    return [_int(tcb.get(f"sgxtcbcomp{n:02d}svn"), f"sgxtcbcomp{n:02d}svn") for n in range(1, 17)]


def _tdx_components(tcb: dict[str, Any]) -> list[int]:
    comps = tcb.get("tdxtcbcomponents")
    if not isinstance(comps, list) or len(comps) != 16:
        raise _bad("TDX component count mismatch (need 16)")
    return [_int(c.get("svn") if isinstance(c, dict) else None, "tdx svn") for c in comps]


def _levels(container: dict[str, Any], what: str) -> list[dict[str, Any]]:
    levels = container.get("tcbLevels")
    if not isinstance(levels, list) or not all(
        isinstance(lv, dict) and isinstance(lv.get("tcb"), dict) for lv in levels
    ):
        raise _bad(f"{what} tcbLevels missing or malformed")
    return levels


def platform_levels(
    tcb_info: dict[str, Any], pck: PckInfo, tee_tcb_svn: bytes | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(first level the SGX TCB satisfies, first level SGX *and* TDX TCB satisfy, or None)."""
    version = _int(tcb_info.get("version"), "version")
    sgx_level: dict[str, Any] | None = None
    for level in _levels(tcb_info, "platform"):
        tcb = level["tcb"]
        required = _sgx_components(tcb, version)
        if any(have < need for have, need in zip(pck.components, required, strict=False)):
            continue
        if pck.pce_svn < _int(tcb.get("pcesvn"), "pcesvn"):
            continue
        if tee_tcb_svn is None:
            return level, None
        sgx_level = sgx_level or level
        start = 2 if tee_tcb_svn[1] > 0 else 0
        tdx_required = _tdx_components(tcb)
        if all(tee_tcb_svn[i] >= tdx_required[i] for i in range(start, 16)):
            return sgx_level, level
    return sgx_level, None


def qe_identity_status(identity: dict[str, Any], report: EnclaveReport) -> tuple[str, tuple[str, ...]]:
    """The QE's status by Intel's enclave identity: refuse a different QE, then match isvsvn."""
    mask = int.from_bytes(_hex(identity.get("miscselectMask"), "miscselectMask"), "big")
    if report.misc_select & mask != int.from_bytes(_hex(identity.get("miscselect"), "miscselect"), "big"):
        raise AttestationError(Reason.QE_IDENTITY, "QE miscselect does not match Intel's QE identity")
    attr_mask = _hex(identity.get("attributesMask"), "attributesMask")
    expected = _hex(identity.get("attributes"), "attributes")
    if len(attr_mask) != 16 or len(expected) != 16:
        raise _bad("QE identity attributes must be 16 bytes")
    if bytes(a & m for a, m in zip(report.attributes, attr_mask, strict=True)) != expected:
        raise AttestationError(Reason.QE_IDENTITY, "QE attributes do not match Intel's QE identity")
    if report.mr_signer != _hex(identity.get("mrsigner"), "mrsigner"):
        raise AttestationError(Reason.QE_IDENTITY, "QE mrsigner is not Intel's")
    if report.isv_prod_id != identity.get("isvprodid"):
        raise AttestationError(
            Reason.QE_IDENTITY, f"QE isvprodid {report.isv_prod_id} is not {identity.get('isvprodid')}"
        )
    for level in _levels(identity, "QE identity"):
        if report.isv_svn >= _int(level["tcb"].get("isvsvn"), "QE isvsvn"):
            return _status(level, IDENTITY_STATUSES, "QE identity level"), tuple(level.get("advisoryIDs") or ())
    raise AttestationError(Reason.NO_TCB_MATCH, f"no QE identity TCB level for QE ISVSVN {report.isv_svn}")


def _module_identity(tcb_info: dict[str, Any], version: int) -> dict[str, Any]:
    wanted = f"TDX_{version:02X}"
    for ident in tcb_info.get("tdxModuleIdentities") or ():
        if isinstance(ident, dict) and str(ident.get("id", "")).upper() == wanted:
            return ident
    raise AttestationError(Reason.TDX_MODULE, f"TCB info has no TDX module identity {wanted}")


def tdx_module_status(tcb_info: dict[str, Any], td: TdReport, quote_version: int) -> str | None:
    """Check the TDX module's signer and attributes; return its TCB status (None for version 0)."""
    module = tcb_info.get("tdxModule")
    if not isinstance(module, dict):
        raise _bad("TDX TCB info has no tdxModule")
    version = td.tee_tcb_svn[1]
    identity = _module_identity(tcb_info, version) if quote_version > 3 and version > 0 else None
    source = identity or module
    if td.mr_signer_seam != _hex(source.get("mrsigner"), "tdxModule mrsigner"):
        raise AttestationError(Reason.TDX_MODULE, "MRSIGNER_SEAM does not match the TDX module signer")
    if any(td.seam_attributes) or td.seam_attributes != _hex(source.get("attributes"), "tdxModule attributes"):
        raise AttestationError(Reason.TDX_MODULE, "SEAM attributes are not zero / do not match the TCB info")
    if identity is None:
        return None
    for level in _levels(identity, "TDX module"):
        if td.tee_tcb_svn[0] >= _int(level["tcb"].get("isvsvn"), "module isvsvn"):
            return _status(level, IDENTITY_STATUSES, "TDX module level")
    raise AttestationError(Reason.NO_TCB_MATCH, f"no TDX module TCB level for module SVN {td.tee_tcb_svn[0]}")


def converge(status: str, component: str | None) -> str:
    """Intel's rule for folding a QE or TDX module status into the platform status."""
    if component == OUT_OF_DATE:
        if status in (UP_TO_DATE, SW_HARDENING):
            return OUT_OF_DATE
        if status in (CONFIG, CONFIG_SW):
            return OUT_OF_DATE_CONFIG
    if component == REVOKED:
        return REVOKED
    return status


def _relaunch(
    tcb_info: dict[str, Any], td: TdReport, sgx_status: str, tdx_status: str, module_status: str | None, qe_status: str
) -> str:
    """TD 1.5 quotes: advise relaunch when the TD was built on an older module but TEE_TCB_SVN2 is current."""
    svn2 = td.tee_tcb_svn2
    if svn2 is None or qe_status != UP_TO_DATE or module_status != OUT_OF_DATE:
        return tdx_status
    if sgx_status not in (UP_TO_DATE, SW_HARDENING, CONFIG, CONFIG_SW) or tdx_status not in (
        OUT_OF_DATE,
        OUT_OF_DATE_CONFIG,
    ):
        return tdx_status
    latest = _levels(tcb_info, "platform")[0]
    latest_tdx = _tdx_components(latest["tcb"])
    if svn2[1] == 0:
        current = svn2[0] >= latest_tdx[0]
    else:
        module_levels = _levels(_module_identity(tcb_info, svn2[1]), "TDX module")
        current = bool(module_levels) and svn2[0] >= _int(module_levels[0]["tcb"].get("isvsvn"), "module isvsvn")
    if current and svn2[2] >= latest_tdx[2]:
        return RELAUNCH_CONFIG if sgx_status in _CONFIG_STATUSES or tdx_status in _CONFIG_STATUSES else RELAUNCH
    return tdx_status


def evaluate_tcb(tcb_info: dict[str, Any], qe_identity: dict[str, Any], pck: PckInfo, quote: Quote) -> TcbResult:
    """The converged TCB status of a quote, or :class:`AttestationError` if Intel's rules give none."""
    td = quote.body if isinstance(quote.body, TdReport) else None
    qe_status, qe_advisories = qe_identity_status(qe_identity, quote.signature.qe_report)
    module_status = tdx_module_status(tcb_info, td, quote.header.version) if td else None
    sgx_level, tdx_level = platform_levels(tcb_info, pck, td.tee_tcb_svn if td else None)
    if sgx_level is None or (td is not None and tdx_level is None):
        svn = f", TEE_TCB_SVN {td.tee_tcb_svn.hex()}" if td else ""
        raise AttestationError(
            Reason.NO_TCB_MATCH,
            f"no TCB level for CPUSVN {pck.cpu_svn.hex()}, PCESVN {pck.pce_svn}{svn} (TCB not supported)",
        )
    level = tdx_level if td else sgx_level
    assert level is not None
    sgx_status = _status(sgx_level, PLATFORM_STATUSES, "platform level")
    status = _status(level, PLATFORM_STATUSES, "platform level")
    if td is not None:
        status = converge(status, module_status)
        if status != REVOKED:
            status = _relaunch(tcb_info, td, sgx_status, status, module_status, qe_status)
    platform_status = status
    status = converge(status, qe_status)
    advisories: list[str] = []
    for adv in (*(level.get("advisoryIDs") or ()), *qe_advisories):
        if adv not in advisories:
            advisories.append(str(adv))
    date = parse_time(level["tcbDate"], "tcbDate") if "tcbDate" in level else None
    return TcbResult(status, tuple(advisories), date, platform_status, qe_status, module_status)
