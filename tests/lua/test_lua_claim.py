"""claim.lua: promotion, the pool cap, callbacks first, stray entries, NOGROUP, wake, due times."""

from __future__ import annotations

import pytest
import redis
from helpers import settle, wait_until

from workpool.keys import CONSUMER_GROUP

# -- taking jobs ----------------------------------------------------------------------------------


def test_claim_marks_job_running_under_a_lease(pool):
    # Given one ready job
    pool.enqueue("a", fn="send", kind="mutation", args=b"\x81\xa1k\x02")
    # When a worker claims it
    before = pool.now_ms()
    reply = pool.claim(worker="w7", lease_ms=5000)
    after = pool.now_ms()
    # Then it gets the job's function, kind, args and attempt 1
    assert [(j.work_id, j.function, j.kind, j.args, j.attempt) for j in reply.jobs] == [
        ("a", "send", "mutation", b"\x81\xa1k\x02", 1)
    ]
    assert before <= reply.now_ms <= after
    # And the job is running, owned by the worker, in the running set until its lease deadline
    job = pool.job("a")
    assert job["state"] == b"running"
    assert job["worker"] == b"w7"
    assert job["attempts"] == b"1"
    assert int(job["started_at"]) == reply.now_ms
    assert "sid" not in job
    assert pool.zset(pool.keys.running) == {"a": reply.now_ms + 5000}
    # And its stream entry is gone
    assert pool.client.xlen(pool.keys.stream) == 0
    assert reply.skipped == []


def test_claim_takes_jobs_in_stream_order(pool):
    # Given three ready jobs
    pool.enqueue("a", "b", "c")
    # When claimed one at a time
    taken = [pool.claim(capacity=1).jobs[0].work_id for _ in range(3)]
    # Then they come out first in, first out
    assert taken == ["a", "b", "c"]


def test_claim_on_empty_pool_returns_nothing(pool):
    # Given nothing enqueued
    # When a worker claims
    reply = pool.claim()
    # Then it gets nothing, and no due times
    assert (reply.jobs, reply.callbacks, reply.skipped) == ([], [], [])
    assert reply.next_delayed_ms is None
    assert reply.next_callback_ms is None


def test_claim_respects_worker_capacity(pool):
    # Given five ready jobs and a high cap
    pool.enqueue("a", "b", "c", "d", "e")
    # When a worker with room for two claims
    reply = pool.claim(capacity=2)
    # Then it takes two and leaves the rest
    assert [j.work_id for j in reply.jobs] == ["a", "b"]
    assert pool.stream_work_ids() == ["c", "d", "e"]


def test_claim_respects_cap_from_config_hash(pool, client):
    # Given a pool whose stored cap is 2 and four ready jobs
    client.hset(pool.keys.config, "max_parallelism", 2)
    pool.enqueue("a", "b", "c", "d")
    # When two workers each ask for three
    first = pool.claim(worker="w1", capacity=3, default_cap=100)
    second = pool.claim(worker="w2", capacity=3, default_cap=100)
    # Then only two run in all, across both workers
    assert len(first.jobs) == 2
    assert second.jobs == []
    assert client.zcard(pool.keys.running) == 2


def test_claim_uses_default_cap_when_config_missing(pool, client):
    # Given five ready jobs and a config hash that is missing (lost, or deleted by hand)
    pool.enqueue("a", "b", "c", "d", "e")
    client.delete(pool.keys.config)
    # When a worker asks for ten with a default cap of three
    reply = pool.claim(capacity=10, default_cap=3)
    # Then the default cap applies
    assert len(reply.jobs) == 3
    assert client.exists(pool.keys.config) == 0


def test_claim_counts_running_jobs_against_the_cap(pool, client):
    # Given a cap of 3 with two jobs already running
    client.hset(pool.keys.config, "max_parallelism", 3)
    pool.enqueue("a", "b", "c", "d")
    assert len(pool.claim(worker="w1", capacity=2).jobs) == 2
    # When another worker asks for more
    reply = pool.claim(worker="w2", capacity=5)
    # Then it gets only the one free slot
    assert [j.work_id for j in reply.jobs] == ["c"]


