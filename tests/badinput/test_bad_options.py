"""Bad pool and enqueue options: typed errors at the call, and nothing written to Redis."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
from helpers import snapshot

from workpool import (
    InvalidParallelism,
    InvalidRetryBehavior,
    InvalidSchedule,
    RetryBehavior,
    Workpool,
    WorkpoolConnectionError,
    WorkpoolError,
)
from workpool.embedded import free_port

BAD_PARALLELISM = [
    pytest.param(-1, id="negative"),
    pytest.param(1.5, id="float"),
    pytest.param(2.0, id="integral-float"),
    pytest.param(True, id="bool"),
    pytest.param("3", id="str"),
]


@pytest.fixture
def busy_pool(make_pool):
    """A pool that already holds one ready and one delayed job, so it has every usual key."""
    pool = make_pool("pool", max_parallelism=4)
    pool.enqueue_action("jobs.add", {"a": 1, "b": 2})
    pool.enqueue_action("jobs.add", {"a": 1, "b": 2}, run_after=600)
    return pool


# -- max_parallelism ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", BAD_PARALLELISM)
def test_constructor_rejects_bad_parallelism(r, redis_url, value):
    # Given an empty Redis
    # When a pool is built with a bad max_parallelism
    with pytest.raises(InvalidParallelism) as excinfo:
        Workpool("pool", redis_url=redis_url, max_parallelism=value)
    # Then the error is a ValueError naming the option and the value; nothing is written
    assert isinstance(excinfo.value, ValueError)
    assert "max_parallelism" in str(excinfo.value)
    assert repr(value) in str(excinfo.value) or str(value) in str(excinfo.value)
    assert r.dbsize() == 0


@pytest.mark.parametrize("value", BAD_PARALLELISM)
def test_update_config_rejects_bad_parallelism(r, busy_pool, value):
    # Given a pool whose cap is 4
    before = snapshot(r)
    # When its cap is updated to a bad value
    with pytest.raises(InvalidParallelism) as excinfo:
        busy_pool.update_config(max_parallelism=value)
    # Then the cap and everything else stay as they were
    assert "max_parallelism" in str(excinfo.value)
    assert snapshot(r) == before
    assert busy_pool.stats().max_parallelism == 4


@pytest.mark.parametrize("value", BAD_PARALLELISM)
def test_update_config_on_a_fresh_pool_rejects_before_writing(r, make_pool, value):
    # Given a pool nobody has written yet
    pool = make_pool("fresh")
    # When its cap is updated to a bad value
    with pytest.raises(InvalidParallelism):
        pool.update_config(max_parallelism=value)
    # Then not even its config is created
    assert r.dbsize() == 0


def test_zero_parallelism_is_valid_and_pauses(make_pool):
    # Given a pool
    pool = make_pool("pool")
    # When its cap is set to 0 (the documented pause)
    previous = pool.update_config(max_parallelism=0)
    # Then it is accepted
    assert previous == 10
    assert pool.stats().max_parallelism == 0


# -- retry behaviour ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field_name"),
    [
        pytest.param({"max_attempts": 0}, "max_attempts", id="attempts-zero"),
        pytest.param({"max_attempts": -1}, "max_attempts", id="attempts-negative"),
        pytest.param({"max_attempts": 2.0}, "max_attempts", id="attempts-float"),
        pytest.param({"max_attempts": True}, "max_attempts", id="attempts-bool"),
        pytest.param({"max_attempts": "3"}, "max_attempts", id="attempts-str"),
        pytest.param({"initial_backoff_ms": -1}, "initial_backoff_ms", id="backoff-negative"),
        pytest.param({"initial_backoff_ms": math.nan}, "initial_backoff_ms", id="backoff-nan"),
        pytest.param({"initial_backoff_ms": math.inf}, "initial_backoff_ms", id="backoff-inf"),
        pytest.param({"initial_backoff_ms": "250"}, "initial_backoff_ms", id="backoff-str"),
        pytest.param({"initial_backoff_ms": None}, "initial_backoff_ms", id="backoff-none"),
        pytest.param({"base": 0.5}, "base", id="base-below-one"),
        pytest.param({"base": 0}, "base", id="base-zero"),
        pytest.param({"base": -2}, "base", id="base-negative"),
        pytest.param({"base": math.nan}, "base", id="base-nan"),
        pytest.param({"base": math.inf}, "base", id="base-inf"),
        pytest.param({"base": "2"}, "base", id="base-str"),
        pytest.param({"base": False}, "base", id="base-bool"),
    ],
)
def test_retry_behavior_rejects_bad_fields(fields, field_name):
    # When a RetryBehavior is built with a bad field
    with pytest.raises(InvalidRetryBehavior) as excinfo:
        RetryBehavior(**fields)
    # Then the error is a ValueError naming the field and the value
    assert isinstance(excinfo.value, ValueError)
    assert field_name in str(excinfo.value)
    assert repr(next(iter(fields.values()))) in str(excinfo.value)


@pytest.mark.parametrize(
    "retry",
    [
        pytest.param("yes", id="str"),
        pytest.param(1, id="int-one"),
        pytest.param(0, id="int-zero"),
        pytest.param({"max_attempts": 3}, id="dict"),
        pytest.param(RetryBehavior, id="class-not-instance"),
    ],
)
def test_enqueue_rejects_bad_retry(r, busy_pool, retry):
    # Given a pool with jobs
    before = snapshot(r)
    # When an action is enqueued with a retry that is not None/True/False/RetryBehavior
    with pytest.raises(InvalidRetryBehavior) as excinfo:
        busy_pool.enqueue_action("jobs.add", {"a": 1, "b": 2}, retry=retry)
    # Then the error names the allowed forms, and nothing is written
    assert "retry must be None, True, False or a RetryBehavior" in str(excinfo.value)
    assert snapshot(r) == before


def test_batch_rejects_bad_retry(r, busy_pool):
    # Given a pool with jobs
    before = snapshot(r)
    # When a batch is enqueued with a bad retry
    with pytest.raises(InvalidRetryBehavior):
        busy_pool.enqueue_action_batch("jobs.add", [{"a": 1, "b": 2}] * 3, retry="yes")
    # Then none of the batch is written
    assert snapshot(r) == before


def test_constructor_rejects_non_retry_behavior_default(r, redis_url):
    # When a pool is built with a default_retry_behavior that is not a RetryBehavior
    with pytest.raises(WorkpoolError) as excinfo:
        Workpool("pool", redis_url=redis_url, default_retry_behavior={"max_attempts": 3})
    # Then the error is a workpool bad-retry error (as for retry="yes"), and nothing is written
    assert isinstance(excinfo.value, InvalidRetryBehavior)
    assert "default_retry_behavior" in str(excinfo.value)
    assert r.dbsize() == 0


# -- schedules ---------------------------------------------------------------------------------

BAD_RUN_AFTER = [
    pytest.param(-1, "run_after", id="negative"),
    pytest.param(-0.001, "run_after", id="slightly-negative"),
    pytest.param(math.nan, "run_after", id="nan"),
    pytest.param(math.inf, "finite", id="inf"),
    pytest.param(-math.inf, "run_after", id="minus-inf"),
    pytest.param("5", "run_after", id="str"),
    pytest.param(True, "run_after", id="bool"),
    pytest.param(timedelta(seconds=-1), "run_after", id="negative-timedelta"),
]

BAD_RUN_AT = [
    pytest.param(datetime(2030, 1, 1), "timezone-aware", id="naive-datetime"),
    pytest.param("2030-01-01T00:00:00Z", "run_at", id="str"),
    pytest.param(math.nan, "run_at", id="nan"),
    pytest.param(math.inf, "run_at", id="inf"),
    pytest.param(-1, "run_at", id="negative"),
    pytest.param(True, "run_at", id="bool"),
]

ENQUEUE_KINDS = ["enqueue_action", "enqueue_mutation", "enqueue_query"]


@pytest.mark.parametrize("method", ENQUEUE_KINDS)
@pytest.mark.parametrize(("run_after", "fragment"), BAD_RUN_AFTER)
def test_enqueue_rejects_bad_run_after(r, busy_pool, method, run_after, fragment):
    # Given a pool with jobs
    before = snapshot(r)
    # When a job is enqueued with a bad run_after
    with pytest.raises(InvalidSchedule) as excinfo:
        getattr(busy_pool, method)("jobs.add", {"a": 1, "b": 2}, run_after=run_after)
    # Then InvalidSchedule (a ValueError) names the problem, and nothing is written
    assert isinstance(excinfo.value, ValueError)
    assert fragment in str(excinfo.value)
    assert snapshot(r) == before


@pytest.mark.parametrize("method", ENQUEUE_KINDS)
@pytest.mark.parametrize(("run_at", "fragment"), BAD_RUN_AT)
def test_enqueue_rejects_bad_run_at(r, busy_pool, method, run_at, fragment):
    # Given a pool with jobs
    before = snapshot(r)
    # When a job is enqueued with a bad run_at
    with pytest.raises(InvalidSchedule) as excinfo:
        getattr(busy_pool, method)("jobs.add", {"a": 1, "b": 2}, run_at=run_at)
    # Then InvalidSchedule names the problem, and nothing is written
    assert isinstance(excinfo.value, ValueError)
    assert fragment in str(excinfo.value)
    assert snapshot(r) == before


@pytest.mark.parametrize("method", ENQUEUE_KINDS)
def test_enqueue_rejects_run_after_and_run_at_together(r, busy_pool, method):
    # Given a pool with jobs
    before = snapshot(r)
    # When both run_after and run_at are given
    with pytest.raises(InvalidSchedule) as excinfo:
        getattr(busy_pool, method)(
            "jobs.add", {"a": 1, "b": 2}, run_after=5, run_at=datetime.now(UTC)
        )
    # Then the error says to give one, and nothing is written
    assert "not both" in str(excinfo.value)
    assert snapshot(r) == before


@pytest.mark.parametrize(
    "method", ["enqueue_action_batch", "enqueue_mutation_batch", "enqueue_query_batch"]
)
def test_batch_rejects_bad_schedule(r, busy_pool, method):
    # Given a pool with jobs
    before = snapshot(r)
    # When batches are enqueued with a bad run_after, then a naive run_at
    with pytest.raises(InvalidSchedule):
        getattr(busy_pool, method)("jobs.add", [{"a": 1, "b": 2}] * 3, run_after=-5)
    with pytest.raises(InvalidSchedule):
        getattr(busy_pool, method)("jobs.add", [{"a": 1, "b": 2}] * 3, run_at=datetime(2030, 1, 1))
    # Then none of either batch is written
    assert snapshot(r) == before


@pytest.mark.parametrize(
    "status_ttl",
    [
        pytest.param(-1, id="negative"),
        pytest.param(math.nan, id="nan"),
        pytest.param("60", id="str"),
        pytest.param(None, id="none"),
    ],
)
def test_constructor_rejects_bad_status_ttl(r, redis_url, status_ttl):
    # When a pool is built with a bad status_ttl
    with pytest.raises(InvalidSchedule) as excinfo:
        Workpool("pool", redis_url=redis_url, status_ttl=status_ttl)
    # Then InvalidSchedule names the option; nothing is written
    assert "status_ttl" in str(excinfo.value)
    assert r.dbsize() == 0


# -- pool construction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "limit",
    [
        pytest.param(0, id="zero"),
        pytest.param(-1, id="negative"),
        pytest.param(1.5, id="float"),
        pytest.param(True, id="bool"),
        pytest.param("100", id="str"),
    ],
)
def test_constructor_rejects_bad_max_payload_bytes(r, redis_url, limit):
    # When a pool is built with a bad max_payload_bytes
    with pytest.raises(ValueError, match="max_payload_bytes"):
        Workpool("pool", redis_url=redis_url, max_payload_bytes=limit)
    # Then nothing is written
    assert r.dbsize() == 0


def test_decoding_client_is_rejected(r, redis_server):
    # Given a Redis client that decodes replies to str
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, decode_responses=True)
    try:
        # When it is passed as the pool's client
        with pytest.raises(ValueError, match="decode") as excinfo:
            Workpool("pool", redis=client)
        # Then the error is a plain ValueError at construction, and nothing is written
        assert isinstance(excinfo.value, ValueError)
        assert r.dbsize() == 0
    finally:
        client.close()


def test_non_decoding_client_is_accepted(r, redis_server):
    # Given a binary-safe client
    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    try:
        # When it is passed as the pool's client and a job is enqueued
        pool = Workpool("pool", redis=client)
        pool.enqueue_action("jobs.add", {"a": 1, "b": 2})
        # Then the job lands through that client
        assert pool.stats().pending == 1
    finally:
        client.close()


def test_unreachable_redis_is_a_workpool_connection_error():
    # Given a pool pointed at a port where nothing listens, retrying for at most 0.3 s
    pool = Workpool("pool", redis_url=f"redis://127.0.0.1:{free_port()}/0", reconnect_timeout=0.3)
    try:
        # When a job is enqueued, or anything read
        for call in (
            lambda: pool.enqueue_action("jobs.add", {"a": 1, "b": 2}),
            lambda: pool.stats(),
            lambda: pool.status("x"),
        ):
            started = time.monotonic()
            with pytest.raises(WorkpoolConnectionError) as excinfo:
                call()
            # Then the driver error is translated (and is a builtin ConnectionError), after
            # retrying for about the reconnect timeout at most
            assert isinstance(excinfo.value, ConnectionError)
            assert "unreachable" in str(excinfo.value).lower()
            assert time.monotonic() - started < 5
    finally:
        pool.close()
