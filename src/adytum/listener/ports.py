"""What the listener needs from the rest of the node: narrow interfaces that `adytum.node` wires in.

The listener writes work orders to the store itself; it never imports or drives the manager. A listener
on a host whose enclaves run elsewhere gets other implementations of the same three interfaces.
"""

from __future__ import annotations

from typing import Protocol

from ..protocol import PoolStatus
from ..store import Outcome


class Dispatch(Protocol):
    """The work-order side: told when an order is stored, and asked for its outcome."""

    @property
    def pending(self) -> int:
        """Accepted but not yet answered (queued plus in an enclave)."""

    @property
    def completed(self) -> int:
        """Work orders answered since start."""

    def wake(self) -> None:
        """A work order was committed to the store: take it from there (the order itself is not passed)."""

    def reserve(self) -> str | None:
        """Room to run one more order at once, with none older waiting: the owner to store it claimed by (then
        `take` it, or `unreserve` if the commit failed). None: store it scheduled, then `wake()`."""

    def take(self, work_order_id: str, params: bytes) -> None:
        """The order is stored claimed under `reserve()`'s owner: run it (its request is passed, not read back)."""

    def unreserve(self, maybe_stored: bool) -> None:
        """The order `reserve()` made room for was not stored (`maybe_stored`: its commit's outcome is unknown)."""

    async def wait(self, work_order_id: str, timeout: float) -> Outcome | None:
        """The outcome, waiting up to `timeout` seconds; None if still pending. The waiter is registered
        before the first await, so an outcome produced after `wake()` returns is never missed."""


class KeyOps(Protocol):
    """The hosted worker's keys: who it is, and the operator's rotate and re-publish."""

    @property
    def worker_id(self) -> str:
        """The worker this node hosts."""

    async def rotate(self) -> None:
        """A new encryption key, provisioned to every enclave, attested and published before this returns."""

    async def refresh(self) -> None:
        """Provision the enclaves again and publish a freshly attested record."""


class PoolView(Protocol):
    """A status snapshot of the worker's key manager and enclaves."""

    def pool_status(self) -> PoolStatus: ...


class Ledger(Protocol):
    """The receipt ledger's head signer: asked for a signed head when a receipt document needs one."""

    async def cover(self, size: int) -> None:
        """Return once a stored signed head covers at least `size` leaves (signing one now if none does)."""