def test_cap_zero_pauses_the_pool(pool, client):
    # Given a paused pool (cap 0 stored, which must not fall back to the default)
    client.hset(pool.keys.config, "max_parallelism", 0)
    pool.enqueue("a")
    # When a worker claims
    reply = pool.claim(capacity=5, default_cap=10)
    # Then nothing starts
    assert reply.jobs == []
    assert pool.state("a") == "pending"


def test_cap_below_running_takes_nothing(pool, client):
    # Given three running jobs and then the cap lowered to one
    pool.enqueue("a", "b", "c", "d")
    pool.claim(capacity=3)
    client.hset(pool.keys.config, "max_parallelism", 1)
    # When a worker claims
    reply = pool.claim(capacity=5)
    # Then nothing more starts
    assert reply.jobs == []
    assert pool.stream_work_ids() == ["d"]


# -- promotion ------------------------------------------------------------------------------------


def test_claim_promotes_due_delayed_jobs(pool):
    # Given a delayed job whose due time has come
    pool.enqueue("a", schedule="after", schedule_ms=60_000)
    pool.make_due("a")
    # When a worker claims
    reply = pool.claim()
    # Then the job is promoted and taken in the same call
    assert [j.work_id for j in reply.jobs] == ["a"]
    assert pool.zset(pool.keys.delayed) == {}
    assert "next_run_at" not in pool.job("a")


def test_claim_does_not_promote_jobs_not_yet_due(pool):
    # Given a job due in a minute
    pool.enqueue("a", schedule="after", schedule_ms=60_000)
    due = pool.zset(pool.keys.delayed)["a"]
    # When a worker claims
    reply = pool.claim()
    # Then nothing is taken, and the reply says when the job falls due
    assert reply.jobs == []
    assert pool.state("a") == "scheduled"
    assert reply.next_delayed_ms == due


def test_delayed_job_becomes_claimable_by_the_server_clock(pool):
    # Given a job due 50 ms from now
    pool.enqueue("a", schedule="after", schedule_ms=50)
    # When a worker claims until it gets it
    reply = wait_until(lambda: pool.claim().jobs, timeout_s=5, message="job promoted")
    # Then it is the delayed job
    assert reply[0].work_id == "a"


def test_capacity_zero_only_promotes(pool, client):
    # Given a due delayed job and a due callback
    pool.enqueue("a", schedule="after", schedule_ms=60_000)
    pool.make_due("a")
    pool.start("cbjob", on_complete="cb")
    pool.complete(("cbjob", 1, "ok"))
    pool.clear_wake()
    # When a worker with no capacity claims
    reply = pool.claim(capacity=0)
    # Then the job moved to the stream but nothing was taken, not even the callback
    assert reply.jobs == []
    assert reply.callbacks == []
    assert pool.state("a") == "pending"
    assert pool.stream_work_ids() == ["a"]
    assert pool.job("cbjob").get("callback_attempts") is None
    # And a wake token tells another worker there is work it can take
    assert pool.wake_tokens() == 1


def test_promotion_is_bounded_by_promote_limit_oldest_first(pool, client):
    # Given three delayed jobs, all due, with different due times
    pool.enqueue("a", "b", "c", schedule="after", schedule_ms=60_000)
    client.zadd(pool.keys.delayed, {"a": 30, "b": 10, "c": 20})
    # When a worker with no capacity claims with promote_limit 2
    reply = pool.claim(capacity=0, promote_limit=2)
    # Then the two due first are promoted in due order; the third waits, and is due already
    assert pool.stream_work_ids() == ["b", "c"]
    assert pool.zset(pool.keys.delayed) == {"a": 30}
    assert reply.next_delayed_ms == 30


