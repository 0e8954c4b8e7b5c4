"""options.py: schedules, TTLs, parallelism and argument packing, checked before any write."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta, timezone

import jobs
import pytest

from workpool import InvalidArguments, InvalidSchedule, State
from workpool.codec import unpack
from workpool.options import (
    NOW,
    Schedule,
    pack_args,
    parallelism_of,
    schedule_of,
    to_seconds,
    ttl_ms_of,
)


@pytest.mark.parametrize(
    ("run_after", "run_at", "expected"),
    [
        pytest.param(None, None, NOW, id="now"),
        pytest.param(0, None, Schedule("after", 0), id="after-zero"),
        pytest.param(5, None, Schedule("after", 5000), id="after-int"),
        pytest.param(0.25, None, Schedule("after", 250), id="after-float"),
        pytest.param(0.0004, None, Schedule("after", 0), id="after-sub-ms"),
        pytest.param(timedelta(minutes=2), None, Schedule("after", 120_000), id="after-timedelta"),
        pytest.param(None, 1_700_000_000, Schedule("at", 1_700_000_000_000), id="at-epoch-int"),
        pytest.param(None, 1_700_000_000.5, Schedule("at", 1_700_000_000_500), id="at-epoch-float"),
        pytest.param(None, 0, Schedule("at", 0), id="at-epoch-zero"),
        pytest.param(
            None,
            datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
            Schedule("at", 1_700_000_000_000),
            id="at-aware-utc",
        ),
        pytest.param(
            None,
            datetime(2023, 11, 15, 0, 13, 20, tzinfo=timezone(timedelta(hours=2))),
            Schedule("at", 1_700_000_000_000),
            id="at-aware-offset",
        ),
    ],
)
def test_schedule_of(run_after, run_at, expected):
    assert schedule_of(run_after, run_at) == expected


@pytest.mark.parametrize(
    ("status_ttl", "expected"),
    [
        pytest.param(math.inf, -1, id="inf-keeps-forever"),
        pytest.param(0, 0, id="zero"),
        pytest.param(60, 60_000, id="int"),
        pytest.param(1.5, 1500, id="float"),
        pytest.param(timedelta(hours=1), 3_600_000, id="timedelta"),
        pytest.param(timedelta.max, round(timedelta.max.total_seconds() * 1000), id="huge"),
    ],
)
def test_ttl_ms_of(status_ttl, expected):
    assert ttl_ms_of(status_ttl) == expected


@pytest.mark.parametrize(
    "value",
    [-1, -math.inf, math.nan, "1", None, True, timedelta(seconds=-1)],
)
def test_to_seconds_refuses_what_is_not_a_duration(value):
    # When a bad duration is converted
    with pytest.raises(InvalidSchedule) as excinfo:
        to_seconds(value, "lease")
    # Then the error names the option it was given for
    assert str(excinfo.value).startswith("lease must be")


@pytest.mark.parametrize("value", [0, 1, 10, 10_000])
def test_parallelism_of_accepts_ints(value):
    assert parallelism_of(value) == value


def test_pack_args_treats_none_as_no_arguments():
    assert unpack(pack_args(None, limit=100)) == {}


def test_pack_args_accepts_any_mapping():
    # Given a read-only mapping that is not a dict
    from types import MappingProxyType

    args = MappingProxyType({"a": 1, "b": [2]})
    # Then it is packed as the plain mapping a worker calls fn(**args) with
    assert unpack(pack_args(args, limit=100)) == {"a": 1, "b": [2]}


def test_pack_args_checks_keys_before_size():
    # Given args that are both too large and badly keyed
    with pytest.raises(InvalidArguments):
        pack_args({1: "x" * 1000}, limit=10)


def test_run_after_delays_on_the_redis_clock(make_pool):
    # Given a pool
    pool = make_pool("pool")
    # When one job is enqueued to run after 60 s, and one at a time already past
    before = time.time()
    later = pool.enqueue_action(jobs.add, {"a": 1, "b": 2}, run_after=60)
    past = pool.enqueue_action(jobs.add, {"a": 1, "b": 2}, run_at=datetime(2000, 1, 1, tzinfo=UTC))
    after = time.time()
    # Then the delayed one waits with a due time about 60 s away, and the past one is ready now
    status = pool.status(later)
    assert status.state is State.PENDING
    assert before + 59 <= status.next_run_at <= after + 61
    assert pool.status(past).next_run_at is None
    stats = pool.stats()
    assert (stats.pending, stats.scheduled) == (1, 1)
