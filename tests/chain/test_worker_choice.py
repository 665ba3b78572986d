"""A requester on chain picks a worker it can use, not the first one registered: the WorkerRegistry is open to
every operator, and holds decommissioned workers too."""

from __future__ import annotations

import json

import pytest
from web3 import Web3

from adytum import crypto
from adytum.chain import codec
from adytum.chain.deployment import Deployment
from adytum.client import UntrustedWorker
from adytum.protocol import WorkerStatus
from support import running_node

from .test_connector import chain_config, contracts, requester, rpc, until  # noqa: F401  (fixtures)


def test_the_first_usable_worker_is_picked(rpc, contracts, tmp_path):  # noqa: F811
    w3 = Web3(Web3.HTTPProvider(rpc.url))
    deployed = Deployment.from_json(json.loads(contracts.read_text())).contracts["WorkerRegistry"]
    registry = w3.eth.contract(address=deployed.address, abi=deployed.abi)
    other = w3.eth.accounts[2]
    for wid, status in ((b"\x01" * 32, WorkerStatus.ACTIVE), (b"\x02" * 32, WorkerStatus.DECOMMISSIONED)):
        signer = codec.signer_address(crypto.SigningKey().public_pem())
        tx = registry.functions.workerRegister(wid, 1, b"\0" * 32, [], '{"record": 1}', signer, "evidence")
        w3.eth.wait_for_transaction_receipt(tx.transact({"from": other}))
        if status != WorkerStatus.ACTIVE:
            tx = registry.functions.workerSetStatus(wid, int(status))
            w3.eth.wait_for_transaction_receipt(tx.transact({"from": other}))
    with running_node(tmp_path / "node", chain=chain_config(rpc, contracts)) as node:
        client = requester(rpc, contracts, node)
        hosted = node.node.manager.worker_id
        ids = until(lambda: hosted in (found := client.worker_ids()) and found, "the node registered its worker")
        assert ids == ["01" * 32, "02" * 32, hosted]
        assert client.worker().worker_id == hosted
        assert client.run("hello", [b"picked"], timeout=60) == [b"Hello picked"]
        with pytest.raises(UntrustedWorker, match="malformed"):
            client.worker("01" * 32)
