"""Argument parsing and timing shared by the system scripts (no third-party imports)."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

LATENCY_KEY = "bench:lat"
LATENESS_KEY = "bench:late"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse `<sub> --url U [--n N] [--mode M] [--interval-ms MS] [--due T] [--concurrency C]`."""
    p = argparse.ArgumentParser()
    p.add_argument("sub", choices=["produce", "latency", "delayed", "worker", "setup"])
    p.add_argument("--url", required=True)
    p.add_argument("--n", type=int, default=0)
    p.add_argument("--mode", choices=["single", "batch"], default="single")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--interval-ms", type=float, default=10.0)
    p.add_argument("--due", type=float, default=0.0)
    p.add_argument("--concurrency", type=int, default=8)
    return p.parse_args(argv)


def emit(**fields: Any) -> None:
    """Print one JSON line for the harness."""
    print(json.dumps(fields), flush=True)


def timed(fn: Callable[[], Any]) -> float:
    """Seconds fn took."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def paced(n: int, interval_s: float, send: Callable[[float], None]) -> None:
    """Call send(time.time()) n times, interval_s apart (absolute schedule, no drift)."""
    t0 = time.perf_counter()
    for i in range(n):
        target = t0 + i * interval_s
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        send(time.time())


def chunks(n: int, size: int) -> list[int]:
    """Sizes of consecutive chunks covering n."""
    return [min(size, n - i) for i in range(0, n, size)]


def record_run(client: Any, ts: float | None, key: str | None) -> None:
    """What every benchmark job does: INCR the counter, and record its start.

    With `ts`, it also RPUSHes the seconds from `ts` to now onto `key`, in the same round trip.
    `client` is a sync redis-py client.
    """
    start = time.time()
    if ts is None or key is None:
        client.incr("bench:count")
        return
    pipe = client.pipeline(transaction=False)
    pipe.incr("bench:count")
    pipe.rpush(key, repr(start - ts))
    pipe.execute()
