"""The raw floor: no-op jobs moved by a plain LPUSH/BRPOP loop (main venv's Python).

A worker process runs C threads, each looping BRPOP + the shared job body (one INCR). A job is
an empty string, or "ts key" when it carries an enqueue timestamp for the pickup-latency figure.
"""

from __future__ import annotations

import signal
import threading
import time

import redis
from common import LATENCY_KEY, chunks, emit, paced, parse, record_run, timed

QUEUE = "bench:raw"


def work(r: redis.Redis, stop: threading.Event) -> None:
    """BRPOP jobs and INCR the counter until stopped."""
    while not stop.is_set():
        item = r.brpop([QUEUE], timeout=1)
        if item is None:
            continue
        body = item[1]
        if body:
            ts, key = body.split(b" ", 1)
            record_run(float(ts), key.decode())
        else:
            record_run(None, None)


def worker(url: str, concurrency: int) -> None:
    """Run `concurrency` BRPOP threads until SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    pool = redis.ConnectionPool.from_url(url, max_connections=concurrency + 2)
    threads = [
        threading.Thread(target=work, args=(redis.Redis(connection_pool=pool), stop))
        for _ in range(concurrency)
    ]
    for t in threads:
        t.start()
    while not stop.is_set():
        stop.wait(0.5)
    for t in threads:
        t.join()


def main() -> None:
    """Dispatch one subcommand."""
    a = parse()
    if a.sub == "worker":
        worker(a.url, a.concurrency)
        return
    r = redis.Redis.from_url(a.url)
    if a.sub == "setup":
        emit()
    elif a.sub == "produce":
        started = time.time()
        if a.mode == "single":
            elapsed = timed(lambda: [r.lpush(QUEUE, b"") for _ in range(a.n)])
        else:
            sizes = chunks(a.n, a.batch_size)
            elapsed = timed(lambda: [r.lpush(QUEUE, *([b""] * s)) for s in sizes])
        emit(elapsed=elapsed, n=a.n, started=started)
    elif a.sub == "latency":
        paced(a.n, a.interval_ms / 1000, lambda ts: r.lpush(QUEUE, f"{ts!r} {LATENCY_KEY}"))
        emit(n=a.n)
    elif a.sub == "delayed":
        raise SystemExit("the raw floor has no delayed jobs")


if __name__ == "__main__":
    main()
