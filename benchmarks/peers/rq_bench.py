"""rq as a benchmark system (runs with the peers venv's Python).

Workers: `rq worker-pool -n C -w rq.worker.SimpleWorker` (rq's concurrency is processes; the
SimpleWorker, which rq documents, runs jobs without a fork per job). Batch: `Queue.enqueue_many`.
Delayed: `Queue.enqueue_at` (the pool's workers run rq's scheduler).
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "systems"))

import redis
from common import LATENCY_KEY, LATENESS_KEY, chunks, emit, paced, parse, record_run, timed
from rq import Queue

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1/0")


def incr(ts: float | None = None, key: str | None = None) -> None:
    """INCR the counter; with `ts`, RPUSH (start - ts) seconds to `key`."""
    record_run(ts, key)


def main() -> None:
    """Dispatch one subcommand."""
    a = parse()
    here = str(Path(__file__).resolve().parent)
    if a.sub == "worker":
        os.environ["PYTHONPATH"] = here + os.pathsep + os.environ.get("PYTHONPATH", "")
        rq_bin = str(Path(sys.executable).parent / "rq")
        argv = [rq_bin, "worker-pool", "-n", str(a.concurrency), "-u", a.url, "-q"]
        argv += ["-w", "rq.worker.SimpleWorker", "-P", here, "bench"]
        os.execv(rq_bin, argv)
    q = Queue("bench", connection=redis.Redis.from_url(URL))
    if a.sub == "setup":
        emit()
    elif a.sub == "produce":
        started = time.time()
        if a.mode == "single":
            elapsed = timed(lambda: [q.enqueue(incr) for _ in range(a.n)])
        else:
            sizes = chunks(a.n, a.batch_size)
            elapsed = timed(
                lambda: [
                    q.enqueue_many([Queue.prepare_data(incr) for _ in range(s)]) for s in sizes
                ]
            )
        emit(elapsed=elapsed, n=a.n, started=started)
    elif a.sub == "latency":
        paced(a.n, a.interval_ms / 1000, lambda ts: q.enqueue(incr, ts=ts, key=LATENCY_KEY))
        emit(n=a.n)
    elif a.sub == "delayed":
        when = datetime.fromtimestamp(a.due, tz=UTC)
        for _ in range(a.n):
            q.enqueue_at(when, incr, ts=a.due, key=LATENESS_KEY)
        emit(n=a.n)


if __name__ == "__main__":
    import rq_bench

    rq_bench.main()
