"""workpool as a benchmark system (runs with the main venv's Python)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import redis
from common import LATENCY_KEY, LATENESS_KEY, chunks, emit, paced, parse, timed

import workpool

POOL = "bench"
FN = "bench.incr"
CAP = 16


def pool(url: str) -> workpool.Workpool:
    """The benchmark pool."""
    return workpool.Workpool(POOL, redis_url=url, max_parallelism=CAP)


def main() -> None:
    """Dispatch one subcommand."""
    a = parse()
    if a.sub == "worker":
        here = str(Path(__file__).resolve().parent)
        os.environ["PYTHONPATH"] = here + os.pathsep + os.environ.get("PYTHONPATH", "")
        argv = [sys.executable, "-m", "workers", "--redis-url", a.url, "--pool", POOL]
        argv += ["--import", "workpool_jobs", "--concurrency", str(a.concurrency)]
        argv += ["--log-level", "WARNING"]
        os.execv(sys.executable, argv)
    p = pool(a.url)
    if a.sub == "setup":
        p.update_config(max_parallelism=CAP)
        emit(cap=CAP)
    elif a.sub == "produce":
        started = time.time()
        if a.mode == "single":
            elapsed = timed(lambda: [p.enqueue_action(FN, {}) for _ in range(a.n)])
        elif a.mode == "xadd":
            r = redis.Redis.from_url(a.url)
            elapsed = timed(lambda: [r.xadd("bench:xadd", {"id": "x"}) for _ in range(a.n)])
        else:
            sizes = chunks(a.n, a.batch_size)
            elapsed = timed(lambda: [p.enqueue_action_batch(FN, [{}] * s) for s in sizes])
        emit(elapsed=elapsed, n=a.n, started=started)
    elif a.sub == "latency":
        paced(
            a.n,
            a.interval_ms / 1000,
            lambda ts: p.enqueue_action(FN, {"ts": ts, "key": LATENCY_KEY}),
        )
        emit(n=a.n)
    elif a.sub == "delayed":
        args = [{"ts": a.due, "key": LATENESS_KEY}] * a.n
        p.enqueue_action_batch(FN, args, run_at=a.due)
        emit(n=a.n)


if __name__ == "__main__":
    main()