def test_promotion_drops_delayed_entries_of_jobs_not_scheduled(pool, client):
    # Given delayed entries for a running job and for a job with no status hash
    pool.start("run")
    client.zadd(pool.keys.delayed, {"run": 0, "ghost": 0})
    # When a worker claims
    reply = pool.claim()
    # Then both entries are dropped and nothing is started twice
    assert reply.jobs == []
    assert pool.zset(pool.keys.delayed) == {}
    assert pool.stream_ids() == []
    assert pool.state("run") == "running"
    assert pool.job("ghost") == {}


# -- callbacks ------------------------------------------------------------------------------------


def _finished_with_callback(pool, *work_ids, context=b"\x91\x07", status="ok", payload=b"\x05"):
    """Run jobs with an on_complete callback to their end, so their callbacks are due."""
    pool.start(*work_ids, on_complete="cb", context=context, max_attempts=1)
    codes = pool.complete(*[(w, 1, status, payload) for w in work_ids])
    assert set(codes) <= {"success", "failed"}


def test_claim_leases_due_callback(pool):
    # Given a job that succeeded and has an on_complete callback
    _finished_with_callback(pool, "a")
    # When a worker claims
    reply = pool.claim(worker="w2", lease_ms=4000)
    # Then it gets the callback with the job's context, result and return value
    [cb] = reply.callbacks
    assert (cb.work_id, cb.function, cb.context, cb.result, cb.return_value, cb.error) == (
        "a",
        "cb",
        b"\x91\x07",
        "success",
        b"\x05",
        "",
    )
    assert cb.attempt == 1
    # And the callback is leased to the worker until its deadline
    job = pool.job("a")
    assert job["callback_worker"] == b"w2"
    assert job["callback_attempts"] == b"1"
    assert pool.zset(pool.keys.callbacks) == {"a": reply.now_ms + 4000}
    assert reply.next_callback_ms == reply.now_ms + 4000


def test_callback_of_failed_job_carries_error(pool):
    # Given a job that failed, with a callback and no context
    _finished_with_callback(pool, "a", context=b"", status="error", payload=b"boom")
    # When a worker claims
    [cb] = pool.claim().callbacks
    # Then the callback sees the failure
    assert (cb.result, cb.error, cb.return_value, cb.context) == ("failed", "boom", b"", b"")


def test_callbacks_go_before_jobs_and_use_capacity(pool):
    # Given two due callbacks and three ready jobs
    _finished_with_callback(pool, "done", "done2")
    pool.enqueue("a", "b", "c")
    # When a worker with room for one claims
    one = pool.claim(capacity=1)
    # Then it gets a callback, not a job
    assert len(one.callbacks) == 1
    assert one.jobs == []
    # And with room for two, the other callback and one job
    two = pool.claim(capacity=2)
    assert {c.work_id for c in one.callbacks + two.callbacks} == {"done", "done2"}
    assert [j.work_id for j in two.jobs] == ["a"]


def test_callbacks_take_no_pool_slot(pool, client):
    # Given a pool with cap 1 whose one slot is busy, a due callback and a waiting job
    pool.start("busy")
    _finished_with_callback(pool, "done")
    client.hset(pool.keys.config, "max_parallelism", 1)
    pool.enqueue("waiting")
    # When a worker claims
    reply = pool.claim(capacity=5)
    # Then the callback still runs
    assert [c.work_id for c in reply.callbacks] == ["done"]
    assert reply.jobs == []
    assert pool.state("waiting") == "pending"


def test_leased_callback_is_not_handed_out_twice(pool):
    # Given a callback leased to one worker
    _finished_with_callback(pool, "a")
    assert len(pool.claim(worker="w1").callbacks) == 1
    # When another worker claims before the lease ends
    reply = pool.claim(worker="w2")
    # Then it gets nothing
    assert reply.callbacks == []


def test_expired_callback_lease_is_leased_again(pool):
    # Given a callback whose lease has expired
    _finished_with_callback(pool, "a")
    pool.claim(worker="w1")
    pool.make_due("a", pool.keys.callbacks)
    # When another worker claims, once the server has been up for a lease
    reply = pool.claim(worker="w2", lease_ms=settle(pool.client))
    # Then it gets the callback on its second attempt
    assert [(c.work_id, c.attempt) for c in reply.callbacks] == [("a", 2)]
    assert pool.job("a")["callback_worker"] == b"w2"


