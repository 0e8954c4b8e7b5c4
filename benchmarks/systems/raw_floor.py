"""The raw floor: no-op jobs moved by a plain LPUSH/BRPOP loop (main venv's Python).

A worker process runs C threads, each looping BRPOP + the shared job body (one INCR). A job is
an empty string, or "ts key" when it carries an enqueue timestamp for the pickup-latency figure.

`bodies` measures the ceiling under every system here: the same 2 x C threads running only the
job body N times between them, with no queue at all. No job system can run jobs faster on this
machine; what a system adds per job is the gap between its rate and this one.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import redis
from common import LATENCY_KEY, chunks, emit, paced, parse, record_run, timed

QUEUE = "bench:raw"
# The bodies processes are let go this long after they are spawned: ample for an interpreter
# to start on a busy machine, so all begin together.
BODIES_START_DELAY_S = 2.0


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


def even_shares(n: int, parts: int) -> list[int]:
    """Split `n` into `parts` counts that differ by at most one and add up to `n`."""
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def bodies_part(n: int, concurrency: int, start_at: float) -> None:
    """Run the job body n times on `concurrency` threads from `start_at` (epoch seconds).

    Prints when the threads were let go and when the last one ended; exits non-zero if any
    body failed, so a short count is never reported as a rate.
    """
    shares = even_shares(n, concurrency)
    go = threading.Event()
    failures: list[BaseException] = []

    def run(k: int) -> None:
        go.wait()
        try:
            for _ in range(k):
                record_run(None, None)
        except BaseException as exc:  # reported below, after the other threads end
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in shares]
    for t in threads:
        t.start()
    time.sleep(max(0.0, start_at - time.time()))
    started = time.time()
    go.set()
    for t in threads:
        t.join()
    ended = time.time()
    if failures:
        raise SystemExit(f"{len(failures)} body threads failed: {failures[0]!r}")
    emit(started=started, ended=ended)


def bodies(url: str, n: int, concurrency: int, processes: int) -> None:
    """The job bodies alone: `processes` x `concurrency` threads share n runs of the body.

    Every process is started first and all are let go at one agreed moment, so interpreter
    start-up is not counted (as worker start-up is not counted in the drain figure).
    """
    shares = even_shares(n, processes)
    start_at = time.time() + BODIES_START_DELAY_S
    part = [sys.executable, __file__, "bodies-part", "--url", url]
    part += ["--concurrency", str(concurrency), "--due", repr(start_at)]
    procs = [
        subprocess.Popen([*part, "--n", str(k)], stdout=subprocess.PIPE, text=True) for k in shares
    ]
    outputs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit("a bodies process failed (its error is above)")
    spans = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    elapsed = max(s["ended"] for s in spans) - min(s["started"] for s in spans)
    emit(elapsed=elapsed, n=n)


def main() -> None:
    """Dispatch one subcommand."""
    a = parse()
    if a.sub == "worker":
        worker(a.url, a.concurrency)
        return
    if a.sub == "bodies":
        bodies(a.url, a.n, a.concurrency, a.processes)
        return
    if a.sub == "bodies-part":
        bodies_part(a.n, a.concurrency, a.due)
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
