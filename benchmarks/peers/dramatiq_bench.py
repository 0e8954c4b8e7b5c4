"""dramatiq as a benchmark system (runs with the peers venv's Python).

Workers: `dramatiq dramatiq_bench --processes 1 --threads C` (dramatiq's documented threads).
dramatiq documents no batch enqueue (a group sends one message at a time), so the batch figure
is left out.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "systems"))

import dramatiq
from common import LATENCY_KEY, LATENESS_KEY, emit, paced, parse, record_run, timed
from dramatiq.brokers.redis import RedisBroker

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1/0")
broker = RedisBroker(url=URL)
dramatiq.set_broker(broker)


@dramatiq.actor(max_retries=0)
def incr(ts: float | None = None, key: str | None = None) -> None:
    """INCR the counter; with `ts`, RPUSH (start - ts) seconds to `key`."""
    record_run(ts, key)


def main() -> None:
    """Dispatch one subcommand."""
    a = parse()
    if a.sub == "worker":
        here = str(Path(__file__).resolve().parent)
        os.environ["PYTHONPATH"] = here + os.pathsep + os.environ.get("PYTHONPATH", "")
        argv = [sys.executable, "-m", "dramatiq", "dramatiq_bench"]
        argv += ["--processes", "1", "--threads", str(a.concurrency)]
        os.execv(sys.executable, argv)
    if a.sub == "setup":
        emit()
    elif a.sub == "produce":
        started = time.time()
        elapsed = timed(lambda: [incr.send() for _ in range(a.n)])
        emit(elapsed=elapsed, n=a.n, started=started, unsupported=a.mode == "batch")
    elif a.sub == "latency":
        paced(a.n, a.interval_ms / 1000, lambda ts: incr.send(ts=ts, key=LATENCY_KEY))
        emit(n=a.n)
    elif a.sub == "delayed":
        for _ in range(a.n):
            delay_ms = max(0, int((a.due - time.time()) * 1000))
            incr.send_with_options(kwargs={"ts": a.due, "key": LATENESS_KEY}, delay=delay_ms)
        emit(n=a.n)


if __name__ == "__main__":
    import dramatiq_bench

    dramatiq_bench.main()
