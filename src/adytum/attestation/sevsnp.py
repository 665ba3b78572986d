"""AMD SEV-SNP attestation reports (versions 2, 3 and 5; 1184 bytes) against a VCEK or VLEK and AMD's chain.

The checks, in order: the report's layout (version, signature algorithm ECDSA P-384 with SHA-384);
its signing key (VCEK or VLEK, from the report's flags); the certificate chain VCEK → ASK (VLEK →
ASVK) → ARK of the same product line, the ARK a built-in root (Milan, Genoa, Turin), every
certificate RSASSA-PSS signed and valid at ``at``; the REPORTED_TCB equal to the TCB the VCEK or
VLEK was issued for (its SPL extensions; CURRENT_TCB may be newer) and the CHIP_ID equal to the
VCEK's hwID (Turin: its first 8 bytes; a VLEK is not chip-specific), checked before the signature
so that a changed TCB is named as such; the report's signature over bytes 0..0x29F with the
certificate's key (r and s little-endian, 72 bytes each); the ARK's CRL when one is given. The
guest policy's debug bit feeds the policy's debug rule; MEASUREMENT and HOST_DATA are named
measurements; the TCB components and the guest SVN are named SVNs.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from adytum.attestation.certpool import chain_to_root
from adytum.attestation.errors import AttestationError, Reason
from adytum.attestation.policy import Policy, Verdict, require_aware
from adytum.attestation.roots import AMD_PRODUCTS, amd_chain
from adytum.attestation.sgx.der import INTEGER, OCTET_STRING, read_tlv
from adytum.attestation.sgx.x509chain import check_not_revoked, key_id, verify_crl

__all__ = ["KIND", "REPORT_SIZE", "SnpReport", "is_snp_report", "parse_report", "verify_snp_report"]

KIND = "sev-snp"
REPORT_SIZE = 0x4A0
_SIGNED = 0x2A0
_VERSIONS = (2, 3, 5)
_POLICY_DEBUG = 1 << 19
_OID = "1.3.6.1.4.1.3704.1."
_PRODUCT_OID = _OID + "2"
_HWID_OID = _OID + "4"
_SPL_OIDS = {"bootloader": "3.1", "tee": "3.2", "snp": "3.3", "microcode": "3.8", "fmc": "3.9"}
#: CPUID family/model of each product line (reports v3+ carry them).
_CPUID = {(0x19, 0x01): "Milan", (0x19, 0x11): "Genoa", (0x1A, 0x02): "Turin", (0x1A, 0x11): "Turin"}


@dataclass(frozen=True)
class SnpReport:
    """The fields of a report that verification and policy use."""

    raw: bytes
    version: int
    guest_svn: int
    policy: int
    vmpl: int
    signing_key: int  # 0 VCEK, 1 VLEK
    current_tcb: int
    reported_tcb: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    chip_id: bytes
    cpuid: tuple[int, int] | None  # (family, model), v3 and later
    signature: tuple[int, int]

    @property
    def debug(self) -> bool:
        return bool(self.policy & _POLICY_DEBUG)


def is_snp_report(data: bytes) -> bool:
    return (
        len(data) == REPORT_SIZE
        and struct.unpack_from("<I", data, 0)[0] in _VERSIONS
        and struct.unpack_from("<I", data, 0x34)[0] == 1
    )


def parse_report(data: bytes) -> SnpReport:
    """Parse a report's fixed layout (AMD SEV-SNP ABI, table "ATTESTATION_REPORT"); MALFORMED if it is not one."""
    if len(data) != REPORT_SIZE:
        raise AttestationError(Reason.MALFORMED, f"an SEV-SNP report is {REPORT_SIZE} bytes, got {len(data)}")
    version, guest_svn, policy, vmpl, algo = struct.unpack_from("<IIQ32xII", data, 0)
    if version not in _VERSIONS:
        raise AttestationError(Reason.UNSUPPORTED, f"SEV-SNP report version {version} (known: 2, 3, 5)")
    if algo != 1:
        raise AttestationError(Reason.UNSUPPORTED, f"SEV-SNP signature algorithm {algo} is not ECDSA P-384 (1)")
    current_tcb, _platform, flags = struct.unpack_from("<QQI", data, 0x38)
    family, model = data[0x188], data[0x189]
    r = int.from_bytes(data[_SIGNED : _SIGNED + 72], "little")
    s = int.from_bytes(data[_SIGNED + 72 : _SIGNED + 144], "little")
    return SnpReport(
        raw=bytes(data),
        version=version,
        guest_svn=guest_svn,
        policy=policy,
        vmpl=vmpl,
        signing_key=(flags >> 2) & 0x7,
        current_tcb=current_tcb,
        reported_tcb=struct.unpack_from("<Q", data, 0x180)[0],
        report_data=bytes(data[0x50:0x90]),
        measurement=bytes(data[0x90:0xC0]),
        host_data=bytes(data[0xC0:0xE0]),
        chip_id=bytes(data[0x1A0:0x1E0]),
        cpuid=(family, model) if version >= 3 else None,
        signature=(r, s),
    )


