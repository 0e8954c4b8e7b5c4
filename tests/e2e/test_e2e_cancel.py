"""End to end: canceling pending, delayed, backing-off and running work; cancel_all."""

from __future__ import annotations

import jobs
from helpers import wait_until

from workpool import ResultKind, RetryBehavior, State

QUICK_RETRY = RetryBehavior(max_attempts=5, initial_backoff_ms=20, base=2)


def _start_blocking(pool, r, key: str, fn=jobs.block_until, **options) -> str:
    wid = pool.enqueue_action(fn, {"key": key}, **options)
    wait_until(lambda: r.exists(f"{key}:started"), 10, message=f"{key} to start")
    return wid


def test_canceled_pending_work_never_starts(r, make_pool, ready_workers, finished):
    # Given a paused pool with an idle worker and a job waiting in it
    pool = make_pool("cancel", max_parallelism=0)
    ready_workers(1, pools=("cancel",))
    wid = pool.enqueue_action(jobs.count_calls, {"key": "test:cancel:never"})
    # When it is canceled
    assert pool.cancel(wid) is True
    # Then it is finished as canceled at once
    assert pool.status(wid).state is State.FINISHED
    assert pool.result(wid).kind is ResultKind.CANCELED
    assert pool.stats().pending == 0
    # And after the pool resumes and later work has run, it still never ran
    pool.update_config(max_parallelism=2)
    marker = pool.enqueue_action(jobs.add, {"a": 1, "b": 1})
    assert finished(pool, marker).return_value == 2
    assert r.get("test:cancel:never") is None
    # And canceling it again reports that it had already finished
    assert pool.cancel(wid) is False


def test_canceled_delayed_work_never_starts(r, make_pool, ready_workers, finished):
    # Given an idle worker and a job due in 0.3 s
    pool = make_pool("cancel")
    ready_workers(1, pools=("cancel",), concurrency=1)
    wid = pool.enqueue_action(jobs.count_calls, {"key": "test:cancel:delayed"}, run_after=0.3)
    # When it is canceled before it is due
    assert pool.cancel(wid) is True
    # Then it is finished as canceled and no longer scheduled
    assert pool.result(wid).kind is ResultKind.CANCELED
    assert pool.stats().scheduled == 0
    # And a job due after it runs, while the canceled one never did
    marker = pool.enqueue_action(jobs.add, {"a": 2, "b": 2}, run_after=0.4)
    assert finished(pool, marker).return_value == 4
    assert r.get("test:cancel:delayed") is None


def test_canceled_backing_off_work_is_not_retried(r, make_pool, ready_workers, finished):
    # Given an action that failed once and now waits out a long backoff
    pool = make_pool("cancel")
    ready_workers(1, pools=("cancel",))
    wid = pool.enqueue_action(
        jobs.fail_times,
        {"key": "test:cancel:backoff", "failures": 1},
        retry=RetryBehavior(max_attempts=3, initial_backoff_ms=400, base=2),
    )
    wait_until(lambda: pool.status(wid).previous_attempts == 1, 10, message="the first attempt")
    assert pool.status(wid).state is State.PENDING
    # When it is canceled during its backoff
    assert pool.cancel(wid) is True
    # Then it is canceled, and a job due after its retry would have been runs first
    assert pool.result(wid).kind is ResultKind.CANCELED
    marker = pool.enqueue_action(jobs.add, {"a": 0, "b": 0}, run_after=0.7)
    assert finished(pool, marker).return_value == 0
    assert int(r.get("test:cancel:backoff")) == 1
    assert pool.status(wid).previous_attempts == 1


def test_canceled_running_work_that_succeeds_reports_success(r, make_pool, ready_workers, finished):
    # Given a running job
    pool = make_pool("cancel")
    ready_workers(1, pools=("cancel",))
    wid = _start_blocking(pool, r, "test:cancel:ok")
    # When it is canceled while it runs
    assert pool.cancel(wid) is True
    # Then it keeps running
    assert pool.status(wid).state is State.RUNNING
    # And once it returns, it reports success with its value
    r.set("test:cancel:ok:release", 1)
    result = finished(pool, wid)
    assert result.kind is ResultKind.SUCCESS
    assert result.return_value == "released"


