"""Foreign and broken data: claim moves stream entries with no pending job to the dead stream,
and a job key of the wrong type or a deleted status hash never makes a script raise."""

from __future__ import annotations

import pytest
from helpers import settle, snapshot


def _dead(pool):
    """The dead stream's entries: [(id, {field: value})], decoded."""
    return [
        (sid.decode(), {k.decode(): v.decode() for k, v in fields.items()})
        for sid, fields in pool.client.xrange(pool.keys.dead)
    ]


def _poison_wrong_type(pool, work_id):
    """Overwrite a job's status hash with a string."""
    pool.client.delete(pool.keys.job(work_id))
    pool.client.set(pool.keys.job(work_id), "x")


# -- the dead stream ------------------------------------------------------------------------------


def test_entry_without_work_id_is_moved_to_the_dead_stream(pool, client):
    # Given a foreign entry with no id field ahead of a valid job
    sid = client.xadd(pool.keys.stream, {"other": "x", "n": "1"}).decode()
    pool.enqueue("a")
    # When a worker with room for one claims
    reply = pool.claim(capacity=1)
    # Then the valid job behind it is handed out
    assert [j.work_id for j in reply.jobs] == ["a"]
    assert reply.skipped == [(sid, "")]
    # And the foreign entry is moved aside with its reason and its original fields
    [(_, fields)] = _dead(pool)
    assert fields == {"reason": "no work id", "stream_id": sid, "other": "x", "n": "1"}
    # And it is gone from the stream
    assert client.xlen(pool.keys.stream) == 0


def test_entry_naming_no_job_is_moved_to_the_dead_stream(pool, client):
    # Given an entry whose id names no status hash, ahead of a valid job
    sid = client.xadd(pool.keys.stream, {"id": "ghost", "extra": "y"}).decode()
    pool.enqueue("a")
    # When a worker claims
    reply = pool.claim(capacity=1)
    # Then the valid job is handed out and the entry moved aside as having no job hash
    assert [j.work_id for j in reply.jobs] == ["a"]
    assert reply.skipped == [(sid, "ghost")]
    assert [f for _, f in _dead(pool)] == [
        {"reason": "no job hash", "stream_id": sid, "id": "ghost", "extra": "y"}
    ]
    assert client.xlen(pool.keys.stream) == 0
    assert pool.job("ghost") == {}


def test_entry_of_a_finished_job_is_moved_to_the_dead_stream(pool, client):
    # Given an entry naming a job that already finished, ahead of a valid job
    pool.start("done")
    pool.complete(("done", 1, "ok"))
    sid = client.xadd(pool.keys.stream, {"id": "done"}).decode()
    pool.enqueue("a")
    # When a worker claims
    reply = pool.claim(capacity=1)
    # Then the valid job is handed out and the entry moved aside, naming the job's state
    assert [j.work_id for j in reply.jobs] == ["a"]
    assert reply.skipped == [(sid, "done")]
    assert [f for _, f in _dead(pool)] == [
        {"reason": "job finished", "stream_id": sid, "id": "done"}
    ]
    # And the finished job is untouched
    assert pool.job("done")["result"] == b"success"


def test_several_poison_entries_are_moved_in_stream_order(pool, client):
    # Given three different poison entries between two valid jobs
    pool.start("run")
    no_id = client.xadd(pool.keys.stream, {"other": "x"}).decode()
    pool.enqueue("a")
    ghost = client.xadd(pool.keys.stream, {"id": "ghost"}).decode()
    running = client.xadd(pool.keys.stream, {"id": "run"}).decode()
    pool.enqueue("b")
    # When a worker with room for two claims
    reply = pool.claim(capacity=2)
    # Then both valid jobs are handed out in the same call
    assert [j.work_id for j in reply.jobs] == ["a", "b"]
    # And the dead stream holds the three entries in order, each with its reason
    assert [(f["stream_id"], f["reason"]) for _, f in _dead(pool)] == [
        (no_id, "no work id"),
        (ghost, "no job hash"),
        (running, "job running"),
    ]
    assert client.xlen(pool.keys.stream) == 0
    assert pool.state("run") == "running"


def test_valid_entries_never_reach_the_dead_stream(pool, client):
    # Given only valid jobs
    pool.enqueue("a", "b")
    # When a worker claims them
    pool.claim()
    # Then the dead stream is not even created
    assert client.exists(pool.keys.dead) == 0


def test_poison_entries_beyond_the_last_job_are_moved_too(pool, client):
    # Given a valid job followed by a poison entry, and a worker with room for two
    pool.enqueue("a")
    sid = client.xadd(pool.keys.stream, {"id": "ghost"}).decode()
    # When it claims
    reply = pool.claim(capacity=2)
    # Then it takes the job and moves the poison entry aside
    assert [j.work_id for j in reply.jobs] == ["a"]
    assert [f["stream_id"] for _, f in _dead(pool)] == [sid]
    assert client.xlen(pool.keys.stream) == 0


# -- job key of the wrong type --------------------------------------------------------------------


