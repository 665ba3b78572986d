"""``adytum attestation verify``: check hardware evidence (Intel, AMD, AWS, NVIDIA) from the command line.

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
    FILE is recognised by its content:
      * an AMD SEV-SNP attestation report (1184 bytes, v2/v3/v5); --collateral holds its VCEK or
        VLEK (DER or PEM) and optionally AMD's cert_chain and ARK CRL. The Milan, Genoa and Turin
        ARK/ASK/ASVK are built in.
      * an AWS Nitro Enclaves attestation document (COSE_Sign1 CBOR, raw or base64); needs no
        collateral, the AWS Nitro root is built in. Verify at the document's time (its leaf
        certificate lives about 3 hours).
      * NVIDIA H100/H200/Blackwell GPU evidence (SPDM GET_MEASUREMENTS, raw or hex); --collateral
        holds the GPU's device certificate chain and optionally RIMs to compare measurements with.
        OCSP and the RIMs' own signatures are not checked, and the verdict says so.
      * a DCAP quote (binary quote.bin: SGX v3, SGX/TDX v4, TDX v5), verified with --collateral
        holding tcb_info.json, tcb_info_issuer_chain.pem, qe_identity.json,
        qe_identity_issuer_chain.pem, pck_crl.der and root_ca_crl.der as served by Intel PCS
        (or a dcap-qvl collateral JSON file), or
      * IAS (EPID) evidence: adytum's JSON {"format": "adytum-ias/1", "report": "<exact report
        body>", "signature": "<base64>", "certificates": "<PEM chain>"}, Phala's
        {"raReport", "signature", "rawSigningCert"}, a bare *report.json with
        <prefix>sig.b64 and <prefix>signing_cert.pem beside it, or an RA-TLS certificate.

    For SEV-SNP, Nitro and NVIDIA, the files in --collateral DIR are recognised by content
    (certificates, CRLs, RIMs), whatever their names. --cache DIR keeps every item used,
    content-addressed, and offers the ones still current at --at to later runs.

    --nonce HEX is the nonce the evidence must carry (Nitro nonce, NVIDIA request nonce);
    for formats without a nonce field bind it in the report data (--report-data).

    Freshness: collateral with its own next update (CRLs, TCB info) is used until then; evidence
    with only an issue time (Nitro, IAS) is refused after --max-age plus --grace.

    --at is the verification time: ISO 8601 (UTC if no zone), @UNIX_SECONDS, or "now".
    Collateral is valid for about 30 days, so old evidence only verifies at its own time.

    By default the policy is production: only UpToDate (IAS: OK), no debug enclaves, CRLs
    required (AMD's ARK CRL too). Widen it explicitly with --accept, --allow-debug,
    --allow-missing-crls.

    examples:
      adytum attestation verify quote.bin --collateral collateral/ --at 2025-07-04T10:16:31Z
      adytum attestation verify quote.bin --collateral collateral/ --at 2023-12-06T00:22:47Z \\
          --accept UpToDate SWHardeningNeeded ConfigurationAndSWHardeningNeeded --json
      adytum attestation verify quote.bin --collateral c/ --at now --mr-enclave 33d8736d...
      adytum attestation verify ias/avalon/report.json --at 2018-07-11T19:31:00Z \\
          --accept GROUP_OUT_OF_DATE --allow-debug
      adytum attestation verify report.bin --collateral vcek/ --at 2025-01-01T00:00:00Z \\
          --allow-missing-crls --json
      adytum attestation verify nitro.cbor --at 2024-09-07T14:37:39.545Z --measurement PCR0=f4d4...
      adytum attestation verify gpu.bin --collateral gpu-certs/ --nonce 931d8dd0... --at now

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
        help="verify hardware attestation evidence (SGX/TDX, SEV-SNP, Nitro, NVIDIA GPU)",
        description="Verify hardware attestation evidence: Intel SGX/TDX (DCAP quotes, IAS reports), AMD "
        "SEV-SNP reports, AWS Nitro Enclaves documents, NVIDIA GPU evidence.",
    )
    group.set_defaults(run=lambda args: (group.print_help(), 2)[1])
    commands = group.add_subparsers(dest="attestation_command", metavar="COMMAND")
    verify = commands.add_parser(
        "verify",
        help="verify evidence of any supported kind and print the verdict",
        description="Verify attestation evidence against its vendor's rules and a policy; print the verdict.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("file", metavar="FILE", type=Path, help="the evidence (see below)")
    verify.add_argument(
        "--collateral", metavar="DIR", type=Path, help="collateral directory or file (what the format needs, see below)"
    )
    verify.add_argument("--cache", metavar="DIR", type=Path, help="on-disk collateral cache (SEV-SNP, Nitro, NVIDIA)")
    verify.add_argument("--nonce", metavar="HEX", type=_hex, help="the nonce the evidence must carry")
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
    verify.add_argument(
        "--measurement",
        metavar="NAME=HEX",
        nargs="+",
        type=_named_hex,
        default=[],
        help="allowed named measurement, repeatable per name (MEASUREMENT, HOST_DATA, PCR0.., block1..)",
    )
    verify.add_argument(
        "--min-svn",
        metavar="NAME=N",
        nargs="+",
        type=_named_int,
        default=[],
        help="minimum named SVN (SEV-SNP bootloader, tee, snp, microcode, fmc, guest_svn)",
    )
    verify.add_argument("--isv-prod-id", metavar="N", type=int, help="required ISV product id")
    verify.add_argument("--min-isv-svn", metavar="N", type=int, help="minimum ISV security version")
    verify.add_argument(
        "--report-data", metavar="HEX", type=_hex, help="required report-data prefix (nonce or key hash)"
    )
    verify.add_argument(
        "--max-age",
        metavar="DURATION",
        type=parse_duration,
        help="refuse evidence with only an issue time once older than this (e.g. 2h, 30d)",
    )
    verify.add_argument(
        "--grace", metavar="DURATION", type=parse_duration, default=timedelta(0), help="added to --max-age"
    )
    verify.add_argument(
        "--allow-missing-crls", action="store_true", help="verify without PCK/Root CA CRLs (reported as unchecked)"
    )
    verify.set_defaults(run=run_verify)


def _named_hex(text: str) -> tuple[str, bytes]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=HEX, got {text!r}")
    return name, _hex(value)


def _named_int(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=N, got {text!r}")
    return name, int(value)


def _policy(args: argparse.Namespace) -> Policy:
    measurements: dict[str, set[bytes]] = {}
    for name, value in args.measurement:
        measurements.setdefault(name, set()).add(value)
    return Policy(
        measurements={name: frozenset(values) for name, values in measurements.items()},
        min_svns=dict(args.min_svn),
        nonce=args.nonce,
        collateral_grace=args.grace,
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


def verify_file(
    path: Path, collateral: Path | None, policy: Policy, *, at: datetime, cache: Path | None = None
) -> Verdict:
    """Verify an evidence file of any supported kind at time ``at``; raise :class:`AttestationError` if refused."""
    from ..attestation.bundle import Bundle, CollateralCache, load_bundle
    from ..attestation.detect import DCAP, detect_format, verify_detected
    from ..attestation.sgx.collateral import load_collateral
    from ..attestation.sgx.dcap import verify_dcap_quote
    from ..attestation.sgx.ias import load_ias_evidence, verify_ias_evidence

    found = detect_format(path.read_bytes())
    if found is None:
        try:
            evidence_ias = load_ias_evidence(path)
        except AttestationError as exc:
            raise AttestationError(
                exc.reason,
                "not recognised as an SEV-SNP report, a Nitro document, NVIDIA GPU evidence, a DCAP quote "
                f"or IAS evidence (read as IAS: {exc.message})",
            ) from None
        return verify_ias_evidence(evidence_ias, policy, at=at)
    kind, evidence = found
    if kind == DCAP:
        if collateral is None:
            raise ValueError("a DCAP quote needs --collateral DIR")
        return verify_dcap_quote(evidence, load_collateral(collateral), policy, at=at)
    bundle = load_bundle([collateral]) if collateral is not None else Bundle()
    if cache is not None:
        store = CollateralCache(cache)
        store.store(bundle)
        bundle = store.current(at, policy.collateral_grace)
    return verify_detected(kind, evidence, bundle, policy, at=at)


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
        verdict = verify_file(args.file, args.collateral, policy, at=args.at, cache=args.cache)
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