def test_canceled_running_work_that_fails_reports_canceled_and_is_not_retried(
    r, make_pool, ready_workers, finished
):
    # Given a running job with retries on that will fail when released
    pool = make_pool("cancel")
    ready_workers(1, pools=("cancel",))
    wid = _start_blocking(pool, r, "test:cancel:fail", fn=jobs.block_then_fail, retry=QUICK_RETRY)
    # When it is canceled while it runs, then fails
    assert pool.cancel(wid) is True
    r.set("test:cancel:fail:release", 1)
    # Then it reports canceled (with the error) after its only attempt
    result = finished(pool, wid)
    assert result.kind is ResultKind.CANCELED
    assert result.error == "RuntimeError: failed after release"
    assert pool.status(wid).previous_attempts == 1
    assert pool.stats().scheduled == 0


def test_cancel_all_counts_pending_delayed_and_running_work(r, make_pool, ready_workers):
    # Given a pool capped at 1 running one job, with 3 jobs waiting and 2 delayed
    pool = make_pool("cancel", max_parallelism=1)
    ready_workers(1, pools=("cancel",))
    running = _start_blocking(pool, r, "test:cancel:all")
    waiting = pool.enqueue_action_batch(jobs.count_calls, [{"key": "test:cancel:n"}] * 3)
    delayed = pool.enqueue_action_batch(
        jobs.count_calls, [{"key": "test:cancel:n"}] * 2, run_after=30
    )
    # When everything is canceled
    assert pool.cancel_all() == 6
    # Then the waiting and delayed jobs are finished as canceled, and nothing is queued
    assert {pool.result(w).kind for w in waiting + delayed} == {ResultKind.CANCELED}
    stats = pool.stats()
    assert (stats.pending, stats.scheduled) == (0, 0)
    # And the running one is let finish, with its own outcome
    r.set("test:cancel:all:release", 1)
    wait_until(lambda: pool.result(running), 10, message="the running job to finish")
    assert pool.result(running).kind is ResultKind.SUCCESS
    assert r.get("test:cancel:n") is None


def test_cancel_all_with_a_limit_cancels_at_most_that_many(make_pool):
    # Given a pool with no workers and 10 jobs waiting in it
    pool = make_pool("cancel")
    ids = pool.enqueue_action_batch(jobs.add, [{"a": n, "b": 0} for n in range(10)])
    # When at most 4 are canceled
    assert pool.cancel_all(limit=4) == 4
    # Then exactly 4 are canceled, the oldest first, and 6 still wait
    results = [pool.result(w) for w in ids]
    assert [res.kind for res in results[:4]] == [ResultKind.CANCELED] * 4
    assert results[4:] == [None] * 6
    assert pool.stats().pending == 6
    # And a limit of 0 cancels nothing, and no limit cancels the rest
    assert pool.cancel_all(limit=0) == 0
    assert pool.cancel_all() == 6
    assert pool.stats().pending == 0
    # And with nothing left, there is nothing to cancel
    assert pool.cancel_all() == 0


def test_cancel_all_with_a_limit_makes_progress_past_running_work(r, make_pool, ready_workers):
    # Given a pool capped at 1 running one job, with 3 jobs waiting
    pool = make_pool("cancel", max_parallelism=1)
    ready_workers(1, pools=("cancel",))
    _start_blocking(pool, r, "test:cancel:progress")
    pool.enqueue_action_batch(jobs.count_calls, [{"key": "test:cancel:p"}] * 3)
    # When work is canceled in chunks of one, as a caller draining a pool in steps would
    first = pool.cancel_all(limit=1)
    second = pool.cancel_all(limit=1)
    # Then each chunk cancels something not canceled before: the second one a waiting job
    # (the running job already had its cancel requested and must not be counted again)
    assert (first, second) == (1, 1)
    assert pool.stats().pending == 2, "the second cancel_all(limit=1) canceled no waiting job"
