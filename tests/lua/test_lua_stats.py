"""stats.lua: queue sizes, oldest_pending_ms, windowed outcome counters and the cap."""

from __future__ import annotations

FIELDS = (
    "pending",
    "running",
    "scheduled",
    "oldest_pending_ms",
    "executions",
    "errors",
    "failures",
    "cap",
    "finished",
)


def _stats(pool, **kwargs):
    return dict(zip(FIELDS, pool.stats(**kwargs), strict=True))


def test_empty_pool(pool):
    # Given nothing at all
    # When stats are read
    stats = _stats(pool, default_cap=7)
    # Then everything is zero and the cap is the default
    assert stats == dict.fromkeys(FIELDS, 0) | {"cap": 7}


def test_counts_pending_running_and_scheduled(pool):
    # Given two running, three ready and two delayed jobs
    pool.start("r1", "r2")
    pool.enqueue("p1", "p2", "p3")
    pool.enqueue("d1", "d2", schedule="after", schedule_ms=60_000)
    # When stats are read
    stats = _stats(pool)
    # Then each queue is counted
    assert (stats["pending"], stats["running"], stats["scheduled"]) == (3, 2, 2)


def test_cap_is_the_stored_one_even_zero(pool):
    # Given a paused pool
    pool.update_config(0)
    # When stats are read
    # Then the cap is 0, not the default
    assert _stats(pool, default_cap=10)["cap"] == 0


def test_oldest_pending_is_the_age_of_the_first_stream_entry(pool, client):
    # Given stream entries added 5 s and 1 s ago (by their stream ids)
    now = pool.now_ms()
    client.xadd(pool.keys.stream, {"id": "old"}, id=f"{now - 5000}-0")
    client.xadd(pool.keys.stream, {"id": "new"}, id=f"{now - 1000}-0")
    # When stats are read
    stats = _stats(pool)
    after = pool.now_ms()
    # Then the oldest age is that of the first entry
    assert stats["pending"] == 2
    assert 5000 <= stats["oldest_pending_ms"] <= after - now + 5000


def test_oldest_pending_is_zero_when_stream_is_empty(pool):
    # Given a stream emptied by a claim
    pool.enqueue("a")
    pool.claim()
    # When stats are read
    # Then no job is waiting, so its age is 0
    assert _stats(pool)["oldest_pending_ms"] == 0


def test_oldest_pending_is_never_negative(pool, client):
    # Given an entry stamped slightly in the future (another host's clock, say)
    client.xadd(pool.keys.stream, {"id": "a"}, id=f"{pool.now_ms() + 60_000}-0")
    # When stats are read
    # Then its age reads as 0
    assert _stats(pool)["oldest_pending_ms"] == 0


def test_counters_sum_buckets_inside_the_window(pool, client):
    # Given 1 s buckets: the current one, one 2 s ago, and one 20 s ago
    current = pool.now_ms() // 1000
    prefix = pool.keys.stats_prefix
    client.hset(f"{prefix}{current}", mapping={"executions": 5, "errors": 2, "failures": 1})
    client.hset(f"{prefix}{current - 2}", mapping={"executions": 3, "errors": 3})
    client.hset(f"{prefix}{current - 20}", mapping={"executions": 100, "failures": 100})
    # When stats are read over a 5 s window
    stats = _stats(pool, window_ms=5000, bucket_ms=1000)
    # Then only the buckets inside the window count
    assert (stats["executions"], stats["errors"], stats["failures"]) == (8, 5, 1)


def test_counters_reflect_completed_jobs(pool):
    # Given jobs that succeeded, failed and were retried
    pool.start("ok", "fail", "retry", max_attempts=2)
    pool.complete(("ok", 1, "ok"), ("fail", 1, "fatal"), ("retry", 1, "error"))
    # When stats are read with the bucket width complete.lua used
    stats = _stats(pool, window_ms=60_000, bucket_ms=10_000)
    # Then they count three executions, two errors and one permanent failure
    assert (stats["executions"], stats["errors"], stats["failures"]) == (3, 2, 1)
    assert (stats["running"], stats["scheduled"]) == (0, 1)
