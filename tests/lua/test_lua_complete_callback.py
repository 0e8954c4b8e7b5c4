"""complete_callback.lua: codes done / retry / failed / stale; the TTL starts only at the end."""

from __future__ import annotations

import pytest
from helpers import settle


def _leased(pool, *work_ids, worker="w1", ttl_ms=60_000):
    """Jobs that succeeded, whose on_complete callbacks are leased to `worker` (attempt 1)."""
    pool.start(*work_ids, on_complete="cb", ttl_ms=ttl_ms)
    pool.complete(*[(w, 1, "ok") for w in work_ids])
    reply = pool.claim(worker=worker, capacity=len(work_ids))
    assert sorted(c.work_id for c in reply.callbacks) == sorted(work_ids)


def _snapshot(pool, work_id):
    return pool.job(work_id), pool.zset(pool.keys.callbacks)


def test_done_ends_the_callback_and_starts_the_ttl(pool, client):
    # Given a leased callback of a job with a 60 s status TTL
    _leased(pool, "a", ttl_ms=60_000)
    assert client.pttl(pool.keys.job("a")) == -1
    # When the worker reports it returned
    before = pool.now_ms()
    codes = pool.complete_callback(("a", 1, ""))
    after = pool.now_ms()
    # Then it is done, never runs again, and the status hash starts its TTL
    assert codes == ["done"]
    job = pool.job("a")
    assert job["callback"] == b"done"
    assert before <= int(job["callback_finished_at"]) <= after
    assert "callback_worker" not in job
    assert pool.zset(pool.keys.callbacks) == {}
    assert 0 < client.pttl(pool.keys.job("a")) <= 60_000
    assert pool.claim().callbacks == []


def test_done_keeps_status_forever_with_ttl_minus_one(pool, client):
    # Given a leased callback of a job kept forever
    _leased(pool, "a", ttl_ms=-1)
    # When it returns
    assert pool.complete_callback(("a", 1, "")) == ["done"]
    # Then the status hash has no expiry
    assert client.pttl(pool.keys.job("a")) == -1


def test_error_with_attempts_left_retries_after_backoff(pool, client):
    # Given a leased callback with attempts left
    _leased(pool, "a")
    # When it raises, with a 5 s backoff
    before = pool.now_ms()
    codes = pool.complete_callback(("a", 1, "Boom", 5000), max_attempts=3)
    after = pool.now_ms()
    # Then it is due again after the backoff, still pending, and the status does not expire yet
    assert codes == ["retry"]
    job = pool.job("a")
    assert job["callback"] == b"pending"
    assert job["callback_error"] == b"Boom"
    due = pool.zset(pool.keys.callbacks)["a"]
    assert before + 5000 <= due <= after + 5000
    assert client.pttl(pool.keys.job("a")) == -1
    # And it is not handed out before then
    assert pool.claim().callbacks == []


def test_retried_callback_runs_again_as_next_attempt(pool):
    # Given a callback that raised once and whose backoff has passed
    _leased(pool, "a")
    pool.complete_callback(("a", 1, "Boom"), max_attempts=3)
    pool.make_due("a", pool.keys.callbacks)
    # When a worker claims
    [cb] = pool.claim(worker="w2").callbacks
    # Then it is attempt 2, and that attempt can be completed
    assert (cb.work_id, cb.attempt) == ("a", 2)
    assert pool.complete_callback(("a", 2, ""), worker="w2") == ["done"]


def test_error_on_last_attempt_fails_and_starts_the_ttl(pool, client):
    # Given a callback on its third and last attempt
    _leased(pool, "a", ttl_ms=60_000)
    for attempt in (1, 2):
        assert pool.complete_callback(("a", attempt, "Boom"), max_attempts=3) == ["retry"]
        pool.make_due("a", pool.keys.callbacks)
        assert [c.attempt for c in pool.claim().callbacks] == [attempt + 1]
    # When it raises again
    before = pool.now_ms()
    codes = pool.complete_callback(("a", 3, "Still boom"), max_attempts=3)
    after = pool.now_ms()
    # Then it is recorded failed, never runs again, and the status starts its TTL
    assert codes == ["failed"]
    job = pool.job("a")
    assert job["callback"] == b"failed"
    assert job["callback_error"] == b"Still boom"
    assert before <= int(job["callback_finished_at"]) <= after
    assert "callback_worker" not in job
    assert pool.zset(pool.keys.callbacks) == {}
    assert 0 < client.pttl(pool.keys.job("a")) <= 60_000


