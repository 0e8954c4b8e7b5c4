"""retry.py and options.retry_of: backoff formula, the one-day cap, and which behaviour applies."""

from __future__ import annotations

import dataclasses

import jobs
import pytest

from workpool import DEFAULT_RETRY_BEHAVIOR, ResultKind, RetryBehavior
from workpool.options import retry_of
from workpool.retry import MAX_BACKOFF_MS, NO_RETRY, draw_jitter

ONE_DAY_MS = 24 * 3600 * 1000


def test_defaults():
    # The documented defaults: five attempts in all, 250 ms doubling
    assert RetryBehavior(max_attempts=5, initial_backoff_ms=250, base=2) == DEFAULT_RETRY_BEHAVIOR
    assert NO_RETRY.max_attempts == 1
    assert MAX_BACKOFF_MS == ONE_DAY_MS


@pytest.mark.parametrize(
    ("behavior", "attempt", "jitter", "expected"),
    [
        (RetryBehavior(), 1, 1.0, 250),
        (RetryBehavior(), 2, 1.0, 500),
        (RetryBehavior(), 3, 1.0, 1000),
        (RetryBehavior(), 4, 0.5, 1000),
        (RetryBehavior(), 4, 1.5, 3000),
        (RetryBehavior(initial_backoff_ms=100, base=1.5), 2, 1.0, 150),
        (RetryBehavior(initial_backoff_ms=100, base=1.5), 3, 1.0, 225),
        (RetryBehavior(initial_backoff_ms=100, base=1.5), 3, 0.75, 168),  # 168.75, truncated
        (RetryBehavior(initial_backoff_ms=0, base=2), 5, 1.2, 0),
        (RetryBehavior(initial_backoff_ms=40, base=1), 9, 1.0, 40),
        (RetryBehavior(initial_backoff_ms=0.5, base=1), 1, 1.0, 0),
    ],
)
def test_backoff_formula(behavior, attempt, jitter, expected):
    # Then the wait after failed attempt n is initial * base**(n-1) * jitter, in whole ms
    assert behavior.backoff_ms(attempt, jitter) == expected
    assert isinstance(behavior.backoff_ms(attempt, jitter), int)


def test_backoff_is_capped_at_one_day():
    # Given a behaviour whose raw backoff passes one day at attempt 20 (250 * 2**19 ms ~ 36 h)
    behavior = RetryBehavior(max_attempts=100)
    # Then the wait never exceeds a day, whatever the jitter
    assert behavior.backoff_ms(19, 1.0) == 250 * 2**18 < ONE_DAY_MS
    assert behavior.backoff_ms(20, 1.0) == ONE_DAY_MS
    assert behavior.backoff_ms(60, 1.5) == ONE_DAY_MS
    assert RetryBehavior(initial_backoff_ms=ONE_DAY_MS * 10).backoff_ms(1, 0.5) == ONE_DAY_MS


@pytest.mark.parametrize(
    "behavior",
    [
        pytest.param(RetryBehavior(max_attempts=5000), id="int-base"),
        pytest.param(RetryBehavior(max_attempts=5000, base=2.0), id="float-base"),
        pytest.param(RetryBehavior(max_attempts=5000, initial_backoff_ms=0.0), id="zero-backoff"),
    ],
)
def test_backoff_cap_holds_for_very_late_attempts(behavior):
    # Given a behaviour allowing thousands of attempts
    # When the backoff after attempt 2000 is computed
    waits = [behavior.backoff_ms(2000, jitter) for jitter in (0.5, 1.0, 1.49)]
    # Then it is the cap (or 0 for no backoff), not an overflow error
    expected = 0 if behavior.initial_backoff_ms == 0 else ONE_DAY_MS
    assert waits == [expected] * 3


def test_jitter_is_within_half_to_one_and_a_half():
    # When many jitter factors are drawn
    draws = [draw_jitter() for _ in range(2000)]
    # Then all lie in [0.5, 1.5) and they do vary
    assert all(0.5 <= j < 1.5 for j in draws)
    assert max(draws) - min(draws) > 0.5


def test_retry_behavior_is_a_frozen_value():
    # Given a behaviour
    behavior = RetryBehavior(max_attempts=3)
    # Then it cannot be changed after validation, and equal fields mean equal values
    with pytest.raises(dataclasses.FrozenInstanceError):
        behavior.max_attempts = 0  # type: ignore[misc]
    assert behavior == RetryBehavior(max_attempts=3)


def test_boundary_values_are_accepted():
    # The smallest valid settings: one attempt, no backoff, no growth
    behavior = RetryBehavior(max_attempts=1, initial_backoff_ms=0, base=1)
    assert behavior.backoff_ms(1, 1.0) == 0


CUSTOM = RetryBehavior(max_attempts=7, initial_backoff_ms=10, base=3)


@pytest.mark.parametrize(
    ("retry", "by_default", "expected"),
    [
        pytest.param(None, False, NO_RETRY, id="none-off"),
        pytest.param(None, True, CUSTOM, id="none-on"),
        pytest.param(True, False, CUSTOM, id="true-off"),
        pytest.param(True, True, CUSTOM, id="true-on"),
        pytest.param(False, False, NO_RETRY, id="false-off"),
        pytest.param(False, True, NO_RETRY, id="false-on"),
    ],
)
def test_retry_of_mapping(retry, by_default, expected):
    # When an action's retry option is resolved against the pool's default
    behavior = retry_of(retry, default=CUSTOM, by_default=by_default)
    # Then None follows retry_actions_by_default, True is the default, False one attempt
    assert behavior == expected


@pytest.mark.parametrize("by_default", [False, True])
def test_retry_of_keeps_an_explicit_behavior(by_default):
    # Given an explicit behaviour
    explicit = RetryBehavior(max_attempts=2, initial_backoff_ms=1, base=1)
    # Then it is used as is, whatever the pool's default
    assert retry_of(explicit, default=CUSTOM, by_default=by_default) is explicit


@pytest.mark.parametrize(
    ("by_default", "retry", "expected_kind", "attempts"),
    [
        pytest.param(True, None, ResultKind.SUCCESS, 2, id="on-none-retries"),
        pytest.param(False, None, ResultKind.FAILED, 1, id="off-none-does-not"),
        pytest.param(False, True, ResultKind.SUCCESS, 2, id="off-true-retries"),
        pytest.param(True, False, ResultKind.FAILED, 1, id="on-false-does-not"),
    ],
)
def test_pool_applies_its_retry_default(
    make_pool, start_workers, by_default, retry, expected_kind, attempts
):
    # Given a pool whose default behaviour allows two attempts without backoff, and a worker
    default = RetryBehavior(max_attempts=2, initial_backoff_ms=0)
    pool = make_pool("pool", retry_actions_by_default=by_default, default_retry_behavior=default)
    start_workers(1)
    # When an action that fails once is enqueued with the given retry option
    work_id = pool.enqueue_action(
        jobs.fail_times, {"key": "test:retry-default", "failures": 1}, retry=retry
    )
    result = pool.wait(work_id, timeout=15)
    # Then it was retried exactly when the mapping says so
    assert result.kind is expected_kind
    assert pool.status(work_id).previous_attempts == attempts
