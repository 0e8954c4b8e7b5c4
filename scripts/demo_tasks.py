"""The functions `make demo` runs: emails (fast, some fail and are retried) and scrapes (slow).

Each job counts itself in Redis while it runs (INCR on start, DECR on end, keeping the peak),
so the demo can show that no pool ever ran more jobs at once than its cap.
"""

from __future__ import annotations

import os
import random
import time

import redis

import workpool

_client: redis.Redis | None = None
_ENTER = """
local n = redis.call('INCR', KEYS[1])
if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end
return n
"""


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["WORKPOOL_REDIS_URL"])
    return _client


def _measured(seconds: float) -> None:
    pool = workpool.current_job().pool
    _redis().eval(_ENTER, 2, f"demo:{pool}:now", f"demo:{pool}:peak")
    try:
        time.sleep(seconds)
    finally:
        _redis().decr(f"demo:{pool}:now")


@workpool.function(name="demo.send_welcome")
def send_welcome(user_id: int) -> dict:
    """Pretend to send an email; one in six attempts hits a flaky provider and is retried."""
    _measured(random.uniform(0.02, 0.08))
    if random.random() < 1 / 6:
        raise ConnectionError("smtp provider timed out")
    return {"user_id": user_id, "sent": True}


@workpool.function(name="demo.scrape")
def scrape(city: str) -> dict:
    """Pretend to scrape a weather page (slow, so the scrape pool's cap of 1 shows)."""
    _measured(0.15)
    return {"city": city, "temp_c": round(random.uniform(-5, 30), 1)}


@workpool.function(name="demo.email_sent")
def email_sent(work_id: str, context: dict, result: workpool.Result) -> None:
    """on_complete: count each outcome once, by kind."""
    _redis().hincrby("demo:callbacks", str(result.kind), 1)
