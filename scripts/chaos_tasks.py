"""The functions `make chaos` runs. They record what they do in a separate metrics Redis.

The metrics Redis ($CHAOS_METRICS_URL) is never killed, so the evidence survives the queue's
Redis restarts. Every job counts itself running per pool and per worker process while it runs
(the driver subtracts a killed process's count, since a SIGKILLed job never says it ended), and
keeps the peak.
"""

from __future__ import annotations

import os
import random
import time

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

import workpool

_metrics: redis.Redis | None = None

# KEYS: now, peak, by-process hash; ARGV: pid. Start of a run: count it, keep the peak.
_ENTER = """
local n = redis.call('INCR', KEYS[1])
redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end
return n
"""
# End of a run.
_LEAVE = """
redis.call('DECR', KEYS[1])
redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
"""


def metrics() -> redis.Redis:
    """The metrics Redis (retrying briefly, so a busy moment never fails a job)."""
    global _metrics
    if _metrics is None:
        _metrics = redis.Redis.from_url(
            os.environ["CHAOS_METRICS_URL"],
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.01), 20),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        )
    return _metrics


def _run(kind: str, fail_rate: float) -> str:
    job = workpool.current_job()
    pool, pid = job.pool, str(os.getpid())
    keys = (f"now:{pool}", f"peak:{pool}", f"byproc:{pool}")
    m = metrics()
    m.eval(_ENTER, 3, *keys, pid)
    try:
        m.incr(f"starts:{job.work_id}")
        time.sleep(random.uniform(0, 0.005))
        if random.random() < fail_rate:
            raise RuntimeError(f"random {kind} failure")
        return job.work_id
    finally:
        m.eval(_LEAVE, 2, keys[0], keys[2], pid)


@workpool.function(name="chaos.action")
def action(i: int) -> str:
    """An action that fails one attempt in five (retried)."""
    return _run("action", 0.2)


@workpool.function(name="chaos.mutation")
def mutation(i: int) -> str:
    """A mutation (never retried) that fails one time in ten."""
    return _run("mutation", 0.1)


@workpool.function(name="chaos.on_complete")
def on_complete(work_id: str, context: dict, result: workpool.Result) -> None:
    """Counts each callback run: started, and returned."""
    m = metrics()
    m.incr(f"cb_started:{work_id}")
    m.rpush(f"cb_start_times:{work_id}", repr(time.time()))
    m.incr(f"cb_returned:{work_id}")
