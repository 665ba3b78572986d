"""The durable store: workers, requests, the schedule, responses, encrypted workload state, receipts."""

from .committer import GroupCommit
from .sqlite import Duplicate, ItemWrite, NewOrder, Outcome, StateConflict, Store, WorkerRow

__all__ = ["Duplicate", "GroupCommit", "ItemWrite", "NewOrder", "Outcome", "StateConflict", "Store", "WorkerRow"]
