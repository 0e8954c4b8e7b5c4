"""Faults: jobs that run past their timeout. A sync job is reported failed ("timeout") at its
deadline, but its thread cannot be stopped, so it keeps a slot of the pool's cap until it
returns; an async job is cancelled. The pool default applies unless an enqueue overrides it.

Workers run with --grace 0 so that teardown does not wait for sleeping threads.
"""

from __future__ import annotations

import time

import jobs
from helpers import settle, wait_until

from workpool import ResultKind, RetryBehavior, State

FAST = ("--grace", "0")
# Proving a negative: how long a test watches for something that must not happen.
QUIET_S = 0.5


def _times(r, key: str) -> dict[int, float]:
    """attempt -> epoch seconds, from the "attempt:epoch" entries of list `key`."""
    entries = [e.decode().split(":") for e in r.lrange(key, 0, -1)]
    return {int(a): float(t) for a, t in entries}


def test_sync_job_past_its_timeout_fails_timeout_long_before_it_returns(
    make_pool, ready_workers, finished
):
    # Given a worker
    pool = make_pool("to_sync")
    ready_workers(1, pools=("to_sync",), extra_args=FAST)
    # When a sync job that sleeps 3 s is enqueued with a 0.5 s timeout and no retries
    enqueued_at = time.monotonic()
    wid = pool.enqueue_action(jobs.measured, {"seconds": 3.0}, timeout=0.5)
    # Then it fails with error "timeout" soon after 0.5 s, not after 3 s
    result = finished(pool, wid, 5)
    elapsed_s = time.monotonic() - enqueued_at
    assert result.kind is ResultKind.FAILED
    assert result.error == "timeout"
    assert elapsed_s < 2.0, f"reported after {elapsed_s:.2f} s"
    assert pool.status(wid).previous_attempts == 1


def test_timed_out_sync_job_is_retried_but_its_thread_keeps_the_slot_until_it_returns(
    r, make_pool, ready_workers, finished, job_hash
):
    # Given a pool with cap 1 and a worker with spare threads
    pool = make_pool("to_retry", max_parallelism=1)
    ready_workers(1, pools=("to_retry",), concurrency=4, extra_args=FAST)
    key = "test:to_retry:job"
    # When an action whose first attempt sleeps 2 s runs with a 0.5 s timeout and a retry,
    # and another job is queued behind it
    enqueued_at = time.time()
    wid = pool.enqueue_action(
        jobs.faults_slow_first,
        {"key": key, "seconds": 2.0},
        timeout=0.5,
        retry=RetryBehavior(max_attempts=2, initial_backoff_ms=100, base=2),
    )
    other = pool.enqueue_action(jobs.measured, {"seconds": 0.05, "tag": "other"})
    # Then the first attempt is recorded as a failed attempt ("timeout") to be retried
    wait_until(
        lambda: job_hash(pool, wid).get("last_error") == b"timeout",
        3,
        message="the first attempt to time out",
    )
    assert time.time() - enqueued_at < 1.5
    # And while its thread still runs, nothing else starts: not the retry, not the other job
    time.sleep(QUIET_S)  # proving a negative: the cap is held by the running thread
    assert r.llen(f"{key}:ends") == 0, "the first attempt's thread should still be running"
    assert list(_times(r, f"{key}:starts")) == [1]
    assert r.llen("test:to_retry:started") == 0
    status = pool.status(wid)
    assert (status.state, status.previous_attempts) == (State.PENDING, 1)
    # And once the thread returns, the retry and the other job run and succeed
    result = finished(pool, wid, 5)
    assert result.kind is ResultKind.SUCCESS
    assert result.return_value == 2
    assert finished(pool, other, 5).kind is ResultKind.SUCCESS
    thread_returned = _times(r, f"{key}:ends")[1]
    retry_started = _times(r, f"{key}:starts")[2]
    other_started = float(r.lindex("test:to_retry:started", 0).decode().split(":")[1])
    assert thread_returned <= retry_started < thread_returned + 1.0
    assert thread_returned <= other_started < thread_returned + 1.0
    # And the pool never ran two of its jobs at once
    assert int(r.get("test:to_retry:peak")) == 1


