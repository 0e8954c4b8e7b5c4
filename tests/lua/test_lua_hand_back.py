"""hand_back.lua: a stopping worker returns jobs, callbacks and slots: handed_back / failed /
released / stale, and a wake token."""

from __future__ import annotations

import pytest
from helpers import snapshot


def _leased_callback(pool, work_id="a", worker="w1"):
    """A job that succeeded, whose callback is leased to `worker` on attempt 1."""
    pool.start(work_id, on_complete="cb")
    assert pool.complete((work_id, 1, "ok")) == ["success"]
    [cb] = pool.claim(worker=worker, capacity=1).callbacks
    assert (cb.work_id, cb.attempt) == (work_id, 1)


def _without_wake(snap, pool):
    return {k: v for k, v in snap.items() if k != pool.keys.wake.encode()}


# -- jobs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["action", "query"])
def test_job_goes_back_to_the_stream_uncounted(pool, kind):
    # Given an action or query running on attempt 1 for w1
    pool.start("a", kind=kind)
    pool.clear_wake()
    # When w1 hands it back
    codes = pool.hand_back(("job", "a", 1))
    # Then it is pending on the stream again, its attempt not counted and no owner recorded
    assert codes == ["handed_back"]
    job = pool.job("a")
    assert job["state"] == b"pending"
    assert job["attempts"] == b"0"
    assert "worker" not in job
    assert "started_at" not in job
    assert pool.stream_work_ids() == ["a"]
    assert job["sid"].decode() == pool.stream_ids()[0]
    # And its slot is free, and a worker is woken to take it
    assert pool.zset(pool.keys.running) == {}
    assert pool.wake_tokens() == 1


def test_handed_back_job_runs_again_on_the_same_attempt(pool):
    # Given a job handed back by w1
    pool.start("a")
    pool.hand_back(("job", "a", 1))
    # When another worker claims
    reply = pool.claim(worker="w2")
    # Then it runs as attempt 1 again, for w2
    assert [(j.work_id, j.attempt) for j in reply.jobs] == [("a", 1)]
    assert pool.job("a")["worker"] == b"w2"


def test_handed_back_slot_is_free_for_another_job(pool, client):
    # Given a pool with cap 1 whose one slot w1 holds, and a waiting job
    client.hset(pool.keys.config, "max_parallelism", 1)
    pool.start("a")
    pool.enqueue("b")
    assert pool.claim(worker="w2").jobs == []
    # When w1 hands its job back
    assert pool.hand_back(("job", "a", 1)) == ["handed_back"]
    # Then another worker can start a job at once
    assert len(pool.claim(worker="w2", capacity=1).jobs) == 1


def test_mutation_fails_with_worker_stopped(pool, client):
    # Given a mutation running for w1 with a callback
    pool.start("m", kind="mutation", max_attempts=3, on_complete="cb")
    # When w1 hands it back
    before = pool.now_ms()
    codes = pool.hand_back(("job", "m", 1))
    after = pool.now_ms()
    # Then it is not run again: it finishes failed with "worker stopped"
    assert codes == ["failed"]
    job = pool.job("m")
    assert (job["state"], job["result"], job["error"]) == (
        b"finished",
        b"failed",
        b"worker stopped",
    )
    assert pool.stream_ids() == []
    assert pool.zset(pool.keys.running) == {}
    # And its callback is due now
    assert job["callback"] == b"pending"
    assert before <= pool.zset(pool.keys.callbacks)["m"] <= after
    assert client.pttl(pool.keys.job("m")) == -1


def test_mutation_without_callback_starts_its_ttl(pool, client):
    # Given a mutation with a 60 s status TTL running for w1
    pool.start("m", kind="mutation", ttl_ms=60_000)
    # When w1 hands it back
    assert pool.hand_back(("job", "m", 1)) == ["failed"]
    # Then the status hash starts its TTL and no callback is due
    assert 0 < client.pttl(pool.keys.job("m")) <= 60_000
    assert pool.zset(pool.keys.callbacks) == {}


@pytest.mark.parametrize("kind", ["action", "query"])
def test_canceled_running_job_is_not_run_again(pool, kind):
    # Given a running job with attempts left that was asked to cancel
    pool.start("a", kind=kind, max_attempts=3)
    assert pool.cancel("a") == ["cancel_requested"]
    # When its worker stops and hands it back
    pool.hand_back(("job", "a", 1))
    # Then no worker ever starts it again (cancel.lua: "stop jobs from ever starting again")
    assert pool.claim(worker="w2").jobs == []
    # And it finishes canceled, as when a lost worker's lease is taken back
    job = pool.job("a")
    assert (job["state"], job.get("result")) == (b"finished", b"canceled")


