"""End to end: retries with backoff for actions; mutations and queries are never retried."""

from __future__ import annotations

import itertools

import jobs
import pytest
from helpers import wait_until

from workpool import ResultKind, RetryBehavior, State

# Extra time a retry may take beyond its backoff: recording the failure, waking, claiming.
SLACK_MS = 250


def _attempts(r, key: str) -> list[tuple[int, float]]:
    """(attempt, start epoch s) that jobs.fail_times recorded under `key`."""
    entries = [e.decode().split(":") for e in r.lrange(f"{key}:times", 0, -1)]
    return [(int(a), float(t)) for a, t in entries]


def test_action_retried_with_exponential_backoff_until_it_succeeds(
    r, make_pool, ready_workers, finished
):
    # Given a worker and an action that fails twice, then succeeds
    pool = make_pool("retry")
    ready_workers(1, pools=("retry",))
    behavior = RetryBehavior(max_attempts=3, initial_backoff_ms=200, base=2)
    # When it is enqueued with 3 attempts, 200 ms initial backoff, base 2
    wid = pool.enqueue_action(jobs.fail_times, {"key": "test:retry", "failures": 2}, retry=behavior)
    # Then it succeeds on its third attempt
    result = finished(pool, wid)
    assert result.kind is ResultKind.SUCCESS
    assert result.return_value == 3
    assert pool.status(wid).previous_attempts == 3
    attempts = _attempts(r, "test:retry")
    assert [a for a, _ in attempts] == [1, 2, 3]
    # And the waits between attempts follow 200 ms * 2**(n-1) with jitter in [0.5, 1.5)
    gaps_ms = [(b - a) * 1000 for (_, a), (_, b) in itertools.pairwise(attempts)]
    assert 0.5 * 200 <= gaps_ms[0] <= 1.5 * 200 + SLACK_MS, gaps_ms
    assert 0.5 * 400 <= gaps_ms[1] <= 1.5 * 400 + SLACK_MS, gaps_ms


def test_exhausted_retries_fail_with_the_last_error(r, make_pool, ready_workers, finished):
    # Given a worker and an action that always fails
    pool = make_pool("exhaust")
    ready_workers(1, pools=("exhaust",))
    # When it is enqueued with 3 attempts
    wid = pool.enqueue_action(
        jobs.fail_times,
        {"key": "test:exhaust", "failures": 100},
        retry=RetryBehavior(max_attempts=3, initial_backoff_ms=20, base=2),
    )
    # Then it fails after exactly 3 attempts, reporting the last attempt's error
    result = finished(pool, wid)
    assert result.kind is ResultKind.FAILED
    assert result.error == "RuntimeError: failure 3"
    assert int(r.get("test:exhaust")) == 3
    assert pool.status(wid).previous_attempts == 3


def test_nonretryable_error_fails_at_once(r, make_pool, ready_workers, finished):
    # Given a worker and an action that raises NonRetryableError
    pool = make_pool("fatal")
    ready_workers(1, pools=("fatal",))
    # When it is enqueued with retries allowed
    wid = pool.enqueue_action(
        jobs.fail_times,
        {"key": "test:fatal", "failures": 100, "nonretryable": True},
        retry=RetryBehavior(max_attempts=5, initial_backoff_ms=20, base=2),
    )
    # Then it fails after one attempt with that error
    result = finished(pool, wid)
    assert result.kind is ResultKind.FAILED
    assert "permanent failure 1" in result.error
    assert int(r.get("test:fatal")) == 1
    assert pool.status(wid).previous_attempts == 1


@pytest.mark.parametrize(
    ("by_default", "retry", "expected_attempts", "expected"),
    [
        (False, None, 1, ResultKind.FAILED),  # the pool does not retry by default
        (True, None, 3, ResultKind.SUCCESS),  # the pool retries by default
        (True, False, 1, ResultKind.FAILED),  # retry=False wins over the pool default
        (False, True, 3, ResultKind.SUCCESS),  # retry=True uses the pool's default behaviour
    ],
)
def test_retry_option_and_pool_default(
    by_default, retry, expected_attempts, expected, r, make_pool, ready_workers, finished
):
    # Given a pool whose default retry behaviour is 3 quick attempts
    pool = make_pool(
        "defaults",
        retry_actions_by_default=by_default,
        default_retry_behavior=RetryBehavior(max_attempts=3, initial_backoff_ms=20, base=2),
    )
    ready_workers(1, pools=("defaults",))
    # When an action that fails twice, then succeeds, is enqueued with `retry`
    wid = pool.enqueue_action(jobs.fail_times, {"key": "test:defaults", "failures": 2}, retry=retry)
    # Then it ran as often as its retry setting allows
    assert finished(pool, wid).kind is expected
    assert int(r.get("test:defaults")) == expected_attempts
    assert pool.status(wid).previous_attempts == expected_attempts


def test_status_while_backing_off_is_pending_with_attempts_and_due_time(
    r, make_pool, ready_workers, finished
):
    # Given a worker and an action that fails once, with a 600 ms initial backoff
    pool = make_pool("backoff")
    ready_workers(1, pools=("backoff",))
    wid = pool.enqueue_action(
        jobs.fail_times,
        {"key": "test:backoff", "failures": 1},
        retry=RetryBehavior(max_attempts=2, initial_backoff_ms=600, base=2),
    )
    # When its first attempt has failed
    status = wait_until(
        lambda: (s := pool.status(wid)).previous_attempts == 1 and s, 10, message="a failed try"
    )
    failed_at = _attempts(r, "test:backoff")[0][1]
    # Then it reads as pending, one attempt behind it, due within the jittered backoff
    assert status.state is State.PENDING
    assert status.next_run_at is not None
    # (Redis stamps due times in whole milliseconds: allow the one that truncation takes off.)
    assert failed_at + 0.3 - 0.001 <= status.next_run_at <= failed_at + 0.9 + SLACK_MS / 1000
    assert pool.result(wid) is None
    assert pool.stats().scheduled == 1
    # And it later succeeds, its second attempt not before that due time
    assert finished(pool, wid).kind is ResultKind.SUCCESS
    assert _attempts(r, "test:backoff")[1][1] >= status.next_run_at


@pytest.mark.parametrize("kind", ["mutation", "query"])
def test_mutations_and_queries_are_never_retried(kind, r, make_pool, ready_workers, finished):
    # Given a pool that retries actions by default
    pool = make_pool(
        "once",
        retry_actions_by_default=True,
        default_retry_behavior=RetryBehavior(max_attempts=5, initial_backoff_ms=20, base=2),
    )
    ready_workers(1, pools=("once",))
    enqueue = pool.enqueue_mutation if kind == "mutation" else pool.enqueue_query
    # When a mutation or query that fails once (then would succeed) is enqueued
    wid = enqueue(jobs.fail_times, {"key": "test:once", "failures": 1})
    # Then it fails after its single run
    result = finished(pool, wid)
    assert result.kind is ResultKind.FAILED
    assert result.error == "RuntimeError: failure 1"
    assert int(r.get("test:once")) == 1
    assert pool.status(wid).previous_attempts == 1
    # And an action of the same function in the same pool is retried, as a control
    action = pool.enqueue_action(jobs.fail_times, {"key": "test:once:action", "failures": 1})
    assert finished(pool, action).kind is ResultKind.SUCCESS
    assert int(r.get("test:once:action")) == 2
