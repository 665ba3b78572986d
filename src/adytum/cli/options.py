"""Options several commands share (`--uri`, `--trust-root`, `--json`, `--data-dir`), with their defaults from
`adytum.config`. Light on purpose: every command module imports it to build its parser."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import DEFAULT_PORT, DEFAULTS

if TYPE_CHECKING:
    from typing import TypeAlias

    from ..client import Trust

    #: What `add_subparsers()` returns, on which each command module's `register` adds its parser.
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = argparse._SubParsersAction

DEFAULT_URI = f"http://localhost:{DEFAULT_PORT}/"
DEFAULT_DATA_DIR: Path = DEFAULTS.data_dir


def add_uri(p: argparse.ArgumentParser) -> None:
    p.add_argument("--uri", default=DEFAULT_URI, help=f"the node's JSON-RPC address (default {DEFAULT_URI})")


def add_trust(p: argparse.ArgumentParser) -> None:
    """What a requester trusts: attestation roots, allowed measurements, debug enclaves (see `trust_from_args`)."""
    env = [f for f in os.environ.get("ADYTUM_TRUST_ROOT", "").split(os.pathsep) if f]
    p.add_argument(
        "--trust-root",
        action="append",
        default=env,
        metavar="PEM",
        help="trust simulated attestation signed by this root certificate (repeatable; default "
        "$ADYTUM_TRUST_ROOT). A development node's root is DATA_DIR/devroot/root.pem. Hardware "
        "evidence is checked against Intel's roots, built in.",
    )
    p.add_argument(
        "--allow-mrenclave",
        action="append",
        default=[],
        metavar="HEX",
        help="accept only workers whose enclave measures this (repeatable; see `adytum measure`)",
    )
    p.add_argument("--allow-debug", action="store_true", help="accept debug enclaves (never in production)")


#: `adytum.client.SUITES`' names (not imported: the parser stays light; a test checks the two agree).
SUITE_NAMES = ("rsa", "hpke", "mlkem-x25519")


def add_suite(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--suite",
        choices=SUITE_NAMES,
        help="how the session key is wrapped to the worker: rsa (RSA-OAEP-3072, what Avalon clients use), "
        "hpke (HPKE, X25519, HKDF-SHA256, AES-256-GCM) or mlkem-x25519 (HPKE with the post-quantum hybrid "
        "ML-KEM-768 + X25519). Default: hpke when the worker offers it, else rsa",
    )


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def add_data_dir(p: argparse.ArgumentParser, help: str) -> None:
    """`--data-dir`, defaulting to the node's; `help` says what the command wants from it."""
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help=f"{help} (default ./{DEFAULT_DATA_DIR})")


def trust_from_args(args: argparse.Namespace) -> Trust:
    from ..client import Trust

    return Trust.from_files(args.trust_root, mr_enclaves=args.allow_mrenclave, allow_debug=args.allow_debug)
