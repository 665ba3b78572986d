"""Chain fixtures: an in-process EVM (eth-tester on py-evm) with the contracts deployed, and helpers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest

pytest.importorskip(
    "web3", reason="the chain tests need the `chain` extra (web3, eth-tester): pip install -e '.[test]'"
)

from web3 import Web3  # noqa: E402
from web3.providers.eth_tester import EthereumTesterProvider  # noqa: E402

from adytum.chain import Deployment, deploy  # noqa: E402

ZERO = b"\0" * 32


@dataclass
class Chain:
    w3: Any
    deployment: Deployment

    def contract(self, name: str) -> Any:
        d = self.deployment[name]
        return self.w3.eth.contract(address=d.address, abi=d.abi)

    def account(self, i: int) -> str:
        return str(self.w3.eth.accounts[i])

    def send(self, fn: Any, sender: int = 0) -> Any:
        receipt = self.w3.eth.wait_for_transaction_receipt(fn.transact({"from": self.account(sender)}))
        assert receipt["status"] == 1
        return receipt


@pytest.fixture(scope="module")
def chain() -> Chain:
    w3 = Web3(EthereumTesterProvider())
    return Chain(w3, deploy(w3, w3.eth.accounts[0]))


def random_id() -> bytes:
    return os.urandom(32)
