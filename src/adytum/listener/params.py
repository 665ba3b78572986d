"""Shared parameter types and strict decoding for the JSON-RPC methods."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from ..protocol import EeaError, Status

HexId = Annotated[str, Meta(pattern=r"^(0[xX])?[0-9a-fA-F]+$", max_length=256)]


def canonical(hex_id: str) -> str:
    """Store keys are lower-case hex without 0x, so "0xAB" and "ab" are one id."""
    return (hex_id[2:] if hex_id[:2] in ("0x", "0X") else hex_id).lower()


def decode(raw: bytes, kind: type[Any], method: str, code: int = Status.INVALID_PARAMETER) -> Any:
    """Params as `kind`, or an EEA error naming what is wrong (unknown fields are refused)."""
    try:
        return msgspec.json.decode(raw or b"{}", type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise EeaError(code, f"invalid {method} params: {exc}") from None
