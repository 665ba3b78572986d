"""Printing for people (rich) and for scripts (--json), in one place."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

console = Console()
errors = Console(stderr=True)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def fail(message: str, *, as_json: bool, code: int | None = None) -> int:
    if as_json:
        emit_json({"ok": False, "error": message, "code": code})
    else:
        errors.print(f"[bold red]error[/]: {message}" + (f" (EEA code {code})" if code is not None else ""))
    return 1
