"""The frame between hosts: a 4-byte big-endian length and a msgpack `Relay` (provisioning, counters, witnesses).

A connection carries any number of request/reply pairs. Nothing on the wire is secret: ephemeral public keys,
evidence, keys sealed to one handshake, counter requests sealed to the worker's enclaves, signed records.
"""

from __future__ import annotations

import asyncio
import struct

import msgspec

MAX_RELAY_FRAME = 1 << 20
_LEN = struct.Struct(">I")


class Relay(msgspec.Struct, forbid_unknown_fields=True):
    """One message between hosts: the body, the sender's evidence, or why it was refused. `kind` "": a
    provisioning step; "counters": a work-order enclave's sealed counter request (`enclave/counters.py`);
    "witness": another key manager's record to hold, or its question what is held (`enclave/anchor.py`);
    "status": a joined node's probe whether the key manager serves (answered empty, or with why not)."""

    body: bytes = b""
    proof_type: str = ""
    proof: str = ""
    error: str = ""
    kind: str = ""


async def write_relay(writer: asyncio.StreamWriter, relay: Relay) -> None:
    body = msgspec.msgpack.encode(relay)
    writer.write(_LEN.pack(len(body)) + body)
    await writer.drain()


async def read_relay(reader: asyncio.StreamReader) -> Relay:
    (length,) = _LEN.unpack(await reader.readexactly(_LEN.size))
    if length > MAX_RELAY_FRAME:
        raise ValueError(f"a {length}-byte provisioning frame (at most {MAX_RELAY_FRAME})")
    try:
        return msgspec.msgpack.decode(await reader.readexactly(length), type=Relay)
    except msgspec.ValidationError as exc:
        raise ValueError(f"malformed provisioning frame: {exc}") from None


def parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host or "127.0.0.1", int(port)
