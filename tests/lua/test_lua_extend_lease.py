"""extend_lease.lua: renewing jobs, callbacks and thread slots; what is reported lost."""

from __future__ import annotations

from helpers import snapshot


def _leased_callback(pool, work_id="a", worker="w1"):
    """A job that succeeded, whose callback is leased to `worker` on attempt 1."""
    pool.start(work_id, on_complete="cb")
    assert pool.complete((work_id, 1, "ok")) == ["success"]
    [cb] = pool.claim(worker=worker, capacity=1).callbacks
    assert (cb.work_id, cb.attempt) == (work_id, 1)


def _timed_out(pool, work_id="a"):
    """A job whose attempt 1 timed out: its thread holds the slot 'thread:<id>:1'."""
    pool.start(work_id)
    assert pool.complete((work_id, 1, "timeout", b"timeout")) == ["failed"]
    slot = f"thread:{work_id}:1"
    assert slot in pool.zset(pool.keys.running)
    return slot


# -- renewed --------------------------------------------------------------------------------------


def test_owned_job_lease_moves_to_now_plus_lease(pool):
    # Given a job running on attempt 1 for w1 under a 30 s lease
    pool.start("a")
    # When w1 renews it for 90 s
    before = pool.now_ms()
    lost = pool.extend_lease(("job", "a", 1), lease_ms=90_000)
    after = pool.now_ms()
    # Then nothing is lost and the deadline is 90 s from now
    assert lost == []
    deadline = pool.zset(pool.keys.running)["a"]
    assert before + 90_000 <= deadline <= after + 90_000
    # And the job itself is unchanged
    assert pool.job("a")["state"] == b"running"


def test_renewal_revives_an_expired_but_unclaimed_lease(pool):
    # Given a job whose lease expired but that nobody took back yet
    pool.start("a")
    pool.make_due("a", pool.keys.running)
    # When its worker renews it
    lost = pool.extend_lease(("job", "a", 1), lease_ms=60_000)
    # Then the lease is live again
    assert lost == []
    assert pool.zset(pool.keys.running)["a"] > pool.now_ms()


def test_owned_callback_lease_is_renewed(pool):
    # Given a callback leased to w1
    _leased_callback(pool)
    # When w1 renews it for 90 s
    before = pool.now_ms()
    lost = pool.extend_lease(("callback", "a", 1), lease_ms=90_000)
    after = pool.now_ms()
    # Then its deadline in the callbacks set moves
    assert lost == []
    deadline = pool.zset(pool.keys.callbacks)["a"]
    assert before + 90_000 <= deadline <= after + 90_000
    assert pool.zset(pool.keys.running) == {}


def test_thread_slot_lease_is_renewed(pool):
    # Given a timed-out thread's slot under a 30 s lease
    slot = _timed_out(pool)
    # When its worker renews it for 90 s
    before = pool.now_ms()
    lost = pool.extend_lease(("slot", slot, 1), lease_ms=90_000)
    after = pool.now_ms()
    # Then the slot's deadline moves
    assert lost == []
    assert before + 90_000 <= pool.zset(pool.keys.running)[slot] <= after + 90_000


def test_everything_a_worker_holds_is_renewed_in_one_call(pool):
    # Given w1 holding a job, a callback and a thread slot
    slot = _timed_out(pool, "t")
    _leased_callback(pool, "c")
    pool.start("j")
    # When it renews them all
    lost = pool.extend_lease(
        ("job", "j", 1), ("callback", "c", 1), ("slot", slot, 1), lease_ms=90_000
    )
    # Then all three get the same new deadline
    assert lost == []
    running = pool.zset(pool.keys.running)
    assert running["j"] == running[slot] == pool.zset(pool.keys.callbacks)["c"]


# -- lost -----------------------------------------------------------------------------------------


def test_job_owned_by_another_worker_is_lost_and_untouched(pool, client):
    # Given a job running for w2
    pool.start("a", worker="w2")
    before = snapshot(client)
    # When w1 tries to renew it
    lost = pool.extend_lease(("job", "a", 1), worker="w1", lease_ms=90_000)
    # Then it is reported lost and nothing changes
    assert lost == [("job", "a")]
    assert snapshot(client) == before


