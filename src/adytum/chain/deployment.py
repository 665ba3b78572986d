"""The contracts as built (contracts/artifacts.json) and as deployed: the contracts file `adytum chain deploy`
prints and `--contracts` takes, a JSON list of each contract's name, address and ABI.

A contracts file names addresses; `check_code` makes sure each address holds the code built from this
repository's sources, so a wrong or mistyped address is refused before anything is sent to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .build import ARTIFACTS, NAMES
from .errors import ChainError


@cache
def artifacts() -> dict[str, Any]:
    contracts: dict[str, Any] = json.loads(ARTIFACTS.read_text())["contracts"]
    return contracts


@dataclass(frozen=True)
class Deployed:
    name: str
    address: str
    abi: list[dict[str, Any]]


@dataclass(frozen=True)
class Deployment:
    """The four contracts of one deployment, by name."""

    contracts: dict[str, Deployed]

    def __getitem__(self, name: str) -> Deployed:
        return self.contracts[name]

    def to_json(self) -> list[dict[str, Any]]:
        return [{"name": c.name, "address": c.address, "abi": c.abi} for c in self.contracts.values()]

    @classmethod
    def from_json(cls, data: Any, source: str = "the contracts file") -> Deployment:
        if not isinstance(data, list):
            raise ChainError(
                f"{source}: expected a JSON list of {{name, address, abi}} (what `adytum chain deploy` prints)"
            )
        found: dict[str, Deployed] = {}
        for entry in data:
            try:
                name, address, abi = entry["name"], entry["address"], entry["abi"]
            except (KeyError, TypeError):
                raise ChainError(f"{source}: every entry needs name, address and abi") from None
            if not isinstance(name, str) or not isinstance(address, str) or not isinstance(abi, list):
                raise ChainError(f"{source}: name and address must be strings, abi a list")
            found[name] = Deployed(name, address, abi)
        missing = [n for n in NAMES if n not in found]
        if missing:
            raise ChainError(f"{source}: no address for {', '.join(missing)}")
        return cls({n: found[n] for n in NAMES})

    @classmethod
    def load(cls, path: Path | str) -> Deployment:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ChainError(f"{path}: cannot read the contracts file: {exc}") from None
        return cls.from_json(data, str(path))


def expected_code(name: str) -> bytes:
    return bytes.fromhex(artifacts()[name]["runtimeBytecode"].removeprefix("0x"))


def check_code(name: str, address: str, code: bytes) -> None:
    """Refuse an address whose code is not the contract built here (none, another contract, another build)."""
    if not code:
        raise ChainError(f"{name} at {address}: no contract there (wrong address, or another chain?)")
    if bytes(code) != expected_code(name):
        raise ChainError(
            f"{name} at {address}: the code there is not {name} as built from this repository's sources "
            "(another contract, or another version: deploy again with `adytum chain deploy`)"
        )


def deploy(w3: Any, sender: str) -> Deployment:
    """Deploy the four contracts from `sender` (an account the RPC node signs for) and wait for each."""
    out: dict[str, Deployed] = {}
    registry = ""
    for name in NAMES:
        art = artifacts()[name]
        factory = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        ctor = (
            factory.constructor() if name in ("WorkerRegistry", "WorkerRegistryList") else factory.constructor(registry)
        )
        tx = ctor.transact({"from": sender})
        receipt = w3.eth.wait_for_transaction_receipt(tx, timeout=120)
        if receipt["status"] != 1 or not receipt["contractAddress"]:
            raise ChainError(f"deploying {name} failed (transaction {tx.hex()})")
        address = str(receipt["contractAddress"])
        if name == "WorkerRegistry":
            registry = address
        out[name] = Deployed(name, address, art["abi"])
    return Deployment(out)