def test_async_job_past_its_timeout_is_cancelled_and_frees_its_slot(
    r, make_pool, ready_workers, finished
):
    # Given a pool with cap 1 and a worker
    pool = make_pool("to_async", max_parallelism=1)
    ready_workers(1, pools=("to_async",), extra_args=FAST)
    key = "test:to_async:job"
    # When an async job that sleeps 3 s is enqueued with a 0.5 s timeout, and another behind it
    enqueued_at = time.time()
    wid = pool.enqueue_action(jobs.faults_async_sleep, {"key": key, "seconds": 3.0}, timeout=0.5)
    nxt = pool.enqueue_action(jobs.record_start, {"key": "test:to_async:next"})
    # Then it fails with error "timeout" soon after 0.5 s
    result = finished(pool, wid, 5)
    assert result.kind is ResultKind.FAILED
    assert result.error == "timeout"
    assert time.time() - enqueued_at < 2.0
    # And its coroutine was cancelled, not left sleeping
    assert r.llen(f"{key}:cancelled") == 1
    assert not r.exists(f"{key}:done")
    # And the next job starts at once: a cancelled coroutine keeps no slot
    next_result = finished(pool, nxt, 5)
    assert next_result.kind is ResultKind.SUCCESS
    assert next_result.return_value - enqueued_at < 2.0


def test_pool_default_timeout_applies_and_a_per_enqueue_timeout_overrides_it(
    make_pool, ready_workers, finished, job_hash
):
    # Given a pool whose handle sets a default timeout of 0.5 s, and a worker
    pool = make_pool("to_default", timeout=0.5)
    ready_workers(1, pools=("to_default",), extra_args=FAST)
    # When one job is enqueued without a timeout and one with timeout=5, each sleeping past 0.5 s
    defaulted = pool.enqueue_action(jobs.measured, {"seconds": 3.0})
    overridden = pool.enqueue_action(jobs.measured, {"seconds": 1.0}, timeout=5)
    # Then the first times out under the pool default
    first = finished(pool, defaulted, 5)
    assert (first.kind, first.error) == (ResultKind.FAILED, "timeout")
    # And the second, under its own longer timeout, succeeds
    assert finished(pool, overridden, 5).kind is ResultKind.SUCCESS
    assert job_hash(pool, defaulted)["timeout_ms"] == b"500"
    assert job_hash(pool, overridden)["timeout_ms"] == b"5000"


def test_slot_of_a_timed_out_thread_outlives_its_lease_on_every_worker(
    r, make_pool, ready_workers, finished
):
    # Given a pool with cap 1 served by two workers with a 1 s lease, and a settled server
    settle(r, 1000)
    pool = make_pool("to_lease", max_parallelism=1)
    ready_workers(2, pools=("to_lease",), extra_args=(*FAST, "--lease", "1"))
    key = "test:to_lease:job"
    # When a job times out after 0.3 s but its thread runs on for 2.5 s (over two leases),
    # and another job is queued behind it
    wid = pool.enqueue_action(jobs.faults_slow_first, {"key": key, "seconds": 2.5}, timeout=0.3)
    assert finished(pool, wid, 5).error == "timeout"
    other = pool.enqueue_action(jobs.measured, {"seconds": 0.05, "tag": "other"})
    # Then the thread's slot is renewed past its lease: neither worker starts the other job
    # while the thread runs, and once it returns the other job runs
    assert finished(pool, other, 10).kind is ResultKind.SUCCESS
    thread_returned = _times(r, f"{key}:ends")[1]
    other_started = float(r.lindex("test:to_lease:started", 0).decode().split(":")[1])
    assert thread_returned <= other_started
    assert int(r.get("test:to_lease:peak")) == 1
    # And the late return of the timed-out thread did not overwrite the recorded timeout
    assert pool.result(wid).error == "timeout"