def test_job_taken_over_on_a_later_attempt_is_lost(pool, client):
    # Given a job w1 ran on attempt 1 that is now running again on attempt 2 (for w1 itself)
    pool.start("a", max_attempts=3)
    assert pool.complete(("a", 1, "error", b"boom")) == ["retry"]
    pool.make_due("a")
    assert [j.attempt for j in pool.claim().jobs] == [2]
    before = snapshot(client)
    # When a renewal for attempt 1 arrives
    lost = pool.extend_lease(("job", "a", 1), lease_ms=90_000)
    # Then attempt 1 is lost, and attempt 2's lease is not moved
    assert lost == [("job", "a")]
    assert snapshot(client) == before


def test_finished_job_is_lost_and_not_put_back(pool):
    # Given a job that finished
    pool.start("a")
    pool.complete(("a", 1, "ok"))
    # When its worker renews it
    lost = pool.extend_lease(("job", "a", 1))
    # Then it is lost and does not reappear in the running set
    assert lost == [("job", "a")]
    assert pool.zset(pool.keys.running) == {}


def test_job_with_no_status_hash_is_lost(pool):
    # Given no job "ghost" at all
    # When a worker renews it
    lost = pool.extend_lease(("job", "ghost", 1))
    # Then it is lost and nothing is created
    assert lost == [("job", "ghost")]
    assert pool.client.exists(pool.keys.running) == 0


def test_owned_job_missing_from_running_set_is_lost_and_not_readded(pool):
    # Given a job still marked running for w1 whose running-set member was removed
    pool.start("a")
    pool.client.zrem(pool.keys.running, "a")
    # When w1 renews it
    lost = pool.extend_lease(("job", "a", 1))
    # Then it is lost and no slot is taken again
    assert lost == [("job", "a")]
    assert pool.zset(pool.keys.running) == {}


def test_callback_owned_by_another_worker_is_lost(pool, client):
    # Given a callback leased to w2
    _leased_callback(pool, worker="w2")
    before = snapshot(client)
    # When w1 tries to renew it
    lost = pool.extend_lease(("callback", "a", 1), worker="w1")
    # Then it is lost and nothing changes
    assert lost == [("callback", "a")]
    assert snapshot(client) == before


def test_callback_on_another_attempt_is_lost(pool):
    # Given a callback leased to w1 on attempt 1
    _leased_callback(pool)
    # When a renewal for attempt 2 arrives
    lost = pool.extend_lease(("callback", "a", 2))
    # Then it is lost
    assert lost == [("callback", "a")]


def test_done_callback_is_lost_and_not_put_back(pool):
    # Given a callback that already returned
    _leased_callback(pool)
    assert pool.complete_callback(("a", 1, "")) == ["done"]
    # When its worker renews it
    lost = pool.extend_lease(("callback", "a", 1))
    # Then it is lost and does not reappear in the callbacks set
    assert lost == [("callback", "a")]
    assert pool.zset(pool.keys.callbacks) == {}


def test_gone_slot_is_lost_and_not_readded(pool):
    # Given a thread slot that was released
    slot = _timed_out(pool)
    assert pool.complete(("a", 1, "release")) == ["released"]
    # When the worker renews it
    lost = pool.extend_lease(("slot", slot, 1))
    # Then it is lost and the slot is not taken again
    assert lost == [("slot", slot)]
    assert pool.zset(pool.keys.running) == {}


def test_only_lost_items_are_reported_in_order(pool):
    # Given w1 holding "a", while "b" belongs to w2 and "ghost" does not exist
    pool.start("a")
    pool.start("b", worker="w2")
    # When w1 renews all three plus a missing slot
    lost = pool.extend_lease(
        ("job", "ghost", 1), ("job", "a", 1), ("slot", "thread:x:1", 1), ("job", "b", 1)
    )
    # Then only the three it does not hold are reported, in the order given
    assert lost == [("job", "ghost"), ("slot", "thread:x:1"), ("job", "b")]


def test_empty_renewal_is_a_no_op(pool, client):
    # Given a running job
    pool.start("a")
    before = snapshot(client)
    # When a worker renews nothing
    lost = pool.extend_lease()
    # Then nothing is reported or changed
    assert lost == []
    assert snapshot(client) == before
