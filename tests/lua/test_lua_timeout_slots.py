"""complete.lua outcomes `timeout` and `release`: a timed-out sync job's thread keeps a slot
'thread:<work_id>:<attempt>' in the running set, counted against the cap, until it returns."""

from __future__ import annotations

import pytest
from helpers import snapshot


def _stats_buckets(pool):
    """Every stats bucket of the pool: key -> counters."""
    return {
        k.decode(): {f.decode(): int(v) for f, v in pool.client.hgetall(k).items()}
        for k in pool.client.scan_iter(match=pool.keys.stats_prefix + "*")
    }


# -- timeout --------------------------------------------------------------------------------------


def test_timeout_of_retryable_action_retries_and_keeps_a_thread_slot(pool, client):
    # Given an action with attempts left, running on attempt 1
    pool.start("a", max_attempts=3, initial_backoff_ms=1000, base=2)
    # When its worker reports it timed out, with a 20 s slot lease
    before = pool.now_ms()
    codes = pool.complete(("a", 1, "timeout", b"timeout", 1.0), lease_ms=20_000)
    after = pool.now_ms()
    # Then the attempt is an error that is retried after its backoff
    assert codes == ["retry"]
    job = pool.job("a")
    assert job["state"] == b"scheduled"
    assert job["last_error"] == b"timeout"
    assert set(pool.zset(pool.keys.delayed)) == {"a"}
    # And the work id leaves the running set, but the thread's slot takes its place
    running = pool.zset(pool.keys.running)
    assert set(running) == {"thread:a:1"}
    assert before + 20_000 <= running["thread:a:1"] <= after + 20_000
    assert client.zcard(pool.keys.running) == 1


def test_timeout_on_last_attempt_fails_and_keeps_a_thread_slot(pool):
    # Given an action on its last attempt
    pool.start("a", max_attempts=1)
    # When it times out
    codes = pool.complete(("a", 1, "timeout", b"timeout"))
    # Then it finishes failed with the timeout error, and the thread still holds a slot
    assert codes == ["failed"]
    job = pool.job("a")
    assert (job["state"], job["result"], job["error"]) == (b"finished", b"failed", b"timeout")
    assert set(pool.zset(pool.keys.running)) == {"thread:a:1"}


@pytest.mark.parametrize("kind", ["mutation", "query"])
def test_timeout_of_mutation_or_query_fails_and_keeps_a_thread_slot(pool, kind):
    # Given a mutation or query enqueued with attempts, running
    pool.start("a", kind=kind, max_attempts=3)
    # When it times out
    codes = pool.complete(("a", 1, "timeout", b"timeout"))
    # Then it is never retried, and its thread keeps a slot
    assert codes == ["failed"]
    assert pool.zset(pool.keys.delayed) == {}
    assert set(pool.zset(pool.keys.running)) == {"thread:a:1"}


def test_timeout_of_canceled_job_reads_as_canceled_and_keeps_a_thread_slot(pool):
    # Given a running action with attempts left that was asked to cancel
    pool.start("a", max_attempts=3)
    pool.cancel("a")
    # When it times out
    codes = pool.complete(("a", 1, "timeout", b"timeout"))
    # Then it finishes canceled, and its thread keeps a slot
    assert codes == ["canceled"]
    assert pool.job("a")["result"] == b"canceled"
    assert set(pool.zset(pool.keys.running)) == {"thread:a:1"}


def test_timeout_counts_as_an_erroring_execution(pool):
    # Given a running action on its last attempt
    pool.start("a")
    # When it times out
    pool.complete(("a", 1, "timeout", b"timeout"))
    # Then the stats count one execution, one error and one failure
    [counters] = _stats_buckets(pool).values()
    assert counters == {"executions": 1, "errors": 1, "failures": 1, "finished": 1}


