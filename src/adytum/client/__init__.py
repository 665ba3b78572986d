"""The requester SDK: build, submit, wait for, verify and decrypt work orders."""

from .client import AsyncClient, NodeUnreachable
from .sync import Client
from .worker import Trust, UntrustedWorker, WorkerInfo
from .workorder import PendingOrder, VerificationError, build, open_result

__all__ = [
    "AsyncClient",
    "Client",
    "NodeUnreachable",
    "PendingOrder",
    "Trust",
    "UntrustedWorker",
    "VerificationError",
    "WorkerInfo",
    "build",
    "open_result",
]
