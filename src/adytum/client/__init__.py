"""The requester SDK: build, submit, wait for, verify and decrypt work orders; verify their receipts."""

from .client import AsyncClient, NodeUnreachable
from .receipt import Statement, VerifiedReceipt, verify_receipt_document
from .sync import Client
from .worker import Trust, UntrustedWorker, WorkerInfo
from .workorder import SUITES, PendingOrder, VerificationError, build, open_result

__all__ = [
    "AsyncClient",
    "Client",
    "NodeUnreachable",
    "PendingOrder",
    "SUITES",
    "Statement",
    "Trust",
    "UntrustedWorker",
    "VerificationError",
    "VerifiedReceipt",
    "WorkerInfo",
    "build",
    "open_result",
    "verify_receipt_document",
]
