"""complete.lua: codes success / failed / canceled / retry / stale, backoff, TTL, stats, PUBLISH."""

from __future__ import annotations

import pytest
from helpers import wait_until

MAX_BACKOFF_MS = 86_400_000


def _subscribe(client, channel):
    pubsub = client.pubsub()
    pubsub.subscribe(channel)
    # The subscription is live once its confirmation has been read.
    wait_until(lambda: pubsub.get_message(timeout=0.1), timeout_s=5, message="subscribed")
    return pubsub


def _published(pubsub, count):
    got = []

    def more():
        message = pubsub.get_message(timeout=0.05)
        if message is not None and message["type"] == "message":
            got.append(message["data"].decode())
        return len(got) >= count

    wait_until(more, timeout_s=5, message=f"{count} finished messages")
    return got


def _assert_no_message(pubsub):
    # Messages published by a script are queued before its reply, so everything published so far
    # arrives ahead of the PONG to a PING sent now.
    pubsub.ping()
    seen = []

    def pong():
        message = pubsub.get_message(timeout=0.05)
        if message is not None and message["type"] == "message":
            seen.append(message["data"])
        return message is not None and message["type"] == "pong"

    wait_until(pong, timeout_s=5, message="pong")
    assert seen == []


def _stats_buckets(pool):
    return {
        k.decode(): {f.decode(): int(v) for f, v in pool.client.hgetall(k).items()}
        for k in pool.client.scan_iter(match=pool.keys.stats_prefix + "*")
    }


# -- success --------------------------------------------------------------------------------------


def test_success_finishes_the_job_and_frees_its_slot(pool):
    # Given a running job
    pool.start("a")
    # When its worker reports it returned a value
    before = pool.now_ms()
    codes = pool.complete(("a", 1, "ok", b"\x2a"))
    after = pool.now_ms()
    # Then it finished as success with that value, and no longer holds a slot
    assert codes == ["success"]
    job = pool.job("a")
    assert job["state"] == b"finished"
    assert job["result"] == b"success"
    assert job["return_value"] == b"\x2a"
    assert before <= int(job["finished_at"]) <= after
    assert pool.zset(pool.keys.running) == {}


def test_success_applies_status_ttl(pool, client):
    # Given a running job whose status is kept for 60 s after it finishes
    pool.start("a", ttl_ms=60_000)
    assert client.pttl(pool.keys.job("a")) == -1
    # When it succeeds
    pool.complete(("a", 1, "ok"))
    # Then its status hash expires within 60 s
    assert 0 < client.pttl(pool.keys.job("a")) <= 60_000


def test_ttl_minus_one_keeps_status_forever(pool, client):
    # Given a running job kept forever
    pool.start("a", ttl_ms=-1)
    # When it succeeds
    pool.complete(("a", 1, "ok"))
    # Then its status hash has no expiry
    assert client.pttl(pool.keys.job("a")) == -1


def test_ttl_deferred_while_callback_pending(pool, client):
    # Given a running job with a 60 s TTL and an on_complete callback
    pool.start("a", ttl_ms=60_000, on_complete="cb")
    # When it succeeds
    pool.complete(("a", 1, "ok"))
    # Then the status is kept (the callback needs it) and the callback is due now
    assert client.pttl(pool.keys.job("a")) == -1
    job = pool.job("a")
    assert job["callback"] == b"pending"
    assert pool.zset(pool.keys.callbacks) == {"a": int(job["finished_at"])}


def test_finish_publishes_work_id(pool, client):
    # Given a subscriber to the pool's finished channel and three running jobs
    pool.start("a", "b", "c", "d", max_attempts=2)
    pubsub = _subscribe(client, pool.keys.finished)
    try:
        # When one succeeds, one fails fatally, one is canceled and one is retried
        pool.cancel("c")
        codes = pool.complete(
            ("a", 1, "ok"), ("b", 1, "fatal", b"x"), ("c", 1, "error", b"y"), ("d", 1, "error")
        )
        assert codes == ["success", "failed", "canceled", "retry"]
        # Then each finished job's id is published, and the retried one's is not
        assert sorted(_published(pubsub, 3)) == ["a", "b", "c"]
        _assert_no_message(pubsub)
    finally:
        pubsub.close()


# -- failure and retry ----------------------------------------------------------------------------


