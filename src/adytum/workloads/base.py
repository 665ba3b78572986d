"""The workload interface: one class, one file, `execute(ctx, inputs) -> outputs`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar


class WorkloadError(Exception):
    """Bad input for a workload. The message reaches the requester's host in clear: never echo
    private input in it."""


@dataclass(frozen=True)
class Context:
    """What a workload may know of its surroundings, and nothing of the host."""

    requester_id: str
    work_order_id: str
    worker_id: str
    random: Callable[[int], bytes]


class Workload:
    """Subclass, set `name` and `description`, implement `execute`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    def execute(self, ctx: Context, inputs: list[bytes]) -> list[bytes]:
        raise NotImplementedError