def test_callback_with_missing_status_hash_is_dropped(pool, client):
    # Given a callbacks entry whose job hash is gone
    client.zadd(pool.keys.callbacks, {"ghost": 0})
    # When a worker claims
    reply = pool.claim()
    # Then nothing is handed out and the entry is removed
    assert reply.callbacks == []
    assert client.exists(pool.keys.callbacks) == 0
    assert reply.next_callback_ms is None


def test_callbacks_beyond_capacity_leave_a_wake_token(pool):
    # Given two due callbacks
    _finished_with_callback(pool, "a", "b")
    pool.clear_wake()
    # When a worker with room for one claims
    reply = pool.claim(capacity=1)
    # Then it takes one and wakes another worker for the other
    assert len(reply.callbacks) == 1
    assert pool.wake_tokens() == 1


# -- stray stream entries -------------------------------------------------------------------------


def test_stray_entries_are_skipped_removed_and_reported(pool, client):
    # Given stream entries with no pending job behind them: no id field, an id with no status
    # hash, and ids of a running and a finished job
    pool.start("run")
    pool.start("fin")
    pool.complete(("fin", 1, "ok"))
    no_id = client.xadd(pool.keys.stream, {"other": "x"}).decode()
    ghost = client.xadd(pool.keys.stream, {"id": "ghost"}).decode()
    running = client.xadd(pool.keys.stream, {"id": "run"}).decode()
    finished = client.xadd(pool.keys.stream, {"id": "fin"}).decode()
    # When a worker claims
    reply = pool.claim()
    # Then none is taken; all are reported and removed from the stream
    assert reply.jobs == []
    assert reply.skipped == [(no_id, ""), (ghost, "ghost"), (running, "run"), (finished, "fin")]
    assert client.xlen(pool.keys.stream) == 0
    assert pool.state("run") == "running"
    assert pool.state("fin") == "finished"


def test_scheduled_job_entry_is_skipped(pool, client):
    # Given a stream entry naming a job that is waiting in the delayed set
    pool.enqueue("later", schedule="after", schedule_ms=60_000)
    sid = client.xadd(pool.keys.stream, {"id": "later"}).decode()
    # When a worker claims
    reply = pool.claim()
    # Then the entry is skipped and the job keeps waiting
    assert reply.skipped == [(sid, "later")]
    assert pool.state("later") == "scheduled"


def test_skipped_entries_do_not_use_up_capacity(pool, client):
    # Given two stray entries ahead of two real jobs
    client.xadd(pool.keys.stream, {"id": "ghost1"})
    client.xadd(pool.keys.stream, {"id": "ghost2"})
    pool.enqueue("a", "b")
    # When a worker with room for two claims
    reply = pool.claim(capacity=2)
    # Then it reads past the strays and takes both jobs in the same call
    assert [j.work_id for j in reply.jobs] == ["a", "b"]
    assert [w for _, w in reply.skipped] == ["ghost1", "ghost2"]
    assert client.xlen(pool.keys.stream) == 0


def test_second_entry_of_a_taken_job_is_skipped(pool, client):
    # Given a pending job with a duplicate stream entry behind its own
    pool.enqueue("a")
    dup = client.xadd(pool.keys.stream, {"id": "a"}).decode()
    # When a worker claims
    reply = pool.claim()
    # Then the job starts once and the duplicate is skipped
    assert [j.work_id for j in reply.jobs] == ["a"]
    assert reply.skipped == [(dup, "a")]


# -- consumer group -------------------------------------------------------------------------------


