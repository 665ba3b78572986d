"""`adytum attestation verify`: registered from `adytum.attestation.cli` until that module moves here.

A bridge for the merge of issue 10: branch `attest` replaces this file with the command itself
(`register(sub)`, `set_defaults(run=...)`), and the bridge goes.
"""

from __future__ import annotations

from typing import Any

from .options import Subparsers


def register(sub: Subparsers) -> None:
    from ..attestation.cli import add_commands

    add_commands(sub)
    sub.choices["attestation"].set_defaults(run=_run)


def _run(args: Any) -> int:
    return int(args.func(args))
