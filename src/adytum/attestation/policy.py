"""What a verifier will accept (:class:`Policy`) and what it found (:class:`Verdict`).

Both are evidence-agnostic: SGX DCAP, TDX DCAP, IAS and simulated evidence all produce a
:class:`Verdict`, and :meth:`Policy.enforce` applies the same rules (debug, measurements,
product, SVN, report data, TCB status, time window, freshness) to every kind. Hardware-specific
checks (signatures, chains, TCB levels) happen before, in the evidence's own verifier.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from adytum.attestation.errors import AttestationError, Reason

__all__ = [
    "ALL_STATUSES",
    "IAS_STATUS_MAP",
    "Policy",
    "Verdict",
    "measurement_set",
    "normalize_status",
    "require_aware",
]

#: Every TCB status Intel defines, in DCAP spelling.
ALL_STATUSES: frozenset[str] = frozenset(
    {
        "UpToDate",
        "SWHardeningNeeded",
        "ConfigurationNeeded",
        "ConfigurationAndSWHardeningNeeded",
        "OutOfDate",
        "OutOfDateConfigurationNeeded",
        "TDRelaunchAdvised",
        "TDRelaunchAdvisedConfigurationNeeded",
    }
)

#: IAS ``isvEnclaveQuoteStatus`` values that describe a platform TCB, in DCAP spelling.
IAS_STATUS_MAP: dict[str, str] = {
    "OK": "UpToDate",
    "SW_HARDENING_NEEDED": "SWHardeningNeeded",
    "CONFIGURATION_NEEDED": "ConfigurationNeeded",
    "CONFIGURATION_AND_SW_HARDENING_NEEDED": "ConfigurationAndSWHardeningNeeded",
    "GROUP_OUT_OF_DATE": "OutOfDate",
}


def normalize_status(status: str) -> str:
    """Accept DCAP names and IAS names ("OK", "GROUP_OUT_OF_DATE") alike; return the DCAP name."""
    if status in ALL_STATUSES:
        return status
    if status in IAS_STATUS_MAP:
        return IAS_STATUS_MAP[status]
    raise ValueError(f"unknown TCB status {status!r}; known: {sorted(ALL_STATUSES | set(IAS_STATUS_MAP))}")


def require_aware(at: datetime) -> datetime:
    """The verification time must say its zone: a naive time would be read differently on every host."""
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("the verification time `at` must be a timezone-aware datetime (datetime.now(timezone.utc))")
    return at


def _as_bytes(value: bytes | str) -> bytes:
    return bytes.fromhex(value) if isinstance(value, str) else bytes(value)


def measurement_set(values: Iterable[bytes | str]) -> frozenset[bytes]:
    """Measurements given as bytes or hex (an allow-list from a command line or a config), as a Policy holds them."""
    return frozenset(_as_bytes(v) for v in values)


@dataclass(frozen=True)
class Policy:
    """The verifier's rules. Defaults are production: UpToDate only, no debug, CRLs required.

    Empty allow-lists mean "any". Hex strings are accepted wherever bytes are. The verification
    time is not part of the rules: every verify function takes it as ``at=``, so one policy judges
    fresh evidence now and old evidence at its own time.
    """

    accepted_statuses: frozenset[str] = frozenset({"UpToDate"})
    allow_debug: bool = False
    mr_enclaves: frozenset[bytes] = frozenset()
    mr_signers: frozenset[bytes] = frozenset()
    mr_tds: frozenset[bytes] = frozenset()
    #: Per-RTMR allow-lists, index 0..3; missing or empty entries allow anything.
    rtmrs: tuple[frozenset[bytes], ...] = ()
    isv_prod_id: int | None = None
    min_isv_svn: int | None = None
    #: The report data must start with these bytes (a nonce, or a hash binding a key).
    report_data_prefix: bytes | None = None
    #: Refuse collateral (or an IAS report) issued longer ago than this.
    max_collateral_age: timedelta | None = None
    #: Intel's rules check the PCK and Root CA CRLs; only relax this for historical vectors.
    require_crls: bool = True

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "accepted_statuses", frozenset(normalize_status(s) for s in self.accepted_statuses))
        set_(self, "mr_enclaves", measurement_set(self.mr_enclaves))
        set_(self, "mr_signers", measurement_set(self.mr_signers))
        set_(self, "mr_tds", measurement_set(self.mr_tds))
        if len(self.rtmrs) > 4:
            raise ValueError("a TD has four RTMRs")
        set_(self, "rtmrs", tuple(measurement_set(r) for r in self.rtmrs))
        if self.report_data_prefix is not None:
            set_(self, "report_data_prefix", _as_bytes(self.report_data_prefix))

    def enforce(self, verdict: Verdict, *, at: datetime) -> Verdict:
        """Return ``verdict`` if this policy accepts it at time ``at``, else raise :class:`AttestationError`
        (carrying it)."""
        require_aware(at)
        try:
            self._check(verdict, at)
        except AttestationError as exc:
            exc.verdict = verdict
            raise
        return verdict

    def _check(self, verdict: Verdict, at: datetime) -> None:
        self._check_time(verdict, at)
        if verdict.debug and not self.allow_debug:
            raise AttestationError(Reason.DEBUG, f"{verdict.kind} evidence comes from a debug enclave/TD")
        self._check_measurements(verdict)
        if self.isv_prod_id is not None and verdict.isv_prod_id != self.isv_prod_id:
            raise AttestationError(
                Reason.PRODUCT, f"isv_prod_id {verdict.isv_prod_id} is not the required {self.isv_prod_id}"
            )
        if self.min_isv_svn is not None and (verdict.isv_svn is None or verdict.isv_svn < self.min_isv_svn):
            raise AttestationError(Reason.SVN, f"isv_svn {verdict.isv_svn} is below the minimum {self.min_isv_svn}")
        if self.report_data_prefix is not None and not verdict.report_data.startswith(self.report_data_prefix):
            raise AttestationError(Reason.REPORT_DATA, "report data does not start with the expected value")
        if verdict.tcb_status is None or verdict.tcb_status not in self.accepted_statuses:
            accepted = ", ".join(sorted(self.accepted_statuses)) or "nothing"
            raise AttestationError(
                Reason.TCB_STATUS,
                f"TCB status {verdict.tcb_status} is not accepted (policy accepts {accepted})"
                + (f"; advisories {', '.join(verdict.advisory_ids)}" if verdict.advisory_ids else ""),
            )

    def _check_time(self, verdict: Verdict, at: datetime) -> None:
        if verdict.valid_from is not None and at < verdict.valid_from:
            raise AttestationError(
                Reason.NOT_YET_VALID, f"evidence is valid from {_iso(verdict.valid_from)}, verifying at {_iso(at)}"
            )
        if verdict.valid_until is not None and at > verdict.valid_until:
            raise AttestationError(
                Reason.EXPIRED, f"evidence expired at {_iso(verdict.valid_until)}, verifying at {_iso(at)}"
            )
        if self.max_collateral_age is not None:
            if verdict.issued_at is None:
                raise AttestationError(Reason.STALE, "evidence carries no issue time and the policy has a maximum age")
            age = at - verdict.issued_at
            if age > self.max_collateral_age:
                raise AttestationError(
                    Reason.STALE,
                    f"issued {_iso(verdict.issued_at)}, {age} before {_iso(at)} (max {self.max_collateral_age})",
                )

    def _check_measurements(self, verdict: Verdict) -> None:
        checks = [
            ("mr_enclave", self.mr_enclaves, verdict.mr_enclave),
            ("mr_signer", self.mr_signers, verdict.mr_signer),
        ]
        checks.append(("MRTD", self.mr_tds, verdict.mr_td))
        for index, allowed in enumerate(self.rtmrs):
            value = verdict.rtmrs[index] if index < len(verdict.rtmrs) else None
            checks.append((f"RTMR{index}", allowed, value))
        for name, allowed, value in checks:
            if allowed and value not in allowed:
                shown = value.hex() if value is not None else "absent"
                raise AttestationError(Reason.MEASUREMENT, f"{name} {shown} is not in the allow-list")


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


@dataclass(frozen=True)
class Verdict:
    """What verified evidence says about the enclave or TD that produced it.

    ``valid_from``/``valid_until`` bound the times at which the evidence and all its collateral
    are valid; ``issued_at`` is the issue time of the oldest short-lived collateral item (or the
    IAS report time), used for :attr:`Policy.max_collateral_age`.
    """

    kind: str
    tcb_status: str | None
    verified_at: datetime
    advisory_ids: tuple[str, ...] = ()
    debug: bool = False
    report_data: bytes = b""
    mr_enclave: bytes | None = None
    mr_signer: bytes | None = None
    isv_prod_id: int | None = None
    isv_svn: int | None = None
    mr_td: bytes | None = None
    rtmrs: tuple[bytes, ...] = ()
    mr_seam: bytes | None = None
    tee_tcb_svn: bytes | None = None
    fmspc: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    issued_at: datetime | None = None
    tcb_date: datetime | None = None
    #: Intermediate results: platform, QE, TDX module statuses; the raw IAS status.
    platform_status: str | None = None
    qe_status: str | None = None
    tdx_module_status: str | None = None
    raw_status: str | None = None
    #: Checks that could not be made with the collateral given (e.g. "pck-crl").
    unchecked: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: bytes as hex, times as ISO 8601 UTC."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, bytes):
                value = value.hex()
            elif isinstance(value, datetime):
                value = _iso(value)
            elif isinstance(value, tuple):
                value = [v.hex() if isinstance(v, bytes) else v for v in value]
            out[name] = value
        return out

    def to_json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True)

    def describe(self) -> str:
        """The verdict in words, one fact per line."""
        lines = [f"{self.kind} evidence, TCB status {self.tcb_status or 'unknown'}"]
        if self.raw_status:
            lines[0] += f" (IAS: {self.raw_status})"
        if self.advisory_ids:
            lines.append(f"advisories: {', '.join(self.advisory_ids)}")
        parts = [("platform", self.platform_status), ("QE", self.qe_status), ("TDX module", self.tdx_module_status)]
        shown = [f"{n} {s}" for n, s in parts if s]
        if shown:
            lines.append("component statuses: " + ", ".join(shown))
        lines.append("debug mode: " + ("YES (not for production)" if self.debug else "no"))
        for label, value in (
            ("mr_enclave", _hex(self.mr_enclave)),
            ("mr_signer", _hex(self.mr_signer)),
            ("MRTD", _hex(self.mr_td)),
            ("MRSEAM", _hex(self.mr_seam)),
            ("TEE TCB SVN", _hex(self.tee_tcb_svn)),
        ):
            if value is not None:
                lines.append(f"{label}: {value}")
        for index, rtmr in enumerate(self.rtmrs):
            lines.append(f"RTMR{index}: {rtmr.hex()}")
        if self.isv_prod_id is not None:
            lines.append(f"isv_prod_id {self.isv_prod_id}, isv_svn {self.isv_svn}")
        lines.append(f"report data: {self.report_data.hex()}")
        if self.fmspc:
            lines.append(f"FMSPC: {self.fmspc}")
        if self.tcb_date:
            lines.append(f"TCB level date: {_iso(self.tcb_date)}")
        lines.append(f"valid from {_iso(self.valid_from) or '-'} until {_iso(self.valid_until) or '-'}")
        lines.append(f"verified at {_iso(self.verified_at)}")
        if self.unchecked:
            lines.append("NOT checked (collateral missing): " + ", ".join(self.unchecked))
        return "\n".join(lines)
