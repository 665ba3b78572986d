"""``adytum measure`` and ``adytum init``: the enclave's identity and the simulation's trust root.

``measure`` prints ``mr_enclave``, ``mr_signer`` and every measured file's SHA-256, so an auditor
can recompute a worker's measurement from a source checkout. ``init`` creates the development
root (see :mod:`adytum.issuer.devroot`) and says loudly that it is for simulation only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes

from ..attestation.measurement import measure
from ..issuer.devroot import init_dev_root
from ..issuer.quoter import DevRootError

__all__ = ["DEFAULT_DEV_ROOT", "register"]

DEFAULT_DEV_ROOT = Path("adytum-data") / "devroot"

WARNING = (
    "SIMULATION ONLY: this development root signs simulated attestation reports. It proves nothing\n"
    "about hardware. Requesters must trust it explicitly (root.pem), and never in production."
)


def _measure(args: argparse.Namespace) -> int:
    try:
        result = measure(args.module, include_plugins=not args.no_plugins)
    except (ModuleNotFoundError, ValueError, OSError) as exc:
        print(f"adytum measure: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return 0
    print(f"mr_enclave: {result.mr_enclave.hex()}")
    print(f"mr_signer:  {result.mr_signer.hex()}")
    print(f"python:     {'.'.join(map(str, result.python_version))}")
    print(f"files ({len(result.files)}):")
    for path, digest in result.files:
        print(f"  {digest}  {path}")
    return 0


def _init(args: argparse.Namespace) -> int:
    from .. import operator  # host-side, like this command

    try:
        root = init_dev_root(args.dir or args.data_dir / "devroot")
        operator_key = operator.ensure_key(args.data_dir)
    except (DevRootError, OSError) as exc:
        print(f"adytum init: {exc}", file=sys.stderr)
        return 1
    info: dict[str, Any] = {
        "directory": str(root.directory),
        "root_certificate": str(root.directory / "root.pem"),
        "root_fingerprint_sha256": root.root_certificate.fingerprint(hashes.SHA256()).hex(),
        "simulated": True,
        "warning": WARNING,
        "operator_key": str(operator_key),
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(WARNING, file=sys.stderr)
        print(f"development root in {info['directory']}")
        print(f"trust anchor for simulated evidence: {info['root_certificate']}")
        print(f"root SHA-256 fingerprint: {info['root_fingerprint_sha256']}")
        print(f"operator key (signs registry changes; keep it private): {operator_key}")
    return 0


def register(subparsers: Any) -> None:
    """``measure`` and ``init``, each with its ``run``."""
    m = subparsers.add_parser(
        "measure",
        help="print the enclave measurement (mr_enclave, mr_signer, per-file hashes)",
        description="Measure the enclave code installed here, as a simulated enclave reports it.",
    )
    m.add_argument("--json", action="store_true", help="machine-readable output")
    m.add_argument(
        "--module", action="append", default=[], metavar="NAME", help="also measure this module or package (repeatable)"
    )
    m.add_argument("--no-plugins", action="store_true", help="leave out installed workload plug-ins")
    m.set_defaults(run=_measure)
    i = subparsers.add_parser(
        "init", help="create the development root for SIMULATED attestation and the operator key", description=WARNING
    )
    i.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DEV_ROOT.parent,
        help=f"the node's data directory: the root goes in DATA_DIR/devroot and the operator key "
        f"in DATA_DIR/operator (default {DEFAULT_DEV_ROOT.parent})",
    )
    i.add_argument("--dir", type=Path, default=None, help="keep the development root here instead")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(run=_init)
