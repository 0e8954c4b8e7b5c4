"""Faults: poison in Redis under a live worker. Stream entries with no pending job behind them are
moved to the dead stream, a job whose args are not msgpack fails naming msgpack, and a pool whose
keys are broken keeps failing on its own while the worker's other pools run on.
"""

from __future__ import annotations

import jobs
from helpers import wait_until

from workpool import ResultKind


def _dead(r, pool) -> list[dict[str, str]]:
    """The entries of a pool's dead stream, as str -> str dicts."""
    return [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _, fields in r.xrange(pool.keys.dead)
    ]


def test_foreign_stream_entry_is_moved_aside_and_the_worker_keeps_serving(
    r, make_pool, ready_workers, finished, log_events
):
    # Given a live worker on a pool
    pool = make_pool("poison_foreign")
    (worker,) = ready_workers(1, pools=("poison_foreign",))
    # When an entry not written by workpool lands in the pool's stream, ahead of a real job
    foreign_id = r.xadd(pool.keys.stream, {"foo": "bar"}).decode()
    wid = pool.enqueue_action(jobs.add, {"a": 1, "b": 2})
    # Then the real job runs and succeeds
    assert finished(pool, wid).return_value == 3
    # And the foreign entry was moved to the dead stream, saying why, and left the stream
    assert _dead(r, pool) == [
        {"reason": "no work id", "stream_id": foreign_id, "foo": "bar"},
    ]
    assert r.xlen(pool.keys.stream) == 0
    moved = log_events(worker, "entry_moved_aside")
    assert [e["stream_id"] for e in moved] == [foreign_id]
    # And the worker keeps serving
    assert pool.run_action(jobs.worker_pid, timeout=10) == worker.pid


def test_pending_job_whose_hash_was_deleted_is_moved_aside(r, make_pool, ready_workers, finished):
    # Given a live worker on a paused pool, with a pending job whose status hash is then deleted
    pool = make_pool("poison_nohash")
    (worker,) = ready_workers(1, pools=("poison_nohash",))
    pool.update_config(max_parallelism=0)
    orphan = pool.enqueue_action(jobs.add, {"a": 1, "b": 1})
    after = pool.enqueue_action(jobs.add, {"a": 2, "b": 2})
    r.delete(pool.keys.job(orphan))
    # When the pool is resumed
    pool.update_config(max_parallelism=1)
    # Then the job behind it runs, and the orphaned entry is moved aside
    assert finished(pool, after).return_value == 4
    dead = _dead(r, pool)
    assert [(d["reason"], d["id"]) for d in dead] == [("no job hash", orphan)]
    assert pool.result(orphan) is None
    assert worker.process.poll() is None


def test_pending_job_whose_key_has_the_wrong_type_is_moved_aside(
    r, make_pool, ready_workers, finished
):
    # Given a live worker on a paused pool, with a pending job whose key is then a string
    pool = make_pool("poison_type")
    (worker,) = ready_workers(1, pools=("poison_type",))
    pool.update_config(max_parallelism=0)
    broken = pool.enqueue_action(jobs.add, {"a": 1, "b": 1})
    after = pool.enqueue_action(jobs.add, {"a": 3, "b": 3})
    r.delete(pool.keys.job(broken))
    r.set(pool.keys.job(broken), "not a hash")
    # When the pool is resumed
    pool.update_config(max_parallelism=1)
    # Then the job behind it runs, and the broken entry is moved aside
    assert finished(pool, after).return_value == 6
    dead = _dead(r, pool)
    assert [(d["reason"], d["id"]) for d in dead] == [("job key of wrong type", broken)]
    # And the foreign value is left as it was
    assert r.get(pool.keys.job(broken)) == b"not a hash"
    assert worker.process.poll() is None


def test_job_whose_args_are_not_msgpack_fails_naming_msgpack(r, make_pool, ready_workers, finished):
    # Given an action with retries enqueued while no worker runs, its args then overwritten
    # with bytes that are not msgpack (0xc1 is never used by the format)
    pool = make_pool("poison_args")
    wid = pool.enqueue_action(jobs.add, {"a": 1, "b": 1}, retry=True)
    r.hset(pool.keys.job(wid), "args", b"\xc1")
    # When a worker starts
    (worker,) = ready_workers(1, pools=("poison_args",))
    # Then the job fails at once, naming msgpack, and is not retried (no retry can fix it)
    result = finished(pool, wid)
    assert result.kind is ResultKind.FAILED
    assert "msgpack" in result.error
    assert pool.status(wid).previous_attempts == 1
    # And the worker keeps serving
    assert pool.run_action(jobs.add, {"a": 2, "b": 5}, timeout=10) == 7
    assert worker.process.poll() is None


def test_pool_with_a_broken_delayed_key_fails_alone_while_other_pools_run(
    r, make_pool, ready_workers, finished, log_events
):
    # Given pool "bad" whose delayed set was replaced by a string, with a job waiting in it
    bad = make_pool("poison_bad")
    good = make_pool("poison_good")
    stuck = bad.enqueue_action(jobs.add, {"a": 0, "b": 0})
    r.delete(bad.keys.delayed)
    r.set(bad.keys.delayed, "not a zset")
    # When one worker serves both pools
    (worker,) = ready_workers(1, pools=("poison_bad", "poison_good"))

    def bad_failures() -> list[dict]:
        return [e for e in log_events(worker, "redis_call_failed") if e["pool"] == "poison_bad"]

    # Then claiming from "bad" keeps failing, and the worker log says so, again and again
    wait_until(lambda: len(bad_failures()) >= 3, 10, message="repeated claim failures on bad")
    assert all(e["operation"] == "claim" for e in bad_failures())
    assert "WRONGTYPE" in bad_failures()[0]["error"]
    # And the other pool keeps running jobs on the same worker
    wids = [good.enqueue_action(jobs.add, {"a": i, "b": 1}) for i in range(5)]
    assert [finished(good, w).return_value for w in wids] == [1, 2, 3, 4, 5]
    assert not any(e["pool"] == "poison_good" for e in log_events(worker, "redis_call_failed"))
    # And the broken pool's job stays unstarted, its failures still logged, the worker alive
    assert bad.result(stuck) is None
    before = len(bad_failures())
    wait_until(lambda: len(bad_failures()) > before, 10, message="bad to keep failing")
    assert worker.process.poll() is None


def test_duplicate_stream_entry_of_a_finished_job_does_not_run_it_again(
    r, make_pool, ready_workers, finished
):
    # Given a live worker and a job that has run and succeeded
    pool = make_pool("poison_dup")
    (worker,) = ready_workers(1, pools=("poison_dup",))
    wid = pool.enqueue_action(jobs.count_calls, {"key": "test:poison_dup:calls"})
    assert finished(pool, wid).return_value == 1
    # When a second stream entry for it appears (e.g. replayed by hand), ahead of a real job
    dup_id = r.xadd(pool.keys.stream, {"id": wid}).decode()
    after = pool.enqueue_action(jobs.add, {"a": 4, "b": 4})
    # Then the real job runs, the duplicate is moved aside, and the finished job did not run again
    assert finished(pool, after).return_value == 8
    assert _dead(r, pool) == [{"reason": "job finished", "stream_id": dup_id, "id": wid}]
    assert int(r.get("test:poison_dup:calls")) == 1
    assert finished(pool, wid).return_value == 1
    assert worker.process.poll() is None