def test_canceled_running_mutation_reads_as_canceled(pool):
    # Given a running mutation that was asked to cancel
    pool.start("m", kind="mutation")
    assert pool.cancel("m") == ["cancel_requested"]
    # When its worker stops and hands it back
    pool.hand_back(("job", "m", 1))
    # Then it finishes canceled, as complete and reclaim record a canceled job's failure
    job = pool.job("m")
    assert (job["state"], job["result"]) == (b"finished", b"canceled")
    assert "cancel" not in job


# -- callbacks and slots --------------------------------------------------------------------------


def test_callback_is_due_again_at_once_uncounted(pool):
    # Given a callback leased to w1 on attempt 1
    _leased_callback(pool)
    pool.clear_wake()
    # When w1 hands it back
    before = pool.now_ms()
    codes = pool.hand_back(("callback", "a", 1))
    after = pool.now_ms()
    # Then it is due now, unowned, its attempt not counted
    assert codes == ["handed_back"]
    assert before <= pool.zset(pool.keys.callbacks)["a"] <= after
    job = pool.job("a")
    assert job["callback_attempts"] == b"0"
    assert "callback_worker" not in job
    assert job["callback"] == b"pending"
    assert pool.wake_tokens() == 1
    # And another worker gets it as attempt 1
    [cb] = pool.claim(worker="w2").callbacks
    assert (cb.work_id, cb.attempt) == ("a", 1)


def test_thread_slot_is_released(pool):
    # Given a timed-out thread's slot
    pool.start("a")
    pool.complete(("a", 1, "timeout", b"timeout"))
    assert set(pool.zset(pool.keys.running)) == {"thread:a:1"}
    # When the worker hands it back
    codes = pool.hand_back(("slot", "thread:a:1", 1))
    # Then the slot is freed
    assert codes == ["released"]
    assert pool.zset(pool.keys.running) == {}


def test_one_code_per_item_in_order(pool):
    # Given w1 holding an action, a mutation, a callback and a slot
    pool.start("act")
    pool.start("mut", kind="mutation")
    _leased_callback(pool, "cb")
    pool.client.zadd(pool.keys.running, {"thread:x:1": pool.now_ms() + 30_000})
    # When it hands them all back, plus something it never held
    codes = pool.hand_back(
        ("slot", "thread:x:1", 1),
        ("job", "mut", 1),
        ("job", "ghost", 1),
        ("callback", "cb", 1),
        ("job", "act", 1),
    )
    # Then each gets its own code, in order
    assert codes == ["released", "failed", "stale", "handed_back", "handed_back"]
    assert pool.zset(pool.keys.running) == {}


# -- stale ----------------------------------------------------------------------------------------


def _stale_case(pool, case):
    """Set up one thing w1 does not own; returns the item w1 hands back."""
    if case == "job of another worker":
        pool.start("a", worker="w2")
        return ("job", "a", 1)
    if case == "job on another attempt":
        pool.start("a")
        return ("job", "a", 2)
    if case == "finished job":
        pool.start("a")
        pool.complete(("a", 1, "ok"))
        return ("job", "a", 1)
    if case == "scheduled job":
        pool.start("a", max_attempts=3)
        pool.complete(("a", 1, "error", b"boom"))
        return ("job", "a", 1)
    if case == "job not in running set":
        pool.start("a")
        pool.client.zrem(pool.keys.running, "a")
        return ("job", "a", 1)
    if case == "missing job":
        return ("job", "ghost", 1)
    if case == "callback of another worker":
        _leased_callback(pool, worker="w2")
        return ("callback", "a", 1)
    if case == "callback on another attempt":
        _leased_callback(pool)
        return ("callback", "a", 2)
    if case == "done callback":
        _leased_callback(pool)
        pool.complete_callback(("a", 1, ""))
        return ("callback", "a", 1)
    if case == "gone slot":
        return ("slot", "thread:a:1", 1)
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "job of another worker",
        "job on another attempt",
        "finished job",
        "scheduled job",
        "job not in running set",
        "missing job",
        "callback of another worker",
        "callback on another attempt",
        "done callback",
        "gone slot",
    ],
)
def test_anything_not_owned_is_stale_and_untouched(pool, client, case):
    # Given something w1 does not hold
    item = _stale_case(pool, case)
    before = snapshot(client)
    # When w1 hands it back
    codes = pool.hand_back(item, worker="w1")
    # Then it is stale and nothing but the wake list changes
    assert codes == ["stale"]
    assert _without_wake(snapshot(client), pool) == _without_wake(before, pool)


def test_hand_back_always_leaves_one_wake_token(pool):
    # Given two jobs w1 holds and no wake token
    pool.start("a", "b")
    pool.clear_wake()
    # When it hands them back one call at a time
    pool.hand_back(("job", "a", 1))
    pool.hand_back(("job", "b", 1))
    # Then exactly one token waits
    assert pool.wake_tokens() == 1
