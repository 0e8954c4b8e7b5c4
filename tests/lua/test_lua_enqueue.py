"""enqueue.lua: codes 0 (ok), 1 (unknown function), 2 (duplicate id), and where jobs land."""

from __future__ import annotations

import pytest


def test_ok_writes_status_hash_and_stream_entry(pool):
    # Given an empty pool
    # When one job is enqueued to run now
    code = pool.enqueue("a", fn="send", kind="query", args=b"\x81\xa1x\x01", ttl_ms=5000)
    # Then it is ok, the job is pending with its fields, and one stream entry names it
    assert code == (0, "10")
    job = pool.job("a")
    assert job["state"] == b"pending"
    assert job["fn"] == b"send"
    assert job["kind"] == b"query"
    assert job["args"] == b"\x81\xa1x\x01"
    assert job["attempts"] == b"0"
    assert job["ttl_ms"] == b"5000"
    assert job["sid"].decode() == pool.stream_ids()[0]
    assert pool.stream_work_ids() == ["a"]
    assert pool.zset(pool.keys.delayed) == {}
    # no retry fields for a single attempt, no callback fields without on_complete
    assert not {"max_attempts", "initial_backoff_ms", "base", "on_complete", "context"} & set(job)


def test_enqueued_at_is_the_server_clock(pool):
    # Given the server's clock before and after
    before = pool.now_ms()
    # When a job is enqueued
    pool.enqueue("a")
    after = pool.now_ms()
    # Then enqueued_at lies between the two readings
    assert before <= int(pool.job("a")["enqueued_at"]) <= after


def test_batch_writes_every_job_in_order(pool):
    # When three jobs are enqueued in one call
    assert pool.enqueue("a", "b", "c") == (0, "10")
    # Then each has a status hash and the stream holds them in order
    assert pool.stream_work_ids() == ["a", "b", "c"]
    assert [pool.state(w) for w in "abc"] == ["pending"] * 3


def test_retry_fields_stored_when_more_than_one_attempt(pool):
    # When an action allowing 4 attempts is enqueued
    pool.enqueue("a", max_attempts=4, initial_backoff_ms=250, base=1.5)
    # Then its retry behaviour is stored for complete.lua to use
    job = pool.job("a")
    assert int(job["max_attempts"]) == 4
    assert float(job["initial_backoff_ms"]) == 250.0
    assert float(job["base"]) == 1.5


def test_on_complete_and_context_stored(pool):
    # When a job with a callback and a context is enqueued
    pool.enqueue("a", on_complete="done_cb", context=b"\x91\x01")
    # Then both are on the status hash
    job = pool.job("a")
    assert job["on_complete"] == b"done_cb"
    assert job["context"] == b"\x91\x01"


def test_context_without_callback_is_not_stored(pool):
    # When a context is passed without on_complete
    pool.enqueue("a", context=b"\x91\x01")
    # Then there is nothing to deliver it to, so it is not stored
    assert "context" not in pool.job("a")


def test_enqueue_leaves_one_wake_token(pool):
    # When jobs are enqueued twice, one ready and one delayed
    pool.enqueue("a")
    pool.enqueue("b", schedule="after", schedule_ms=60_000)
    # Then exactly one wake token waits for an idle worker
    assert pool.wake_tokens() == 1


def test_first_enqueue_stores_the_initial_cap(pool, client):
    # Given a pool with no config
    # When a job is enqueued with initial cap 4
    code = pool.enqueue("a", initial_cap=4)
    # Then the cap is stored and returned
    assert code == (0, "4")
    assert client.hget(pool.keys.config, "max_parallelism") == b"4"


def test_later_enqueue_never_overrides_the_stored_cap(pool, client):
    # Given a pool whose cap was set to 2 (by update_config, say)
    client.hset(pool.keys.config, "max_parallelism", 2)
    # When a producer built with another initial cap enqueues
    code = pool.enqueue("a", initial_cap=8)
    # Then the stored cap stays, and the producer is told what it is
    assert code == (0, "2")
    assert client.hget(pool.keys.config, "max_parallelism") == b"2"


def test_unknown_function_is_refused_when_workers_registered(pool, client):
    # Given workers that registered only "f"
    client.sadd(pool.keys.functions, "f")
    # When a job of another function is enqueued
    code = pool.enqueue("a", fn="g")
    # Then code 1 names it, and nothing is written
    assert code == (1, "g")
    assert pool.job("a") == {}
    assert client.exists(pool.keys.stream, pool.keys.config) == 0
    assert pool.wake_tokens() == 0


def test_unknown_on_complete_is_refused(pool, client):
    # Given workers that registered "f" only
    client.sadd(pool.keys.functions, "f")
    # When the job is known but its callback is not
    code = pool.enqueue("a", fn="f", on_complete="cb")
    # Then code 1 names the callback, and nothing is written
    assert code == (1, "cb")
    assert pool.job("a") == {}
    assert client.exists(pool.keys.stream, pool.keys.delayed) == 0


