"""End to end: delayed work (run_after, run_at) never starts before it is due."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import jobs
import pytest

from workpool import ResultKind, State

DELAY_S = 0.6
# The clocks compared are the same host's (Redis TIME and time.time()), rounded to ms.
CLOCK_SLACK_S = 0.002


def _schedule(kind: str, now: float) -> tuple[dict, float]:
    """Enqueue options for a job due DELAY_S from `now`, and the earliest due time allowed."""
    due = now + DELAY_S
    if kind == "run_after":
        return {"run_after": DELAY_S}, due
    if kind == "run_at_epoch":
        return {"run_at": due}, due
    # An aware datetime in a zone other than UTC, to prove the offset is honoured.
    zone = timezone(timedelta(hours=5, minutes=30))
    return {"run_at": datetime.fromtimestamp(due, tz=zone)}, due


@pytest.mark.parametrize("kind", ["run_after", "run_at_epoch", "run_at_aware_datetime"])
def test_delayed_job_is_pending_until_due_and_never_starts_early(
    kind, r, make_pool, ready_workers, finished
):
    # Given an idle worker
    pool = make_pool("later")
    ready_workers(1, pools=("later",))
    # When a job is enqueued to run DELAY_S from now
    before = time.time()
    options, due = _schedule(kind, before)
    wid = pool.enqueue_action(jobs.record_start, {"key": "test:later:start"}, **options)
    after = time.time()
    # Then it reads as pending, not yet attempted, with its due time
    status = pool.status(wid)
    assert status.state is State.PENDING
    assert status.previous_attempts == 0
    assert status.next_run_at is not None
    upper = (after + DELAY_S) if kind == "run_after" else due
    assert due - CLOCK_SLACK_S <= status.next_run_at <= upper + CLOCK_SLACK_S
    assert pool.stats().scheduled == 1
    # And once it has run, it started no earlier than its due time
    result = finished(pool, wid)
    assert result.kind is ResultKind.SUCCESS
    started = float(r.lrange("test:later:start", 0, -1)[0])
    assert started >= status.next_run_at
    assert started >= due - CLOCK_SLACK_S
    # And the idle worker started it promptly: it slept until the due time, not a poll period
    assert started - status.next_run_at < 0.5


def test_due_time_in_the_past_runs_at_once(make_pool, ready_workers, finished):
    # Given an idle worker
    pool = make_pool("late")
    ready_workers(1, pools=("late",))
    # When a job is enqueued with a run_at already past
    wid = pool.enqueue_action(jobs.add, {"a": 1, "b": 1}, run_at=datetime.now(UTC) - timedelta(1))
    # Then it is simply ready, and runs
    assert pool.stats().scheduled == 0
    assert finished(pool, wid).return_value == 2


def test_delayed_jobs_run_in_due_order(r, make_pool, ready_workers, all_finished):
    # Given an idle worker with one slot
    pool = make_pool("ordered")
    ready_workers(1, pools=("ordered",), concurrency=1)
    # When jobs are enqueued in the reverse order of their due times
    now = time.time()
    dues = [now + 0.1 * n for n in (4, 3, 2, 1)]
    ids = [
        pool.enqueue_action(jobs.record_start, {"key": "test:ordered:start"}, run_at=due)
        for due in dues
    ]
    # Then they all run, each no earlier than its own due time
    all_finished(pool, ids)
    starts = [pool.result(w).return_value for w in ids]
    for due, started in zip(dues, starts, strict=True):
        assert started >= due - CLOCK_SLACK_S
    # And in the order they fell due, not the order they were enqueued
    assert [float(s) for s in r.lrange("test:ordered:start", 0, -1)] == sorted(starts)
    assert starts == sorted(starts, reverse=True)
