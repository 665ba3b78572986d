"""The node's connector to the EEA contracts: the proxy model's worker side.

It registers the hosted worker in the WorkerRegistry (and updates it when its keys or evidence change), takes
every `workOrderSubmitted` event for that worker into the node through the same path as an HTTP
WorkOrderSubmit (`accept`: validate, store, wake the dispatcher), and posts each outcome back: a signed result
with `workOrderComplete` (batched when several are ready), a refusal or failure with `workOrderFail`.

Where it is, is kept in the store's settings, so a restart resumes:

* `cursor`: the last block read to the end, with its hash. Blocks are read only once a new block arrives (the
  node's new-block filter, asked every `poll` seconds; no log scan on a timer). If the block at the cursor
  has another hash when read again, a reorg replaced it: the cursor steps back `REORG_DEPTH` blocks and those
  are read again. Reading a block twice is harmless: the store refuses an order id it holds (`Duplicate`),
  and that order is then treated as the one already taken.
* `unposted`: the ids of orders taken but whose outcome is not yet on chain. Each is posted once it is
  answered; an order already answered on chain is dropped, one the chain no longer knows (reorged away) is
  dropped and taken again if its block comes back.

An order is never lost to a failure: the cursor moves past a block only once every order in it is stored or
refused on chain; an RPC error, a node that disappears or a BUSY node leaves the cursor where it was and the
connector tries again after a backoff.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import msgspec

from ..config import ChainConfig
from ..protocol import EeaError, Status, WorkerRecord, WorkOrderParams, WorkOrderResult, decode_params, response_hash
from ..store import GroupCommit, Outcome, Store
from . import codec
from .deployment import Deployment, check_code
from .errors import ChainError

log = logging.getLogger("adytum.chain")

#: Blocks read again when the block at the cursor was replaced.
REORG_DEPTH = 12
#: Blocks per eth_getLogs call.
LOG_CHUNK = 2000
#: Results posted in one workOrderCompleteBatch (the contract's MAX_BATCH).
MAX_BATCH = 8
BACKOFF = (0.2, 5.0)


class Accept(Protocol):
    async def __call__(self, raw: bytes) -> tuple[str, WorkOrderParams]: ...


class Wait(Protocol):
    async def __call__(self, work_order_id: str, timeout: float) -> Outcome | None: ...


@dataclass
class _Cursor:
    block: int
    hash: str


class Connector:
    def __init__(
        self,
        config: ChainConfig,
        *,
        reader: Store,
        committer: GroupCommit,
        accept: Accept,
        wait: Wait,
        worker_id: str,
    ) -> None:
        self.config = config
        self.reader, self.committer = reader, committer
        self.accept, self.wait = accept, wait
        self.worker_id = worker_id
        self.deployment = Deployment.load(config.contracts)
        self._w3: Any = None
        self._account: Any = None  # a local key's account, or None: the RPC node signs for `sender`
        self.sender = ""
        key = f"chain.{self.deployment['WorkOrderRegistry'].address.lower()}"
        self._cursor_name, self._unposted_name = f"{key}.cursor", f"{key}.unposted"
        self._unposted: list[str] = json.loads(reader.setting(self._unposted_name) or "[]")
        self._ready: asyncio.Queue[str] = asyncio.Queue()
        self._watching: set[str] = set()
        self._pushed_record = ""
        self._anchored = 0
        self._last_anchor = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._sending = asyncio.Lock()  # one transaction at a time: a local key's nonces come from the node
        #: Counters for tests and logs: orders taken, outcomes posted, events skipped.
        self.taken = self.posted = self.skipped = 0

    # --- life cycle -------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the chain until `stop`, reconnecting after any failure of the chain or the RPC node."""
        delay = BACKOFF[0]
        poster = asyncio.create_task(self._post_forever(stop))
        try:
            while not stop.is_set():
                try:
                    await self._connect()
                    delay = BACKOFF[0]
                    await self._follow(stop)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # an RPC node that errs or vanishes, a refused transaction: try again
                    log.warning("chain %s: %s; trying again in %.1f s", self.config.url, _reason(exc), delay)
                    await self._disconnect()
                    try:
                        await asyncio.wait_for(stop.wait(), delay)
                    except TimeoutError:
                        pass
                    delay = min(delay * 2, BACKOFF[1])
        finally:
            await self._disconnect()
            poster.cancel()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(poster, *self._tasks, return_exceptions=True)

    async def _connect(self) -> None:
        w3 = self.w3
        if self.websocket:
            await w3.provider.connect()
        for name, deployed in self.deployment.contracts.items():
            check_code(name, deployed.address, bytes(await w3.eth.get_code(deployed.address)))
        if self.config.key_file is not None:
            from eth_account import Account

            self._account = Account.from_key(Path(self.config.key_file).read_text().strip())
            self.sender = self._account.address
        else:
            accounts = await w3.eth.accounts
            if not accounts:
                raise ChainError("the RPC node unlocks no account: pass --chain-key with the connector's key")
            self.sender = accounts[0]
        await self._sync_worker(first=True)
        for wo_id in self._unposted:
            self._watch(wo_id)
        log.info(
            "chain connector on %s: worker %s, WorkOrderRegistry %s, sending from %s",
            self.config.url,
            self.worker_id,
            self.deployment["WorkOrderRegistry"].address,
            self.sender,
        )

    @property
    def websocket(self) -> bool:
        return self.config.url.startswith(("ws://", "wss://"))

    @property
    def w3(self) -> Any:
        if self._w3 is None:
            from web3 import AsyncHTTPProvider, AsyncWeb3, WebSocketProvider

            # web3's own retries are off: the connector's backoff retries, and logs why
            provider: Any = (
                WebSocketProvider(self.config.url, max_connection_retries=1, request_timeout=30)
                if self.websocket
                else AsyncHTTPProvider(
                    self.config.url, request_kwargs={"timeout": 30}, exception_retry_configuration=None
                )
            )
            self._w3 = AsyncWeb3(provider)
        return self._w3

    async def _disconnect(self) -> None:
        """Drop the connection (a WebSocket's socket, an HTTP session): the next attempt opens a fresh one."""
        w3, self._w3 = self._w3, None
        if w3 is None:
            return
        try:
            await w3.provider.disconnect()
        except Exception as exc:  # it is being dropped anyway
            log.debug("closing the connection to %s: %s", self.config.url, exc)

    def contract(self, name: str) -> Any:
        deployed = self.deployment[name]
        return self.w3.eth.contract(address=deployed.address, abi=deployed.abi)

    # --- the worker on chain ----------------------------------------------------------------------------------

    async def _sync_worker(self, *, first: bool = False) -> None:
        """Register the worker, or update it when its published record changed (keys, evidence, status)."""
        row = self.reader.worker(self.worker_id)
        if row is None or row.record == self._pushed_record:
            return
        record = msgspec.json.decode(row.record, type=WorkerRecord)
        data = record.details.worker_type_data
        evidence = data.proof_data
        details = msgspec.json.encode(
            msgspec.structs.replace(
                record,
                details=msgspec.structs.replace(
                    record.details, worker_type_data=msgspec.structs.replace(data, proof_data="")
                ),
            )
        ).decode()
        signer = codec.signer_address(data.verification_key)
        wid = codec.id_bytes(self.worker_id)
        registry = self.contract("WorkerRegistry")
        chain_signer, evidence_hash, owner, status = await registry.functions.workerKeys(wid).call()
        if owner == "0x" + "00" * 20:
            await self._send(
                registry.functions.workerRegister(
                    wid,
                    int(record.worker_type),
                    codec.id_bytes(record.organization_id),
                    [codec.id_bytes(record.application_type_id)],
                    details,
                    signer,
                    evidence,
                ),
                "workerRegister",
            )
            log.info("worker %s registered on chain, verification key %s", self.worker_id, signer)
            if first and self.reader.setting(self._cursor_name) is None:
                block = await self.w3.eth.block_number
                await self._save_cursor(_Cursor(block, (await self.w3.eth.get_block(block))["hash"].hex()))
        elif owner.lower() != self.sender.lower():
            log.error(
                "worker %s is registered on chain by %s, not by this connector's %s: its record is not updated and "
                "refusals cannot be posted (signed results still can)",
                self.worker_id,
                owner,
                self.sender,
            )
        else:
            from ..crypto import sha256

            if chain_signer != signer or bytes(evidence_hash) != sha256(evidence.encode()):
                await self._send(registry.functions.workerUpdate(wid, details, signer, evidence), "workerUpdate")
                log.info("worker %s updated on chain (keys or evidence changed)", self.worker_id)
            if status != int(row.status):
                await self._send(registry.functions.workerSetStatus(wid, int(row.status)), "workerSetStatus")
        self._pushed_record = row.record

    # --- following the chain ----------------------------------------------------------------------------------

    async def _follow(self, stop: asyncio.Event) -> None:
        """Read the chain whenever a block arrives: pushed by a newHeads subscription over a WebSocket, or from
        the node's new-block filter over HTTP; between blocks, keep the worker record and the anchor current."""
        if self.websocket:
            await self._follow_heads(stop)
            return
        blocks = await self.w3.eth.filter("latest")
        await self._catch_up()
        while not stop.is_set():
            if await blocks.get_new_entries():
                await self._catch_up()
            await self._sync_worker()
            await self._anchor()
            await _pause(stop, self.config.poll)

    async def _follow_heads(self, stop: asyncio.Event) -> None:
        arrived = asyncio.Event()

        async def heads() -> None:
            await self.w3.eth.subscribe("newHeads")
            async for _ in self.w3.socket.process_subscriptions():
                arrived.set()

        reader = asyncio.create_task(heads())
        try:
            await self._catch_up()
            while not stop.is_set():
                if reader.done():
                    reader.result()  # its failure is the connection's: reconnect
                    raise ChainError("the newHeads subscription ended")
                if arrived.is_set():
                    arrived.clear()
                    await self._catch_up()
                await self._sync_worker()
                await self._anchor()
                waits = [asyncio.ensure_future(e.wait()) for e in (arrived, stop)]
                await asyncio.wait([*waits, reader], timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _catch_up(self) -> None:
        """Read every block from the cursor to the head (less the confirmations), in chunks."""
        head = await self.w3.eth.block_number
        target = head - self.config.confirmations
        cursor = await self._checked_cursor()
        while cursor.block < target:
            end = min(cursor.block + LOG_CHUNK, target)
            before = await self._hash(end)
            logs = await self.w3.eth.get_logs(
                {
                    "address": self.deployment["WorkOrderRegistry"].address,
                    "topics": [self._submitted_topic, None, "0x" + self.worker_id],
                    "fromBlock": cursor.block + 1,
                    "toBlock": end,
                }
            )
            if await self._hash(end) != before:  # a reorg while reading: those logs may be of the old branch
                raise ChainError(f"block {end} changed while its logs were read (a reorg): reading again")
            for raw in sorted(logs, key=lambda e: (e["blockNumber"], e["logIndex"])):
                await self._take_raw(raw)
            cursor = _Cursor(end, before)
            await self._save_cursor(cursor)

    @property
    def _submitted_topic(self) -> str:
        event = self.contract("WorkOrderRegistry").events.workOrderSubmitted
        return (
            "0x" + bytes(event.topic).hex().removeprefix("0x") if isinstance(event.topic, bytes) else str(event.topic)
        )

    async def _hash(self, block: int) -> str:
        return str((await self.w3.eth.get_block(block))["hash"].hex())

    async def _take_raw(self, raw: Any) -> None:
        """Decode one log; one that does not decode (a request that is not UTF-8, say) is refused, not retried."""
        try:
            event = self.contract("WorkOrderRegistry").events.workOrderSubmitted().process_log(raw)
        except Exception as exc:  # web3/eth-abi decoding errors have no common base worth naming
            wo_id = bytes(raw["topics"][1]).hex()
            self.skipped += 1
            log.warning("work order %s in block %d does not decode (%s): refused", wo_id, raw["blockNumber"], exc)
            await self._fail(wo_id, Status.INVALID_PARAMETER, "the work order request does not decode as ABI string")
            return
        await self._take(event)

    async def _checked_cursor(self) -> _Cursor:
        saved = self.reader.setting(self._cursor_name)
        if saved is None:
            return _Cursor(self.config.from_block - 1, "")
        cursor = _Cursor(**json.loads(saved))
        if cursor.block < 0 or not cursor.hash:
            return cursor
        try:
            now = (await self.w3.eth.get_block(cursor.block))["hash"].hex()
        except Exception as exc:  # the block is gone: a reorg (or another chain) made the chain shorter
            if "not found" not in str(exc).lower():
                raise
            now = ""
        if now == cursor.hash:
            return cursor
        back = _Cursor(max(cursor.block - REORG_DEPTH, self.config.from_block - 1), "")
        log.warning(
            "chain reorg: block %d is not the one read before; reading again from block %d",
            cursor.block,
            back.block + 1,
        )
        await self._save_cursor(back)
        return back

    async def _save_cursor(self, cursor: _Cursor) -> None:
        await self.committer.run(
            Store.put_setting, self._cursor_name, json.dumps({"block": cursor.block, "hash": cursor.hash})
        )

    async def _take(self, event: Any) -> None:
        """One workOrderSubmitted event into the node, or refused on chain with the EEA reason."""
        args = event["args"]
        wo_id = codec.id_hex(args["workOrderId"])
        raw = args["workOrderRequest"].encode()
        try:
            params = decode_params(raw)
            _same_ids(params, wo_id, codec.id_hex(args["workerId"]), codec.id_hex(args["requesterId"]))
            await self.accept(raw)
        except EeaError as exc:
            if exc.code == Status.BUSY:
                raise ChainError(
                    f"the node is busy ({exc.message}): block {event['blockNumber']} is read again"
                ) from None
            if exc.code == Status.INVALID_PARAMETER and "already used" in exc.message and self._known(wo_id):
                log.info("work order %s from block %d is stored already", wo_id, event["blockNumber"])
            else:
                self.skipped += 1
                log.warning("work order %s from block %d refused: %s", wo_id, event["blockNumber"], exc.message)
                await self._fail(wo_id, exc.code, exc.message)
                return
        else:
            self.taken += 1
            log.info("work order %s taken from block %d", wo_id, event["blockNumber"])
        if wo_id not in self._unposted:
            self._unposted.append(wo_id)
            await self._save_unposted()
        self._watch(wo_id)

    def _known(self, wo_id: str) -> bool:
        return self.reader.state(wo_id) is not None or self.reader.response(wo_id) is not None

    async def _save_unposted(self) -> None:
        await self.committer.run(Store.put_setting, self._unposted_name, json.dumps(self._unposted))

    # --- posting outcomes -------------------------------------------------------------------------------------

    def _watch(self, wo_id: str) -> None:
        """Queue the order for posting once the node has answered it."""
        if wo_id in self._watching:
            return
        self._watching.add(wo_id)

        async def answered() -> None:
            # The store first (answered before this start), then the dispatcher; no await lies between the two,
            # and the waiter registers before its first await, so no answer falls between them.
            while self.reader.response(wo_id) is None and await self.wait(wo_id, 5.0) is None:
                pass
            await self._ready.put(wo_id)

        task = asyncio.create_task(answered())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post_forever(self, stop: asyncio.Event) -> None:
        delay = BACKOFF[0]
        while not stop.is_set():
            batch = [await self._ready.get()]
            while len(batch) < MAX_BATCH and not self._ready.empty():
                batch.append(self._ready.get_nowait())
            try:
                await self._post(batch)
                delay = BACKOFF[0]
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # kept unposted: queued again after a backoff
                log.warning("posting %d outcome(s) failed: %s; trying again in %.1f s", len(batch), _reason(exc), delay)
                for wo_id in batch:
                    self._ready.put_nowait(wo_id)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF[1])

    async def _post(self, batch: list[str]) -> None:
        registry = self.contract("WorkOrderRegistry")
        results: list[tuple[str, tuple[Any, ...]]] = []
        for wo_id in batch:
            status = await self._chain_status(wo_id)
            if status is None or status != 0:
                why = "is not on chain (reorged away?)" if status is None else "is answered on chain already"
                log.info("work order %s %s: not posted", wo_id, why)
                await self._posted(wo_id)
                continue
            outcome = self.reader.response(wo_id)
            if outcome is None:  # cannot be: it was waited for; keep it for the next round
                raise ChainError(f"work order {wo_id} has no stored outcome yet")
            if outcome.code != 0:
                await self._fail(wo_id, outcome.code, outcome.body.decode(errors="replace"))
                await self._posted(wo_id)
                continue
            try:
                results.append((wo_id, self._result_args(outcome)))
            except (ChainError, ValueError) as exc:
                log.error("work order %s: its result cannot go on chain: %s", wo_id, exc)
                await self._fail(wo_id, Status.UNKNOWN_ERROR, f"the result cannot be posted: {exc}")
                await self._posted(wo_id)
        if len(results) > 1:
            try:
                await self._send(
                    registry.functions.workOrderCompleteBatch([r for _, r in results]), "workOrderCompleteBatch"
                )
            except ChainError as exc:  # one bad result reverts the batch: post them one by one
                log.warning("batch of %d results refused (%s): posting one by one", len(results), exc)
            else:
                for wo_id, _ in results:
                    await self._posted(wo_id, done=True)
                return
        for wo_id, args in results:
            try:
                await self._send(registry.functions.workOrderComplete(args), "workOrderComplete")
            except ChainError as exc:
                if "already answered" in str(exc) or "unknown work order" in str(exc):
                    log.info("work order %s: %s", wo_id, exc)
                else:
                    log.error("work order %s: the contract refused its result: %s", wo_id, exc)
                await self._posted(wo_id)
                continue
            await self._posted(wo_id, done=True)

    def _result_args(self, outcome: Outcome) -> tuple[Any, ...]:
        result = msgspec.json.decode(outcome.body, type=WorkOrderResult)
        row = self.reader.worker(self.worker_id)
        if row is None:
            raise ChainError("the worker has no published record")
        key = msgspec.json.decode(row.record, type=WorkerRecord).details.worker_type_data.verification_key
        return codec.result_args(result, key, response_hash(result))

    async def _chain_status(self, wo_id: str) -> int | None:
        try:
            status, *_ = await self.contract("WorkOrderRegistry").functions.workOrderGet(codec.id_bytes(wo_id)).call()
        except Exception as exc:
            if "unknown work order" in str(exc):
                return None
            raise
        return int(status)

    async def _posted(self, wo_id: str, *, done: bool = False) -> None:
        if done:
            self.posted += 1
            log.info("work order %s: result posted on chain", wo_id)
        self._watching.discard(wo_id)
        if wo_id in self._unposted:
            self._unposted.remove(wo_id)
            await self._save_unposted()

    async def _fail(self, wo_id: str, code: int, message: str) -> None:
        """Post an EEA error for the order (best effort: a chain that refuses is logged, never retried forever)."""
        try:
            fn = self.contract("WorkOrderRegistry").functions.workOrderFail(
                codec.id_bytes(wo_id), int(code) or Status.UNKNOWN_ERROR, message[:256]
            )
            await self._send(fn, "workOrderFail")
        except ChainError as exc:
            log.warning("work order %s: its refusal could not be posted: %s", wo_id, exc)

    # --- ledger anchors ---------------------------------------------------------------------------------------

    async def _anchor(self) -> None:
        """Every anchor_interval seconds, anchor the newest signed tree head if the ledger grew."""
        interval = self.config.anchor_interval
        now = asyncio.get_running_loop().time()
        if interval <= 0 or now - self._last_anchor < interval:
            return
        self._last_anchor = now
        head = self.reader.latest_head()
        if head is None or head.tree_size <= self._anchored:
            return
        receipts = self.contract("WorkOrderReceiptRegistry")
        wid = codec.id_bytes(self.worker_id)
        anchored, *_ = await receipts.functions.ledgerHead(wid).call()
        if head.tree_size > anchored:
            fn = receipts.functions.ledgerAnchor(
                wid, head.tree_size, head.root, head.signature[:256], head.timestamp_ms
            )
            await self._send(fn, "ledgerAnchor")
            log.info("ledger head of %d leaves anchored on chain", head.tree_size)
        self._anchored = max(head.tree_size, anchored)

    # --- transactions -----------------------------------------------------------------------------------------

    async def _send(self, fn: Any, what: str) -> Any:
        """Send one transaction and wait for it; ChainError if the contract refuses (with its reason)."""
        async with self._sending:
            return await self._send_one(fn, what)

    async def _send_one(self, fn: Any, what: str) -> Any:
        try:
            if self._account is None:
                tx = await fn.transact({"from": self.sender})
            else:
                built = await fn.build_transaction(
                    {"from": self.sender, "nonce": await self.w3.eth.get_transaction_count(self.sender, "pending")}
                )
                signed = self._account.sign_transaction(built)
                tx = await self.w3.eth.send_raw_transaction(signed.raw_transaction)
        except Exception as exc:
            if _is_revert(exc):
                raise ChainError(f"{what} reverted: {_reason(exc)}") from None
            raise
        receipt = await self.w3.eth.wait_for_transaction_receipt(tx, timeout=120)
        if receipt["status"] != 1:
            raise ChainError(f"{what} reverted in block {receipt['blockNumber']} (transaction {tx.hex()})")
        return receipt


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


def _same_ids(p: WorkOrderParams, wo_id: str, worker_id: str, requester_id: str) -> None:
    """The request inside the event must name the ids the event (and the contract) holds, in lower-case hex:
    the contract hashes those when it checks the result."""
    for field, want in (("workOrderId", wo_id), ("workerId", worker_id), ("requesterId", requester_id)):
        got = getattr(
            p, {"workOrderId": "work_order_id", "workerId": "worker_id", "requesterId": "requester_id"}[field]
        )
        if got != want:
            raise EeaError(Status.INVALID_PARAMETER, f"the request's {field} {got[:80]!r} is not the event's {want}")


def _is_revert(exc: Exception) -> bool:
    from web3.exceptions import ContractLogicError

    return isinstance(exc, ContractLogicError) or "revert" in str(exc).lower()


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "..."
