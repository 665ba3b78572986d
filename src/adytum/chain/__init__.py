"""The EEA proxy model on Ethereum: the contracts (contracts/*.vy, built into contracts/artifacts.json), the
node's connector (`connector.py`, `adytum up --chain`), the requester's `ChainClient` (`requester.py`), the
deployment file (`deployment.py`) and an in-process development chain (`devchain.py`).

Needs the `chain` extra (web3, eth-tester); nothing else in adytum imports this part unless a chain is asked for.
"""

from .deployment import Deployment, deploy
from .errors import ChainError
from .requester import ChainClient

__all__ = ["ChainClient", "ChainError", "Deployment", "deploy"]
