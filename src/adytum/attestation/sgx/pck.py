"""The SGX extension of a PCK certificate: FMSPC, PCE ID and the platform's TCB (CPUSVN components, PCESVN).

Intel's "PCK Certificate and CRL Profile": extension 1.2.840.113741.1.13.1 is a SEQUENCE of
(OID, value) pairs; ``.2`` (TCB) nests sixteen ``.2.N`` component SVNs, ``.2.17`` PCESVN and
``.2.18`` CPUSVN; ``.3`` is PCE-ID, ``.4`` FMSPC, ``.5`` SGX type.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from adytum.attestation.errors import AttestationError, Reason
from adytum.attestation.sgx import der

__all__ = ["SGX_EXTENSION_OID", "PckInfo", "parse_pck_extension"]

SGX_EXTENSION_OID = "1.2.840.113741.1.13.1"
_TCB = SGX_EXTENSION_OID + ".2"


@dataclass(frozen=True)
class PckInfo:
    """What the PCK certificate says about the platform."""

    fmspc: bytes
    pce_id: bytes
    cpu_svn: bytes
    components: tuple[int, ...]
    pce_svn: int
    sgx_type: int | None = None
    ppid: bytes | None = None


def _bad(what: str) -> AttestationError:
    return AttestationError(Reason.MALFORMED, f"PCK certificate SGX extension: {what}")


def _pairs(value: bytes) -> dict[str, tuple[int, bytes]]:
    """Map OID -> (tag, value) for a SEQUENCE of SEQUENCE { OID, value }; refuse duplicates."""
    out: dict[str, tuple[int, bytes]] = {}
    for tag, inner in der.children(value):
        if tag != der.SEQUENCE:
            raise _bad("entry is not a SEQUENCE")
        items = list(der.children(inner))
        if len(items) != 2 or items[0][0] != der.OID:
            raise _bad("entry is not (OID, value)")
        oid = der.decode_oid(items[0][1])
        if oid in out:
            raise _bad(f"duplicate {oid}")
        out[oid] = items[1]
    return out


def _octets(entries: dict[str, tuple[int, bytes]], oid: str, size: int, name: str) -> bytes:
    if oid not in entries:
        raise _bad(f"missing {name}")
    tag, value = entries[oid]
    if tag != der.OCTET_STRING or len(value) != size:
        raise _bad(f"{name} is not a {size}-byte OCTET STRING")
    return value


def _integer(entries: dict[str, tuple[int, bytes]], oid: str, name: str, tags: tuple[int, ...] = (der.INTEGER,)) -> int:
    if oid not in entries:
        raise _bad(f"missing {name}")
    tag, value = entries[oid]
    if tag not in tags:
        raise _bad(f"{name} is not an INTEGER")
    number = der.decode_int(value)
    if number < 0:
        raise _bad(f"{name} is negative")
    return number


def parse_pck_extension(cert: x509.Certificate) -> PckInfo:
    """Read FMSPC, PCE ID, CPUSVN components and PCESVN out of a PCK leaf certificate."""
    try:
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXTENSION_OID))
    except x509.ExtensionNotFound:
        raise _bad("not present: this is not a PCK certificate") from None
    except (ValueError, x509.DuplicateExtension) as exc:
        raise _bad(f"certificate extensions are malformed ({exc})") from None
    if not isinstance(ext.value, x509.UnrecognizedExtension):
        raise _bad("unexpected decoding")
    raw = ext.value.value
    tag, outer, end = der.read_tlv(raw)
    if tag != der.SEQUENCE or end != len(raw):
        raise _bad("not a single SEQUENCE")
    top = _pairs(outer)
    if _TCB not in top or top[_TCB][0] != der.SEQUENCE:
        raise _bad("missing TCB")
    tcb = _pairs(top[_TCB][1])
    components = tuple(_integer(tcb, f"{_TCB}.{n}", f"TCB component {n}") for n in range(1, 17))
    if any(c > 255 for c in components):
        raise _bad("TCB component above 255")
    sgx_type = None
    if SGX_EXTENSION_OID + ".5" in top:
        sgx_type = _integer(top, SGX_EXTENSION_OID + ".5", "SGX type", (der.ENUMERATED, der.INTEGER))
    ppid = top[SGX_EXTENSION_OID + ".1"][1] if SGX_EXTENSION_OID + ".1" in top else None
    return PckInfo(
        fmspc=_octets(top, SGX_EXTENSION_OID + ".4", 6, "FMSPC"),
        pce_id=_octets(top, SGX_EXTENSION_OID + ".3", 2, "PCE-ID"),
        cpu_svn=_octets(tcb, f"{_TCB}.18", 16, "CPUSVN"),
        components=components,
        pce_svn=_integer(tcb, f"{_TCB}.17", "PCESVN"),
        sgx_type=sgx_type,
        ppid=ppid,
    )
