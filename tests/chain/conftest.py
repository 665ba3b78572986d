"""Chain fixtures: an in-process EVM (eth-tester on py-evm) with the contracts deployed, and helpers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest

# adytum.chain first: it imports web3 keeping the interpreter's recursion limit (which web3's py_ecc raises)
pytest.importorskip(
    "adytum.chain", reason="the chain tests need the `chain` extra (web3, eth-tester): pip install -e '.[test]'"
)

from adytum.chain import Deployment, deploy, recursion_limit_kept  # noqa: E402

with recursion_limit_kept():  # eth-tester imports py-evm, which raises it; imported here once, kept
    import eth_tester.exceptions  # noqa: F401

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


@pytest.fixture(autouse=True)
def _recursion_limit_kept():
    """py-evm, imported when an in-process chain starts, raises the recursion limit; the rest of the suite
    (the listener's nesting check) must see the interpreter's own."""
    with recursion_limit_kept():
        yield


def in_process_chain() -> Chain:
    from web3 import Web3
    from web3.providers.eth_tester import EthereumTesterProvider

    with recursion_limit_kept():
        w3 = Web3(EthereumTesterProvider())
    return Chain(w3, deploy(w3, w3.eth.accounts[0]))


@pytest.fixture(scope="module")
def chain() -> Chain:
    return in_process_chain()


def random_id() -> bytes:
    return os.urandom(32)
