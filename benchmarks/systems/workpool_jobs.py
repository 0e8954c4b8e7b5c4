"""The benchmark's workpool job: one INCR, and optionally a latency sample."""

from __future__ import annotations

import os

import redis
from common import record_run

import workpool

_redis = redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1/0"))


@workpool.function(name="bench.incr")
def incr(ts: float | None = None, key: str | None = None) -> None:
    """INCR the counter; with `ts`, RPUSH (start - ts) seconds to `key`."""
    record_run(_redis, ts, key)
