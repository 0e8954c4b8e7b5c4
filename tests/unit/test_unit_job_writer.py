"""JobWriter: an enqueue retried after a lost reply is not written twice; id collisions redraw."""

from __future__ import annotations

import itertools

import jobs
import redis

import workpool.enqueue


def test_enqueue_whose_reply_was_lost_is_written_once(r, make_pool, monkeypatch):
    # Given a pool whose first enqueue call reaches Redis but loses its reply
    pool = make_pool("pool")
    real_enqueue = pool.scripts.enqueue
    lost = []

    class LosesFirstReply:
        def __init__(self, call):
            self.call = call

        def run(self, client):
            return self._lose_first(self.call.run(client))

        def run_on(self, conn):
            return self._lose_first(self.call.run_on(conn))

        def _lose_first(self, reply):
            if not lost:
                lost.append(reply)
                raise redis.ConnectionError("connection dropped before the reply")
            return reply

    monkeypatch.setattr(
        pool.scripts, "enqueue", lambda *a, **k: LosesFirstReply(real_enqueue(*a, **k))
    )
    # When a job is enqueued (the call is retried after the lost reply)
    work_id = pool.enqueue_action(jobs.add, {"a": 1, "b": 2})
    # Then the first try landed, and the retry recognised it instead of writing a second job
    assert lost
    assert r.xlen(pool.keys.stream) == 1
    assert len(list(r.scan_iter(match=pool.keys.job_prefix + "*"))) == 1
    assert pool.status(work_id).state == "pending"


def test_colliding_work_id_is_redrawn_and_the_existing_job_left_alone(r, make_pool, monkeypatch):
    # Given an existing job, and an id generator that first repeats its id
    pool = make_pool("pool")
    existing = pool.enqueue_action(jobs.add, {"a": 1, "b": 1})
    before = r.hgetall(pool.keys.job(existing))
    ids = itertools.chain([existing], (f"fresh{i}" for i in itertools.count()))
    monkeypatch.setattr(workpool.enqueue, "new_work_id", lambda: next(ids))
    # When another job is enqueued
    work_id = pool.enqueue_action(jobs.add, {"a": 2, "b": 2})
    # Then it got a fresh id, and the existing job is untouched
    assert work_id == "fresh0"
    assert r.hgetall(pool.keys.job(existing)) == before
    assert r.xlen(pool.keys.stream) == 2
