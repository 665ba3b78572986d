"""A tiny DER reader: just enough to walk Intel's SGX extension inside PCK certificates.

``cryptography`` hands unknown extensions over as raw DER; Intel's SGX extension
(OID 1.2.840.113741.1.13.1) is a SEQUENCE of (OID, value) pairs, some of them nested.
"""

from __future__ import annotations

from collections.abc import Iterator

from adytum.attestation.errors import AttestationError, Reason

__all__ = [
    "SEQUENCE",
    "INTEGER",
    "OCTET_STRING",
    "OID",
    "ENUMERATED",
    "BOOLEAN",
    "read_tlv",
    "children",
    "decode_oid",
    "decode_int",
]

BOOLEAN = 0x01
INTEGER = 0x02
OCTET_STRING = 0x04
OID = 0x06
ENUMERATED = 0x0A
SEQUENCE = 0x30


def _bad(what: str) -> AttestationError:
    return AttestationError(Reason.MALFORMED, f"bad DER in SGX extension: {what}")


def read_tlv(data: bytes, offset: int = 0) -> tuple[int, bytes, int]:
    """Read one tag-length-value at ``offset``: return (tag, value, offset after it)."""
    if offset + 2 > len(data):
        raise _bad("truncated header")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise _bad("multi-byte tags are not used by Intel")
    length = data[offset + 1]
    pos = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise _bad("bad length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise _bad("value runs past the end")
    return tag, data[pos : pos + length], pos + length


def children(value: bytes) -> Iterator[tuple[int, bytes]]:
    """Iterate over the (tag, value) elements inside a constructed value."""
    pos = 0
    while pos < len(value):
        tag, inner, pos = read_tlv(value, pos)
        yield tag, inner


def decode_oid(value: bytes) -> str:
    """Dotted string of an OBJECT IDENTIFIER's content bytes."""
    if not value:
        raise _bad("empty OID")
    first = value[0]
    arcs = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    acc = 0
    for byte in value[1:]:
        acc = (acc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(acc)
            acc = 0
    if value[-1] & 0x80:
        raise _bad("OID ends mid-arc")
    return ".".join(str(a) for a in arcs)


def decode_int(value: bytes) -> int:
    """Value of an INTEGER or ENUMERATED's content bytes (two's complement)."""
    if not value:
        raise _bad("empty INTEGER")
    return int.from_bytes(value, "big", signed=True)
