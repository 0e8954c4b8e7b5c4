"""cancel.lua: codes canceled / cancel_requested / finished / unknown, and what each changes."""

from __future__ import annotations

from helpers import wait_until


def test_pending_job_is_canceled_and_its_entry_deleted(pool, client):
    # Given a ready job with its stream entry, behind another
    pool.enqueue("keep", "a")
    # When it is canceled
    before = pool.now_ms()
    codes = pool.cancel("a")
    after = pool.now_ms()
    # Then it finished as canceled, and its stream entry is gone (XDEL), the other's kept
    assert codes == ["canceled"]
    job = pool.job("a")
    assert (job["state"], job["result"], job["error"]) == (b"finished", b"canceled", b"canceled")
    assert before <= int(job["finished_at"]) <= after
    assert "sid" not in job
    assert pool.stream_work_ids() == ["keep"]
    # And a worker never sees it, not even as a skipped entry
    reply = pool.claim()
    assert [j.work_id for j in reply.jobs] == ["keep"]
    assert reply.skipped == []


def test_delayed_job_is_canceled_and_leaves_delayed_set(pool):
    # Given a job due in a minute
    pool.enqueue("a", schedule="after", schedule_ms=60_000)
    # When it is canceled
    codes = pool.cancel("a")
    # Then it finished as canceled and is no longer scheduled
    assert codes == ["canceled"]
    assert pool.job("a")["result"] == b"canceled"
    assert "next_run_at" not in pool.job("a")
    assert pool.zset(pool.keys.delayed) == {}


def test_backing_off_job_is_canceled(pool):
    # Given an action waiting out its retry backoff
    pool.start("a", max_attempts=3)
    assert pool.complete(("a", 1, "error", b"flaky")) == ["retry"]
    # When it is canceled
    codes = pool.cancel("a")
    # Then it finishes as canceled and never runs again
    assert codes == ["canceled"]
    assert pool.job("a")["result"] == b"canceled"
    assert pool.zset(pool.keys.delayed) == {}
    pool.client.zadd(pool.keys.delayed, {"a": 0})
    assert pool.claim().jobs == []


def test_canceled_job_applies_status_ttl(pool, client):
    # Given a ready job with a 60 s status TTL
    pool.enqueue("a", ttl_ms=60_000)
    # When it is canceled
    pool.cancel("a")
    # Then its status expires
    assert 0 < client.pttl(pool.keys.job("a")) <= 60_000


def test_canceled_job_publishes_its_id(pool, client):
    # Given a subscriber and a ready job
    pool.enqueue("a")
    pubsub = client.pubsub()
    pubsub.subscribe(pool.keys.finished)
    try:
        wait_until(lambda: pubsub.get_message(timeout=0.1), timeout_s=5, message="subscribed")
        # When the job is canceled
        pool.cancel("a")
        # Then waiters hear that it finished
        message = wait_until(
            lambda: pubsub.get_message(timeout=0.1), timeout_s=5, message="finished message"
        )
        assert (message["type"], message["data"]) == ("message", b"a")
    finally:
        pubsub.close()


def test_cancel_makes_callback_due_and_wakes_a_worker(pool, client):
    # Given a ready job with a callback and a status TTL, and no wake token
    pool.enqueue("a", on_complete="cb", ttl_ms=60_000)
    pool.clear_wake()
    # When it is canceled
    codes = pool.cancel("a")
    # Then its callback is due now, a worker is woken, and the TTL waits for the callback
    assert codes == ["canceled"]
    job = pool.job("a")
    assert job["callback"] == b"pending"
    assert pool.zset(pool.keys.callbacks) == {"a": int(job["finished_at"])}
    assert pool.wake_tokens() == 1
    assert client.pttl(pool.keys.job("a")) == -1
    [cb] = pool.claim().callbacks
    assert (cb.work_id, cb.result, cb.error) == ("a", "canceled", "canceled")


def test_cancel_without_callback_wakes_no_one(pool):
    # Given a ready job with no callback, and no wake token
    pool.enqueue("a")
    pool.clear_wake()
    # When it is canceled
    pool.cancel("a")
    # Then there is nothing for a worker to do
    assert pool.wake_tokens() == 0


def test_running_job_is_only_marked(pool):
    # Given a running job
    pool.start("a")
    # When it is canceled
    codes = pool.cancel("a")
    # Then it is asked to cancel but keeps running and keeps its slot
    assert codes == ["cancel_requested"]
    job = pool.job("a")
    assert job["state"] == b"running"
    assert job["cancel"] == b"1"
    assert "a" in pool.zset(pool.keys.running)
    # And asking again is told apart, so cancel_all never counts it twice
    assert pool.cancel("a") == ["already_requested"]
    assert pool.job("a")["state"] == b"running"


def test_finished_job_is_left_alone(pool, client):
    # Given a job that succeeded, with a TTL running
    pool.start("a", ttl_ms=60_000)
    pool.complete(("a", 1, "ok", b"\x01"))
    before = pool.job("a")
    # When it is canceled
    codes = pool.cancel("a")
    # Then nothing changes
    assert codes == ["finished"]
    assert pool.job("a") == before
    assert pool.cancel("a") == ["finished"]


def test_canceled_job_canceled_again_is_finished(pool):
    # Given a canceled job
    pool.enqueue("a")
    pool.cancel("a")
    # When canceled again
    # Then it reads as finished
    assert pool.cancel("a") == ["finished"]


def test_unknown_job(pool, client):
    # Given no such job
    # When it is canceled
    codes = pool.cancel("nope")
    # Then it is unknown, and nothing is created
    assert codes == ["unknown"]
    assert pool.job("nope") == {}


def test_unknown_job_drops_stray_delayed_entry(pool, client):
    # Given a delayed entry whose status hash is gone
    client.zadd(pool.keys.delayed, {"ghost": 10**15})
    # When it is canceled
    codes = pool.cancel("ghost")
    # Then the stray entry is removed
    assert codes == ["unknown"]
    assert pool.zset(pool.keys.delayed) == {}


def test_codes_follow_id_order(pool):
    # Given a ready, a delayed, a running and a finished job
    pool.start("run")
    pool.start("fin")
    pool.complete(("fin", 1, "ok"))
    pool.enqueue("ready")
    pool.enqueue("later", schedule="after", schedule_ms=60_000)
    # When all of them and an unknown id are canceled in one call
    codes = pool.cancel("fin", "ready", "nope", "run", "later")
    # Then one code per id, in order
    assert codes == ["finished", "canceled", "unknown", "cancel_requested", "canceled"]
    assert pool.stream_ids() == []
    assert pool.zset(pool.keys.delayed) == {}
