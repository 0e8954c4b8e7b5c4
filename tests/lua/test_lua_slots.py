"""Every script call touches one Redis Cluster slot, whatever characters the pool name holds."""

from __future__ import annotations

import pytest
import redis
from redis.crc import key_slot

from workpool.keys import PoolKeys
from workpool.scripts import SCRIPT_NAMES

ODD_NAMES = ["pool", "a:b", "é", "x.y", "日本語", "a.b:c-d_e", "*?[]", "emoji-🙂", "job:", "-"]


def _slot(key):
    return key_slot(key.encode("utf-8"))


def test_calls_cover_every_script(script_calls):
    # Given the scripts the loader knows
    # Then the slot tests below prepare a call of each one
    assert set(script_calls(PoolKeys.for_pool("pool"))) == set(SCRIPT_NAMES)


@pytest.mark.parametrize("name", ODD_NAMES)
def test_every_call_keys_hash_to_the_pool_slot(script_calls, name):
    # Given a pool whose name has odd characters
    keys = PoolKeys.for_pool(name)
    pool_slot = key_slot(name.encode("utf-8"))  # the hash tag is exactly the pool name
    for script, call in script_calls(keys).items():
        # When a script call is prepared
        # Then every KEYS entry hashes to the pool's slot
        assert call.keys, script
        assert {_slot(k) for k in call.keys} == {pool_slot}, script


@pytest.mark.parametrize("name", ODD_NAMES)
def test_keys_derived_inside_scripts_share_the_slot(script_calls, name):
    # Given a pool whose name has odd characters
    keys = PoolKeys.for_pool(name)
    pool_slot = key_slot(name.encode("utf-8"))
    # When scripts derive job and stats keys from the prefixes they are passed
    derived = [keys.job("some-id"), keys.job("a}b{c"), keys.stats_prefix + "172800000"]
    # Then those keys hash to the pool's slot too
    assert {_slot(k) for k in derived} == {pool_slot}
    for call in script_calls(keys).values():
        prefixes = [a for a in call.args if a in (keys.job_prefix, keys.stats_prefix)]
        assert all(_slot(p + "x") == pool_slot for p in prefixes)


def test_different_pools_are_different_tags():
    # Given two pools whose names differ only by odd characters
    # Then their keys do not collide
    assert PoolKeys.for_pool("a:b").stream != PoolKeys.for_pool("a.b").stream
    assert PoolKeys.for_pool("é").job_prefix != PoolKeys.for_pool("e").job_prefix


def test_cluster_node_refuses_keys_outside_its_slot(cluster_node):
    # Given the cluster node the lifecycle test relies on, serving one pool's slot
    keys = PoolKeys.for_pool("a:b")
    cluster_node.serve_only(_slot(keys.stream))
    client = cluster_node.client
    # When a script touches only that slot, it runs
    assert client.eval("return redis.call('INCR', KEYS[1])", 1, keys.config) == 1
    # Then one that declares keys of two slots, or touches another slot's key, is refused,
    # so the lifecycle test below would catch a script whose keys split
    with pytest.raises(redis.ResponseError, match="same slot"):
        client.eval("return 1", 2, keys.stream, "workpool:{other}:stream")
    with pytest.raises(redis.ResponseError, match="non local key"):
        client.eval("return redis.call('GET', 'workpool:pools')", 1, keys.stream)


@pytest.mark.parametrize("name", ["a:b", "é", "x.y"])
def test_whole_lifecycle_runs_on_a_cluster_node(cluster_node, make_lua_pool, name):
    # Given a pool with an odd name on a cluster node serving only that pool's slot
    pool = make_lua_pool(cluster_node.client, name)
    cluster_node.serve_only(key_slot(name.encode("utf-8")))
    # When every script runs through a job's life: enqueue, claim, complete with a callback,
    # the callback, a retry and a cancel, config and stats
    assert pool.enqueue("a", "b", on_complete="cb", max_attempts=2) == (0, "10")
    assert pool.enqueue("later", schedule="after", schedule_ms=60_000) == (0, "10")
    assert pool.update_config(5) == 10
    assert len(pool.claim(capacity=2).jobs) == 2
    assert pool.complete(("a", 1, "ok", b"\x01"), ("b", 1, "error", b"e")) == [
        "success",
        "retry",
    ]
    [cb] = pool.claim(capacity=1).callbacks
    assert pool.complete_callback((cb.work_id, cb.attempt, "")) == ["done"]
    assert pool.cancel("b", "later", "nope") == ["canceled", "canceled", "unknown"]
    stats = pool.stats()
    # Then no call was refused for leaving the slot, and the outcomes are the usual ones
    assert stats[4:7] == [2, 1, 0]  # executions, errors, failures
    assert pool.state("a") == "finished"
