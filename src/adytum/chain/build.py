"""Compile the Vyper contracts (contracts/*.vy) into contracts/artifacts.json: ABI, bytecode, runtime bytecode.

The artifacts are committed so that a node or requester needs no compiler; `make contracts` writes them and
tests/chain/test_build.py recompiles and compares, so they are always the output of the committed sources with
the pinned compiler (`vyper` in pyproject.toml) for the pinned EVM version.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

CONTRACTS_DIR = Path(__file__).resolve().parent / "contracts"
ARTIFACTS = CONTRACTS_DIR / "artifacts.json"
#: Shanghai, so the bytecode runs on every node the README names (Ganache 7 stops at Shanghai; later forks run it).
EVM_VERSION = "shanghai"
#: In deployment order; each later one takes the WorkerRegistry's address in its constructor (not the list).
NAMES = ("WorkerRegistry", "WorkOrderRegistry", "WorkOrderReceiptRegistry", "WorkerRegistryList")


def compile_all() -> dict[str, Any]:
    """Every contract compiled from its source now (needs the `vyper` package)."""
    import vyper  # type: ignore[import-untyped]
    from vyper.compiler.settings import Settings  # type: ignore[import-untyped]

    out: dict[str, Any] = {"compiler": f"vyper {vyper.__version__}", "evmVersion": EVM_VERSION, "contracts": {}}
    for name in NAMES:
        path = CONTRACTS_DIR / f"{name}.vy"
        source = path.read_text()
        built = vyper.compile_code(
            source,
            contract_path=path.name,
            output_formats=["abi", "bytecode", "bytecode_runtime"],
            settings=Settings(evm_version=EVM_VERSION),
        )
        out["contracts"][name] = {
            "sourceSha256": hashlib.sha256(source.encode()).hexdigest(),
            "abi": built["abi"],
            "bytecode": built["bytecode"],
            "runtimeBytecode": built["bytecode_runtime"],
        }
    return out


def render(artifacts: dict[str, Any]) -> str:
    return json.dumps(artifacts, indent=1, sort_keys=True) + "\n"


def main() -> int:
    ARTIFACTS.write_text(render(compile_all()))
    print(f"wrote {ARTIFACTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
