"""claim.lua taking back expired leases: retry / failed / requeued / canceled / dropped, stats,
the restart guard (server uptime), next_lease_ms, and expired callback leases."""

from __future__ import annotations

import pytest
from helpers import settle

TEN_MINUTES_MS = 600_000
BUCKET_MS = 10_000  # the stats bucket width LuaPool.claim passes


def _expire(pool, *members):
    """Pretend the leases of running-set members have expired."""
    for member in members:
        pool.make_due(member, pool.keys.running)


def _reclaim(pool, **claim):
    """A claim made once the server has been up for its lease, so expired leases are taken."""
    claim.setdefault("capacity", 0)
    return pool.claim(lease_ms=settle(pool.client), **claim)


def _stats_buckets(pool):
    """Every stats bucket of the pool: key -> counters."""
    return {
        k.decode(): {f.decode(): int(v) for f, v in pool.client.hgetall(k).items()}
        for k in pool.client.scan_iter(match=pool.keys.stats_prefix + "*")
    }


# -- actions --------------------------------------------------------------------------------------


def test_expired_action_with_attempts_left_is_retried_after_backoff(pool):
    # Given a running action with attempts left whose lease expired
    pool.start("a", max_attempts=3, initial_backoff_ms=1000, base=2)
    _expire(pool, "a")
    # When a worker claims with jitter 1.25
    reply = _reclaim(pool, jitter=1.25)
    # Then the lease is taken back as a retry
    assert reply.reclaimed == [("a", "retry")]
    # And the job waits out its backoff (1000 * 2^0 * 1.25) as a failed attempt
    job = pool.job("a")
    assert job["state"] == b"scheduled"
    assert job["last_error"] == b"worker lost"
    assert int(job["next_run_at"]) == reply.now_ms + 1250
    assert pool.zset(pool.keys.delayed) == {"a": reply.now_ms + 1250}
    # And its slot is free
    assert pool.zset(pool.keys.running) == {}


def test_retried_action_runs_again_as_next_attempt(pool):
    # Given an action taken back as a retry, whose backoff has passed
    pool.start("a", max_attempts=3)
    _expire(pool, "a")
    assert _reclaim(pool).reclaimed == [("a", "retry")]
    pool.make_due("a")
    # When a worker claims
    reply = pool.claim(worker="w2")
    # Then it runs as attempt 2, owned by the new worker
    assert [(j.work_id, j.attempt) for j in reply.jobs] == [("a", 2)]
    assert pool.job("a")["worker"] == b"w2"


def test_reclaimed_slot_is_free_for_the_same_claim(pool, client):
    # Given a pool with cap 1 whose one slot is held by an expired action, and a waiting job
    client.hset(pool.keys.config, "max_parallelism", 1)
    pool.start("a", max_attempts=3)
    pool.enqueue("b")
    _expire(pool, "a")
    # When a worker claims
    reply = _reclaim(pool, capacity=5)
    # Then the expired lease is taken back and the waiting job starts in the same call
    assert reply.reclaimed == [("a", "retry")]
    assert [j.work_id for j in reply.jobs] == ["b"]
    assert set(pool.zset(pool.keys.running)) == {"b"}


def test_expired_action_on_its_last_attempt_fails(pool, client):
    # Given a running action on its last attempt, with a callback, whose lease expired
    pool.start("a", max_attempts=1, on_complete="cb", ttl_ms=60_000)
    _expire(pool, "a")
    # When a worker with no capacity claims
    reply = _reclaim(pool)
    # Then the job finishes failed with "worker lost"
    assert reply.reclaimed == [("a", "failed")]
    job = pool.job("a")
    assert job["state"] == b"finished"
    assert job["result"] == b"failed"
    assert job["error"] == b"worker lost"
    assert int(job["finished_at"]) == reply.now_ms
    assert pool.zset(pool.keys.running) == {}
    assert pool.zset(pool.keys.delayed) == {}
    # And its callback is due now, so the status hash does not expire yet
    assert job["callback"] == b"pending"
    assert pool.zset(pool.keys.callbacks) == {"a": reply.now_ms}
    assert client.pttl(pool.keys.job("a")) == -1


