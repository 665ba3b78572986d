"""Workloads: the interface, the built-ins and plug-in discovery. Nothing host-side is imported."""

from .base import Context, Workload, WorkloadError
from .registry import load_workloads

__all__ = ["Context", "Workload", "WorkloadError", "load_workloads"]
