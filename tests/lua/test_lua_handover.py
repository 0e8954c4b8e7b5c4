"""Direct hand-over: claim.lua's offers, enqueue.lua handing jobs to an offering worker's inbox,
and the reclaim of a handed job its worker never took."""

from __future__ import annotations

import msgpack
from helpers import settle

from workpool.scripts import handed_job, offer_member

O1 = offer_member("w1", 30_000, 1)
O2 = offer_member("w1", 30_000, 2)


def _inbox(pool, worker="w1"):
    return [handed_job(item) for item in pool.client.lrange(pool.keys.inbox(worker), 0, -1)]


def test_idle_claim_makes_an_offer_that_expires(pool):
    # Given an idle worker claiming with capacity left and an offer to make
    reply = pool.claim(capacity=2, offer=O1, offer_ttl_ms=7_000)
    # Then the offer stands in the idle set until its ttl, and the reply says so
    assert reply.offer_made and reply.offers_used == []
    assert pool.zset(pool.keys.idle) == {O1: reply.now_ms + 7_000}


def test_no_offer_without_capacity_left_or_without_asking(pool):
    # Given two ready jobs and a worker that can take exactly two
    pool.enqueue("a", "b")
    reply = pool.claim(capacity=2, offer=O1)
    # Then it takes both and makes no offer (nothing left to keep back)
    assert len(reply.jobs) == 2 and not reply.offer_made
    # And a claim without offers never writes the idle set
    assert not pool.claim(capacity=5).offer_made
    assert pool.client.exists(pool.keys.idle) == 0


def test_enqueue_hands_a_ready_job_to_the_offering_worker(pool):
    # Given a worker's standing offer
    assert pool.claim(capacity=1, offer=O1).offer_made
    pool.clear_wake()
    # When a job is enqueued while the pool has free slots
    code, _ = pool.enqueue("a", fn="send", kind="mutation", args=b"\x81\xa1k\x02", timeout_ms=900)
    assert code == 0
    # Then it is running under the worker's lease, never entered the stream, and woke nobody
    job = pool.job("a")
    assert (job["state"], job["worker"], job["attempts"]) == (b"running", b"w1", b"1")
    assert "sid" not in job
    assert pool.client.xlen(pool.keys.stream) == 0
    assert pool.zset(pool.keys.running)["a"] == int(job["started_at"]) + 30_000
    assert pool.wake_tokens() == 0
    # And it waits in the worker's inbox as claim would have handed it out, naming its offer
    [handed] = _inbox(pool)
    assert (handed.work_id, handed.function, handed.kind, handed.args) == (
        "a",
        "send",
        "mutation",
        b"\x81\xa1k\x02",
    )
    assert (handed.attempt, handed.timeout_ms, handed.offer) == (1, 900, O1)
    assert pool.client.pttl(pool.keys.inbox("w1")) > 30_000  # outlives the lease
    # And the offer is marked used, so it cannot take a second job
    assert pool.zset(pool.keys.idle)[O1] < 0
    pool.enqueue("b")
    assert pool.stream_work_ids() == ["b"]
    assert pool.wake_tokens() == 1


def test_each_offer_takes_one_job_of_a_batch(pool):
    # Given two workers' offers
    pool.claim(worker="w1", capacity=3, offer=O1)
    pool.claim(worker="w2", capacity=3, offer=offer_member("w2", 30_000, 1))
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
    pool.claim(capacity=1, offer=O1)
    # When a job is enqueued
    pool.enqueue("a")
    # Then it waits in the stream: the cap holds across hand-overs too
    assert pool.stream_work_ids() == ["a"]
    assert _inbox(pool) == []
    assert pool.zset(pool.keys.running).keys() == {"busy"}


def test_paused_pool_hands_nothing_over(pool):
    pool.set_cap(0)
    pool.claim(capacity=1, offer=O1)
    pool.enqueue("a")
    assert pool.stream_work_ids() == ["a"] and _inbox(pool) == []


def test_expired_offer_is_never_used_and_is_cleared(pool):
    # Given an offer whose ttl has passed (its worker died)
    pool.claim(capacity=1, offer=O1)
    pool.client.zadd(pool.keys.idle, {O1: pool.now_ms() - 1})
    # When a job is enqueued
    pool.enqueue("a")
    # Then it goes to the stream, and another worker's claim that makes an offer clears it
    assert pool.stream_work_ids() == ["a"] and _inbox(pool) == []
    pool.claim(worker="w2", capacity=2, offer=offer_member("w2", 30_000, 1))
    assert O1 not in pool.zset(pool.keys.idle)


def test_delayed_jobs_are_not_handed_over(pool):
    pool.claim(capacity=1, offer=O1)
    pool.enqueue("a", schedule="after", schedule_ms=60_000)
    assert _inbox(pool) == [] and pool.state("a") == "scheduled"


