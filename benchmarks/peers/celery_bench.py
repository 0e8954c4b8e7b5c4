"""celery as a benchmark system (runs with the peers venv's Python).

Workers: `celery -A celery_bench worker -P threads -c C` (celery's documented thread pool), no
result backend. Batch: a `group` sent with one `apply_async` (celery's documented way to send
many). Delayed: `apply_async(eta=...)`.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "systems"))

from celery import Celery, group
from common import LATENCY_KEY, LATENESS_KEY, chunks, emit, paced, parse, record_run, timed

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1/0")
app = Celery("celery_bench", broker=URL)
app.conf.task_ignore_result = True
app.conf.worker_hijack_root_logger = False


@app.task(name="bench.incr")
def incr(ts: float | None = None, key: str | None = None) -> None:
    """INCR the counter; with `ts`, RPUSH (start - ts) seconds to `key`."""
    record_run(ts, key)


def main() -> None:
    """Dispatch one subcommand."""
    a = parse()
    if a.sub == "worker":
        here = str(Path(__file__).resolve().parent)
        os.environ["PYTHONPATH"] = here + os.pathsep + os.environ.get("PYTHONPATH", "")
        argv = [sys.executable, "-m", "celery", "-A", "celery_bench", "worker"]
        argv += ["-P", "threads", "-c", str(a.concurrency), "--loglevel", "WARNING"]
        argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        os.execv(sys.executable, argv)
    if a.sub == "setup":
        emit()
    elif a.sub == "produce":
        started = time.time()
        if a.mode == "single":
            elapsed = timed(lambda: [incr.delay() for _ in range(a.n)])
        else:
            sizes = chunks(a.n, a.batch_size)
            elapsed = timed(
                lambda: [group(incr.s() for _ in range(s)).apply_async() for s in sizes]
            )
        emit(elapsed=elapsed, n=a.n, started=started)
    elif a.sub == "latency":
        paced(a.n, a.interval_ms / 1000, lambda ts: incr.delay(ts=ts, key=LATENCY_KEY))
        emit(n=a.n)
    elif a.sub == "delayed":
        eta = datetime.fromtimestamp(a.due, tz=UTC)
        for _ in range(a.n):
            incr.apply_async(kwargs={"ts": a.due, "key": LATENESS_KEY}, eta=eta)
        emit(n=a.n)


if __name__ == "__main__":
    import celery_bench

    celery_bench.main()
