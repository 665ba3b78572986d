"""The requester side of the proxy model: `ChainClient`, the chain's counterpart of `adytum.Client`.

    with ChainClient("http://localhost:8545", "contracts.json", trust=Trust.from_files([root])) as c:
        outputs = c.run("hello", [b"world"])          # [b"Hello world"], verified

The worker comes from the WorkerRegistry: its record (keys) from `workerRetrieve`, its attestation evidence
from the event that registered it, checked against the hash the contract keeps, then verified exactly as
`Client` verifies a record from WorkerRetrieve. The order goes in with `workOrderSubmit`; the result is taken
from the `workOrderCompleted` event, which the contract accepted only with the worker's signature, and is
verified again here (signature, ids) before it is decrypted.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import msgspec

from .. import crypto
from ..client import PendingOrder, Trust, UntrustedWorker, WorkerInfo, build, open_result
from ..client.worker import require_active
from ..client.workorder import parse_suite
from ..protocol import EeaError, Status, encode
from . import codec
from .deployment import Deployment, check_code
from .errors import ChainError

_ZERO = b"\0" * 32


class ChainClient:
    """A requester's connection to the EEA contracts over one Ethereum JSON-RPC endpoint."""

    def __init__(
        self,
        rpc: str,
        contracts: Deployment | Path | str,
        *,
        trust: Trust | None = None,
        signer: crypto.SigningKey | None = None,
        requester_id: str | None = None,
        sender: str | None = None,
        key: str | None = None,
        poll: float = 0.1,
        suite: str | None = None,
    ) -> None:
        """`suite`: how orders wrap their session key, as `Client(suite=...)` takes it (default: HPKE when the
        worker offers it)."""
        from web3 import Web3

        self.w3: Any = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 30}))
        self.rpc = rpc
        self.deployment = contracts if isinstance(contracts, Deployment) else Deployment.load(contracts)
        self.trust = trust or Trust()
        self.signer = signer
        self.requester_id = requester_id or crypto.random_bytes(32).hex()
        self.suite = None if suite is None else parse_suite(suite)
        self.poll = poll
        self._account: Any = None
        if key is not None:
            from eth_account import Account

            self._account = Account.from_key(key)
            sender = self._account.address
        self._sender = sender
        self._checked = False

    def __enter__(self) -> ChainClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release (HTTP per call); here for symmetry with `Client`."""

    def contract(self, name: str) -> Any:
        if not self._checked:
            for deployed in self.deployment.contracts.values():
                check_code(deployed.name, deployed.address, bytes(self.w3.eth.get_code(deployed.address)))
            self._checked = True
        deployed = self.deployment[name]
        return self.w3.eth.contract(address=deployed.address, abi=deployed.abi)

    @property
    def sender(self) -> str:
        if self._sender is None:
            accounts = self.w3.eth.accounts
            if not accounts:
                raise ChainError(f"{self.rpc} unlocks no account: give the requester's key")
            self._sender = str(accounts[0])
        return self._sender

    # --- workers --------------------------------------------------------------------------------------------

    def worker_ids(
        self, worker_type: int = 0, organization_id: bytes = _ZERO, application_type_id: bytes = _ZERO
    ) -> list[str]:
        """Every registered worker matching the filters (zero: any), across all pages of workerLookUp."""
        registry = self.contract("WorkerRegistry")
        total, tag, ids = registry.functions.workerLookUp(worker_type, organization_id, application_type_id).call()
        found = [codec.id_hex(i) for i in ids]
        while tag:
            total, tag, ids = registry.functions.workerLookUpNext(
                worker_type, organization_id, application_type_id, tag
            ).call()
            found += [codec.id_hex(i) for i in ids]
        if len(found) != total:
            raise ChainError(f"workerLookUp counted {total} workers but its pages held {len(found)}")
        return found

    def worker_entry(self, worker_id: str) -> dict[str, Any]:
        """What the chain holds for a worker: status, signer address, evidence hash and the block it was logged
        in, owner, record (unverified); all read at one block, so an update cannot fall between the reads."""
        registry = self.contract("WorkerRegistry")
        wid = codec.id_bytes(worker_id)
        at = self.w3.eth.block_number
        status, worker_type, org, app_types, details = registry.functions.workerRetrieve(wid).call(block_identifier=at)
        if status == 0:
            raise EeaError(Status.INVALID_PARAMETER, f"worker {worker_id} is not registered on chain")
        signer, evidence_hash, owner, _ = registry.functions.workerKeys(wid).call(block_identifier=at)
        evidence_block = registry.functions.workerEvidenceBlock(wid).call(block_identifier=at)
        return {
            "workerId": worker_id,
            "status": status,
            "workerType": worker_type,
            "organizationId": codec.id_hex(org),
            "applicationTypeIds": [codec.id_hex(a) for a in app_types],
            "signer": signer,
            "evidenceHash": bytes(evidence_hash).hex(),
            "evidenceBlock": evidence_block,
            "owner": owner,
            "details": details,
        }

    def worker(self, worker_id: str | None = None) -> WorkerInfo:
        """The worker, its record, evidence and keys verified. With no id, the first registered one that is active
        and passes all of that: the registry also holds other operators' workers and decommissioned ones."""
        if worker_id is None:
            return self._first_usable_worker()
        entry = self.worker_entry(worker_id)
        try:
            record = msgspec.json.decode(entry["details"])
            record["details"]["workerTypeData"]["proofData"] = self._evidence(
                worker_id, entry["evidenceHash"], entry["evidenceBlock"]
            )
        except (msgspec.DecodeError, KeyError, TypeError) as exc:
            raise UntrustedWorker(f"worker {worker_id}: its record on chain is malformed ({exc})") from None
        info = WorkerInfo.verified(worker_id, record, self.trust)
        if codec.signer_address(info.verifying_key) != entry["signer"]:
            raise UntrustedWorker(f"worker {worker_id}: the chain's signer is not the record's verification key")
        require_active(dataclasses.replace(info, status=entry["status"]))  # the registry's status, not the record's
        return info

    def _first_usable_worker(self) -> WorkerInfo:
        refused = []
        for worker_id in self.worker_ids():
            try:
                return self.worker(worker_id)
            except (UntrustedWorker, EeaError) as exc:
                refused.append(f"{worker_id[:16]}…: {exc}")
        if not refused:
            raise EeaError(Status.INVALID_PARAMETER, "no worker is registered on chain")
        raise UntrustedWorker(f"none of the {len(refused)} workers on chain is usable: " + "; ".join(refused[:3]))

    def _evidence(self, worker_id: str, evidence_hash: str, block: int) -> str:
        """The evidence logged at the worker's evidenceBlock whose SHA-256 is the hash the registry keeps."""
        registry = self.contract("WorkerRegistry")
        wid = codec.id_bytes(worker_id)
        for event in (registry.events.WorkerRegistered, registry.events.WorkerUpdated):
            for log in event.get_logs(argument_filters={"workerId": wid}, from_block=block, to_block=block):
                evidence = log["args"]["evidence"]
                if crypto.sha256(evidence.encode()).hex() == evidence_hash:
                    return str(evidence)
        raise UntrustedWorker(f"worker {worker_id}: no evidence with the registered hash in block {block}")

    # --- work orders ----------------------------------------------------------------------------------------

    def submit(self, worker: WorkerInfo, workload: str, inputs: list[bytes]) -> tuple[PendingOrder, int]:
        """Build the order for the worker and submit it on chain: the order and the block it went into."""
        order = build(worker, workload, inputs, requester_id=self.requester_id, signer=self.signer, suite=self.suite)
        p = order.params
        fn = self.contract("WorkOrderRegistry").functions.workOrderSubmit(
            codec.id_bytes(p.work_order_id),
            codec.id_bytes(p.worker_id),
            codec.id_bytes(p.requester_id),
            encode(p).decode(),
        )
        receipt = self._send(fn, "workOrderSubmit")
        return order, int(receipt["blockNumber"])

    def result(self, order: PendingOrder, worker: WorkerInfo, *, timeout: float = 60.0) -> list[bytes]:
        """Wait for the order's completion event (reading the chain only when a block comes), verify, decrypt."""
        registry = self.contract("WorkOrderRegistry")
        wo = codec.id_bytes(order.work_order_id)
        deadline = time.monotonic() + timeout
        blocks = self.w3.eth.filter("latest")
        while True:
            status, _, _, _, _, completed = registry.functions.workOrderGet(wo).call()
            if status != 0:
                break
            if time.monotonic() > deadline:
                raise EeaError(Status.PENDING, f"work order {order.work_order_id} is not answered on chain yet")
            while not blocks.get_new_entries() and time.monotonic() < deadline:
                time.sleep(self.poll)
        events = registry.events.workOrderCompleted.get_logs(
            argument_filters={"workOrderId": wo}, from_block=completed, to_block=completed
        )
        if not events:
            raise ChainError(f"work order {order.work_order_id}: no completion event in block {completed}")
        args = events[0]["args"]
        if args["workOrderStatus"] != 1:
            raise EeaError(args["errorCode"], args["errorMessage"] or "the worker failed the work order")
        if not args["outData"] and args["workerNonce"] == "":
            raise ChainError("the result was posted by hash only: fetch it from the worker's node (WorkOrderGetResult)")
        return open_result(order, worker, codec.result_from_event(args, worker.worker_id))

    def run(
        self, workload: str, inputs: list[bytes], *, worker_id: str | None = None, timeout: float = 60.0
    ) -> list[bytes]:
        """Look up and verify the worker on chain, submit, wait for the completion event, verify, decrypt."""
        worker = self.worker(worker_id)
        order, _ = self.submit(worker, workload, inputs)
        return self.result(order, worker, timeout=timeout)

    def _send(self, fn: Any, what: str) -> Any:
        from web3.exceptions import ContractLogicError

        try:
            if self._account is None:
                tx = fn.transact({"from": self.sender})
            else:
                built = fn.build_transaction(
                    {"from": self.sender, "nonce": self.w3.eth.get_transaction_count(self.sender, "pending")}
                )
                tx = self.w3.eth.send_raw_transaction(self._account.sign_transaction(built).raw_transaction)
        except ContractLogicError as exc:
            raise ChainError(f"{what} reverted: {exc}") from None
        receipt = self.w3.eth.wait_for_transaction_receipt(tx, timeout=120)
        if receipt["status"] != 1:
            raise ChainError(f"{what} reverted (transaction {tx.hex()})")
        return receipt
