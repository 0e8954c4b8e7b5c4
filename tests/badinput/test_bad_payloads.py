"""Bad job arguments and callback contexts: typed errors at enqueue, nothing half-written."""

from __future__ import annotations

from datetime import datetime

import jobs
import pytest
from helpers import snapshot

from workpool import InvalidArguments, PayloadNotSerializable, PayloadTooLarge
from workpool.codec import pack

SMALL_LIMIT = 100
ONE_MIB = 1024 * 1024
GOOD = {"a": 1, "b": 2}


@pytest.fixture
def pool(make_pool):
    """A pool with a small payload limit that already holds one job."""
    p = make_pool("pool", max_payload_bytes=SMALL_LIMIT)
    p.enqueue_action(jobs.add, GOOD)
    return p


# -- args --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param([1, 2], "got list", id="list"),
        pytest.param(("a", 1), "got tuple", id="tuple"),
        pytest.param("a=1", "got str", id="str"),
        pytest.param(5, "got int", id="int"),
        pytest.param([("a", 1), ("b", 2)], "got list", id="pairs"),
    ],
)
def test_args_not_a_mapping(r, pool, args, fragment):
    # Given a pool with a job
    before = snapshot(r)
    # When a job is enqueued with args that are not a mapping
    with pytest.raises(InvalidArguments) as excinfo:
        pool.enqueue_action(jobs.add, args)
    # Then InvalidArguments (a TypeError) says a mapping is needed, and nothing is written
    assert isinstance(excinfo.value, TypeError)
    assert "mapping" in str(excinfo.value)
    assert fragment in str(excinfo.value)
    assert snapshot(r) == before


@pytest.mark.parametrize(
    "args",
    [
        pytest.param({1: 2}, id="int-key"),
        pytest.param({b"a": 1}, id="bytes-key"),
        pytest.param({None: 1}, id="none-key"),
        pytest.param({"a": 1, ("b",): 2}, id="tuple-key-after-good"),
    ],
)
def test_args_with_non_str_keys(r, pool, args):
    # Given a pool with a job
    before = snapshot(r)
    # When a job is enqueued with a non-str argument name
    with pytest.raises(InvalidArguments) as excinfo:
        pool.enqueue_action(jobs.add, args)
    # Then the error names the bad key, and nothing is written
    bad_key = next(k for k in args if not isinstance(k, str))
    assert "keys must be str" in str(excinfo.value)
    assert repr(bad_key) in str(excinfo.value)
    assert snapshot(r) == before


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        pytest.param(object(), "object", id="object"),
        pytest.param({1, 2}, "set", id="set"),
        pytest.param(frozenset(), "frozenset", id="frozenset"),
        pytest.param(datetime(2030, 1, 1), "datetime", id="naive-datetime"),
        pytest.param(1j, "complex", id="complex"),
        pytest.param({"nested": [object()]}, "object", id="nested-object"),
    ],
)
def test_args_with_non_msgpack_values(r, pool, value, type_name):
    # Given a pool with a job
    before = snapshot(r)
    # When a job is enqueued with a value msgpack cannot encode
    with pytest.raises(PayloadNotSerializable) as excinfo:
        pool.enqueue_action(jobs.add, {"a": value, "b": 1})
    # Then PayloadNotSerializable (a TypeError) says args and the type, and nothing is written
    assert isinstance(excinfo.value, TypeError)
    assert "args is not msgpack-serializable" in str(excinfo.value)
    assert type_name in str(excinfo.value)
    assert snapshot(r) == before


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(2**64, id="int-too-big"),
        pytest.param(-(2**63) - 1, id="int-too-small"),
        pytest.param("\ud800", id="lone-surrogate"),
    ],
)
def test_args_with_unencodable_scalars(r, pool, value):
    # Given a pool with a job
    before = snapshot(r)
    # When a job is enqueued with a scalar msgpack refuses
    with pytest.raises(PayloadNotSerializable, match="args is not msgpack-serializable"):
        pool.enqueue_action(jobs.add, {"a": value, "b": 1})
    # Then nothing is written
    assert snapshot(r) == before


def test_args_over_the_pool_limit(r, pool):
    # Given a pool whose max_payload_bytes is 100, holding a job
    before = snapshot(r)
    # When a job is enqueued whose args encode to more than that
    with pytest.raises(PayloadTooLarge) as excinfo:
        pool.enqueue_action(jobs.add, {"a": "x" * 200, "b": 1})
    # Then PayloadTooLarge (a ValueError) gives the size and the limit, and nothing is written
    assert isinstance(excinfo.value, ValueError)
    size = len(pack({"a": "x" * 200, "b": 1}))
    assert f"args is {size} bytes" in str(excinfo.value)
    assert f"max_payload_bytes={SMALL_LIMIT}" in str(excinfo.value)
    assert snapshot(r) == before