def test_claim_moves_aside_entry_whose_job_key_has_the_wrong_type(pool, client):
    # Given two enqueued jobs, the first of whose status hash was overwritten by a string
    pool.enqueue("a", "b")
    sid = pool.stream_ids()[0]
    _poison_wrong_type(pool, "a")
    # When a worker claims
    reply = pool.claim(capacity=1)
    # Then claim does not raise: the entry is moved aside and the next job starts
    assert [j.work_id for j in reply.jobs] == ["b"]
    assert reply.skipped == [(sid, "a")]
    assert [f for _, f in _dead(pool)] == [
        {"reason": "job key of wrong type", "stream_id": sid, "id": "a"}
    ]
    # And the foreign key is left as it was
    assert client.get(pool.keys.job("a")) == b"x"


def test_complete_of_job_whose_key_has_the_wrong_type_is_stale_and_frees_the_slot(pool, client):
    # Given a running job whose status hash was overwritten by a string
    pool.start("a")
    _poison_wrong_type(pool, "a")
    # When its worker completes it
    codes = pool.complete(("a", 1, "ok"))
    # Then complete does not raise: the outcome is stale and the slot is freed
    assert codes == ["stale"]
    assert pool.zset(pool.keys.running) == {}
    assert client.get(pool.keys.job("a")) == b"x"


def test_complete_of_job_whose_hash_was_deleted_is_stale_and_frees_the_slot(pool, client):
    # Given a pool with cap 1 whose one running job's status hash was deleted, and a waiting job
    client.hset(pool.keys.config, "max_parallelism", 1)
    pool.start("a")
    pool.enqueue("b")
    client.delete(pool.keys.job("a"))
    # When its worker completes it
    codes = pool.complete(("a", 1, "error", b"boom"))
    # Then the outcome is stale, nothing is recreated, and the slot is free for the waiting job
    assert codes == ["stale"]
    assert pool.job("a") == {}
    assert pool.zset(pool.keys.running) == {}
    assert [j.work_id for j in pool.claim().jobs] == ["b"]


def test_poisoned_outcome_does_not_block_the_others_in_its_batch(pool):
    # Given two running jobs, one of whose status hash was overwritten by a string
    pool.start("a", "b")
    _poison_wrong_type(pool, "a")
    # When both are completed in one call
    codes = pool.complete(("a", 1, "ok"), ("b", 1, "ok"))
    # Then the poisoned one is stale and the other succeeds
    assert codes == ["stale", "success"]
    assert pool.job("b")["result"] == b"success"


def test_reclaim_drops_running_member_whose_key_has_the_wrong_type(pool, client):
    # Given an expired running job whose status hash was overwritten by a string
    pool.start("a")
    _poison_wrong_type(pool, "a")
    pool.make_due("a", pool.keys.running)
    # When a worker claims once settled
    reply = pool.claim(lease_ms=settle(client), capacity=0)
    # Then the member is dropped without raising, and the foreign key is left alone
    assert reply.reclaimed == [("a", "dropped")]
    assert pool.zset(pool.keys.running) == {}
    assert client.get(pool.keys.job("a")) == b"x"


def test_claim_drops_callback_whose_key_has_the_wrong_type(pool, client):
    # Given a due callback whose job's status hash was overwritten by a string
    pool.start("a", on_complete="cb")
    pool.complete(("a", 1, "ok"))
    _poison_wrong_type(pool, "a")
    # When a worker claims
    reply = pool.claim()
    # Then nothing is handed out, nothing raises, and the callback entry is removed
    assert reply.callbacks == []
    assert pool.zset(pool.keys.callbacks) == {}


def test_claim_drops_delayed_entry_whose_key_has_the_wrong_type(pool, client):
    # Given a due delayed job whose status hash was overwritten by a string
    pool.enqueue("a", schedule="after", schedule_ms=60_000)
    _poison_wrong_type(pool, "a")
    pool.make_due("a")
    # When a worker claims
    reply = pool.claim()
    # Then nothing starts, nothing raises, and the delayed entry is removed
    assert reply.jobs == []
    assert pool.zset(pool.keys.delayed) == {}
    assert pool.stream_ids() == []


@pytest.mark.parametrize("kind", ["job", "callback"])
def test_extend_lease_and_hand_back_treat_wrong_type_keys_as_not_owned(pool, client, kind):
    # Given a job or callback of w1's whose status hash was overwritten by a string
    pool.start("a", on_complete="cb")
    if kind == "callback":
        pool.complete(("a", 1, "ok"))
        assert len(pool.claim().callbacks) == 1
    _poison_wrong_type(pool, "a")
    before = snapshot(client)
    # When w1 renews it, then hands it back
    lost = pool.extend_lease((kind, "a", 1))
    codes = pool.hand_back((kind, "a", 1))
    # Then neither raises: it is lost, then stale, and nothing else changes
    assert lost == [(kind, "a")]
    assert codes == ["stale"]
    after = snapshot(client)
    after.pop(pool.keys.wake.encode(), None)
    before.pop(pool.keys.wake.encode(), None)
    assert after == before