def test_callback_of_lost_job_is_handed_out_by_the_same_claim(pool):
    # Given a running action on its last attempt, with a callback, whose lease expired
    pool.start("a", on_complete="cb")
    _expire(pool, "a")
    # When a worker with capacity claims
    reply = _reclaim(pool, capacity=1)
    # Then it gets the callback of the failure
    [cb] = reply.callbacks
    assert (cb.work_id, cb.result, cb.error, cb.attempt) == ("a", "failed", "worker lost", 1)


def test_expired_action_without_callback_starts_its_ttl(pool, client):
    # Given a running action with a 60 s status TTL, no callback, on its last attempt
    pool.start("a", ttl_ms=60_000)
    _expire(pool, "a")
    # When its lease is taken back
    assert _reclaim(pool).reclaimed == [("a", "failed")]
    # Then the status hash starts its TTL
    assert 0 < client.pttl(pool.keys.job("a")) <= 60_000


# -- mutations, queries, canceled jobs ------------------------------------------------------------


def test_expired_mutation_fails_even_with_attempts_configured(pool):
    # Given a running mutation enqueued with 3 attempts, whose lease expired
    pool.start("m", kind="mutation", max_attempts=3)
    _expire(pool, "m")
    # When a worker claims
    reply = _reclaim(pool)
    # Then it is never run again: it finishes failed with "worker lost"
    assert reply.reclaimed == [("m", "failed")]
    job = pool.job("m")
    assert (job["state"], job["result"], job["error"]) == (b"finished", b"failed", b"worker lost")
    assert pool.zset(pool.keys.delayed) == {}
    assert pool.stream_ids() == []


def test_expired_query_is_requeued_on_the_stream(pool):
    # Given a running query whose lease expired
    pool.start("q", kind="query")
    _expire(pool, "q")
    # When a worker with no capacity claims
    reply = _reclaim(pool, max_query_reruns=3)
    # Then the query is back on the stream, pending, its slot free
    assert reply.reclaimed == [("q", "requeued")]
    job = pool.job("q")
    assert job["state"] == b"pending"
    assert job["last_error"] == b"worker lost"
    assert job["reruns"] == b"1"
    assert pool.stream_work_ids() == ["q"]
    assert job["sid"].decode() == pool.stream_ids()[0]
    assert pool.zset(pool.keys.running) == {}
    # And the next claim runs it again
    assert [(j.work_id, j.attempt) for j in pool.claim().jobs] == [("q", 2)]


def test_query_is_rerun_at_most_max_query_reruns_times(pool):
    # Given a query whose worker is lost again and again, with at most 2 reruns
    pool.start("q", kind="query")
    codes = []
    for attempt in (1, 2, 3):
        # When its lease expires and a worker claims
        _expire(pool, "q")
        reply = _reclaim(pool, max_query_reruns=2)
        codes += [code for _, code in reply.reclaimed]
        if attempt < 3:
            assert [j.attempt for j in pool.claim().jobs] == [attempt + 1]
    # Then it is requeued twice, then fails with "worker lost"
    assert codes == ["requeued", "requeued", "failed"]
    job = pool.job("q")
    assert (job["state"], job["result"], job["error"]) == (b"finished", b"failed", b"worker lost")
    assert pool.stream_ids() == []


def test_query_with_zero_reruns_fails_at_once(pool):
    # Given a running query whose lease expired, in a pool that never reruns queries
    pool.start("q", kind="query")
    _expire(pool, "q")
    # When a worker claims
    reply = _reclaim(pool, max_query_reruns=0)
    # Then the query fails
    assert reply.reclaimed == [("q", "failed")]
    assert pool.job("q")["result"] == b"failed"


