"""Printing for people (rich) and for scripts (--json), in one place."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, TextIO

from rich.console import Console

#: The width when the output is no terminal (a pipe, a file) and COLUMNS is unset: rich would wrap lines and
#: cut table cells at 80 columns, so that `adytum pool status | grep` missed what was cut.
UNBOUNDED = 100_000


def _width(stream: TextIO) -> int | None:
    return UNBOUNDED if not stream.isatty() and not os.environ.get("COLUMNS") else None


console = Console(width=_width(sys.stdout))
errors = Console(stderr=True, width=_width(sys.stderr))


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def fail(message: str, *, as_json: bool, code: int | None = None) -> int:
    if as_json:
        emit_json({"ok": False, "error": message, "code": code})
    else:
        errors.print(f"[bold red]error[/]: {message}" + (f" (EEA code {code})" if code is not None else ""))
    return 1
