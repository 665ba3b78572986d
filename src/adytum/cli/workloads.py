"""`adytum workloads`: what an enclave with this data directory would serve, and what it would measure.

For each workload: its name, its id on the wire, its description, the source file that defines it and
that file's SHA-256, the file's contribution to ``mr_enclave``. Then the ``mr_enclave`` of the
enclave code with the plug-ins of ``<data_dir>/workloads.toml``, the value a requester pins with
``--allow-mrenclave``. It imports the plug-ins (host side) to read their names and descriptions.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from ..datadir import DataDir
from .options import Subparsers, add_data_dir, add_json
from .output import console, emit_json, fail

if TYPE_CHECKING:
    from ..workloads import Workload

CONFIG_FILE = DataDir(".").workloads_config.name


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "workloads",
        help="list the workloads, their source hashes and the resulting mr_enclave",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="List every workload an enclave started with this data directory serves: "
        "the built-ins, installed plug-ins (entry points) and those of "
        f"DATA_DIR/{CONFIG_FILE}, with the SHA-256 of each source file and the "
        "enclave measurement they add up to.",
        epilog="examples:\n  adytum workloads\n  adytum workloads --data-dir /var/lib/adytum --json",
    )
    add_data_dir(p, f"the node's data directory, for {CONFIG_FILE} and workloads/")
    add_json(p)
    p.set_defaults(run=run)


def _measured_path(module: str, location: Path) -> tuple[str, Path]:
    """The path a module's source has in the measurement (``adytum/workloads/fib.py``) and the file."""
    parts = module.split(".")
    if location.is_dir():
        return "/".join(parts) + "/__init__.py", location / "__init__.py"
    return "/".join([*parts[:-1], location.name]), location


def _origin(cls: type[Workload], configured: set[str]) -> str:
    from ..workloads.registry import BUILTIN

    if cls in BUILTIN:
        return "built-in"
    return CONFIG_FILE if cls.name in configured else "entry point"


def describe(data_dir: Path) -> dict[str, Any]:
    """Everything the command prints, as JSON-ready data; raises on a bad configuration."""
    from ..attestation.measurement import source_locations
    from ..protocol import workload_hex
    from ..workloads.registry import configured_modules, configured_plugins, measure_work_order_build, workload_classes

    classes = workload_classes(data_dir)
    measurement = measure_work_order_build(data_dir)
    measured = dict(measurement.files)
    configured = set(configured_plugins(data_dir))
    rows = []
    for cls in classes:
        location = source_locations([cls.__module__])[cls.__module__]
        path, file = _measured_path(cls.__module__, location)
        digest = measured.get(path)
        rows.append(
            {
                "name": cls.name,
                "workload_id": workload_hex(cls.name),
                "description": cls.description,
                "origin": _origin(cls, configured),
                "class": f"{cls.__module__}:{cls.__qualname__}",
                "file": str(file),
                "path": path,
                "sha256": digest or hashlib.sha256(file.read_bytes()).hexdigest(),
                "measured": digest is not None,
            }
        )
    return {
        "data_dir": str(data_dir),
        "workloads": rows,
        "plugin_modules": configured_modules(data_dir),
        "mr_enclave": measurement.mr_enclave.hex(),
        "mr_signer": measurement.mr_signer.hex(),
        "measured_files": len(measurement.files),
    }


def run(args: argparse.Namespace) -> int:
    try:
        report = describe(args.data_dir)
    except (ImportError, ValueError, OSError) as exc:  # WorkloadConfigError is a ValueError
        return fail(str(exc), as_json=args.json)
    if args.json:
        emit_json(report)
        return 0
    console.print(f"{len(report['workloads'])} workload(s):")
    for row in report["workloads"]:
        console.print(f"\n[bold]{escape(row['name'])}[/]  ({row['origin']})", highlight=False)
        for label, value in (
            ("id", row["workload_id"]),
            ("description", row["description"]),
            ("source", row["path"] if row["origin"] == "built-in" else row["file"]),
            ("sha256", row["sha256"]),
        ):
            console.print(f"  {label:<12}{value}", markup=False, highlight=False)
        if not row["measured"]:
            console.print("  [bold red]NOT MEASURED[/]: this file is not part of mr_enclave", highlight=False)
    console.print()
    config = DataDir(report["data_dir"]).workloads_config
    console.print(f"mr_enclave: {report['mr_enclave']}", highlight=False)
    console.print(
        f"            over {report['measured_files']} files, plug-in modules of {config}: "
        f"{', '.join(report['plugin_modules']) or 'none'}",
        highlight=False,
    )
    console.print(f"mr_signer:  {report['mr_signer']}", highlight=False)
    return 0