def test_error_without_attempts_left_fails(pool):
    # Given a running action with a single attempt
    pool.start("a", max_attempts=1)
    # When it raises
    codes = pool.complete(("a", 1, "error", b"ValueError: bad"))
    # Then it finished as failed with the error text
    assert codes == ["failed"]
    job = pool.job("a")
    assert (job["state"], job["result"], job["error"]) == (
        b"finished",
        b"failed",
        b"ValueError: bad",
    )
    assert pool.zset(pool.keys.delayed) == {}


def test_failure_applies_status_ttl(pool, client):
    # Given a running job with a 60 s TTL
    pool.start("a", ttl_ms=60_000)
    # When it fails
    pool.complete(("a", 1, "error", b"boom"))
    # Then its status expires
    assert 0 < client.pttl(pool.keys.job("a")) <= 60_000


def test_fatal_error_is_never_retried(pool):
    # Given a running action with attempts left
    pool.start("a", max_attempts=5)
    # When it fails fatally
    codes = pool.complete(("a", 1, "fatal", b"bad input"))
    # Then it is not retried
    assert codes == ["failed"]
    assert pool.state("a") == "finished"


@pytest.mark.parametrize("kind", ["mutation", "query"])
def test_mutations_and_queries_are_never_retried(pool, kind):
    # Given a running mutation or query that (wrongly) carries several attempts
    pool.start("a", kind=kind, max_attempts=5)
    # When it raises
    codes = pool.complete(("a", 1, "error", b"boom"))
    # Then it fails at once
    assert codes == ["failed"]
    assert pool.state("a") == "finished"
    assert pool.zset(pool.keys.delayed) == {}


def test_retry_moves_action_to_delayed_set(pool):
    # Given a running action with attempts left
    pool.start("a", max_attempts=3, initial_backoff_ms=1000, base=2)
    # When it raises
    before = pool.now_ms()
    codes = pool.complete(("a", 1, "error", b"flaky", 1.0))
    after = pool.now_ms()
    # Then it waits out its backoff in the delayed set, holding no slot
    assert codes == ["retry"]
    job = pool.job("a")
    assert job["state"] == b"scheduled"
    assert job["last_error"] == b"flaky"
    assert job["attempts"] == b"1"
    assert "result" not in job
    due = pool.zset(pool.keys.delayed)["a"]
    assert before + 1000 <= due <= after + 1000
    assert int(job["next_run_at"]) == due
    assert pool.zset(pool.keys.running) == {}


def _fail_to_attempt(pool, work_id, attempt):
    """Fail attempts 1..attempt-1 and start the given attempt."""
    for n in range(1, attempt):
        assert pool.complete((work_id, n, "error", b"e", 1.0)) == ["retry"]
        pool.make_due(work_id)
        [job] = pool.claim().jobs
        assert job.attempt == n + 1


@pytest.mark.parametrize(
    ("initial", "base", "attempt", "jitter", "expected"),
    [
        (1000, 3, 1, 0.5, 500),  # initial * base^0 * jitter
        (1000, 3, 2, 1.5, 4500),  # 1000 * 3 * 1.5
        (1000, 3, 3, 1.0, 9000),  # 1000 * 9
        (250, 1.5, 2, 1.0, 375),  # a fractional base
        (1000, 2, 1, 0.3333, 333),  # whole milliseconds, rounded down
        (10**9, 2, 1, 1.0, MAX_BACKOFF_MS),  # never more than a day
        (1000, 1e308, 3, 1.0, MAX_BACKOFF_MS),  # base^2 overflows to inf: still a day
        (0, 1e308, 3, 1.0, 0),  # 0 * inf is not NaN: no wait at all
        (0, 2, 1, 1.0, 0),  # no backoff configured: due at once
    ],
)
def test_retry_backoff_formula(pool, initial, base, attempt, jitter, expected):
    # Given a running action on the given attempt, with attempts left
    pool.start("a", max_attempts=attempt + 1, initial_backoff_ms=initial, base=base)
    _fail_to_attempt(pool, "a", attempt)
    # When that attempt raises with the given jitter
    before = pool.now_ms()
    assert pool.complete(("a", attempt, "error", b"e", jitter)) == ["retry"]
    after = pool.now_ms()
    # Then it is due initial * base^(attempt-1) * jitter ms later
    due = pool.zset(pool.keys.delayed)["a"]
    assert before + expected <= due <= after + expected


