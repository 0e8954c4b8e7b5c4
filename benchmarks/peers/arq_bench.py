"""arq as a benchmark system (runs with the peers venv's Python).

Workers: `arq arq_bench.WorkerSettings` with `max_jobs = C` (arq's documented asyncio
concurrency; its default poll delay of 0.5 s is kept). arq documents no batch enqueue, so the
batch figure is left out. Delayed: `enqueue_job(_defer_until=...)`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "systems"))

import redis.asyncio as aioredis
from arq import create_pool
from arq.connections import RedisSettings
from common import LATENCY_KEY, LATENESS_KEY, emit, parse

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1/0")


async def incr(ctx: dict[str, Any], ts: float | None = None, key: str | None = None) -> None:
    """INCR the counter; with `ts`, RPUSH (start - ts) seconds to `key`."""
    start = time.time()
    r = ctx["bench_redis"]
    if ts is None or key is None:
        await r.incr("bench:count")
        return
    pipe = r.pipeline(transaction=False)
    pipe.incr("bench:count")
    pipe.rpush(key, repr(start - ts))
    await pipe.execute()


async def startup(ctx: dict[str, Any]) -> None:
    """Open the counter client."""
    ctx["bench_redis"] = aioredis.Redis.from_url(URL)


class WorkerSettings:
    """arq worker settings."""

    functions: ClassVar[list[Any]] = [incr]
    on_startup = startup
    redis_settings = RedisSettings.from_dsn(URL)
    max_jobs = int(os.environ.get("BENCH_CONCURRENCY", "8"))


async def produce(a: Any) -> None:
    """The producer subcommands."""
    pool = await create_pool(RedisSettings.from_dsn(a.url))
    if a.sub == "setup":
        emit()
    elif a.sub == "produce":
        started = time.time()
        t0 = time.perf_counter()
        for _ in range(a.n):
            await pool.enqueue_job("incr")
        emit(
            elapsed=time.perf_counter() - t0,
            n=a.n,
            started=started,
            unsupported=a.mode == "batch",
        )
    elif a.sub == "latency":
        t0 = time.perf_counter()
        for i in range(a.n):
            delay = t0 + i * a.interval_ms / 1000 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await pool.enqueue_job("incr", ts=time.time(), key=LATENCY_KEY)
        emit(n=a.n)
    elif a.sub == "delayed":
        when = datetime.fromtimestamp(a.due, tz=UTC)
        for _ in range(a.n):
            await pool.enqueue_job("incr", ts=a.due, key=LATENESS_KEY, _defer_until=when)
        emit(n=a.n)
    await pool.aclose()


def main() -> None:
    """Dispatch one subcommand."""
    a = parse()
    if a.sub == "worker":
        here = str(Path(__file__).resolve().parent)
        os.environ["PYTHONPATH"] = here + os.pathsep + os.environ.get("PYTHONPATH", "")
        os.environ["BENCH_CONCURRENCY"] = str(a.concurrency)
        arq_bin = str(Path(sys.executable).parent / "arq")
        os.execv(arq_bin, [arq_bin, "arq_bench.WorkerSettings"])
    asyncio.run(produce(a))


if __name__ == "__main__":
    import arq_bench

    arq_bench.main()
