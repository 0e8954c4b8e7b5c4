"""keys.py: every key of a pool shares its hash tag; valid names pass through unchanged."""

from __future__ import annotations

import dataclasses

import pytest
from redis.crc import key_slot

from workpool.keys import POOLS_KEY, PoolKeys, validate_pool_name

GOOD_NAMES = ["email", "a:b", "é", "x.y-z_1", "Ünïcødé-名前", "a" * 200, "0", "a/b|c"]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_valid_names_are_returned_unchanged(name):
    # When a valid name is validated
    # Then the very same string comes back: names are never rewritten
    assert validate_pool_name(name) is name


def all_keys(keys: PoolKeys) -> list[str]:
    """Every key string of a pool, including a job hash and a stats bucket."""
    fields = [f.name for f in dataclasses.fields(keys) if f.name not in ("pool",)]
    return [getattr(keys, f) for f in fields] + [keys.job("abc123"), keys.stats_prefix + "17"]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_every_key_carries_the_pool_hash_tag(name):
    # Given the keys of a pool
    keys = PoolKeys.for_pool(name)
    # Then each starts with workpool:{<name>}: and so hashes to one cluster slot
    assert keys.pool == name
    for key in all_keys(keys):
        assert key.startswith(f"workpool:{{{name}}}:"), key
    slots = {key_slot(k.encode()) for k in all_keys(keys)}
    assert slots == {key_slot(name.encode())}


def test_keys_are_distinct_within_a_pool():
    # Given the keys of a pool
    keys = all_keys(PoolKeys.for_pool("email"))
    # Then no two roles share a key
    assert len(set(keys)) == len(keys)


def test_key_names_of_one_pool():
    # Given the pool "email"
    keys = PoolKeys.for_pool("email")
    # Then its keys are the documented ones
    assert keys.stream == "workpool:{email}:stream"
    assert keys.delayed == "workpool:{email}:delayed"
    assert keys.running == "workpool:{email}:running"
    assert keys.config == "workpool:{email}:config"
    assert keys.job("w1") == "workpool:{email}:job:w1"


def test_pools_do_not_share_keys():
    # Given two pools whose names are prefixes of each other
    a = set(all_keys(PoolKeys.for_pool("a")))
    ab = set(all_keys(PoolKeys.for_pool("a:b")))
    # Then none of their keys coincide
    assert not a & ab


def test_the_global_pools_key_is_outside_any_hash_tag():
    # The discovery set is global, so it must not pretend to belong to one pool's slot
    assert POOLS_KEY == "workpool:pools"
    assert "{" not in POOLS_KEY
