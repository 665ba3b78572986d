"""What each key-encryption suite costs per work order: wrapping the session key (the requester, `seal`) and
unwrapping it (the enclave, `open`), side by side, in-process on this machine, through the same recipes the SDK
and the enclave call (`adytum.crypto`). The enclave's whole bound per suite is `adytum bench --suite ...`'s.

    .venv/bin/python bench/bench_suites.py [--orders 2000] [--repeats 5] [--json]

Each figure is the median over the repeats of the mean over `--orders` calls, in microseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from adytum import crypto
from adytum.client import SUITES
from adytum.crypto import HpkeKey, KeySuite

INFO = b"adytum-session-key/1 bench"


def per_call_us(call: Callable[[], object], orders: int, repeats: int) -> float:
    means = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(orders):
            call()
        means.append((time.perf_counter() - started) / orders * 1e6)
    return statistics.median(means)


def measure(suite: KeySuite, orders: int, repeats: int) -> tuple[float, float, int]:
    """(seal µs, open µs, wrapped bytes) for one suite."""
    session_key = crypto.generate_aead_key()
    if suite is KeySuite.RSA_OAEP_3072:
        private = crypto.rsa_generate()
        public = private.public_key()
        wrapped = crypto.wrap_session_key(public, session_key)
        seal = per_call_us(lambda: crypto.wrap_session_key(public, session_key), orders, repeats)
        opened = per_call_us(lambda: crypto.unwrap_session_key(private, wrapped), orders, repeats)
        return seal, opened, len(wrapped)
    key = HpkeKey.generate(suite)
    wrapped = crypto.hpke_wrap_session_key(suite, key.public, session_key, INFO)
    seal = per_call_us(lambda: crypto.hpke_wrap_session_key(suite, key.public, session_key, INFO), orders, repeats)
    opened = per_call_us(lambda: crypto.hpke_unwrap_session_key(key, wrapped, INFO), orders, repeats)
    return seal, opened, len(wrapped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=2000, help="calls per repeat (default 2000)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats; the median is reported (default 5)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args()
    offered = (KeySuite.RSA_OAEP_3072, *crypto.hpke_suites())
    rows = []
    for name, suite in SUITES.items():
        if suite not in offered:
            continue
        seal, opened, size = measure(suite, args.orders, args.repeats)
        rows.append(
            {
                "suite": name,
                "algorithm": suite.value,
                "seal_us": round(seal, 1),
                "open_us": round(opened, 1),
                "wrapped_bytes": size,
            }
        )
    rsa_open = rows[0]["open_us"]
    for row in rows:
        row["open_speedup_vs_rsa"] = round(float(rsa_open) / float(row["open_us"]), 1)
    if args.json:
        print(json.dumps({"orders": args.orders, "repeats": args.repeats, "suites": rows}))
        return
    print(f"{'suite':<14}{'seal (requester)':>18}{'open (enclave)':>16}{'open vs rsa':>13}{'wrapped':>10}")
    for row in rows:
        print(
            f"{row['suite']:<14}{row['seal_us']:>15.1f} µs{row['open_us']:>13.1f} µs"
            f"{row['open_speedup_vs_rsa']:>12.1f}×{row['wrapped_bytes']:>8} B"
        )


if __name__ == "__main__":
    main()