def test_args_exactly_at_the_limit_are_accepted(r, pool):
    # Given args that encode to exactly max_payload_bytes, and one byte more
    filler = "x" * (SMALL_LIMIT - len(pack({"a": "", "b": 1})) - 1)
    at_limit = {"a": filler, "b": 1}
    over_limit = {"a": filler + "xx", "b": 1}
    assert len(pack(at_limit)) == SMALL_LIMIT
    assert len(pack(over_limit)) > SMALL_LIMIT
    # When both are enqueued
    pool.enqueue_action(jobs.add, at_limit)
    with pytest.raises(PayloadTooLarge):
        pool.enqueue_action(jobs.add, over_limit)
    # Then only the one at the limit landed
    assert pool.stats().pending == 2


def test_default_limit_is_one_mib(r, make_pool):
    # Given a pool with the default max_payload_bytes
    pool = make_pool("pool")
    assert pool.max_payload_bytes == ONE_MIB
    pool.enqueue_action(jobs.add, GOOD)
    before = snapshot(r)
    # When a job's args hold ~1.1 MB of bytes
    with pytest.raises(PayloadTooLarge) as excinfo:
        pool.enqueue_action(jobs.add, {"a": b"\0" * 1_100_000, "b": 1})
    # Then it is refused against the 1 MiB default, and nothing is written
    assert f"max_payload_bytes={ONE_MIB}" in str(excinfo.value)
    assert snapshot(r) == before
    # And args just under the default still go through
    pool.enqueue_action(jobs.add, {"a": b"\0" * 1_000_000, "b": 1})
    assert pool.stats().pending == 2


# -- batches -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        pytest.param({"a": object(), "b": 1}, PayloadNotSerializable, id="not-serializable"),
        pytest.param({"a": "x" * 500, "b": 1}, PayloadTooLarge, id="too-large"),
        pytest.param([1, 2], InvalidArguments, id="not-a-mapping"),
        pytest.param({1: 1}, InvalidArguments, id="non-str-key"),
    ],
)
@pytest.mark.parametrize(
    "method", ["enqueue_action_batch", "enqueue_mutation_batch", "enqueue_query_batch"]
)
def test_batch_with_one_bad_item_writes_none(r, pool, method, bad, error):
    # Given a pool with a job, and a batch of good args with one bad item in the middle
    before = snapshot(r)
    batch = [GOOD, GOOD, bad, GOOD]
    # When the batch is enqueued
    with pytest.raises(error):
        getattr(pool, method)(jobs.add, batch)
    # Then none of the good items were written either
    assert snapshot(r) == before
    assert pool.stats().pending == 1


def test_large_batch_with_last_item_bad_writes_none(r, make_pool):
    # Given a batch larger than one enqueue script call, whose very last item is bad
    pool = make_pool("pool")
    batch = [GOOD] * 4500 + [{"a": {1, 2}, "b": 1}]
    # When it is enqueued
    with pytest.raises(PayloadNotSerializable):
        pool.enqueue_action_batch(jobs.add, batch)
    # Then Redis holds nothing at all
    assert r.dbsize() == 0


# -- callback context --------------------------------------------------------------------------


def test_context_over_the_limit(r, pool):
    # Given a pool with a job and max_payload_bytes=100
    before = snapshot(r)
    # When a job is enqueued with a callback context that encodes to more than that
    with pytest.raises(PayloadTooLarge) as excinfo:
        pool.enqueue_action(jobs.add, GOOD, on_complete=jobs.on_done, context={"x": "y" * 200})
    # Then the error names the context, and nothing is written
    assert str(excinfo.value).startswith("context is ")
    assert f"max_payload_bytes={SMALL_LIMIT}" in str(excinfo.value)
    assert snapshot(r) == before


@pytest.mark.parametrize(
    "context",
    [
        pytest.param(object(), id="object"),
        pytest.param({"ids": {1, 2}}, id="set-inside"),
        pytest.param(datetime(2030, 1, 1), id="naive-datetime"),
    ],
)
def test_context_not_serializable(r, pool, context):
    # Given a pool with a job
    before = snapshot(r)
    # When a job is enqueued with a context msgpack cannot encode
    with pytest.raises(PayloadNotSerializable) as excinfo:
        pool.enqueue_mutation(jobs.add, GOOD, on_complete=jobs.on_done, context=context)
    # Then the error names the context, and nothing is written
    assert "context is not msgpack-serializable" in str(excinfo.value)
    assert snapshot(r) == before


def test_bad_context_in_a_batch_writes_none(r, pool):
    # Given a pool with a job
    before = snapshot(r)
    # When a batch of good args is enqueued with a bad context
    with pytest.raises(PayloadNotSerializable):
        pool.enqueue_query_batch(jobs.add, [GOOD] * 5, on_complete=jobs.on_done, context=object())
    # Then none of the batch is written
    assert snapshot(r) == before
