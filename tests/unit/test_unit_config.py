"""Pool config lives in Redis: a constructor sets up only a new pool; update_config changes it."""

from __future__ import annotations

import jobs
import pytest

from workpool.keys import POOLS_KEY, PoolKeys

CONFIG = PoolKeys.for_pool("pool").config


def test_new_pool_gets_ten(r, make_pool):
    # Given a pool built without max_parallelism
    pool = make_pool("pool")
    # When it is first written to
    pool.enqueue_action(jobs.add, {"a": 1, "b": 2})
    # Then its stored cap is 10, and it is listed among the pools
    assert r.hget(CONFIG, "max_parallelism") == b"10"
    assert pool.stats().max_parallelism == 10
    assert r.smembers(POOLS_KEY) == {b"pool"}


def test_constructing_a_pool_writes_nothing(r, make_pool):
    # When a pool is only built
    make_pool("pool", max_parallelism=3)
    # Then Redis is untouched until it is used
    assert r.dbsize() == 0


def test_constructor_cap_initialises_a_pool_without_config(r, make_pool):
    # Given a pool built with max_parallelism=3
    pool = make_pool("pool", max_parallelism=3)
    # When it is first written to
    pool.enqueue_action(jobs.add, {"a": 1, "b": 2})
    # Then 3 is the stored cap
    assert r.hget(CONFIG, "max_parallelism") == b"3"
    assert pool.stats().max_parallelism == 3


def test_later_constructor_does_not_override(r, make_pool):
    # Given a pool initialised with cap 3
    make_pool("pool", max_parallelism=3).enqueue_action(jobs.add, {"a": 1, "b": 2})
    # When another handle is built with cap 7 and used
    other = make_pool("pool", max_parallelism=7)
    other.enqueue_action(jobs.add, {"a": 1, "b": 2})
    # Then the stored cap is still 3, for both handles
    assert r.hget(CONFIG, "max_parallelism") == b"3"
    assert other.stats().max_parallelism == 3


def test_constructor_without_cap_keeps_the_stored_one(r, make_pool):
    # Given a pool whose cap was set to 4
    make_pool("pool").update_config(max_parallelism=4)
    # When a handle without max_parallelism is used
    make_pool("pool").enqueue_action(jobs.add, {"a": 1, "b": 2})
    # Then the cap stays 4
    assert r.hget(CONFIG, "max_parallelism") == b"4"


def test_update_config_overrides_and_returns_the_previous_cap(make_pool):
    # Given a pool initialised with cap 3
    pool = make_pool("pool", max_parallelism=3)
    pool.enqueue_action(jobs.add, {"a": 1, "b": 2})
    # When the cap is updated twice
    first = pool.update_config(max_parallelism=7)
    second = pool.update_config(max_parallelism=0)
    # Then each call returns the cap before it, and the last one holds
    assert (first, second) == (3, 7)
    assert pool.stats().max_parallelism == 0


def test_update_config_on_a_brand_new_pool_returns_the_initial_cap(make_pool):
    # Given pools never written to, one with a constructor cap and one without
    # When their caps are updated
    # Then the previous cap reported is the one the pool would have started with
    assert make_pool("fresh", max_parallelism=2).update_config(max_parallelism=5) == 2
    assert make_pool("plain").update_config(max_parallelism=5) == 10


def test_update_config_is_seen_by_every_handle(make_pool):
    # Given two handles on the same pool
    a = make_pool("pool", max_parallelism=3)
    b = make_pool("pool", max_parallelism=9)
    a.enqueue_action(jobs.add, {"a": 1, "b": 2})
    # When one updates the cap
    b.update_config(max_parallelism=6)
    # Then the other sees it
    assert a.stats().max_parallelism == 6


@pytest.mark.parametrize("cap", [1, 10_000])
def test_cap_values_round_trip(make_pool, cap):
    pool = make_pool("pool")
    pool.update_config(max_parallelism=cap)
    assert pool.stats().max_parallelism == cap
    assert pool.update_config(max_parallelism=2) == cap
