"""Gas of the proxy model: what one work order costs on chain, how many fit in a block, what batching saves.

Orders and results are real in shape: the request is a WorkOrderSubmit built by the SDK for a worker with an
RSA-3072 encryption key (the JSON the contract logs), the result one AES-GCM item signed by a secp256k1 key
as the enclave signs it. Measured on an in-process EVM (eth-tester, py-evm) unless --rpc names a node; gas is
the EVM's, so it is the same on any chain with the same fork rules (Shanghai here).

    .venv/bin/python bench/bench_chain.py [--orders 16] [--rpc http://127.0.0.1:8545] [--json]

"Orders per block" is computed: the block gas limit divided by the gas of one submit plus its completion.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from typing import Any

from web3 import Web3

from adytum import crypto
from adytum.chain import codec, deploy
from adytum.client import WorkerInfo, build
from adytum.protocol import DataItem, WorkOrderResult, encode, encryption_key_digest, response_hash

MAINNET_GAS_LIMIT = 30_000_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=16, help="orders per measurement (default 16)")
    parser.add_argument("--rpc", help="an Ethereum JSON-RPC node with unlocked accounts (default: in-process EVM)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.rpc:
        w3 = Web3(Web3.HTTPProvider(args.rpc))
    else:
        from web3.providers.eth_tester import EthereumTesterProvider

        w3 = Web3(EthereumTesterProvider())
    bench = Bench(w3)
    single = bench.orders(args.orders)
    submit = [bench.submit(o) for o in single]
    complete = [bench.complete([o]) for o in single]
    batches = {}
    for size in (2, 4, 8):
        rounds = max(1, args.orders // size)
        per_result = []
        for _ in range(rounds):
            group = bench.orders(size)
            for o in group:
                bench.submit(o)
            per_result.append(bench.complete(group) / size)
        batches[size] = statistics.mean(per_result)
    by_hash = []
    for o in bench.orders(args.orders):
        bench.submit(o)
        by_hash.append(bench.complete_by_hash(o))
    block_limit = int(w3.eth.get_block("latest")["gasLimit"])
    out: dict[str, Any] = {
        "chain": args.rpc or "in-process eth-tester (py-evm)",
        "orders": args.orders,
        "requestBytes": len(single[0]["request"]),
        "gas": {
            "submit": round(statistics.mean(submit)),
            "complete": round(statistics.mean(complete)),
            "completeBatchPerResult": {str(k): round(v) for k, v in batches.items()},
            "completeByHash": round(statistics.mean(by_hash)),
        },
        "blockGasLimit": block_limit,
    }
    per_order = out["gas"]["submit"] + out["gas"]["complete"]
    out["ordersPerBlock"] = {
        "this chain, one result per transaction": block_limit // per_order,
        "30M gas (Ethereum mainnet), one result per transaction": MAINNET_GAS_LIMIT // per_order,
        "30M gas, results in batches of 8": MAINNET_GAS_LIMIT // (out["gas"]["submit"] + round(batches[8])),
        "30M gas, results by hash": MAINNET_GAS_LIMIT // (out["gas"]["submit"] + out["gas"]["completeByHash"]),
    }
    if args.json:
        json.dump(out, sys.stdout, indent=1)
        print()
        return 0
    g = out["gas"]
    print(f"proxy-model gas on {out['chain']} ({args.orders} orders per figure, request {out['requestBytes']} bytes)")
    print(f"  workOrderSubmit                        {g['submit']:>9,} gas")
    print(f"  workOrderComplete (1 result, on chain) {g['complete']:>9,} gas")
    for k, v in g["completeBatchPerResult"].items():
        print(f"  workOrderCompleteBatch of {k}, per result {v:>9,} gas  ({_versus(v, g['complete'])})")
    print(
        f"  workOrderCompleteByHash (data off chain) {g['completeByHash']:>7,} gas  ({_versus(g['completeByHash'], g['complete'])})"
    )
    print("orders per block (computed: gas limit / (submit + complete)):")
    for what, n in out["ordersPerBlock"].items():
        print(f"  {what:<55} {n:>5}")
    return 0


class Bench:
    def __init__(self, w3: Any) -> None:
        self.w3 = w3
        self.sender = w3.eth.accounts[0]
        deployment = deploy(w3, self.sender)
        self.orders_contract = w3.eth.contract(**_at(deployment, "WorkOrderRegistry"))
        registry = w3.eth.contract(**_at(deployment, "WorkerRegistry"))
        self.key = crypto.SigningKey()
        rsa = crypto.rsa_generate()
        encryption_pem = crypto.rsa_public_pem(rsa)
        self.worker_id = os.urandom(32).hex()
        self.worker = WorkerInfo(
            worker_id=self.worker_id,
            verifying_key=self.key.public_pem(),
            encryption_key=encryption_pem,
            encryption_key_signature=self.key.sign_digest(encryption_key_digest(encryption_pem)).hex(),
        )
        self._wait(
            registry.functions.workerRegister(
                bytes.fromhex(self.worker_id), 1, b"\0" * 32, [], "{}", codec.signer_address(self.key.public_pem()), ""
            ).transact({"from": self.sender})
        )

    def orders(self, n: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(n):
            order = build(self.worker, "hello", [b"world"], requester_id=os.urandom(32).hex())
            out.append({"order": order, "request": encode(order.params).decode()})
        return out

    def submit(self, o: dict[str, Any]) -> int:
        p = o["order"].params
        fn = self.orders_contract.functions.workOrderSubmit(
            bytes.fromhex(p.work_order_id), bytes.fromhex(p.worker_id), bytes.fromhex(p.requester_id), o["request"]
        )
        return self._wait(fn.transact({"from": self.sender}))

    def _result(self, o: dict[str, Any]) -> tuple[WorkOrderResult, bytes]:
        p = o["order"].params
        sealed = crypto.aead_encrypt(o["order"].session_key, b"Hello world")
        result = WorkOrderResult(
            work_order_id=p.work_order_id,
            workload_id=p.workload_id,
            worker_id=p.worker_id,
            requester_id=p.requester_id,
            worker_nonce=crypto.random_bytes(16).hex(),
            worker_signature="",
            out_data=[DataItem(index=0, data=crypto.b64encode(sealed.ciphertext), iv=sealed.iv.hex())],
        )
        digest = response_hash(result)
        result.worker_signature = crypto.b64encode(self.key.sign_digest(digest))
        return result, digest

    def complete(self, group: list[dict[str, Any]]) -> int:
        args = []
        for o in group:
            result, digest = self._result(o)
            args.append(codec.result_args(result, self.key.public_pem(), digest))
        fn = (
            self.orders_contract.functions.workOrderComplete(args[0])
            if len(args) == 1
            else self.orders_contract.functions.workOrderCompleteBatch(args)
        )
        return self._wait(fn.transact({"from": self.sender}))

    def complete_by_hash(self, o: dict[str, Any]) -> int:
        result, digest = self._result(o)
        v, r, s = codec.vrs(self.key.public_pem(), digest, crypto.b64decode(result.worker_signature))
        fn = self.orders_contract.functions.workOrderCompleteByHash(
            bytes.fromhex(result.work_order_id), digest, (v, r, s)
        )
        return self._wait(fn.transact({"from": self.sender}))

    def _wait(self, tx: Any) -> int:
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        if receipt["status"] != 1:
            raise SystemExit(f"transaction {tx.hex()} reverted")
        return int(receipt["gasUsed"])


def _versus(gas: int, single: int) -> str:
    change = 100 * (gas / single - 1)
    return f"{abs(change):.0f}% {'more' if change > 0 else 'less'} than one by one"


def _at(deployment: Any, name: str) -> dict[str, Any]:
    return {"address": deployment[name].address, "abi": deployment[name].abi}


if __name__ == "__main__":
    sys.exit(main())
