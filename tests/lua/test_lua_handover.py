"""Direct hand-over: claim.lua's offers, enqueue.lua handing jobs to an offering worker's inbox."""

from __future__ import annotations

import msgpack

from workpool.scripts import handed_job, offer_member

OFFER = offer_member("w1", 30_000)


def _inbox(pool, worker="w1"):
    return [handed_job(item) for item in pool.client.lrange(pool.keys.inbox(worker), 0, -1)]


def test_idle_claim_makes_an_offer_that_expires(pool):
    # Given an idle worker claiming with offers on and capacity left
    reply = pool.claim(capacity=2, offer=True, offer_ttl_ms=7_000)
    # Then an offer stands in the idle set until its ttl, and the reply says so
    assert reply.offer_made and not reply.offer_used
    assert pool.zset(pool.keys.idle) == {OFFER: reply.now_ms + 7_000}


def test_no_offer_without_capacity_left_or_without_asking(pool):
    # Given two ready jobs and a worker that can take exactly two
    pool.enqueue("a", "b")
    reply = pool.claim(capacity=2, offer=True)
    # Then it takes both and makes no offer (nothing left to keep back)
    assert len(reply.jobs) == 2 and not reply.offer_made
    # And a claim without offers never writes the idle set
    assert not pool.claim(capacity=5).offer_made
    assert pool.client.exists(pool.keys.idle) == 0


def test_enqueue_hands_a_ready_job_to_the_offering_worker(pool):
    # Given a worker's standing offer
    made = pool.claim(capacity=1, offer=True)
    assert made.offer_made
    pool.clear_wake()
    # When a job is enqueued while the pool has free slots
    assert (
        pool.enqueue("a", fn="send", kind="mutation", args=b"\x81\xa1k\x02", timeout_ms=900)[0] == 0
    )
    # Then it is running under the worker's lease, never entered the stream, and woke nobody
    job = pool.job("a")
    assert (job["state"], job["worker"], job["attempts"]) == (b"running", b"w1", b"1")
    assert "sid" not in job
    assert pool.client.xlen(pool.keys.stream) == 0
    lease = pool.zset(pool.keys.running)["a"]
    assert lease == int(job["started_at"]) + 30_000
    assert pool.wake_tokens() == 0
    # And it waits in the worker's inbox, as claim would have handed it out
    [handed] = _inbox(pool)
    assert (handed.work_id, handed.function, handed.kind, handed.args) == (
        "a",
        "send",
        "mutation",
        b"\x81\xa1k\x02",
    )
    assert (handed.attempt, handed.timeout_ms) == (1, 900)
    assert 0 < pool.client.pttl(pool.keys.inbox("w1")) <= 30_000
    # And the offer is marked used, so it cannot take a second job
    assert pool.zset(pool.keys.idle)[OFFER] < 0
    pool.enqueue("b")
    assert pool.stream_work_ids() == ["b"]
    assert pool.wake_tokens() == 1


def test_each_offer_takes_one_job_of_a_batch(pool):
    # Given two workers' offers
    pool.claim(worker="w1", capacity=3, offer=True)
    pool.claim(worker="w2", capacity=3, offer=True)
    # When a batch of three is enqueued
    pool.enqueue("a", "b", "c")
    # Then each worker is handed one, the third goes to the stream, and a token wakes for it
    handed = {j.work_id for j in _inbox(pool, "w1") + _inbox(pool, "w2")}
    assert len(handed) == 2 and handed | set(pool.stream_work_ids()) == {"a", "b", "c"}
    assert pool.wake_tokens() == 1


def test_no_hand_over_when_the_pool_has_no_free_slot(pool):
    # Given a pool at its cap of 1 and an idle worker's offer
    pool.set_cap(1)
    pool.start("busy", worker="w2")
    pool.claim(capacity=1, offer=True)
    # When a job is enqueued
    pool.enqueue("a")
    # Then it waits in the stream: the cap holds across hand-overs too
    assert pool.stream_work_ids() == ["a"]
    assert _inbox(pool) == []
    assert pool.zset(pool.keys.running).keys() == {"busy"}


def test_paused_pool_hands_nothing_over(pool):
    pool.set_cap(0)
    pool.claim(capacity=1, offer=True)
    pool.enqueue("a")
    assert pool.stream_work_ids() == ["a"] and _inbox(pool) == []