def test_last_attempt_fails(pool):
    # Given an action on its third and last attempt
    pool.start("a", max_attempts=3)
    _fail_to_attempt(pool, "a", 3)
    # When it raises again
    codes = pool.complete(("a", 3, "error", b"still broken"))
    # Then it finishes as failed
    assert codes == ["failed"]
    job = pool.job("a")
    assert (job["result"], job["error"], job["attempts"]) == (b"failed", b"still broken", b"3")


# -- canceled while running -----------------------------------------------------------------------


def test_error_after_cancel_request_reads_as_canceled(pool):
    # Given a running action with attempts left that was asked to cancel
    pool.start("a", max_attempts=5)
    assert pool.cancel("a") == ["cancel_requested"]
    # When it raises
    codes = pool.complete(("a", 1, "error", b"interrupted"))
    # Then it is not retried; it finishes as canceled and the cancel flag is cleared
    assert codes == ["canceled"]
    job = pool.job("a")
    assert (job["state"], job["result"], job["error"]) == (b"finished", b"canceled", b"interrupted")
    assert "cancel" not in job
    assert pool.zset(pool.keys.delayed) == {}


def test_fatal_error_after_cancel_request_reads_as_canceled(pool):
    # Given a running job that was asked to cancel
    pool.start("a")
    pool.cancel("a")
    # When it fails fatally
    codes = pool.complete(("a", 1, "fatal", b"stop"))
    # Then it reads as canceled too
    assert codes == ["canceled"]
    assert pool.job("a")["result"] == b"canceled"


def test_success_after_cancel_request_is_success(pool):
    # Given a running job that was asked to cancel
    pool.start("a")
    pool.cancel("a")
    # When it returns anyway
    codes = pool.complete(("a", 1, "ok", b"\x01"))
    # Then its value is kept
    assert codes == ["success"]
    assert pool.job("a")["result"] == b"success"


# -- stale ----------------------------------------------------------------------------------------


def _snapshot(pool, work_id):
    return pool.job(work_id), pool.zset(pool.keys.running), pool.zset(pool.keys.delayed)


@pytest.mark.parametrize(
    ("worker", "attempt"),
    [("w2", 1), ("w1", 2), ("w1", 0)],
    ids=["wrong-worker", "later-attempt", "earlier-attempt"],
)
def test_report_with_token_mismatch_is_stale(pool, worker, attempt):
    # Given a job running as attempt 1 on worker w1
    pool.start("a", worker="w1")
    snapshot = _snapshot(pool, "a")
    # When another worker, or another attempt, reports on it
    codes = pool.complete(("a", attempt, "ok"), worker=worker)
    # Then the report is stale and changes nothing
    assert codes == ["stale"]
    assert _snapshot(pool, "a") == snapshot
    assert _stats_buckets(pool) == {}


def test_report_of_previous_attempt_after_retry_is_stale(pool):
    # Given an action retried after attempt 1, now running attempt 2
    pool.start("a", max_attempts=3)
    _fail_to_attempt(pool, "a", 2)
    # When attempt 1 is reported again
    codes = pool.complete(("a", 1, "ok"))
    # Then it is stale; attempt 2 still runs
    assert codes == ["stale"]
    assert pool.state("a") == "running"


def test_duplicate_report_is_stale(pool):
    # Given a job whose success was recorded
    pool.start("a")
    assert pool.complete(("a", 1, "ok", b"\x01")) == ["success"]
    # When the same report arrives again
    codes = pool.complete(("a", 1, "error", b"late"))
    # Then nothing changes
    assert codes == ["stale"]
    assert pool.job("a")["result"] == b"success"


def test_report_for_backing_off_job_is_stale(pool):
    # Given an action waiting out its backoff
    pool.start("a", max_attempts=3)
    pool.complete(("a", 1, "error"))
    # When its attempt 1 is reported again
    codes = pool.complete(("a", 1, "error"))
    # Then it is stale, and the job keeps its place in the delayed set
    assert codes == ["stale"]
    assert pool.state("a") == "scheduled"


def test_report_for_job_missing_from_running_set_is_stale(pool, client):
    # Given a running job whose running-set entry is gone (its lease was taken away)
    pool.start("a")
    client.zrem(pool.keys.running, "a")
    # When its worker reports
    codes = pool.complete(("a", 1, "ok"))
    # Then it is stale
    assert codes == ["stale"]
    assert pool.state("a") == "running"


def test_report_for_unknown_job_is_stale(pool):
    # Given no such job
    # When a report names it
    codes = pool.complete(("nope", 1, "ok"))
    # Then it is stale and nothing is created
    assert codes == ["stale"]
    assert pool.job("nope") == {}


