"""What a verifier will accept (:class:`Policy`) and what it found (:class:`Verdict`).

Both are evidence-agnostic: SGX DCAP, TDX DCAP, IAS, AMD SEV-SNP, AWS Nitro, NVIDIA GPU and
simulated evidence all produce a :class:`Verdict`, and :meth:`Policy.enforce` applies the same rules
(debug, measurements, product, SVN, report data, nonce, TCB status, time window, freshness) to every
kind. Hardware-specific checks (signatures, chains, TCB levels) happen before, in the evidence's own
verifier.

The collateral freshness rule, one for every format:

1. Collateral that states its own next update (a CRL, Intel's TCB info and QE identity) is current
   until that next update, and the format's verifier refuses it after (``expired``). The policy's
   maximum age never cuts that short: a 7-day limit must not reject Intel's valid 30-day CRL.
2. Evidence or collateral that carries only an issue time (a Nitro document, an IAS report, a
   simulated report) is current for ``max_collateral_age`` plus ``collateral_grace`` after it.
3. With a maximum age set, evidence with no time at all (no issue time, no next update) is refused
   as ``stale``: bind a nonce instead, and verify without a maximum age.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from adytum.attestation.errors import AttestationError, Reason

__all__ = [
    "ALL_STATUSES",
    "IAS_STATUS_MAP",
    "STATUSLESS_KINDS",
    "Policy",
    "Verdict",
    "measurement_set",
    "normalize_status",
    "require_aware",
]

#: Evidence kinds with no TCB status of their own: their TCB is judged by ``min_svns``.
STATUSLESS_KINDS: frozenset[str] = frozenset({"sev-snp", "aws-nitro", "nvidia-gpu"})

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
    #: Refuse evidence or collateral with only an issue time once it is older than this (plus the grace).
    max_collateral_age: timedelta | None = None
    #: Added to ``max_collateral_age``: how long a late refresh is tolerated.
    collateral_grace: timedelta = timedelta(0)
    #: Check revocation lists (Intel's PCK and Root CA CRLs, AMD's ARK CRL); only relax for historical vectors.
    require_crls: bool = True
    #: Named allow-lists for any format's measurements ("MEASUREMENT" for SEV-SNP, "PCR0".."PCR15" for
    #: Nitro, "block1".. for NVIDIA GPUs); a name the evidence does not carry is refused.
    measurements: Mapping[str, frozenset[bytes]] = field(default_factory=dict)
    #: Minimum security versions by name (SEV-SNP "bootloader", "tee", "snp", "microcode", "fmc", "guest_svn").
    min_svns: Mapping[str, int] = field(default_factory=dict)
    #: The nonce the evidence must carry (Nitro ``nonce``, the NVIDIA GET_MEASUREMENTS request nonce).
    nonce: bytes | None = None

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
        if self.nonce is not None:
            set_(self, "nonce", _as_bytes(self.nonce))
        set_(self, "measurements", {name: measurement_set(v) for name, v in dict(self.measurements).items()})
        set_(self, "min_svns", {name: int(v) for name, v in dict(self.min_svns).items()})

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
        svns = dict(verdict.svns)
        for name, minimum in self.min_svns.items():
            if name not in svns or svns[name] < minimum:
                raise AttestationError(
                    Reason.SVN, f"{name} SVN {svns.get(name, 'absent')} is below the minimum {minimum}"
                )
        if self.report_data_prefix is not None and not verdict.report_data.startswith(self.report_data_prefix):
            raise AttestationError(Reason.REPORT_DATA, "report data does not start with the expected value")
        self._check_nonce(verdict)
        if verdict.kind in STATUSLESS_KINDS and verdict.tcb_status is None:
            return
        if verdict.tcb_status is None or verdict.tcb_status not in self.accepted_statuses:
            accepted = ", ".join(sorted(self.accepted_statuses)) or "nothing"
            raise AttestationError(
                Reason.TCB_STATUS,
                f"TCB status {verdict.tcb_status} is not accepted (policy accepts {accepted})"
                + (f"; advisories {', '.join(verdict.advisory_ids)}" if verdict.advisory_ids else ""),
            )

    def _check_nonce(self, verdict: Verdict) -> None:
        if self.nonce is None:
            return
        if verdict.nonce is None:
            raise AttestationError(
                Reason.NONCE, f"{verdict.kind} evidence carries no nonce field (bind the nonce in its report data)"
            )
        if not hmac.compare_digest(verdict.nonce, self.nonce):
            raise AttestationError(
                Reason.NONCE, f"the evidence's nonce {verdict.nonce.hex()[:64]} is not the expected {self.nonce.hex()}"
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
        if self.max_collateral_age is not None and verdict.next_update is None:
            if verdict.issued_at is None:
                raise AttestationError(Reason.STALE, "evidence carries no issue time and the policy has a maximum age")
            age = at - verdict.issued_at
            if age > self.max_collateral_age + self.collateral_grace:
                grace = f" + grace {self.collateral_grace}" if self.collateral_grace else ""
                raise AttestationError(
                    Reason.STALE,
                    f"issued {_iso(verdict.issued_at)}, {age} before {_iso(at)} (max {self.max_collateral_age}{grace})",
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
        named = dict(verdict.measurements)
        checks += [(name, allowed, named.get(name)) for name, allowed in self.measurements.items()]
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
    IAS report time, the Nitro document time) and ``next_update`` the earliest next update the
    collateral states; both feed the freshness rule (module docstring). ``checked`` and
    ``unchecked`` say what was verified and what could not be.
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
    #: Checks that were made, for formats that name them (SEV-SNP, Nitro, NVIDIA).
    checked: tuple[str, ...] = ()
    next_update: datetime | None = None
    #: Named measurements (SEV-SNP MEASUREMENT/HOST_DATA, Nitro PCRs, NVIDIA measurement blocks).
    measurements: tuple[tuple[str, bytes], ...] = ()
    #: Named security versions (SEV-SNP reported TCB components, guest SVN).
    svns: tuple[tuple[str, int], ...] = ()
    nonce: bytes | None = None
    #: What else the evidence states, as text (product, chip id, module id, driver version, ...).
    details: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: bytes as hex, times as ISO 8601 UTC."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, bytes):
                value = value.hex()
            elif isinstance(value, datetime):
                value = _iso(value)
            elif name in ("measurements", "svns", "details"):
                value = {k: v.hex() if isinstance(v, bytes) else v for k, v in value}
            elif isinstance(value, tuple):
                value = [v.hex() if isinstance(v, bytes) else v for v in value]
            out[name] = value
        return out

    def to_json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True)

    def describe(self) -> str:
        """The verdict in words, one fact per line."""
        status = "no TCB status (judged by its SVNs)" if self.kind in STATUSLESS_KINDS else "TCB status "
        lines = [
            f"{self.kind} evidence, " + (status if self.kind in STATUSLESS_KINDS else status + str(self.tcb_status))
        ]
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
        lines += [f"{name}: {value}" for name, value in self.details]
        lines += [f"{name}: {value.hex()}" for name, value in self.measurements]
        if self.svns:
            lines.append("SVNs: " + ", ".join(f"{name} {value}" for name, value in self.svns))
        if self.nonce is not None:
            lines.append(f"nonce: {self.nonce.hex()}")
        if self.isv_prod_id is not None:
            lines.append(f"isv_prod_id {self.isv_prod_id}, isv_svn {self.isv_svn}")
        lines.append(f"report data: {self.report_data.hex()}")
        if self.fmspc:
            lines.append(f"FMSPC: {self.fmspc}")
        if self.tcb_date:
            lines.append(f"TCB level date: {_iso(self.tcb_date)}")
        lines.append(f"valid from {_iso(self.valid_from) or '-'} until {_iso(self.valid_until) or '-'}")
        lines.append(f"verified at {_iso(self.verified_at)}")
        if self.checked:
            lines.append("checked: " + ", ".join(self.checked))
        if self.unchecked:
            lines.append("NOT checked: " + ", ".join(self.unchecked))
        return "\n".join(lines)
