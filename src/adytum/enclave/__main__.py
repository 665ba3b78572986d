"""`python -m adytum.enclave`: one enclave process. The host starts it; nothing else should."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .budget import Budget
from .service import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m adytum.enclave",
        description="Run one (simulated) enclave speaking the framed channel on stdin/stdout. Started by `adytum up`.",
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="where sealed keys live")
    parser.add_argument(
        "--role",
        choices=("wpe", "kme"),
        default="wpe",
        help="wpe: process work orders with keys a key manager provisions (default); "
        "kme: the key manager, which seals the worker's keys and provisions them",
    )
    parser.add_argument("--worker-id", required=True, help="hex worker id the keys belong to")
    parser.add_argument(
        "--avalon-compat",
        action="store_true",
        help="also accept Avalon clients (OAEP-SHA1, one IV for everything): weaker",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=Budget.seconds,
        help=f"seconds one workload run may take before it is stopped (default {Budget.seconds:g})",
    )
    parser.add_argument(
        "--memory-mb",
        type=int,
        default=Budget.memory_mb,
        help=f"address space of this enclave process, in MB (default {Budget.memory_mb})",
    )
    parser.add_argument(
        "--succeed",
        action="store_true",
        help="kme: if this build cannot unseal the worker's keys, take them over from the key-manager build that "
        "sealed them, which the host runs alongside (an upgrade its policy allows), and seal them under this build",
    )
    args = parser.parse_args(argv)
    # One line per record, "LEVEL message": the host re-logs it with its own structure.
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(message)s")
    budget = Budget(seconds=args.time_budget, memory_mb=args.memory_mb)
    budget.apply_memory_limit()
    return serve(
        args.data_dir, args.worker_id.lower(), args.avalon_compat, budget, role=args.role, succeed=args.succeed
    )


if __name__ == "__main__":
    sys.exit(main())