# -- batches, stats and wake ----------------------------------------------------------------------


def test_codes_follow_outcome_order(pool):
    # Given four running jobs
    pool.start("a", "b", "c", "d", max_attempts=2)
    # When they are reported in one call, one of them stale
    codes = pool.complete(
        ("d", 1, "error"), ("a", 1, "ok"), ("x", 1, "ok"), ("b", 1, "fatal"), ("c", 1, "ok")
    )
    # Then there is one code per outcome, in order
    assert codes == ["retry", "success", "stale", "failed", "success"]


def test_stats_bucket_counts_outcomes(pool, client):
    # Given five running jobs, one asked to cancel
    pool.start("ok", "retry", "fail", "fatal", "cancel", max_attempts=2)
    pool.cancel("cancel")
    # When they end as success, retry, failed (attempt 2), failed (fatal) and canceled
    before = pool.now_ms()
    codes = pool.complete(
        ("ok", 1, "ok"),
        ("retry", 1, "error"),
        ("fatal", 1, "fatal"),
        ("cancel", 1, "error"),
        ("ghost", 1, "ok"),
        bucket_ms=10_000,
        stats_ttl_ms=500_000,
    )
    after = pool.now_ms()
    assert codes == ["success", "retry", "failed", "canceled", "stale"]
    # Then one bucket counts the executions, the errors among them, the permanent failures,
    # and the jobs that reached an outcome (success, failed, canceled)
    [(key, counters)] = _stats_buckets(pool).items()
    assert counters == {"executions": 4, "errors": 3, "failures": 1, "finished": 3}
    bucket = int(key.removeprefix(pool.keys.stats_prefix))
    assert before // 10_000 <= bucket <= after // 10_000
    # And the bucket expires on its own
    assert 0 < client.pttl(key) <= 500_000


def test_stats_buckets_accumulate(pool):
    # Given two jobs completed in separate calls within one wide bucket
    pool.start("a", "b")
    pool.complete(("a", 1, "ok"), bucket_ms=10**9)
    pool.complete(("b", 1, "fatal"), bucket_ms=10**9)
    # Then the bucket holds both
    counters = {}
    for c in _stats_buckets(pool).values():
        for k, v in c.items():
            counters[k] = counters.get(k, 0) + v
    assert counters == {"executions": 2, "errors": 1, "failures": 1, "finished": 2}


def test_no_stats_bucket_when_every_report_is_stale(pool):
    # Given no running job
    # When a stale report arrives
    pool.complete(("ghost", 1, "ok"))
    # Then no stats bucket is written
    assert _stats_buckets(pool) == {}


def test_freed_slot_wakes_a_worker_when_work_waits(pool):
    # Given a running job and another waiting, and no wake token
    pool.start("a")
    pool.enqueue("b")
    pool.clear_wake()
    # When the running job completes
    pool.complete(("a", 1, "ok"))
    # Then an idle worker is woken for the waiting job
    assert pool.wake_tokens() == 1


def test_new_callback_wakes_a_worker(pool):
    # Given a running job with a callback and nothing else waiting
    pool.start("a", on_complete="cb")
    pool.clear_wake()
    # When it completes
    pool.complete(("a", 1, "ok"))
    # Then a worker is woken to run its callback
    assert pool.wake_tokens() == 1


def test_no_wake_when_only_leased_callbacks_remain(pool):
    # Given a callback leased to a worker (not due again until its lease ends), and a running job
    pool.start("cb_job", on_complete="cb")
    pool.complete(("cb_job", 1, "ok"))
    assert len(pool.claim(capacity=1).callbacks) == 1
    pool.start("a")
    pool.clear_wake()
    # When the running job completes
    pool.complete(("a", 1, "ok"))
    # Then no one is woken: nothing is ready and no callback is due (as claim.lua decides)
    assert pool.wake_tokens() == 0


def test_no_wake_when_nothing_waits(pool):
    # Given a running job and nothing else
    pool.start("a")
    pool.clear_wake()
    # When it completes
    pool.complete(("a", 1, "ok"))
    # Then no one is woken
    assert pool.wake_tokens() == 0


def test_stale_report_wakes_no_one(pool):
    # Given waiting work but a stale report
    pool.enqueue("b")
    pool.clear_wake()
    # When the stale report is recorded
    pool.complete(("ghost", 1, "ok"))
    # Then no slot was freed, so no one is woken
    assert pool.wake_tokens() == 0