def test_expired_offer_is_never_used_and_is_cleared(pool):
    # Given an offer whose ttl has passed (its worker died)
    pool.claim(capacity=1, offer=True)
    pool.client.zadd(pool.keys.idle, {OFFER: pool.now_ms() - 1})
    # When a job is enqueued
    pool.enqueue("a")
    # Then it goes to the stream, and another worker's claim clears the dead offer
    assert pool.stream_work_ids() == ["a"] and _inbox(pool) == []
    pool.claim(worker="w2", capacity=1, offer=True)
    assert OFFER not in pool.zset(pool.keys.idle)


def test_delayed_jobs_are_not_handed_over(pool):
    pool.claim(capacity=1, offer=True)
    pool.enqueue("a", schedule="after", schedule_ms=60_000)
    assert _inbox(pool) == [] and pool.state("a") == "scheduled"


def test_next_claim_reports_a_used_offer_and_keeps_its_unit_spent(pool):
    # Given an offer that an enqueue used, and two more ready jobs
    pool.claim(capacity=1, offer=True)
    pool.enqueue("a")
    pool.enqueue("b", "c")
    # When the worker claims with capacity 1 plus its offer's unit
    reply = pool.claim(capacity=1, offer=True, offer_unit=1)
    # Then it learns the offer was used (that unit is the job on its way) and takes only one
    assert reply.offer_used
    assert [j.work_id for j in reply.jobs] == ["b"]
    assert not reply.offer_made


def test_next_claim_adds_an_unused_offers_unit(pool):
    # Given a standing, unused offer and two ready jobs put in the stream before it was made
    pool.enqueue("a", "b")
    pool.client.zadd(pool.keys.idle, {OFFER: pool.now_ms() + 10_000})
    # When the worker claims with capacity 1 plus its offer's unit
    reply = pool.claim(capacity=1, offer=True, offer_unit=1)
    # Then the unit is its to use: it takes both
    assert not reply.offer_used
    assert [j.work_id for j in reply.jobs] == ["a", "b"]


def test_withdraw_removes_the_offer_and_returns_the_inbox(pool):
    # Given a used offer with its job in the inbox
    pool.claim(capacity=2, offer=True)
    pool.enqueue("a")
    # When the worker withdraws (stopping)
    jobs = pool.offer_withdraw()
    # Then it gets the handed job, its inbox is gone and no enqueue can hand it more
    assert [j.work_id for j in jobs] == ["a"]
    assert pool.client.exists(pool.keys.inbox("w1")) == 0
    assert OFFER not in pool.zset(pool.keys.idle)
    pool.enqueue("b")
    assert pool.stream_work_ids() == ["b"]


def test_claim_empties_the_inbox_into_its_reply(pool):
    # Given a job handed to the worker's inbox (its waiter has not taken it)
    pool.claim(capacity=2, offer=True)
    pool.enqueue("a")
    # When the worker claims again
    reply = pool.claim(capacity=1, offer=True, offer_unit=1)
    # Then the reply carries the handed job besides what it claimed, and the inbox is empty
    assert [j.work_id for j in reply.handed] == ["a"] and reply.jobs == []
    assert pool.client.exists(pool.keys.inbox("w1")) == 0
    # And an item enqueue.lua never packed is dropped, not fatal to the claim
    pool.client.rpush(pool.keys.inbox("w1"), b"\xc1junk")
    assert pool.claim(capacity=1, offer=True, offer_unit=1).handed == []


def test_handed_job_completes_like_a_claimed_one(pool):
    pool.claim(capacity=1, offer=True)
    pool.enqueue("a")
    [job] = _inbox(pool)
    assert pool.complete(("a", job.attempt, "ok", msgpack.packb(3))) == ["success"]
    assert pool.job("a")["result"] == b"success"
    assert pool.zset(pool.keys.running) == {}


def test_old_used_marks_are_cleared(pool):
    # Given a used mark older than a day (its worker never came back)
    pool.client.zadd(pool.keys.idle, {"5/gone": -(pool.now_ms() - 90_000_000)})
    # When any worker claims with offers
    pool.claim(worker="w2", capacity=1, offer=True)
    # Then the mark is gone
    assert "5/gone" not in pool.zset(pool.keys.idle)


def test_a_foreign_idle_member_is_dropped_not_used(pool):
    pool.client.zadd(pool.keys.idle, {"no-slash": pool.now_ms() + 10_000})
    pool.enqueue("a")
    assert pool.stream_work_ids() == ["a"]
    assert pool.client.exists(pool.keys.idle) == 0