def test_first_claim_creates_the_consumer_group(pool, client):
    # Given jobs enqueued before any worker ever claimed (no group yet)
    pool.enqueue("a")
    assert client.xinfo_groups(pool.keys.stream) == []
    # When a worker claims
    reply = pool.claim()
    # Then the group is created at the stream's start and the job is taken
    assert [j.work_id for j in reply.jobs] == ["a"]
    assert [g["name"] for g in client.xinfo_groups(pool.keys.stream)] == [CONSUMER_GROUP.encode()]


def test_claim_on_missing_stream_creates_it_and_the_group(pool, client):
    # Given no stream key at all
    # When a worker claims
    reply = pool.claim()
    # Then it gets nothing, but the stream and group exist for the next call
    assert reply.jobs == []
    assert len(client.xinfo_groups(pool.keys.stream)) == 1


def test_claim_recovers_when_group_is_destroyed(pool, client):
    # Given a group that existed, then was destroyed, with jobs waiting
    pool.enqueue("a")
    pool.claim(capacity=1)
    pool.enqueue("b", "c")
    client.xgroup_destroy(pool.keys.stream, CONSUMER_GROUP)
    # When a worker claims
    reply = pool.claim()
    # Then the group is recreated and the waiting jobs are taken
    assert [j.work_id for j in reply.jobs] == ["b", "c"]


def test_claim_recovers_when_stream_key_is_lost(pool, client):
    # Given a stream that was deleted (taking its group) and then recreated by a new enqueue
    pool.enqueue("a")
    pool.claim()
    client.delete(pool.keys.stream)
    pool.enqueue("b")
    # When a worker claims
    reply = pool.claim()
    # Then the new job is taken
    assert [j.work_id for j in reply.jobs] == ["b"]


def test_claim_surfaces_other_stream_errors(pool, client):
    # Given a stream key of the wrong type
    client.set(pool.keys.stream, "not a stream")
    # When a worker claims
    # Then the error reaches the caller instead of being mistaken for a missing group
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        pool.claim()


# -- wake token -----------------------------------------------------------------------------------


def test_no_wake_token_when_everything_was_taken(pool):
    # Given two ready jobs and no wake token
    pool.enqueue("a", "b")
    pool.clear_wake()
    # When one worker takes both
    pool.claim(capacity=5)
    # Then no other worker is woken
    assert pool.wake_tokens() == 0


def test_wake_token_left_when_work_remains_and_slots_are_free(pool):
    # Given three ready jobs and no wake token
    pool.enqueue("a", "b", "c")
    pool.clear_wake()
    # When a worker with room for one claims
    pool.claim(capacity=1)
    # Then one token is left for another worker
    assert pool.wake_tokens() == 1


def test_no_wake_token_when_cap_is_full(pool, client):
    # Given a cap of 1 and two ready jobs
    client.hset(pool.keys.config, "max_parallelism", 1)
    pool.enqueue("a", "b")
    pool.clear_wake()
    # When a worker takes the one slot
    pool.claim(capacity=5)
    # Then no one is woken: nobody could start the other job
    assert pool.wake_tokens() == 0


def test_wake_token_is_never_doubled(pool):
    # Given a token already waiting and work remaining
    pool.enqueue("a", "b", "c")
    assert pool.wake_tokens() == 1
    # When a worker claims part of the work
    pool.claim(capacity=1)
    # Then there is still exactly one token
    assert pool.wake_tokens() == 1


# -- due times ------------------------------------------------------------------------------------


def test_next_due_times_are_the_earliest_scores(pool, client):
    # Given two delayed jobs and a finished job whose callback is due
    pool.enqueue("late", schedule="after", schedule_ms=120_000)
    pool.enqueue("soon", schedule="after", schedule_ms=60_000)
    _finished_with_callback(pool, "done")
    callback_due = pool.zset(pool.keys.callbacks)["done"]
    # When a worker with no capacity claims
    reply = pool.claim(capacity=0)
    # Then it learns the earliest delayed due time and the callback's due time
    assert reply.next_delayed_ms == pool.zset(pool.keys.delayed)["soon"]
    assert reply.next_callback_ms == callback_due
    assert reply.next_callback_ms <= reply.now_ms
