"""Runs workloads the way the enclave will: on copies of state, kept only when `execute` returns."""

from __future__ import annotations

import pytest

from adytum.workloads import Context, MemoryState, Workload, WorkloadError


class Worker:
    """One workload's state: shared items plus one private store per requester."""

    def __init__(self, workload: Workload) -> None:
        self.workload = workload
        self.shared: dict[str, bytes] = {}
        self.private: dict[str, dict[str, bytes]] = {}
        self.orders = 0

    def run(self, inputs: list[bytes | str], requester: str = "requester-a") -> list[bytes]:
        """Execute one order; state is committed only if it returns (it may raise WorkloadError)."""
        self.orders += 1
        shared = MemoryState(self.shared)
        private = MemoryState(self.private.get(requester, {}))
        ctx = Context(
            requester_id=requester,
            work_order_id=f"order-{self.orders}",
            worker_id="worker-1",
            random=lambda n: bytes(n),
            state=shared,
            requester_state=private,
            requester_key=f"key-of-{requester}",
        )  # as if each requester signed with its own key
        outputs = self.workload.execute(ctx, [i.encode() if isinstance(i, str) else i for i in inputs])
        assert isinstance(outputs, list) and all(isinstance(o, bytes) for o in outputs)
        self.shared = shared.items
        self.private[requester] = private.items
        return outputs

    def texts(self, inputs: list[bytes | str], requester: str = "requester-a") -> list[str]:
        return [o.decode() for o in self.run(inputs, requester)]

    def refused(self, inputs: list[bytes | str], requester: str = "requester-a") -> str:
        """Run an order that must be refused; check that state did not change; return the message."""
        before = (dict(self.shared), {k: dict(v) for k, v in self.private.items()})
        with pytest.raises(WorkloadError) as caught:
            self.run(inputs, requester)
        assert (self.shared, self.private) == before
        return str(caught.value)