def tcb_parts(tcb: int, product: str) -> dict[str, int]:
    """A TCB_VERSION's components. Turin moved them: fmc, bootloader, tee, snp in bytes 0..3."""
    raw = tcb.to_bytes(8, "little")
    if product == "Turin":
        return {"fmc": raw[0], "bootloader": raw[1], "tee": raw[2], "snp": raw[3], "microcode": raw[7]}
    return {"bootloader": raw[0], "tee": raw[1], "snp": raw[6], "microcode": raw[7]}


def _extension(cert: x509.Certificate, oid: str) -> bytes | None:
    for ext in cert.extensions:
        if ext.oid.dotted_string == oid:
            value = ext.value
            return value.value if isinstance(value, x509.UnrecognizedExtension) else None
    return None


def _der_int(raw: bytes, what: str) -> int:
    tag, value, end = read_tlv(raw)
    if tag != INTEGER or end != len(raw):
        raise AttestationError(Reason.MALFORMED, f"VCEK extension {what} is not a DER INTEGER")
    return int.from_bytes(value, "big", signed=True)


def _vek_tcb(cert: x509.Certificate, product: str) -> dict[str, int]:
    out = {}
    for name in tcb_parts(0, product):
        raw = _extension(cert, _OID + _SPL_OIDS[name])
        if raw is None:
            raise AttestationError(Reason.MALFORMED, f"the VCEK/VLEK lacks its {name} SPL extension")
        out[name] = _der_int(raw, name)
    return out


def _hwid(cert: x509.Certificate) -> bytes | None:
    raw = _extension(cert, _HWID_OID)
    if raw is None:
        return None
    if len(raw) in (64, 8):
        return raw  # older KDS certificates: the raw bytes
    tag, value, end = read_tlv(raw)
    if tag != OCTET_STRING or end != len(raw):
        raise AttestationError(Reason.MALFORMED, "the VCEK's hwID extension is neither raw bytes nor an OCTET STRING")
    return value


def _product(report: SnpReport, vek: x509.Certificate) -> str:
    """The product line: from the report's CPUID (v3+), else from the VCEK's productName or issuer."""
    if report.cpuid is not None and report.cpuid in _CPUID:
        return _CPUID[report.cpuid]
    raw = _extension(vek, _PRODUCT_OID)
    names = [raw[2:].decode("ascii", "replace")] if raw and len(raw) > 2 else []
    names += [a.value for a in vek.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME) if isinstance(a.value, str)]
    for name in names:
        for product in AMD_PRODUCTS:
            if product in name:
                return product
    raise AttestationError(Reason.UNSUPPORTED, f"cannot tell the AMD product line of this report ({names})")


def _pick_vek(report: SnpReport, certs: Sequence[x509.Certificate]) -> x509.Certificate:
    want = "SEV-VLEK" if report.signing_key == 1 else "SEV-VCEK"
    if report.signing_key not in (0, 1):
        raise AttestationError(Reason.UNSUPPORTED, f"SEV-SNP signing key {report.signing_key} (0 VCEK, 1 VLEK)")
    for cert in certs:
        if any(a.value == want for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)):
            return cert
    raise AttestationError(Reason.COLLATERAL, f"the report is signed by a {want[4:]} and none was given")


