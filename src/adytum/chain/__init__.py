"""The EEA proxy model on Ethereum: the contracts (contracts/*.vy, built into contracts/artifacts.json), the
node's connector (`connector.py`, `adytum up --chain`), the requester's `ChainClient` (`requester.py`), the
deployment file (`deployment.py`) and an in-process development chain (`devchain.py`).

Needs the `chain` extra (web3, eth-tester); nothing else in adytum imports this part unless a chain is asked for.

web3 is imported here, first, under `recursion_limit_kept`: its dependency py_ecc raises the interpreter's
recursion limit to 100000 on import (py-evm to 12288), which would let a deeply nested JSON request past the
listener's depth check (msgspec stops at the recursion limit) and into a C stack overflow of the node.
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def recursion_limit_kept() -> Iterator[None]:
    """Whatever runs inside may raise the recursion limit; it is put back afterwards."""
    limit = sys.getrecursionlimit()
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


with recursion_limit_kept():
    import eth_account  # noqa: F401
    import web3  # noqa: F401

from .deployment import Deployment, deploy  # noqa: E402
from .errors import ChainError  # noqa: E402
from .requester import ChainClient  # noqa: E402


def http(url: str) -> web3.Web3:
    """A synchronous web3 on a JSON-RPC URL (what the CLI and ChainClient use)."""
    return web3.Web3(web3.Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))


__all__ = ["ChainClient", "ChainError", "Deployment", "deploy", "http", "recursion_limit_kept"]
