"""The host's side of the key manager's anchor: carry its records to the witnesses and their statements back.

The anchor is pluggable (`Anchor`): `PeerAnchor` uses other nodes' key managers (`adytum up --anchor-peer
HOST:PORT`, each served with `--kme-listen`); with none, `adytum pool` and the worker record say that a
rollback of the whole host cannot be detected. A chain anchor (a later issue) is a third `Anchor`: it would
put records on the chain and bring back statements the key manager checks (`adytum.enclave.anchor`).

The host only relays: it cannot forge a statement (signed by the witness's attested key) nor a record (signed
by the worker's key inside the key manager). One connection per witness is kept open and reused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

import msgspec

from ..channel import AnchorPeer, WitnessRequest
from ..config import ManagerConfig
from .relay import Relay, parse_address, read_relay, write_relay

log = logging.getLogger("adytum.anchor")
NO_ANCHOR = "none: a rollback of the whole host (its data directory restored from a copy) cannot be detected"


def describe(config: ManagerConfig) -> str:
    """What the worker record and `adytum pool` say about rollback of this node's whole host."""
    if config.join:
        return f"counters held by the key manager at {config.join}; `adytum pool` on that node names its anchor"
    return PeerAnchor(config.anchor_peers).describe() if config.anchor_peers else NO_ANCHOR


class Anchor(Protocol):
    @property
    def peers(self) -> int: ...

    def describe(self) -> str: ...

    async def latest(self, subject: str, challenge: bytes) -> list[AnchorPeer]: ...

    async def put(self, record: bytes) -> list[AnchorPeer]: ...


class NoAnchor:
    peers = 0

    def describe(self) -> str:
        return NO_ANCHOR

    async def latest(self, subject: str, challenge: bytes) -> list[AnchorPeer]:
        return []

    async def put(self, record: bytes) -> list[AnchorPeer]:
        return []


class PeerAnchor:
    """Witnesses on other hosts: their key managers, over their key-manager ports."""

    def __init__(self, addresses: Sequence[str], timeout: float = 10.0) -> None:
        for address in addresses:
            parse_address(address)  # a bad address stops the start, naming it
        self.addresses = tuple(addresses)
        self.timeout = timeout
        self._links = {address: _WitnessLink(address) for address in self.addresses}

    @property
    def peers(self) -> int:
        return len(self.addresses)

    def describe(self) -> str:
        need = self.peers // 2 + 1
        return f"peers: {', '.join(self.addresses)} ({need} of {self.peers} must acknowledge each change)"

    async def latest(self, subject: str, challenge: bytes) -> list[AnchorPeer]:
        """Each witness's latest record of the key manager filed under `subject`, signed over `challenge`."""
        return await self._ask(WitnessRequest(subject=subject, challenge=challenge))

    async def put(self, record: bytes) -> list[AnchorPeer]:
        return await self._ask(WitnessRequest(record=record))

    async def _ask(self, request: WitnessRequest) -> list[AnchorPeer]:
        body = msgspec.msgpack.encode(request)
        return list(await asyncio.gather(*(self._one(link, body) for link in self._links.values())))

    async def _one(self, link: _WitnessLink, body: bytes) -> AnchorPeer:
        try:
            reply = await asyncio.wait_for(link.call(Relay(body=body, kind="witness")), self.timeout)
            if reply.error:
                return AnchorPeer(link.address, error=f"refused: {reply.error}")
            peer = msgspec.msgpack.decode(reply.body, type=AnchorPeer)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, msgspec.DecodeError, ValueError) as exc:
            link.close()
            return AnchorPeer(link.address, error=f"unreachable: {exc or type(exc).__name__}")
        peer.address = link.address
        return peer

    async def close(self) -> None:
        for link in self._links.values():
            link.close()


class _WitnessLink:
    """One open connection to a witness; one request at a time on it."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.host, self.port = parse_address(address)
        self._lock = asyncio.Lock()
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def call(self, request: Relay) -> Relay:
        async with self._lock:
            if self._conn is None:
                self._conn = await asyncio.open_connection(self.host, self.port)
            reader, writer = self._conn
            try:
                await write_relay(writer, request)
                return await read_relay(reader)
            except BaseException:
                self.close()
                raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None
