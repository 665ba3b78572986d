"""The durable store: workers, requests, the schedule, responses and receipts."""

from .committer import GroupCommit
from .sqlite import Duplicate, NewOrder, Store, WorkerRow

__all__ = ["Duplicate", "GroupCommit", "NewOrder", "Store", "WorkerRow"]