def test_a_used_offer_is_reported_and_its_unit_stays_spent(pool):
    # Given an offer an enqueue used, and two more ready jobs
    pool.claim(capacity=1, offer=O1)
    pool.enqueue("a")
    pool.enqueue("b", "c")
    # When the worker claims with capacity 1 besides the offer's unit
    reply = pool.claim(capacity=1, prev=(O1,))
    # Then it learns the offer was used (that unit is the job on its way) and takes only one
    assert reply.offers_used == [O1]
    assert [j.work_id for j in reply.jobs] == ["b"]
    # And the used mark stays, so the same claim sent again reads the same
    assert pool.zset(pool.keys.idle)[O1] < 0
    assert pool.claim(capacity=0, prev=(O1,)).offers_used == [O1]
    # And naming it done deletes it
    pool.claim(capacity=0, done=(O1,))
    assert O1 not in pool.zset(pool.keys.idle)


def test_an_unused_or_vanished_offer_gives_its_unit_back(pool):
    # Given a standing, unused offer, one that is gone, and three ready jobs
    pool.enqueue("a", "b", "c")
    pool.client.zadd(pool.keys.idle, {O1: pool.now_ms() + 10_000})
    # When the worker claims with capacity 1 besides both offers' units
    reply = pool.claim(capacity=1, prev=(O1, O2))
    # Then both units are its to use: it takes all three, and the offer is removed
    assert reply.offers_used == []
    assert [j.work_id for j in reply.jobs] == ["a", "b", "c"]
    assert O1 not in pool.zset(pool.keys.idle)


def test_withdraw_removes_the_offers_and_returns_the_inbox(pool):
    # Given a used offer with its job in the inbox
    pool.claim(capacity=2, offer=O1)
    pool.enqueue("a")
    # When the worker withdraws (stopping)
    jobs = pool.offer_withdraw(O1)
    # Then it gets the handed job, its inbox is gone and no enqueue can hand it more
    assert [j.work_id for j in jobs] == ["a"]
    assert pool.client.exists(pool.keys.inbox("w1")) == 0
    assert O1 not in pool.zset(pool.keys.idle)
    pool.enqueue("b")
    assert pool.stream_work_ids() == ["b"]


def test_withdraw_without_take_leaves_the_inbox(pool):
    pool.claim(capacity=2, offer=O1)
    pool.claim(capacity=2, prev=(O1,), offer=O2)
    pool.enqueue("a")
    assert pool.offer_withdraw(O1, O2, take=False) == []
    assert [j.work_id for j in _inbox(pool)] == ["a"]
    assert pool.zset(pool.keys.idle) == {}


def test_claim_empties_the_inbox_into_its_reply(pool):
    # Given a job handed to the worker's inbox (its waiter has not taken it)
    pool.claim(capacity=2, offer=O1)
    pool.enqueue("a")
    # When the worker claims again
    reply = pool.claim(capacity=1, prev=(O1,), offer=O2)
    # Then the reply carries the handed job besides what it claimed, and the inbox is empty
    assert [j.work_id for j in reply.handed] == ["a"] and reply.jobs == []
    assert pool.client.exists(pool.keys.inbox("w1")) == 0
    # And an item enqueue.lua never packed is dropped, not fatal to the claim
    pool.client.rpush(pool.keys.inbox("w1"), b"\xc1junk")
    assert pool.claim(capacity=1, prev=(O2,)).handed == []


def test_handed_job_completes_like_a_claimed_one(pool):
    pool.claim(capacity=1, offer=O1)
    pool.enqueue("a")
    [job] = _inbox(pool)
    assert pool.complete(("a", job.attempt, "ok", msgpack.packb(3))) == ["success"]
    assert pool.job("a")["result"] == b"success"
    assert pool.zset(pool.keys.running) == {}


def test_a_handed_job_its_worker_never_took_goes_back_unstarted(pool):
    # Given a mutation handed to w1, which died before taking it from its inbox
    pool.claim(capacity=1, offer=O1)
    pool.enqueue("m", kind="mutation")
    # When its lease expires and another worker claims
    pool.make_due("m", pool.keys.running)
    reply = pool.claim(worker="w2", capacity=1, lease_ms=settle(pool.client))
    # Then it is put back unstarted, no attempt spent, and taken by w2 as its first attempt
    assert reply.reclaimed == [("m", "undelivered")]
    assert [(j.work_id, j.attempt) for j in reply.jobs] == [("m", 1)]
    assert pool.job("m")["worker"] == b"w2"
    assert _inbox(pool) == []


