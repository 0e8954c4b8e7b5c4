"""status.py values as the pool reports them: job states, results, and pool stats."""

from __future__ import annotations

import dataclasses
import json
import time

import jobs
import pytest
import structlog
from helpers import wait_until

from workpool import Result, ResultKind, RetryBehavior, State, Stats, Status
from workpool.status import JobKind

WAIT_S = 15

STATS_FIELDS = {
    "pool",
    "pending",
    "running",
    "scheduled",
    "oldest_pending_ms",
    "recent_executions",
    "recent_finished",
    "recent_error_rate",
    "recent_permanent_failure_rate",
    "max_parallelism",
    "window_s",
}


def test_enum_values_are_the_wire_strings():
    assert [s.value for s in State] == ["pending", "running", "finished", "unknown"]
    assert [k.value for k in ResultKind] == ["success", "failed", "canceled"]
    assert [k.value for k in JobKind] == ["action", "mutation", "query"]


def test_value_objects_are_frozen():
    status = Status("w", State.PENDING)
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.state = State.RUNNING  # type: ignore[misc]
    assert Result(ResultKind.SUCCESS) == Result(ResultKind.SUCCESS, None, None)


def test_unknown_ids_read_as_unknown(make_pool):
    # Given a pool with no such job
    pool = make_pool("pool")
    # Then status says unknown, result says nothing, and a batch keeps the order
    assert pool.status("nope") == Status("nope", State.UNKNOWN)
    assert pool.result("nope") is None
    work_id = pool.enqueue_query(jobs.add, {"a": 1, "b": 2})
    states = [s.state for s in pool.status_batch(["nope", work_id, "other"])]
    assert states == [State.UNKNOWN, State.PENDING, State.UNKNOWN]


def test_ready_and_delayed_jobs_are_pending(make_pool):
    # Given a ready job and a delayed job
    pool = make_pool("pool")
    ready = pool.enqueue_action(jobs.add, {"a": 1, "b": 2})
    delayed = pool.enqueue_action(jobs.add, {"a": 1, "b": 2}, run_after=300)
    # Then both are pending; only the delayed one has a next run time
    assert pool.status(ready) == Status(ready, State.PENDING, 0, None)
    status = pool.status(delayed)
    assert status.state is State.PENDING
    assert status.previous_attempts == 0
    assert status.next_run_at == pytest.approx(time.time() + 300, abs=5)
    assert pool.result(ready) is None


def test_states_through_a_jobs_life(r, make_pool, start_workers):
    # Given a worker and a job that blocks until released
    pool = make_pool("pool")
    start_workers(1)
    work_id = pool.enqueue_mutation(jobs.block_until, {"key": "test:life"})
    # When it runs
    wait_until(lambda: r.exists("test:life:started"), WAIT_S, message="the job to start")
    # Then it reads as running, with no attempt behind it yet
    assert pool.status(work_id) == Status(work_id, State.RUNNING, 0, None)
    assert pool.result(work_id) is None
    # When it is released and finishes
    r.set("test:life:release", 1)
    result = pool.wait(work_id, timeout=WAIT_S)
    # Then it reads as finished after one attempt, with its value
    assert result == Result(ResultKind.SUCCESS, "released", None)
    assert pool.status(work_id) == Status(work_id, State.FINISHED, 1, None)


def test_backing_off_job_is_pending_with_its_attempts(make_pool, start_workers):
    # Given a worker and an action that fails once, then waits a minute before its retry
    pool = make_pool("pool")
    start_workers(1)
    retry = RetryBehavior(max_attempts=3, initial_backoff_ms=60_000)
    work_id = pool.enqueue_action(jobs.fail_times, {"key": "test:bo", "failures": 5}, retry=retry)
    # When its first attempt has failed
    status = wait_until(
        lambda: (s := pool.status(work_id)).previous_attempts == 1 and s,
        WAIT_S,
        message="the first attempt to fail",
    )
    # Then it is pending again, due 30 to 90 s later (jitter 0.5 to 1.5)
    assert status.state is State.PENDING
    assert time.time() + 25 <= status.next_run_at <= time.time() + 91
    assert pool.result(work_id) is None


def test_stats_of_a_pool_without_workers(make_pool):
    # Given two ready jobs and one delayed job, and nothing run yet
    pool = make_pool("pool")
    pool.enqueue_action_batch(jobs.add, [{"a": 1, "b": 2}] * 2)
    pool.enqueue_action(jobs.add, {"a": 1, "b": 2}, run_after=300)
    # When stats are read
    stats = pool.stats(window=60)
    # Then they count the queue and show no executions
    assert isinstance(stats, Stats)
    assert (stats.pool, stats.pending, stats.running, stats.scheduled) == ("pool", 2, 0, 1)
    assert 0 <= stats.oldest_pending_ms < 10_000
    assert stats.recent_executions == 0
    assert stats.recent_finished == 0
    assert stats.recent_error_rate == 0.0
    assert stats.recent_permanent_failure_rate == 0.0
    assert stats.max_parallelism == 10
    assert stats.window_s == 60.0
    assert set(stats.as_dict()) == STATS_FIELDS


def test_stats_rates_after_runs(make_pool, start_workers):
    # Given a worker, one job that succeeds, and one action that fails once then succeeds
    pool = make_pool("pool")
    start_workers(1)
    pool.run_action(jobs.add, {"a": 1, "b": 2}, timeout=WAIT_S)
    retry = RetryBehavior(max_attempts=2, initial_backoff_ms=0)
    flaky = pool.enqueue_action(jobs.fail_times, {"key": "test:r", "failures": 1}, retry=retry)
    pool.wait(flaky, timeout=WAIT_S)
    # And one that fails for good
    failed = pool.enqueue_action(jobs.raise_value_error, {"message": "x"})
    pool.wait(failed, timeout=WAIT_S)
    # When stats are read
    stats = pool.stats()
    # Then four attempts ended: two raised, one job failed permanently
    assert stats.recent_executions == 4
    assert stats.recent_error_rate == pytest.approx(2 / 4)
    assert stats.recent_permanent_failure_rate == pytest.approx(1 / 4)


@pytest.fixture
def unconfigured_structlog():
    """log_stats falls back to its own JSON logger when the application configured none."""
    config, was_configured = structlog.get_config(), structlog.is_configured()
    structlog.reset_defaults()
    yield
    if was_configured:
        structlog.configure(**config)


def test_log_stats_writes_one_json_line(make_pool, capsys, unconfigured_structlog):
    # Given a pool with one pending job
    pool = make_pool("pool")
    pool.enqueue_action(jobs.add, {"a": 1, "b": 2})
    # When its stats are logged
    returned = pool.log_stats()
    # Then exactly one JSON line reaches stderr, carrying every stats field
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "pool_stats"
    assert record["pool"] == "pool"
    for key in STATS_FIELDS:
        assert record[key] == getattr(returned, key), key
    assert record["pending"] == 1
    assert record["max_parallelism"] == 10
