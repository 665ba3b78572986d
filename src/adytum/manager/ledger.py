"""The ledger's signed tree heads (`listener.ports.Ledger`): batched, signed in a work-order enclave, stored.

The store appends a leaf with every receipt event; nobody signs per order. Every `ledger_interval` seconds
while leaves wait, as soon as `ledger_batch` are reported waiting (`added`), or when someone needs a head
(`cover`), the signer sends the latest stored head, its frontier and the leaf hashes since to a serving
work-order enclave, which checks them and signs the root it computed. The host keeps the frontier of each
head (it extends it with the same pure function) so that the next request needs only the new leaves.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..channel import HeadSigned, SignHead
from ..config import ManagerConfig
from ..ledger import merkle
from ..store import GroupCommit, Store, StoredHead, StoreUnavailable
from .enclave import EnclaveProcess
from .errors import EnclaveDied, HeadRefused, NoSigner

log = logging.getLogger("adytum.manager")
#: Leaves sent in one SignHead at most (32 bytes each): a long backlog is signed as several heads.
MAX_LEAVES_PER_HEAD = 100_000
#: What a first head extends: the empty tree, signed by nobody.
EMPTY_TREE = StoredHead(0, merkle.EMPTY_ROOT, 0, "", [])


class HeadSigner:
    def __init__(
        self, config: ManagerConfig, reader: Store, committer: GroupCommit, enclaves: list[EnclaveProcess]
    ) -> None:
        self.config = config
        self.reader = reader
        self.committer = committer
        self.enclaves = enclaves
        self.head: StoredHead | None = None  # the latest stored head
        self.signed = 0  # heads signed by this process
        self._reported = 0  # leaves reported by `added` since the last head
        self._nudge = asyncio.Event()
        self._lock = asyncio.Lock()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start from the latest stored head (leaves committed since, e.g. before a crash, are signed first)."""
        self.head = self.reader.latest_head()
        self._nudge.set()
        self._task = asyncio.create_task(self._run(), name="ledger-heads")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for _, fut in self._waiters:
            fut.cancel()
        self._waiters.clear()

    @property
    def size(self) -> int:
        """The size of the latest stored head (0: none yet)."""
        return self.head.tree_size if self.head else 0

    def added(self, leaves: int = 1) -> None:
        """Leaves were committed: sign at once when a batch is waiting (otherwise at the next interval)."""
        self._reported += leaves
        if self._reported >= self.config.ledger_batch:
            self._nudge.set()

    async def cover(self, size: int) -> None:
        """Return once a stored head covers at least `size` leaves (asking for one now if none does)."""
        if self.size >= size:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (size, fut)
        self._waiters.append(entry)
        self._nudge.set()
        try:
            await fut
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._nudge.wait(), self.config.ledger_interval)
            except TimeoutError:
                pass
            self._nudge.clear()
            try:
                await self.sign_pending()
            except asyncio.CancelledError:
                raise
            except (NoSigner, StoreUnavailable) as exc:
                log.warning("tree head not signed yet: %s", exc)
            except HeadRefused as exc:  # the stored head or the leaves do not check out: say so loudly
                log.error("%s", exc)
            except Exception:
                log.exception("signing a tree head failed")

    async def sign_pending(self) -> None:
        """Sign and store heads until the latest covers every committed leaf."""
        async with self._lock:
            self._reported = 0
            size = self.reader.ledger_size()
            while self.size < size:
                end = min(size, self.size + MAX_LEAVES_PER_HEAD)
                await self._sign(self.reader.ledger_hashes(self.size, end))
            self._release()

    async def _sign(self, leaves: list[bytes]) -> None:
        previous = self.head or EMPTY_TREE
        timestamp = max(int(time.time() * 1000), previous.timestamp_ms)  # the host's clock may step back
        signed = await self._ask(previous, leaves, timestamp)
        frontier = merkle.extend_frontier(previous.tree_size, previous.frontier, leaves)
        if (
            signed.tree_size != previous.tree_size + len(leaves)
            or merkle.frontier_root(signed.tree_size, frontier) != signed.root
        ):
            raise HeadRefused(f"the enclave signed a head of {signed.tree_size} leaves that the host does not compute")
        head = StoredHead(signed.tree_size, signed.root, signed.timestamp, signed.signature, frontier)
        if not await self.committer.persist(Store.insert_head, head):
            log.warning("a head of %d leaves was stored already; keeping the stored one", head.tree_size)
            head = self.reader.head(head.tree_size) or head
        self.head = head
        self.signed += 1
        self._release()

    async def _ask(self, previous: StoredHead, leaves: list[bytes], timestamp: int) -> HeadSigned:
        """Any serving work-order enclave signs; one that dies on the way passes the request to the next."""
        for enclave in sorted(self.enclaves, key=lambda e: e.inflight):
            if not enclave.serving:
                continue
            try:
                request = SignHead(
                    seq=0,  # the link numbers it
                    worker_id=self.config.worker_id,
                    previous_size=previous.tree_size,
                    previous_root=previous.root,
                    previous_timestamp=previous.timestamp_ms,
                    previous_signature=previous.signature,
                    frontier=previous.frontier,
                    leaves=leaves,
                    timestamp=timestamp,
                )
                return await enclave.sign_head(request)
            except EnclaveDied as exc:
                log.warning("%s; asking another enclave for the tree head", exc)
        raise NoSigner("no work-order enclave is serving")

    def _release(self) -> None:
        for size, fut in list(self._waiters):
            if size <= self.size and not fut.done():
                fut.set_result(None)