def test_a_handed_job_its_worker_took_is_reclaimed_as_a_lost_run(pool):
    # Given a mutation handed to w1, which took it (its claim emptied the inbox) and died
    pool.claim(capacity=1, offer=O1)
    pool.enqueue("m", kind="mutation")
    assert [j.work_id for j in pool.claim(capacity=0, prev=(O1,)).handed] == ["m"]
    # When its lease expires
    pool.make_due("m", pool.keys.running)
    reply = pool.claim(worker="w2", capacity=1, lease_ms=settle(pool.client))
    # Then it may have run: a mutation fails "worker lost", exactly as a claimed one does
    assert reply.reclaimed == [("m", "failed")]


def test_an_idle_member_that_is_no_offer_is_dropped_not_used(pool):
    pool.client.zadd(pool.keys.idle, {"x/y": pool.now_ms() + 10_000})
    pool.enqueue("a")
    assert pool.stream_work_ids() == ["a"]
    assert pool.client.exists(pool.keys.idle) == 0


def test_old_used_marks_are_cleared(pool):
    # Given a used mark older than a day (its worker never came back)
    pool.client.zadd(pool.keys.idle, {"5/1/gone": -(pool.now_ms() - 90_000_000)})
    # When any worker claims with an offer to make
    pool.claim(worker="w2", capacity=1, offer=offer_member("w2", 30_000, 1))
    # Then the mark is gone
    assert "5/1/gone" not in pool.zset(pool.keys.idle)


def test_no_hand_over_while_older_jobs_wait_in_the_stream(pool):
    # Given a job waiting in the stream (a slot freed without a claim taking it, say) and a
    # worker's live offer
    pool.enqueue("queued")
    pool.client.zadd(pool.keys.idle, {O1: pool.now_ms() + 10_000})
    # When a newer job is enqueued
    pool.enqueue("newer")
    # Then it queues behind the older one instead of overtaking it, and the offer stays
    assert pool.stream_work_ids() == ["queued", "newer"]
    assert _inbox(pool) == [] and pool.zset(pool.keys.idle)[O1] > 0
    # And once the backlog is taken, the next job is handed over
    assert len(pool.claim(worker="w2", capacity=2).jobs) == 2
    pool.enqueue("next")
    assert [j.work_id for j in _inbox(pool)] == ["next"]


def test_a_handed_job_canceled_before_its_worker_took_it_never_starts(pool):
    # Given a job handed to w1, which died, then canceled (it reads as running: cancel asks)
    pool.claim(capacity=1, offer=O1)
    pool.enqueue("a")
    assert pool.cancel("a") == ["cancel_requested"]
    # When its lease expires and another worker claims
    pool.make_due("a", pool.keys.running)
    reply = pool.claim(worker="w2", capacity=1, lease_ms=settle(pool.client))
    # Then it finishes canceled and is not handed to anyone
    assert reply.reclaimed == [("a", "canceled")] and reply.jobs == []
    assert (pool.job("a")["state"], pool.job("a")["result"]) == (b"finished", b"canceled")
    assert _inbox(pool) == []


def test_a_popped_job_still_leased_to_its_attempt_goes_back_to_the_inbox(pool):
    # Given a job handed to w1 and popped by its waiter, which will not run it (stopping)
    pool.claim(capacity=1, offer=O1)
    pool.enqueue("a")
    item = pool.client.lpop(pool.keys.inbox("w1"))
    # When the waiter puts it back
    assert pool.inbox_return(handed_job(item), item)
    # Then it is at the head of the inbox again, kept long after any lease
    assert pool.client.lrange(pool.keys.inbox("w1"), 0, -1) == [item]
    assert pool.client.pttl(pool.keys.inbox("w1")) > 3_600_000
    # And the reclaim of its lease finds it there: back to the pool unstarted
    pool.make_due("a", pool.keys.running)
    reply = pool.claim(worker="w2", capacity=1, lease_ms=settle(pool.client))
    assert reply.reclaimed == [("a", "undelivered")]
    assert [(j.work_id, j.attempt) for j in reply.jobs] == [("a", 1)]


def test_a_popped_job_that_moved_on_is_not_put_back(pool):
    # Given a job handed to w1 whose waiter popped it, and whose lease was then taken back
    pool.claim(capacity=1, offer=O1)
    pool.enqueue("a")
    item = pool.client.lpop(pool.keys.inbox("w1"))
    pool.make_due("a", pool.keys.running)
    pool.claim(worker="w2", capacity=1, lease_ms=settle(pool.client))
    # When w1's waiter tries to put it back
    # Then nothing is written: the job belongs to w2 now
    assert not pool.inbox_return(handed_job(item), item)
    assert pool.client.exists(pool.keys.inbox("w1")) == 0
    # And neither for a finished job, nor under another worker's name
    pool.complete(("a", 1, "ok", msgpack.packb(1)), worker="w2")
    assert pool.job("a")["state"] == b"finished"
    assert not pool.inbox_return(handed_job(item), item, worker="w2")
    assert pool.client.exists(pool.keys.inbox("w1"), pool.keys.inbox("w2")) == 0
