"""``adytum attestation verify``: check hardware evidence from the command line.

Registers on the ``adytum`` command's subparsers (:func:`register`). Exit status: 0 accepted,
1 refused (the reason is printed), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..attestation.errors import AttestationError
from ..attestation.policy import ALL_STATUSES, IAS_STATUS_MAP, Policy, Verdict

__all__ = ["parse_duration", "parse_time_arg", "register", "run_verify", "verify_file"]

EPILOG = textwrap.dedent(
    """\
    FILE is either
      * a DCAP quote (binary quote.bin: SGX v3, SGX/TDX v4, TDX v5), verified with --collateral, or
      * IAS (EPID) evidence: adytum's JSON {"format": "adytum-ias/1", "report": "<exact report
        body>", "signature": "<base64>", "certificates": "<PEM chain>"}, Phala's
        {"raReport", "signature", "rawSigningCert"}, a bare *report.json with
        <prefix>sig.b64 and <prefix>signing_cert.pem beside it, or an RA-TLS certificate.

    --collateral DIR holds tcb_info.json, tcb_info_issuer_chain.pem, qe_identity.json,
    qe_identity_issuer_chain.pem, pck_crl.der and root_ca_crl.der as served by Intel PCS
    (or give a dcap-qvl collateral JSON file).

    --at is the verification time: ISO 8601 (UTC if no zone), @UNIX_SECONDS, or "now".
    Collateral is valid for about 30 days, so old evidence only verifies at its own time.

    By default the policy is production: only UpToDate (IAS: OK), no debug enclaves, CRLs
    required. Widen it explicitly with --accept, --allow-debug, --allow-missing-crls.

    examples:
      adytum attestation verify quote.bin --collateral collateral/ --at 2025-07-04T10:16:31Z
      adytum attestation verify quote.bin --collateral collateral/ --at 2023-12-06T00:22:47Z \\
          --accept UpToDate SWHardeningNeeded ConfigurationAndSWHardeningNeeded --json
      adytum attestation verify quote.bin --collateral c/ --at now --mr-enclave 33d8736d...
      adytum attestation verify ias/avalon/report.json --at 2018-07-11T19:31:00Z \\
          --accept GROUP_OUT_OF_DATE --allow-debug

    exit status: 0 accepted, 1 refused (reason printed), 2 usage error.
    """
)


def parse_time_arg(text: str) -> datetime:
    """ISO 8601 (naive means UTC), ``@<unix seconds>`` or ``now``."""
    if text == "now":
        return datetime.now(UTC)
    try:
        if text.startswith("@"):
            return datetime.fromtimestamp(float(text[1:]), UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (use 2025-07-04T10:16:31Z, @1751624191 or now)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``30d`` or plain seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text and text[-1] in units:
            return timedelta(seconds=float(text[:-1]) * units[text[-1]])
        return timedelta(seconds=float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use 3600, 2h or 30d)") from None


def _status(text: str) -> str:
    if text in ALL_STATUSES or text in IAS_STATUS_MAP:
        return text
    known = ", ".join(sorted(ALL_STATUSES | set(IAS_STATUS_MAP)))
    raise argparse.ArgumentTypeError(f"unknown status {text!r}; known: {known}")


def _hex(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not hex: {text!r}") from None


def register(subparsers: Any) -> None:
    """``attestation`` (prints its help) and ``attestation verify``, each with its ``run``."""
    group = subparsers.add_parser(
        "attestation",
        help="verify SGX/TDX hardware attestation evidence",
        description="Verify Intel SGX/TDX attestation evidence (DCAP quotes, IAS reports).",
    )
    group.set_defaults(run=lambda args: (group.print_help(), 2)[1])
    commands = group.add_subparsers(dest="attestation_command", metavar="COMMAND")
    verify = commands.add_parser(
        "verify",
        help="verify a DCAP quote or IAS report and print the verdict",
        description="Verify a DCAP quote or IAS report against Intel's rules and a policy; print the verdict.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("file", metavar="FILE", type=Path, help="quote.bin or IAS evidence (see below)")
    verify.add_argument(
        "--collateral", metavar="DIR", type=Path, help="DCAP collateral directory or dcap-qvl JSON (needed for quotes)"
    )
    verify.add_argument(
        "--at", metavar="TIME", type=parse_time_arg, required=True, help="verification time: ISO 8601, @unix or now"
    )
    verify.add_argument("--json", action="store_true", help="print the verdict as JSON")
    verify.add_argument("--allow-debug", action="store_true", help="accept debug enclaves / TDs (never in production)")
    verify.add_argument(
        "--accept",
        metavar="STATUS",
        nargs="+",
        type=_status,
        default=["UpToDate"],
        help="acceptable TCB statuses (DCAP or IAS names; default UpToDate)",
    )
    verify.add_argument(
        "--mr-enclave", metavar="HEX", nargs="+", type=_hex, default=[], help="allowed MRENCLAVE values"
    )
    verify.add_argument("--mr-signer", metavar="HEX", nargs="+", type=_hex, default=[], help="allowed MRSIGNER values")
    verify.add_argument("--mr-td", metavar="HEX", nargs="+", type=_hex, default=[], help="allowed TDX MRTD values")
    verify.add_argument("--isv-prod-id", metavar="N", type=int, help="required ISV product id")
    verify.add_argument("--min-isv-svn", metavar="N", type=int, help="minimum ISV security version")
    verify.add_argument(
        "--report-data", metavar="HEX", type=_hex, help="required report-data prefix (nonce or key hash)"
    )
    verify.add_argument(
        "--max-age",
        metavar="DURATION",
        type=parse_duration,
        help="refuse collateral/report older than this (e.g. 2h, 30d)",
    )
    verify.add_argument(
        "--allow-missing-crls", action="store_true", help="verify without PCK/Root CA CRLs (reported as unchecked)"
    )
    verify.set_defaults(run=run_verify)


def _policy(args: argparse.Namespace) -> Policy:
    return Policy(
        accepted_statuses=frozenset(args.accept),
        allow_debug=args.allow_debug,
        mr_enclaves=frozenset(args.mr_enclave),
        mr_signers=frozenset(args.mr_signer),
        mr_tds=frozenset(args.mr_td),
        isv_prod_id=args.isv_prod_id,
        min_isv_svn=args.min_isv_svn,
        report_data_prefix=args.report_data,
        max_collateral_age=args.max_age,
        require_crls=not args.allow_missing_crls,
    )


def _is_dcap_quote(data: bytes) -> bool:
    return len(data) >= 2 and data[1] == 0 and data[0] in (3, 4, 5)


def verify_file(path: Path, collateral: Path | None, policy: Policy, *, at: datetime) -> Verdict:
    """Verify a quote or IAS evidence file at time ``at``; raise :class:`AttestationError` if refused."""
    from ..attestation.sgx.collateral import load_collateral
    from ..attestation.sgx.dcap import verify_dcap_quote
    from ..attestation.sgx.ias import load_ias_evidence, verify_ias_evidence

    data = path.read_bytes()
    if _is_dcap_quote(data):
        if collateral is None:
            raise ValueError("a DCAP quote needs --collateral DIR")
        return verify_dcap_quote(data, load_collateral(collateral), policy, at=at)
    return verify_ias_evidence(load_ias_evidence(path), policy, at=at)


def run_verify(args: argparse.Namespace) -> int:
    """Handler for ``attestation verify``: print the verdict (words or JSON) and return the exit code."""
    if not args.file.is_file():
        print(f"adytum attestation verify: no such file {args.file}", file=sys.stderr)
        return 2
    if args.collateral is not None and not args.collateral.exists():
        print(f"adytum attestation verify: no such collateral {args.collateral}", file=sys.stderr)
        return 2
    policy = _policy(args)
    try:
        verdict = verify_file(args.file, args.collateral, policy, at=args.at)
    except ValueError as exc:
        print(f"adytum attestation verify: {exc}", file=sys.stderr)
        return 2
    except AttestationError as exc:
        seen = exc.verdict if isinstance(exc.verdict, Verdict) else None
        if args.json:
            out = {
                "accepted": False,
                "reason": exc.reason.value,
                "message": exc.message,
                "verdict": seen.to_json() if seen else None,
            }
            print(json.dumps(out, indent=2, sort_keys=True))
        else:
            print(f"REFUSED ({exc.reason.value}): {exc.message}")
            if seen is not None:
                print("what the evidence says:")
                print(textwrap.indent(seen.describe(), "  "))
        return 1
    if args.json:
        print(
            json.dumps(
                {"accepted": True, "reason": None, "message": None, "verdict": verdict.to_json()},
                indent=2,
                sort_keys=True,
            )
        )
    else:
        print("ACCEPTED")
        print(textwrap.indent(verdict.describe(), "  "))
    return 0
