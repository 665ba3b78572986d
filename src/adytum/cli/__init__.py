"""`adytum`: run a node, send work orders, inspect workers, measure throughput.

This module only assembles the commands of `COMMANDS` and runs the one given."""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from . import (
    attestation,
    bench,
    chain,
    demo,
    ledger,
    measure,
    pool,
    receipt,
    store,
    submit,
    up,
    worker,
    workers,
    workloads,
)

#: Every command module, in the order `adytum --help` lists them. Each has `register(sub)`, which adds its
#: parser(s) with `set_defaults(run=run)`; `run(args)` returns the exit code and imports the heavy modules it
#: needs itself, so that building the parser stays fast.
COMMANDS: tuple[ModuleType, ...] = (
    up,
    submit,
    workers,
    receipt,
    ledger,
    bench,
    demo,
    worker,
    attestation,
    measure,
    workloads,
    pool,
    store,
    chain,
)

EPILOG = """\
quick start:
  adytum up                                   # a node on :1947 with simulated enclaves, data in ./adytum-data
  export ADYTUM_TRUST_ROOT=adytum-data/devroot/root.pem    # trust that node's development attestation root
  adytum submit --workload hello --in-data world
  adytum workers
  adytum pool                                 # the key manager and each enclave: measurement, state, orders
  adytum receipt get WO_ID -o receipt.json    # a work order's signed receipt trail; `receipt verify` offline
  adytum bench --enclaves 1,2                 # throughput of a fresh node with 1, then 2 enclaves

Every command that prints takes --json for scripts. `adytum COMMAND --help` explains each one.
"""


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="adytum",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
        description="adytum runs confidential work orders (EEA Off-Chain Trusted Compute v1.1) in enclaves: "
        "inputs are encrypted end to end to a worker key, results come back signed.",
    )
    sub = root.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(sub)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
