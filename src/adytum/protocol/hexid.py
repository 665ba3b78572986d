"""The one hex rule: what the wire accepts as hex, and the one form ids take when compared or stored.

Ids arrive with or without `0x` and in either case; `canonical` makes "0xAB" and "ab" the same id.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from .limits import MAX_HEX_ID, MAX_KEY

_PREFIX = "(0[xX])?"
_DIGITS = "[0-9a-fA-F]"
HEX = f"^{_PREFIX}{_DIGITS}+$"
HexId = Annotated[str, Meta(pattern=HEX, max_length=MAX_HEX_ID)]
LongHex = Annotated[str, Meta(pattern=HEX, max_length=MAX_KEY)]  # an RSA-wrapped session key
OptHex = Annotated[str, Meta(pattern=f"^({_PREFIX}{_DIGITS}*)$", max_length=MAX_KEY)]  # the same, or empty


def canonical(hex_id: str) -> str:
    """Lower-case hex without 0x: the form every id is stored and compared in."""
    return (hex_id[2:] if hex_id[:2] in ("0x", "0X") else hex_id).lower()
