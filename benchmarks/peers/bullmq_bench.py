"""bullmq (the Python port) as a benchmark system (runs with the peers venv's Python).

Workers: one asyncio `Worker` per process with `concurrency = C`. Batch: `Queue.addBulk`.
Delayed: `add(..., {"delay": ms})`.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "systems"))

import redis.asyncio as aioredis
from bullmq import Queue, Worker
from common import LATENCY_KEY, LATENESS_KEY, chunks, emit, parse

QUEUE = "bench"


async def run_worker(url: str, concurrency: int) -> None:
    """Process jobs until SIGTERM."""
    r = aioredis.Redis.from_url(url)

    async def process(job: Any, token: str) -> None:
        start = time.time()
        data = job.data or {}
        if not data.get("key"):
            await r.incr("bench:count")
            return
        pipe = r.pipeline(transaction=False)
        pipe.incr("bench:count")
        pipe.rpush(data["key"], repr(start - float(data["ts"])))
        await pipe.execute()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    worker = Worker(QUEUE, process, {"connection": url, "concurrency": concurrency})
    await stop.wait()
    await worker.close()


async def produce(a: Any) -> None:
    """The producer subcommands."""
    q = Queue(QUEUE, {"connection": a.url})
    if a.sub == "setup":
        emit()
    elif a.sub == "produce":
        started = time.time()
        t0 = time.perf_counter()
        if a.mode == "single":
            for _ in range(a.n):
                await q.add("incr", {})
        else:
            for s in chunks(a.n, a.batch_size):
                await q.addBulk([{"name": "incr", "data": {}} for _ in range(s)])
        emit(elapsed=time.perf_counter() - t0, n=a.n, started=started)
    elif a.sub == "latency":
        t0 = time.perf_counter()
        for i in range(a.n):
            delay = t0 + i * a.interval_ms / 1000 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await q.add("incr", {"ts": time.time(), "key": LATENCY_KEY})
        emit(n=a.n)
    elif a.sub == "delayed":
        for _ in range(a.n):
            delay_ms = max(0, int((a.due - time.time()) * 1000))
            await q.add("incr", {"ts": a.due, "key": LATENESS_KEY}, {"delay": delay_ms})
        emit(n=a.n)
    await q.close()


def main() -> None:
    """Dispatch one subcommand."""
    a = parse()
    if a.sub == "worker":
        asyncio.run(run_worker(a.url, a.concurrency))
    else:
        asyncio.run(produce(a))


if __name__ == "__main__":
    main()