def test_known_function_and_callback_are_accepted(pool, client):
    # Given workers that registered both names
    client.sadd(pool.keys.functions, "f", "cb")
    # When a job naming both is enqueued
    # Then it is accepted
    assert pool.enqueue("a", fn="f", on_complete="cb") == (0, "10")
    assert pool.state("a") == "pending"


def test_functions_unchecked_before_any_worker_registered(pool):
    # Given no functions set at all (no worker has started yet)
    # When a job of any name is enqueued
    # Then it is accepted
    assert pool.enqueue("a", fn="anything", on_complete="cb") == (0, "10")


def test_functions_unchecked_when_check_disabled(pool, client):
    # Given workers that registered "f" only
    client.sadd(pool.keys.functions, "f")
    # When the check is turned off
    # Then an unregistered name is accepted
    assert pool.enqueue("a", fn="g", check_functions=False) == (0, "10")


def test_duplicate_id_writes_nothing(pool, client):
    # Given an existing job "b"
    pool.enqueue("b", fn="old")
    pool.clear_wake()
    stream_before = pool.stream_ids()
    # When a batch containing "b" again is enqueued
    code = pool.enqueue("a", "b", "c", fn="new", schedule="now")
    # Then code 2 names it, and none of the batch was written, nor "b" changed
    assert code == (2, "b")
    assert pool.job("a") == {}
    assert pool.job("c") == {}
    assert pool.job("b")["fn"] == b"old"
    assert pool.stream_ids() == stream_before
    assert pool.wake_tokens() == 0


def test_duplicate_id_of_delayed_batch_writes_nothing(pool, client):
    # Given an existing job "b"
    pool.enqueue("b")
    # When a delayed batch containing "b" is enqueued
    code = pool.enqueue("a", "b", schedule="after", schedule_ms=60_000)
    # Then nothing reaches the delayed set
    assert code == (2, "b")
    assert client.exists(pool.keys.delayed) == 0


def test_duplicate_id_in_new_pool_writes_no_config(pool, client):
    # Given a job whose pool config was since lost
    pool.enqueue("b")
    client.delete(pool.keys.config)
    # When a batch colliding with it is enqueued
    assert pool.enqueue("b", initial_cap=3) == (2, "b")
    # Then not even the config was written
    assert client.exists(pool.keys.config) == 0


def test_schedule_after_goes_to_delayed_set(pool):
    # When a job is enqueued to run after 60 s
    before = pool.now_ms()
    pool.enqueue("a", schedule="after", schedule_ms=60_000)
    after = pool.now_ms()
    # Then it is scheduled in the delayed set, due 60 s after enqueue on the server clock
    job = pool.job("a")
    assert job["state"] == b"scheduled"
    due = pool.zset(pool.keys.delayed)["a"]
    assert before + 60_000 <= due <= after + 60_000
    assert int(job["next_run_at"]) == due
    assert "sid" not in job
    assert pool.stream_ids() == []


def test_schedule_after_zero_is_ready_now(pool):
    # When a job is enqueued to run after 0 ms
    pool.enqueue("a", schedule="after", schedule_ms=0)
    # Then it is simply ready
    assert pool.state("a") == "pending"
    assert pool.stream_work_ids() == ["a"]


def test_schedule_at_future_goes_to_delayed_set_at_that_time(pool):
    # When a job is enqueued to run at an epoch time an hour ahead
    at = pool.now_ms() + 3_600_000
    pool.enqueue("a", schedule="at", schedule_ms=at)
    # Then it waits in the delayed set with exactly that due time
    assert pool.zset(pool.keys.delayed) == {"a": at}
    assert int(pool.job("a")["next_run_at"]) == at
    assert pool.state("a") == "scheduled"


@pytest.mark.parametrize("offset_ms", [-3_600_000, -1, 0])
def test_schedule_at_past_goes_straight_to_stream(pool, offset_ms):
    # When a job is enqueued to run at a time already passed (or exactly now)
    at = pool.now_ms() + offset_ms
    pool.enqueue("a", schedule="at", schedule_ms=at)
    # Then it is ready at once: pending in the stream, not in the delayed set
    assert pool.state("a") == "pending"
    assert pool.stream_work_ids() == ["a"]
    assert pool.zset(pool.keys.delayed) == {}
    assert "next_run_at" not in pool.job("a")


def test_schedule_at_epoch_zero_is_ready(pool):
    # When run_at is the epoch itself
    pool.enqueue("a", schedule="at", schedule_ms=0)
    # Then it is ready now
    assert pool.stream_work_ids() == ["a"]
