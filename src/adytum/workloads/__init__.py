"""Workloads: the interface, the built-ins and plug-in discovery. Nothing host-side is imported."""

from .base import Context, MemoryState, State, Workload, WorkloadError
from .registry import load_workloads

__all__ = ["Context", "MemoryState", "State", "Workload", "WorkloadError", "load_workloads"]
