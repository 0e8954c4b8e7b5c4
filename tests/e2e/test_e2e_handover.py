"""End to end: direct hand-over. An idle worker of one pool offers to take a job; an enqueue that
finds a free slot writes the job running in its name and pushes it to its inbox, so it starts
without a trip through the stream. The cap, the worker's concurrency, stopping and crash recovery
hold exactly as for claimed work.
"""

from __future__ import annotations

import signal
import time

import jobs
import redis
from helpers import settle, wait_until

from workers.consumer import PoolConsumer
from workpool import ResultKind
from workpool.keys import PoolKeys
from workpool.scripts import own_connection


def _live_offers(r: redis.Redis, keys: PoolKeys) -> list[str]:
    now_ms = int(time.time() * 1000)
    return [m.decode() for m, s in r.zrange(keys.idle, 0, -1, withscores=True) if s > now_ms]


def test_an_idle_worker_is_handed_a_job_without_the_stream(r, make_pool, ready_workers, finished):
    # Given an idle worker with an offer standing
    pool = make_pool("hand")
    (worker,) = ready_workers(1, pools=("hand",))
    keys = PoolKeys.for_pool("hand")
    wait_until(lambda: _live_offers(r, keys), 5, message="the worker's offer")
    stream_before = r.xinfo_stream(keys.stream)["last-generated-id"]
    # When a job is enqueued
    wid = pool.enqueue_action(jobs.worker_pid, {})
    # Then that worker runs it, and no stream entry was ever written for it
    result = finished(pool, wid)
    assert result.kind is ResultKind.SUCCESS and result.return_value == worker.pid
    assert r.xinfo_stream(keys.stream)["last-generated-id"] == stream_before
    # And the worker offers again for the next job
    wait_until(lambda: _live_offers(r, keys), 5, message="a renewed offer")


def test_handed_jobs_keep_the_worker_within_its_concurrency(r, make_pool, ready_workers):
    # Given one worker of concurrency 2 in a pool whose cap (10) is no limit
    pool = make_pool("hand_conc", max_parallelism=10)
    ready_workers(1, pools=("hand_conc",), concurrency=2)
    keys = PoolKeys.for_pool("hand_conc")
    wait_until(lambda: _live_offers(r, keys), 5, message="the worker's offer")
    # When 40 jobs are enqueued one call at a time, so many meet a standing offer
    ids = []
    for _ in range(40):
        ids.append(pool.enqueue_action(jobs.measured, {"seconds": 0.01}))
        time.sleep(0.002)  # pacing only: lets offers be made between enqueues
    # Then all of them run, and never more than 2 at once
    wait_until(
        lambda: all(pool.result(w) is not None for w in ids),
        20,
        message="all 40 jobs to finish",
    )
    assert {pool.result(w).kind for w in ids} == {ResultKind.SUCCESS}
    assert int(r.get("test:hand_conc:peak")) <= 2


def test_a_stopping_worker_gets_back_what_was_handed_to_it(r, make_pool):
    # Given a worker's consumer whose claim left an offer, and a job handed under it
    pool = make_pool("hand_stop")
    keys = PoolKeys.for_pool("hand_stop")
    posted: list[object] = []
    consumer = PoolConsumer(
        "hand_stop", r, worker_id="w-stop", lease_ms=30_000, post=posted.append, offers=True
    )
    consumer.register(["jobs.add"])
    assert consumer.claim(2).offer_made
    wid = pool.enqueue_action(jobs.add, {"a": 1, "b": 2})
    assert r.hget(keys.job(wid), "worker") == b"w-stop"
    # When it stops
    handed = consumer.stop()
    consumer.close()
    # Then it gets the job to run (it is leased to it), and its offer is gone
    assert [job.work_id for job in handed] == [wid]
    assert _live_offers(r, keys) == []
    assert r.exists(keys.inbox("w-stop")) == 0


def test_a_job_the_waiter_pops_once_stopping_goes_back_unstarted(r, make_pool):
    # Given a worker's consumer whose offer was used: a job is in its inbox, leased for 0.5 s
    lease_ms = settle(r, 500)
    pool = make_pool("hand_late")
    keys = PoolKeys.for_pool("hand_late")
    posted: list[object] = []
    consumer = PoolConsumer(
        "hand_late", r, worker_id="w-late", lease_ms=lease_ms, post=posted.append, offers=True
    )
    consumer.register(["jobs.add"])
    assert consumer.claim(2).offer_made
    wid = pool.enqueue_action(jobs.add, {"a": 1, "b": 2})
    # When the consumer stops, leaving its inbox (the dispatcher will run nothing more), and
    # only then does its waiter, late, pop the job
    assert consumer.stop(take_inbox=False) == []
    item = r.lpop(keys.inbox("w-late"))
    conn = own_connection(r)
    try:
        consumer._deliver_handed(conn, item)
    finally:
        conn.disconnect()
    consumer.close()
    # Then the job is not posted to the stopped dispatcher but put back in the inbox
    assert posted == []
    assert r.lrange(keys.inbox("w-late"), 0, -1) == [item]
    assert r.pttl(keys.inbox("w-late")) > 0
    # And once its lease expires another worker gets it on its first attempt: it never ran
    other = PoolConsumer("hand_late", r, worker_id="w-other", lease_ms=lease_ms, post=posted.append)
    claimed = wait_until(lambda: other.claim(1).jobs, 5, message="the job back in the pool")
    other.close()
    assert [(job.work_id, job.attempt) for job in claimed] == [(wid, 1)]
    assert r.exists(keys.inbox("w-late")) == 0


def test_a_job_handed_to_a_dead_worker_runs_elsewhere_unharmed(
    r, make_pool, ready_workers, finished
):
    # Given an idle worker A (lease 1 s) whose offer stands
    settle(r, 1000)
    pool = make_pool("hand_dead")
    keys = PoolKeys.for_pool("hand_dead")
    (a,) = ready_workers(1, pools=("hand_dead",), extra_args=("--lease", "1"))
    wait_until(lambda: _live_offers(r, keys), 5, message="A's offer")
    # When A is killed with SIGKILL, and a mutation (no retries) is enqueued while A's offer
    # still stands, so it is handed to A
    a.signal(signal.SIGKILL)
    assert a.wait(5) == -signal.SIGKILL
    [offer] = _live_offers(r, keys)
    wid = pool.enqueue_mutation(jobs.worker_pid, {})
    assert r.hget(keys.job(wid), "worker").decode() == offer.split("/", 2)[2]
    # Then a live worker puts it back when A's lease expires (A never took it) and runs it: it
    # succeeds on its first attempt, not failed as "worker lost"
    (b,) = ready_workers(1, pools=("hand_dead",), extra_args=("--lease", "1"))
    result = finished(pool, wid, 10)
    assert result.kind is ResultKind.SUCCESS and result.return_value == b.pid
    assert pool.status(wid).previous_attempts == 1
