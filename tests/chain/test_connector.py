"""The node's connector against a real JSON-RPC endpoint (an in-process eth-tester chain served over HTTP):
real node, real enclave processes, real SQLite store, orders in and results out through the contracts."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from eth_abi import encode as abi_encode
from web3 import Web3

from adytum.chain import ChainClient, codec, deploy
from adytum.chain.devchain import DevChainServer
from adytum.config import ChainConfig
from adytum.crypto import KeySuite
from adytum.protocol import EeaError, Status
from support import running_node


@pytest.fixture
def rpc():
    server = DevChainServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def contracts(rpc, tmp_path: Path) -> Path:
    w3 = Web3(Web3.HTTPProvider(rpc.url))
    path = tmp_path / "contracts.json"
    path.write_text(json.dumps(deploy(w3, w3.eth.accounts[0]).to_json()))
    return path


def chain_config(rpc, contracts: Path, **options) -> ChainConfig:
    return ChainConfig(rpc.url, contracts, poll=0.05, **options)


def requester(rpc, contracts: Path, node, account: int = 1) -> ChainClient:
    w3 = Web3(Web3.HTTPProvider(rpc.url))
    client = ChainClient(rpc.url, contracts, trust=node.trust, sender=w3.eth.accounts[account], poll=0.05)
    until(lambda: client.worker_ids(), "the worker is registered on chain")
    return client


def until(check, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}")


def completions(client: ChainClient, wo_id: str) -> list:
    registry = client.contract("WorkOrderRegistry")
    return registry.events.workOrderCompleted.get_logs(
        argument_filters={"workOrderId": codec.id_bytes(wo_id)}, from_block=0
    )


def test_orders_through_the_contract_come_back_verified_and_the_ledger_is_anchored(rpc, contracts, tmp_path):
    with running_node(tmp_path / "node", chain=chain_config(rpc, contracts, anchor_interval=0.2)) as node:
        client = requester(rpc, contracts, node)
        worker = client.worker()  # record from workerRetrieve, evidence from its event, checked against the hash
        assert worker.verdict is not None and worker.worker_id == node.node.manager.worker_id
        entry = client.worker_entry(worker.worker_id)
        assert entry["signer"] == codec.signer_address(worker.verifying_key)
        assert client.run("hello", [b"chain"], timeout=60) == [b"Hello chain"]
        order, _ = client.submit(worker, "fib", [b"20"])
        assert client.result(order, worker, timeout=60) == [b"6765"]
        assert len(completions(client, order.work_order_id)) == 1
        assert order.params.key_encryption_algorithm is KeySuite.HPKE_X25519  # the worker offers HPKE
        pq = ChainClient(rpc.url, contracts, trust=node.trust, sender=client.sender, poll=0.05, suite="mlkem-x25519")
        assert pq.run("hello", [b"pq"], timeout=60) == [b"Hello pq"]  # the 1168-byte wrapped key fits on chain
        receipts = client.contract("WorkOrderReceiptRegistry")
        wid = codec.id_bytes(worker.worker_id)
        size = until(lambda: receipts.functions.ledgerHead(wid).call()[0], "a tree head is anchored")
        assert size >= 2

        # a rotated encryption key is published by the node and follows on chain, with its fresh evidence
        node.call(node.node.manager.keys.rotate)
        rotated = until(
            lambda: (w := client.worker()).encryption_key != worker.encryption_key and w, "the chain has the new key"
        )
        assert client.worker_entry(worker.worker_id)["evidenceHash"] != entry["evidenceHash"]
        assert rotated.verifying_key == worker.verifying_key
        order, _ = client.submit(rotated, "hello", [b"rotated"])
        assert client.result(order, rotated, timeout=60) == [b"Hello rotated"]


def test_malformed_requests_in_events_are_refused_on_chain_and_the_connector_goes_on(rpc, contracts, tmp_path):
    with running_node(tmp_path / "node", chain=chain_config(rpc, contracts)) as node:
        client = requester(rpc, contracts, node)
        worker = client.worker()
        orders = client.contract("WorkOrderRegistry")
        wid = codec.id_bytes(worker.worker_id)
        garbage = (b"\x11" * 32, "this is not JSON")
        # a well-formed request whose ids are not the event's
        from adytum.client import build
        from adytum.protocol import encode

        other = build(worker, "hello", [b"x"], requester_id="ab" * 32)
        mismatched = (b"\x22" * 32, encode(other.params).decode())
        for wo, request in (garbage, mismatched):
            orders.functions.workOrderSubmit(wo, wid, b"\x33" * 32, request).transact({"from": client.sender})
        # a request that is not UTF-8 (ABI strings are bytes on chain): its event does not decode
        not_text = (b"\x44" * 32, None)
        selector = Web3.keccak(text="workOrderSubmit(bytes32,bytes32,bytes32,string)")[:4]
        body = abi_encode(["bytes32", "bytes32", "bytes32", "bytes"], [not_text[0], wid, b"\x33" * 32, b"\xff\xfe{"])
        w3 = client.w3
        w3.eth.wait_for_transaction_receipt(
            w3.eth.send_transaction(
                {"from": client.sender, "to": orders.address, "data": selector + body, "gas": 500_000}
            )
        )
        for wo, _ in (garbage, mismatched, not_text):
            wo_id = wo.hex()
            [event] = until(lambda wo_id=wo_id: completions(client, wo_id), f"{wo_id} is refused on chain")
            assert event["args"]["workOrderStatus"] == 2 and event["args"]["errorCode"] == Status.INVALID_PARAMETER
        assert "not the event's" in completions(client, mismatched[0].hex())[0]["args"]["errorMessage"]
        with pytest.raises(EeaError) as refused:
            client.result(_pending(mismatched[0].hex(), other), worker, timeout=10)
        assert refused.value.code == Status.INVALID_PARAMETER
        assert client.run("hello", [b"after"], timeout=60) == [b"Hello after"]
        assert node.node.connector is not None and node.node.connector.skipped == 3


def _pending(wo_id: str, like):
    import dataclasses

    import msgspec

    return dataclasses.replace(like, params=msgspec.structs.replace(like.params, work_order_id=wo_id))


def test_a_restart_resumes_from_the_last_block_nothing_missed_nothing_twice(rpc, contracts, tmp_path):
    data = tmp_path / "node"
    with running_node(data, chain=chain_config(rpc, contracts)) as node:
        client = requester(rpc, contracts, node)
        worker = client.worker()
        assert client.run("hello", [b"one"], timeout=60) == [b"Hello one"]
    # the node is down: orders keep coming in on chain
    waiting = [client.submit(worker, "hello", [f"down {i}".encode()])[0] for i in range(3)]
    with running_node(data, chain=chain_config(rpc, contracts)) as node:
        for i, order in enumerate(waiting):
            assert client.result(order, worker, timeout=60) == [f"Hello down {i}".encode()]
        connector = node.node.connector
        assert connector is not None and connector.taken == 3  # the first order was not taken again
        assert client.run("hello", [b"two"], timeout=60) == [b"Hello two"]
    for order in waiting:
        assert len(completions(client, order.work_order_id)) == 1


def test_a_busy_node_loses_no_order(rpc, contracts, tmp_path):
    with running_node(tmp_path / "node", chain=chain_config(rpc, contracts), max_pending=1) as node:
        client = requester(rpc, contracts, node)
        worker = client.worker()
        sent = [client.submit(worker, "fib", [str(30 + i).encode()])[0] for i in range(5)]
        answers = [client.result(order, worker, timeout=90) for order in sent]
        assert answers == [[b"832040"], [b"1346269"], [b"2178309"], [b"3524578"], [b"5702887"]]


def test_a_reorg_is_read_again_and_an_rpc_node_that_goes_away_is_waited_for(rpc, contracts, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="adytum.chain")
    with running_node(tmp_path / "node", chain=chain_config(rpc, contracts)) as node:
        client = requester(rpc, contracts, node)
        worker = client.worker()
        w3 = Web3(Web3.HTTPProvider(rpc.url))
        snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
        lost = client.submit(worker, "hello", [b"orphan"])[0]
        assert client.result(lost, worker, timeout=60) == [b"Hello orphan"]
        # the blocks of that order and its result are replaced by as many others and more
        w3.provider.make_request("evm_revert", [snapshot])
        kept = [client.submit(worker, "hello", [f"kept {i}".encode()])[0] for i in range(3)]
        for i, order in enumerate(kept):
            assert client.result(order, worker, timeout=60) == [f"Hello kept {i}".encode()]
        assert any("reorg" in r.getMessage() for r in caplog.records)

        # the RPC node goes away; an order arrives on chain meanwhile (straight into the chain, not by HTTP)
        rpc.stop()
        chain_w3 = rpc.chain.w3
        late = _submit_direct(chain_w3, client, worker)
        time.sleep(1.0)
        rpc.start()
        assert client.result(late, worker, timeout=60) == [b"Hello late"]
        assert any("trying again" in r.getMessage() for r in caplog.records)


def _submit_direct(w3, client: ChainClient, worker):
    from adytum.client import build
    from adytum.protocol import encode

    order = build(worker, "hello", [b"late"], requester_id=client.requester_id)
    p = order.params
    d = client.deployment["WorkOrderRegistry"]
    registry = w3.eth.contract(address=d.address, abi=d.abi)
    registry.functions.workOrderSubmit(
        codec.id_bytes(p.work_order_id), codec.id_bytes(p.worker_id), codec.id_bytes(p.requester_id), encode(p).decode()
    ).transact({"from": client.sender})
    return order
