"""The workload interface: one class, one file, `execute(ctx, inputs) -> outputs`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from ..errors import AdytumError


class WorkloadError(AdytumError):
    """Bad input for a workload. The message reaches the requester's host in clear: never echo
    private input in it."""


MAX_STATE_NAME = 256
MAX_STATE_VALUE = 1 << 20


class State:
    """Key/value state of one scope, encrypted inside the enclave before the host stores it.

    Reads see this order's own writes. Writes take effect only if `execute` returns: an order that
    raises leaves state as it was. Two orders racing on one item never lose an update (the later
    one is run again on the new value), so `execute` must not depend on anything but its inputs,
    its state and `ctx.random`.
    """

    def get(self, name: str) -> bytes | None:
        raise NotImplementedError

    def put(self, name: str, value: bytes) -> None:
        raise NotImplementedError

    def delete(self, name: str) -> None:
        raise NotImplementedError


def check_state_item(name: str, value: bytes | None = None) -> None:
    if not isinstance(name, str) or not 0 < len(name.encode()) <= MAX_STATE_NAME:
        raise WorkloadError(f"state item names are 1 to {MAX_STATE_NAME} bytes of text")
    if value is not None and (not isinstance(value, bytes) or len(value) > MAX_STATE_VALUE):
        raise WorkloadError(f"state values are bytes, at most {MAX_STATE_VALUE:,} of them")


class MemoryState(State):
    """State in a dict: for workload unit tests and tools; the enclave gives workloads encrypted state."""

    def __init__(self, items: dict[str, bytes] | None = None) -> None:
        self.items = dict(items or {})

    def get(self, name: str) -> bytes | None:
        check_state_item(name)
        return self.items.get(name)

    def put(self, name: str, value: bytes) -> None:
        check_state_item(name, value)
        self.items[name] = value

    def delete(self, name: str) -> None:
        check_state_item(name)
        self.items.pop(name, None)


@dataclass(frozen=True)
class Context:
    """What a workload may know of its surroundings, and nothing of the host.

    `state` is shared by every requester of this workload; `requester_state` belongs to the key that
    signed the order (no other key's orders can read or change it; unsigned orders cannot use it).
    `requester_key` is SHA-256 (hex) of that verifying key, "" for an unsigned order: unlike the
    `requester_id` a request merely claims, it is an identity the enclave has checked.
    """

    requester_id: str
    work_order_id: str
    worker_id: str
    random: Callable[[int], bytes]
    state: State
    requester_state: State
    requester_key: str = ""


class Workload:
    """Subclass, set `name` and `description`, implement `execute`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    def execute(self, ctx: Context, inputs: list[bytes]) -> list[bytes]:
        raise NotImplementedError