@pytest.mark.parametrize("kind", ["action", "mutation", "query"])
def test_expired_job_marked_canceled_finishes_canceled(pool, kind):
    # Given a running job (with attempts left) that was asked to cancel, whose lease expired
    pool.start("a", kind=kind, max_attempts=3)
    assert pool.cancel("a") == ["cancel_requested"]
    _expire(pool, "a")
    # When a worker claims
    reply = _reclaim(pool, capacity=5)
    # Then it finishes canceled and never runs again
    assert reply.reclaimed == [("a", "canceled")]
    assert reply.jobs == []
    job = pool.job("a")
    assert (job["state"], job["result"], job["error"]) == (
        b"finished",
        b"canceled",
        b"worker lost",
    )
    assert "cancel" not in job
    assert pool.zset(pool.keys.delayed) == {}
    assert pool.stream_ids() == []
    assert pool.zset(pool.keys.running) == {}


# -- members with no running job ------------------------------------------------------------------


def test_member_without_job_hash_is_dropped_and_its_slot_freed(pool, client):
    # Given a pool with cap 1 whose slot is held by an expired member with no job hash
    client.hset(pool.keys.config, "max_parallelism", 1)
    client.zadd(pool.keys.running, {"ghost": 0})
    pool.enqueue("b")
    # When a worker claims
    reply = _reclaim(pool, capacity=5)
    # Then the member is dropped, its slot freed for the waiting job, and nothing else written
    assert reply.reclaimed == [("ghost", "dropped")]
    assert [j.work_id for j in reply.jobs] == ["b"]
    assert pool.job("ghost") == {}
    assert set(pool.zset(pool.keys.running)) == {"b"}


def test_expired_thread_slot_is_dropped_and_frees_the_cap(pool, client):
    # Given a pool with cap 1 whose slot is a timed-out thread's whose lease expired
    client.hset(pool.keys.config, "max_parallelism", 1)
    pool.start("a")
    assert pool.complete(("a", 1, "timeout", b"timeout")) == ["failed"]
    assert set(pool.zset(pool.keys.running)) == {"thread:a:1"}
    pool.enqueue("b")
    _expire(pool, "thread:a:1")
    # When a worker claims
    reply = _reclaim(pool, capacity=5)
    # Then the slot is dropped and the waiting job takes it; the finished job is untouched
    assert reply.reclaimed == [("thread:a:1", "dropped")]
    assert [j.work_id for j in reply.jobs] == ["b"]
    assert set(pool.zset(pool.keys.running)) == {"b"}
    assert pool.job("a")["result"] == b"failed"


def test_member_of_a_job_no_longer_running_is_dropped(pool):
    # Given a running-set member left behind by a job that already finished
    pool.start("a")
    pool.complete(("a", 1, "ok"))
    pool.client.zadd(pool.keys.running, {"a": 0})
    # When a worker claims
    reply = _reclaim(pool)
    # Then the member is dropped and the job keeps its outcome
    assert reply.reclaimed == [("a", "dropped")]
    assert pool.job("a")["result"] == b"success"
    assert pool.zset(pool.keys.running) == {}


# -- stats ----------------------------------------------------------------------------------------


