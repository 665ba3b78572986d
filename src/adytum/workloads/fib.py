"""`fib`: the exact n-th Fibonacci number, 0 <= n <= 100,000, by fast doubling."""

from __future__ import annotations

import sys

from .base import Context, Workload, WorkloadError

MAX_N = 100_000
# F(100,000) has 20,899 digits; Python refuses int->str beyond 4,300 digits unless told otherwise.
_DIGITS_NEEDED = 21_000


def fibonacci(n: int) -> int:
    """F(n) with F(0) = 0, F(1) = 1, in O(log n) multiplications."""
    a, b = 0, 1  # F(k), F(k+1) for k = the bits of n read so far
    for bit in bin(n)[2:]:
        c = a * (2 * b - a)
        d = a * a + b * b
        a, b = (d, c + d) if bit == "1" else (c, d)
    return a


def _parse(data: bytes) -> int:
    text = data.strip()
    if not text.isdigit() or len(text) > 6:
        raise WorkloadError(f"fib: input must be a whole number from 0 to {MAX_N:,}")
    n = int(text)
    if n > MAX_N:
        raise WorkloadError(f"fib: n must be at most {MAX_N:,}")
    return n


class Fibonacci(Workload):
    name = "fib"
    description = f"The exact n-th Fibonacci number for each input n (0 <= n <= {MAX_N:,})."

    def execute(self, ctx: Context, inputs: list[bytes]) -> list[bytes]:
        if sys.get_int_max_str_digits() and sys.get_int_max_str_digits() < _DIGITS_NEEDED:
            sys.set_int_max_str_digits(_DIGITS_NEEDED)
        return [str(fibonacci(_parse(data))).encode() for data in inputs]