def test_stale_timeout_adds_no_slot(pool, client):
    # Given a job running for w2
    pool.start("a", worker="w2")
    before = snapshot(client)
    # When w1 reports a timeout for it
    codes = pool.complete(("a", 1, "timeout", b"timeout"), worker="w1")
    # Then it is stale and nothing changes
    assert codes == ["stale"]
    assert snapshot(client) == before


def test_slot_name_carries_the_attempt(pool):
    # Given an action timing out on attempt 1 and then, retried, on attempt 2
    pool.start("a", max_attempts=3)
    assert pool.complete(("a", 1, "timeout", b"timeout")) == ["retry"]
    pool.make_due("a")
    assert [j.attempt for j in pool.claim().jobs] == [2]
    # When attempt 2 times out too
    assert pool.complete(("a", 2, "timeout", b"timeout")) == ["retry"]
    # Then each thread holds its own slot
    assert set(pool.zset(pool.keys.running)) == {"thread:a:1", "thread:a:2"}


# -- the cap --------------------------------------------------------------------------------------


def test_thread_slot_counts_against_the_cap_until_release(pool, client):
    # Given a pool with cap 1 whose one job timed out (its thread still running)
    client.hset(pool.keys.config, "max_parallelism", 1)
    pool.start("a", max_attempts=3)
    assert pool.complete(("a", 1, "timeout", b"timeout")) == ["retry"]
    pool.enqueue("b")
    pool.make_due("a")
    # When a worker claims
    reply = pool.claim(capacity=5)
    # Then nothing starts: neither the waiting job nor the retry
    assert reply.jobs == []
    assert pool.state("b") == "pending"
    # When the thread returns and its worker reports the release
    codes = pool.complete(("a", 1, "release"))
    # Then the slot is free and the next claim starts a job
    assert codes == ["released"]
    assert pool.zset(pool.keys.running) == {}
    assert len(pool.claim(capacity=1).jobs) == 1


def test_release_wakes_a_worker_when_jobs_wait(pool, client):
    # Given a pool with cap 1 held by a timed-out thread, and a waiting job
    client.hset(pool.keys.config, "max_parallelism", 1)
    pool.start("a")
    pool.complete(("a", 1, "timeout", b"timeout"))
    pool.enqueue("b")
    pool.clear_wake()
    # When the thread's slot is released
    assert pool.complete(("a", 1, "release")) == ["released"]
    # Then an idle worker is woken to take the freed slot
    assert pool.wake_tokens() == 1


def test_release_leaves_the_job_and_stats_alone(pool):
    # Given a job that timed out and failed
    pool.start("a")
    pool.complete(("a", 1, "timeout", b"timeout"))
    job = pool.job("a")
    stats = _stats_buckets(pool)
    # When its thread's slot is released
    pool.complete(("a", 1, "release"))
    # Then the job's record and the stats are unchanged
    assert pool.job("a") == job
    assert _stats_buckets(pool) == stats


def test_release_of_an_absent_slot_changes_nothing(pool, client):
    # Given a slot that was already released, and another thread's slot still held
    pool.start("a", "b")
    pool.complete(("a", 1, "timeout", b"timeout"), ("b", 1, "timeout", b"timeout"))
    assert pool.complete(("a", 1, "release")) == ["released"]
    pool.clear_wake()
    before = snapshot(client)
    # When the release is reported again, and for an attempt that never timed out
    codes = pool.complete(("a", 1, "release"), ("b", 2, "release"))
    # Then both read released and nothing changes: the other slot is kept
    assert codes == ["released", "released"]
    assert snapshot(client) == before
    assert set(pool.zset(pool.keys.running)) == {"thread:b:1"}


def test_release_frees_only_its_own_slot(pool):
    # Given two timed-out threads of different jobs
    pool.start("a", "b")
    pool.complete(("a", 1, "timeout", b"timeout"), ("b", 1, "timeout", b"timeout"))
    # When one is released
    pool.complete(("b", 1, "release"))
    # Then only its slot is freed
    assert set(pool.zset(pool.keys.running)) == {"thread:a:1"}