def _check_signature(report: SnpReport, vek: x509.Certificate) -> None:
    key_id(vek)  # MALFORMED if the key cannot be read
    key = vek.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise AttestationError(Reason.MALFORMED, "the VCEK/VLEK key is not ECDSA P-384")
    der = utils.encode_dss_signature(*report.signature)
    try:
        key.verify(der, report.raw[:_SIGNED], ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise AttestationError(
            Reason.SIGNATURE, "the SEV-SNP report's signature does not verify with its VCEK/VLEK"
        ) from None


def verify_snp_report(
    data: bytes,
    certs: Sequence[x509.Certificate],
    policy: Policy,
    *,
    at: datetime,
    roots: Sequence[x509.Certificate] | None = None,
    crls: Sequence[x509.CertificateRevocationList] = (),
) -> Verdict:
    """Verify an SEV-SNP report at ``at`` with the VCEK/VLEK (and any ASK/ARK) in ``certs``; apply ``policy``.

    ``roots`` defaults to the built-in ARKs. A CRL in ``crls`` issued by the chain's ARK is checked
    (ASK/ASVK revocation); without one, revocation is refused unless ``policy.require_crls`` is off.
    """
    require_aware(at)
    report = parse_report(bytes(data))
    vek = _pick_vek(report, certs)
    product = _product(report, vek)
    builtin = amd_chain(product)
    anchors = list(roots) if roots is not None else [builtin[0]]
    path = chain_to_root(vek, [*certs, *builtin[1:]], anchors, at)
    reported = tcb_parts(report.reported_tcb, product)
    issued_for = _vek_tcb(vek, product)
    if reported != issued_for:
        raise AttestationError(
            Reason.TCB_MISMATCH, f"REPORTED_TCB {reported} is not the TCB the VCEK/VLEK was issued for {issued_for}"
        )
    hwid = _hwid(vek)
    if report.signing_key == 0 and (hwid is None or report.chip_id[: len(hwid)] != hwid):
        raise AttestationError(Reason.TCB_MISMATCH, "the report's CHIP_ID is not the chip the VCEK was issued for")
    _check_signature(report, vek)
    checked = ["report-signature", f"chain-to-ARK-{product}", "certificate-validity", "reported-tcb-vs-certificate"]
    if report.signing_key == 0:
        checked.append("chip-id-vs-vcek")
    unchecked: list[str] = []
    ark = path[-1]
    ark_crls = [c for c in crls if c.issuer == ark.subject]
    next_update = None
    issued_at = None
    if ark_crls:
        crl = ark_crls[0]
        verify_crl(crl, ark, at, f"ARK-{product} CRL")
        for cert in path[1:-1]:
            check_not_revoked(cert, crl, f"ARK-{product} CRL")
        checked.append("ask-revocation")
        next_update, issued_at = crl.next_update_utc, crl.last_update_utc
    elif policy.require_crls:
        raise AttestationError(
            Reason.COLLATERAL, f"no ARK-{product} CRL given (AMD KDS /vcek/v1/{product}/crl); cannot check revocation"
        )
    else:
        unchecked.append("ask-revocation (no AMD CRL given)")
    current = tcb_parts(report.current_tcb, product)
    verdict = Verdict(
        kind=KIND,
        tcb_status=None,
        verified_at=at,
        debug=report.debug,
        report_data=report.report_data,
        measurements=(("MEASUREMENT", report.measurement), ("HOST_DATA", report.host_data)),
        svns=(*reported.items(), ("guest_svn", report.guest_svn)),
        details=(
            ("product", product),
            ("report_version", str(report.version)),
            ("signing_key", "VLEK" if report.signing_key == 1 else "VCEK"),
            ("vmpl", str(report.vmpl)),
            ("guest_policy", f"0x{report.policy:x}"),
            ("chip_id", report.chip_id.hex()),
            ("current_tcb", ", ".join(f"{k} {v}" for k, v in current.items())),
        ),
        valid_from=max(c.not_valid_before_utc for c in path),
        valid_until=min(c.not_valid_after_utc for c in path),
        issued_at=issued_at,
        next_update=next_update,
        checked=tuple(checked),
        unchecked=tuple(unchecked),
    )
    return policy.enforce(verdict, at=at)
