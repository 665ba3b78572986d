"""Finds workloads: the built-ins, then plug-ins from the `adytum.workloads` entry-point group."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from .base import Workload
from .echo import EchoResult
from .fib import Fibonacci
from .hello import Hello

BUILTIN: tuple[type[Workload], ...] = (Hello, EchoResult, Fibonacci)
ENTRY_POINT_GROUP = "adytum.workloads"
log = logging.getLogger(__name__)


def plugin_classes() -> list[type[Workload]]:
    found = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, Workload)):
            raise TypeError(f"entry point {ep.name} = {ep.value} is not a Workload subclass")
        found.append(cls)
    return found


def load_workloads() -> dict[str, Workload]:
    """One instance per workload name; a plug-in may not shadow a built-in."""
    out: dict[str, Workload] = {}
    for cls in (*BUILTIN, *plugin_classes()):
        if cls.name in out:
            raise ValueError(f"two workloads are named {cls.name!r}")
        out[cls.name] = cls()
    return out