def test_single_attempt_callback_fails_at_once(pool):
    # Given a leased callback allowed one attempt
    _leased(pool, "a")
    # When it raises
    # Then it fails without retry
    assert pool.complete_callback(("a", 1, "Boom"), max_attempts=1) == ["failed"]


@pytest.mark.parametrize(
    ("worker", "attempt"),
    [("w2", 1), ("w1", 2), ("w1", 0)],
    ids=["wrong-worker", "later-attempt", "earlier-attempt"],
)
def test_report_with_token_mismatch_is_stale(pool, worker, attempt):
    # Given a callback leased to w1 as attempt 1
    _leased(pool, "a", worker="w1")
    snapshot = _snapshot(pool, "a")
    # When another worker or another attempt reports on it
    codes = pool.complete_callback(("a", attempt, ""), worker=worker)
    # Then it is stale and nothing changes
    assert codes == ["stale"]
    assert _snapshot(pool, "a") == snapshot


def test_report_after_lease_moved_to_another_worker_is_stale(pool):
    # Given a callback whose lease expired on w1 and was taken by w2
    _leased(pool, "a", worker="w1")
    pool.make_due("a", pool.keys.callbacks)
    reply = pool.claim(worker="w2", lease_ms=settle(pool.client))
    assert [c.attempt for c in reply.callbacks] == [2]
    # When w1 reports late
    codes = pool.complete_callback(("a", 1, ""), worker="w1")
    # Then it is stale; w2 still holds the lease
    assert codes == ["stale"]
    assert pool.job("a")["callback"] == b"pending"
    assert pool.complete_callback(("a", 2, ""), worker="w2") == ["done"]


def test_duplicate_report_after_done_is_stale(pool):
    # Given a callback recorded done
    _leased(pool, "a")
    assert pool.complete_callback(("a", 1, "")) == ["done"]
    # When the same worker reports again, now as an error
    codes = pool.complete_callback(("a", 1, "Boom"))
    # Then nothing changes
    assert codes == ["stale"]
    assert pool.job("a")["callback"] == b"done"
    assert pool.zset(pool.keys.callbacks) == {}


def test_report_after_retry_is_stale(pool):
    # Given a callback whose attempt 1 raised and was set to retry; w1 no longer holds a lease
    _leased(pool, "a", worker="w1")
    assert pool.complete_callback(("a", 1, "Boom", 60_000), worker="w1") == ["retry"]
    snapshot = _snapshot(pool, "a")
    # When the same report arrives again (a flush is resent after a dropped connection)
    codes = pool.complete_callback(("a", 1, "Boom", 60_000), worker="w1")
    # Then it is stale and the callback still waits for its retry
    assert codes == ["stale"]
    assert _snapshot(pool, "a") == snapshot


def test_report_for_callback_missing_from_zset_is_stale(pool, client):
    # Given a leased callback whose zset entry is gone
    _leased(pool, "a")
    client.zrem(pool.keys.callbacks, "a")
    # When its worker reports
    # Then it is stale
    assert pool.complete_callback(("a", 1, "")) == ["stale"]
    assert pool.job("a")["callback"] == b"pending"


def test_report_for_job_without_callback_is_stale(pool):
    # Given a finished job with no callback
    pool.start("a")
    pool.complete(("a", 1, "ok"))
    # When a callback report names it
    # Then it is stale and no callback fields appear
    assert pool.complete_callback(("a", 1, "")) == ["stale"]
    assert "callback" not in pool.job("a")


def test_report_for_unknown_job_is_stale(pool):
    # Given no such job
    # When a report names it
    # Then it is stale and nothing is created
    assert pool.complete_callback(("nope", 1, "")) == ["stale"]
    assert pool.job("nope") == {}


def test_codes_follow_report_order(pool):
    # Given three leased callbacks
    _leased(pool, "a", "b", "c")
    # When reported together with a stale one
    codes = pool.complete_callback(
        ("c", 1, "Boom"), ("x", 1, ""), ("a", 1, ""), ("b", 1, "Boom"), max_attempts=2
    )
    # Then one code per report, in order
    assert codes == ["retry", "stale", "done", "retry"]
