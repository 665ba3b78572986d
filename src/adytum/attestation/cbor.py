"""A small, strict CBOR (RFC 8949) decoder and the one encoding COSE needs, for AWS Nitro documents.

Strict because the input is attacker-supplied and parts of it are not covered by the signature:
definite lengths only, shortest-form integers and lengths, no duplicate map keys, UTF-8 text, no
trailing bytes, bounded nesting. Only what Nitro documents hold is accepted (integers, byte and
text strings, arrays, maps, tags, false/true/null); floats and other simple values are refused.
:func:`encode` writes the same subset, enough for COSE's ``Sig_structure``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adytum.attestation.errors import AttestationError, Reason

__all__ = ["Tag", "decode", "encode"]

_MAX_DEPTH = 16


@dataclass(frozen=True)
class Tag:
    """A tagged item (major type 6): COSE_Sign1 may come as tag 18."""

    number: int
    value: Any


def _bad(what: str) -> AttestationError:
    return AttestationError(Reason.MALFORMED, f"bad CBOR: {what}")


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, count: int) -> bytes:
        if count > len(self.data) - self.pos:
            raise _bad("truncated")
        out = self.data[self.pos : self.pos + count]
        self.pos += count
        return out

    def head(self) -> tuple[int, int]:
        initial = self.take(1)[0]
        major, info = initial >> 5, initial & 0x1F
        if info < 24:
            return major, info
        if info > 27:
            raise _bad("indefinite lengths and reserved values are refused")
        size = 1 << (info - 24)
        value = int.from_bytes(self.take(size), "big")
        if value < (24 if size == 1 else 1 << (4 * size)):
            raise _bad("integer or length not in its shortest form")
        return major, value

    def item(self, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise _bad("nested too deeply")
        start = self.pos
        major, value = self.head()
        if major == 0:
            return value
        if major == 1:
            return -1 - value
        if major == 2:
            return self.take(value)
        if major == 3:
            try:
                return self.take(value).decode("utf-8")
            except UnicodeDecodeError:
                raise _bad("text string is not UTF-8") from None
        if major == 4:
            return [self.item(depth + 1) for _ in range(value)]
        if major == 5:
            out: dict[Any, Any] = {}
            for _ in range(value):
                key = self.item(depth + 1)
                if not isinstance(key, (int, str)):
                    raise _bad("map keys must be integers or text")
                if key in out:
                    raise _bad(f"duplicate map key {key!r}")
                out[key] = self.item(depth + 1)
            return out
        if major == 6:
            return Tag(value, self.item(depth + 1))
        simple = {20: False, 21: True, 22: None}
        if self.data[start] & 0x1F >= 24 or value not in simple:
            raise _bad("floats and unknown simple values are refused")
        return simple[value]


def decode(data: bytes) -> Any:
    """The one CBOR item that is all of ``data``; MALFORMED on anything else."""
    reader = _Reader(bytes(data))
    value = reader.item(0)
    if reader.pos != len(reader.data):
        raise _bad(f"{len(reader.data) - reader.pos} trailing bytes")
    return value


def _head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * size):
            return bytes([major << 5 | info]) + value.to_bytes(size, "big")
    raise ValueError("integer too large for CBOR")


def encode(value: Any) -> bytes:
    """Deterministic CBOR for integers, bytes, text, lists and tags (what a Sig_structure holds)."""
    if isinstance(value, bool) or value is None:
        return bytes([0xF5 if value is True else 0xF4 if value is False else 0xF6])
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, bytes):
        return _head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return _head(3, len(raw)) + raw
    if isinstance(value, list):
        return _head(4, len(value)) + b"".join(encode(v) for v in value)
    if isinstance(value, Tag):
        return _head(6, value.number) + encode(value.value)
    raise TypeError(f"cannot encode {type(value).__name__} as CBOR")
