"""`adytum measure` and `adytum init`: registered from `adytum.attestation.cli_measure` until it moves here.

A bridge for the merge of issue 10: branch `attest` replaces this file with the commands themselves
(`register(sub)`, `set_defaults(run=...)`), and the bridge goes.
"""

from __future__ import annotations

from typing import Any

from .options import Subparsers


def register(sub: Subparsers) -> None:
    from ..attestation.cli_measure import add_commands

    add_commands(sub)
    for name in ("measure", "init"):
        sub.choices[name].set_defaults(run=_run)


def _run(args: Any) -> int:
    return int(args.handler(args))
