"""Limits on one workload run: wall-clock time (SIGALRM) and the enclave's address space (RLIMIT_AS).

A workload past its time is interrupted with OverBudget; one past the memory limit gets MemoryError.
Either way the order fails with a clear message, its state changes are dropped and the enclave
keeps serving. Time spent waiting for the host (state reads) does not count: the alarm is held
while the channel is in use, so it never fires in the middle of a frame.
"""

from __future__ import annotations

import resource
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class OverBudget(BaseException):
    """The workload ran past its time budget (a BaseException, so a workload's `except Exception` cannot swallow it)."""


@dataclass
class Budget:
    """The enclave's own defaults are these: on hardware the signed manifest fixes its command line, so the
    host can only lower or raise them where the build lets it (`adytum up --time-budget`, `--memory-mb`)."""

    seconds: float = 30.0
    memory_mb: int = 2048

    def apply_memory_limit(self) -> None:
        """Cap this process's address space (the enclave calls it once, at start)."""
        limit = self.memory_mb * 1024 * 1024
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))

    @contextmanager
    def limit(self) -> Iterator[None]:
        if self.seconds <= 0 or threading.current_thread() is not threading.main_thread():
            yield  # signals reach only the main thread; a processor used elsewhere runs unbounded
            return

        def expired(signum: int, frame: object) -> None:
            raise OverBudget(f"ran past its time budget of {self.seconds:g} s")

        previous = signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


@contextmanager
def alarm_held() -> Iterator[None]:
    """Hold SIGALRM while talking to the host; a budget that ran out meanwhile fires right after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})
