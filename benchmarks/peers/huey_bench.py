"""huey as a benchmark system (runs with the peers venv's Python).

Workers: `huey_consumer huey_bench.huey -w C -k thread` (huey's documented thread workers).
huey documents no batch enqueue, so the batch figure is left out.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "systems"))

from common import LATENCY_KEY, LATENESS_KEY, emit, paced, parse, record_run, timed
from huey import RedisHuey

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1/0")
huey = RedisHuey("bench", url=URL, results=False)


@huey.task()
def incr(ts: float | None = None, key: str | None = None) -> None:
    """INCR the counter; with `ts`, RPUSH (start - ts) seconds to `key`."""
    record_run(ts, key)


def main() -> None:
    """Dispatch one subcommand."""
    a = parse()
    if a.sub == "worker":
        here = str(Path(__file__).resolve().parent)
        os.environ["PYTHONPATH"] = here + os.pathsep + os.environ.get("PYTHONPATH", "")
        argv = [sys.executable, "-m", "huey.bin.huey_consumer", "huey_bench.huey"]
        argv += ["-w", str(a.concurrency), "-k", "thread", "-q"]
        os.execv(sys.executable, argv)
    if a.sub == "setup":
        emit()
    elif a.sub == "produce":
        started = time.time()
        elapsed = timed(lambda: [incr() for _ in range(a.n)])
        emit(elapsed=elapsed, n=a.n, started=started, unsupported=a.mode == "batch")
    elif a.sub == "latency":
        paced(a.n, a.interval_ms / 1000, lambda ts: incr(ts=ts, key=LATENCY_KEY))
        emit(n=a.n)
    elif a.sub == "delayed":
        eta = datetime.fromtimestamp(a.due, tz=UTC)
        for _ in range(a.n):
            incr.schedule(kwargs={"ts": a.due, "key": LATENESS_KEY}, eta=eta)
        emit(n=a.n)


if __name__ == "__main__":
    import huey_bench

    huey_bench.main()