def test_reclaims_count_in_the_stats_bucket(pool, client):
    # Given four expired leases: an action to retry, a mutation to fail, a query to requeue and a
    # member with no job
    pool.start("act", max_attempts=3)
    pool.start("mut", kind="mutation")
    pool.start("qry", kind="query")
    client.zadd(pool.keys.running, {"ghost": 0})
    _expire(pool, "act", "mut", "qry")
    # When a worker claims
    reply = _reclaim(pool, max_query_reruns=3)
    # Then three executions ended in error, one of them a permanent failure (the one finish)
    assert dict(reply.reclaimed) == {
        "act": "retry",
        "mut": "failed",
        "qry": "requeued",
        "ghost": "dropped",
    }
    [(key, counters)] = _stats_buckets(pool).items()
    assert key == pool.keys.stats_prefix + str(reply.now_ms // BUCKET_MS)
    assert counters == {"executions": 3, "errors": 3, "failures": 1, "finished": 1}
    assert 0 < client.pttl(key) <= 3_600_000


def test_dropped_members_leave_no_stats(pool, client):
    # Given only expired members with no job behind them
    client.zadd(pool.keys.running, {"ghost": 0, "thread:x:1": 0})
    # When a worker claims
    reply = _reclaim(pool)
    # Then both are dropped and no stats bucket is written
    assert sorted(reply.reclaimed) == [("ghost", "dropped"), ("thread:x:1", "dropped")]
    assert _stats_buckets(pool) == {}


# -- what is not reclaimed ------------------------------------------------------------------------


def test_nothing_is_reclaimed_before_the_server_has_been_up_one_lease(pool, client):
    # Given a running job whose lease expired, a waiting job, and a pool with cap 1
    client.hset(pool.keys.config, "max_parallelism", 1)
    pool.start("a", max_attempts=3)
    pool.enqueue("b")
    _expire(pool, "a")
    # When a worker claims with a 10-minute lease, longer than the server has been up
    reply = pool.claim(lease_ms=TEN_MINUTES_MS, capacity=5)
    # Then nothing is taken back: the job still runs, owned by its worker, holding its slot
    assert reply.reclaimed == []
    assert reply.jobs == []
    job = pool.job("a")
    assert (job["state"], job["worker"], job["attempts"]) == (b"running", b"w1", b"1")
    assert pool.state("b") == "pending"
    assert _stats_buckets(pool) == {}
    # And its lease is pushed out to when it could first be taken back (the server has then
    # been up for one lease), so no worker claims in a loop meanwhile
    deadline = pool.zset(pool.keys.running)["a"]
    assert reply.now_ms < deadline <= reply.now_ms + TEN_MINUTES_MS
    assert reply.next_lease_ms == deadline


def test_unexpired_lease_is_not_reclaimed(pool):
    # Given a running job whose lease has not expired
    pool.start("a")
    # When a worker claims once the server has been up for its lease
    reply = _reclaim(pool)
    # Then the job keeps running
    assert reply.reclaimed == []
    assert pool.state("a") == "running"


def test_reclaim_is_bounded_by_promote_limit(pool, client):
    # Given three expired members
    client.zadd(pool.keys.running, {"g1": 0, "g2": 1, "g3": 2})
    # When a worker claims with a promote limit of two
    reply = _reclaim(pool, promote_limit=2)
    # Then only the two earliest are taken back
    assert reply.reclaimed == [("g1", "dropped"), ("g2", "dropped")]
    assert pool.zset(pool.keys.running) == {"g3": 2}


# -- next_lease_ms --------------------------------------------------------------------------------


def test_next_lease_is_the_earliest_running_deadline(pool, client):
    # Given two running jobs with different lease deadlines
    pool.start("a", "b")
    deadline = pool.now_ms() + 5_000
    client.zadd(pool.keys.running, {"a": deadline + 1_000, "b": deadline})
    # When a worker claims
    reply = pool.claim(capacity=0)
    # Then it learns the earliest deadline
    assert reply.next_lease_ms == deadline


def test_next_lease_is_none_when_nothing_runs(pool):
    # Given an idle pool
    pool.enqueue("a", schedule="after", schedule_ms=60_000)
    # When a worker claims
    reply = pool.claim(capacity=0)
    # Then there is no lease deadline to wait for
    assert reply.next_lease_ms is None


def test_next_lease_counts_what_this_claim_started_and_not_what_it_reclaimed(pool):
    # Given an expired action with attempts left and a waiting job
    pool.start("a", max_attempts=3)
    pool.enqueue("b")
    _expire(pool, "a")
    # When a worker claims
    lease_ms = settle(pool.client)
    reply = pool.claim(lease_ms=lease_ms, capacity=1)
    # Then the next deadline is the lease just given to the new job
    assert reply.reclaimed == [("a", "retry")]
    assert reply.next_lease_ms == reply.now_ms + lease_ms


def test_next_lease_includes_thread_slots(pool):
    # Given a timed-out thread's slot with a 7 s lease and nothing else running
    pool.start("a")
    pool.complete(("a", 1, "timeout", b"timeout"), lease_ms=7_000)
    slot_deadline = pool.zset(pool.keys.running)["thread:a:1"]
    # When a worker claims
    reply = pool.claim(capacity=0)
    # Then the slot's deadline is reported
    assert reply.next_lease_ms == slot_deadline


# -- expired callback leases ----------------------------------------------------------------------


def _leased_callback(pool, work_id="a", worker="w1", ttl_ms=60_000):
    """A job that succeeded, whose callback is leased to `worker` on attempt 1."""
    pool.start(work_id, on_complete="cb", ttl_ms=ttl_ms)
    assert pool.complete((work_id, 1, "ok")) == ["success"]
    [cb] = pool.claim(worker=worker, capacity=1).callbacks
    assert (cb.work_id, cb.attempt) == (work_id, 1)


def test_expired_callback_lease_is_not_taken_before_the_server_settles(pool):
    # Given a callback leased to w1 whose lease expired
    _leased_callback(pool)
    pool.make_due("a", pool.keys.callbacks)
    # When another worker claims with a lease longer than the server has been up
    reply = pool.claim(worker="w2", lease_ms=TEN_MINUTES_MS)
    # Then the callback is left with w1
    assert reply.callbacks == []
    job = pool.job("a")
    assert (job["callback_worker"], job["callback_attempts"]) == (b"w1", b"1")
    # And its lease runs until the server has been up for one lease
    deadline = pool.zset(pool.keys.callbacks)["a"]
    assert reply.now_ms < deadline <= reply.now_ms + TEN_MINUTES_MS
    assert reply.next_callback_ms == deadline


def test_expired_callback_lease_is_leased_again_once_settled(pool):
    # Given a callback leased to w1 whose lease expired
    _leased_callback(pool)
    pool.make_due("a", pool.keys.callbacks)
    # When another worker claims once the server has been up for its lease
    lease_ms = settle(pool.client)
    reply = pool.claim(worker="w2", lease_ms=lease_ms, callback_max_attempts=3)
    # Then w2 gets it on attempt 2 under a new lease
    assert [(c.work_id, c.attempt) for c in reply.callbacks] == [("a", 2)]
    job = pool.job("a")
    assert (job["callback_worker"], job["callback_attempts"]) == (b"w2", b"2")
    assert pool.zset(pool.keys.callbacks) == {"a": reply.now_ms + lease_ms}


def test_expired_callback_on_its_last_attempt_fails_with_worker_lost(pool, client):
    # Given a callback on its last allowed attempt, leased to w1, whose lease expired
    _leased_callback(pool, ttl_ms=60_000)
    pool.make_due("a", pool.keys.callbacks)
    # When another worker claims once settled, allowing one callback attempt
    reply = _reclaim(pool, worker="w2", capacity=5, callback_max_attempts=1)
    # Then the callback is not run again: it is recorded failed
    assert reply.callbacks == []
    job = pool.job("a")
    assert job["callback"] == b"failed"
    assert job["callback_error"] == b"worker lost"
    assert int(job["callback_finished_at"]) == reply.now_ms
    assert "callback_worker" not in job
    # And it leaves the callbacks set, and the status hash starts its TTL
    assert pool.zset(pool.keys.callbacks) == {}
    assert reply.next_callback_ms is None
    assert 0 < client.pttl(pool.keys.job("a")) <= 60_000
    # And the job's own outcome is untouched
    assert job["result"] == b"success"


def test_expired_callback_on_last_attempt_with_ttl_minus_one_is_kept(pool, client):
    # Given a callback of a job kept forever, on its last attempt, whose lease expired
    _leased_callback(pool, ttl_ms=-1)
    pool.make_due("a", pool.keys.callbacks)
    # When a worker claims once settled
    _reclaim(pool, capacity=5, callback_max_attempts=1)
    # Then the callback is failed and the status hash never expires
    assert pool.job("a")["callback"] == b"failed"
    assert client.pttl(pool.keys.job("a")) == -1
