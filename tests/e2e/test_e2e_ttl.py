"""End to end: finished statuses expire after status_ttl, and a drained pool leaves no garbage."""

from __future__ import annotations

import math

import jobs
from helpers import wait_until

from workpool import ResultKind, RetryBehavior, State
from workpool.keys import PoolKeys


def test_finished_status_expires_after_status_ttl(r, make_pool, ready_workers, job_key):
    # Given a pool keeping statuses for 0.5 s
    pool = make_pool("ttl", status_ttl=0.5)
    ready_workers(1, pools=("ttl",))
    # When a job finishes
    wid = pool.enqueue_action(jobs.add, {"a": 1, "b": 2})
    result = wait_until(lambda: pool.result(wid), 10, message="the job to finish")
    # Then its status and result are readable, with the TTL running
    assert result.kind is ResultKind.SUCCESS
    assert 0 < r.pttl(job_key(pool, wid)) <= 500
    # And after the TTL it reads as unknown, with no result
    wait_until(lambda: pool.status(wid).state is State.UNKNOWN, 5, message="the status to expire")
    assert pool.result(wid) is None
    assert not r.exists(job_key(pool, wid))


def test_infinite_status_ttl_keeps_status_forever(r, make_pool, ready_workers, job_key, finished):
    # Given a pool keeping statuses forever
    pool = make_pool("ttl", status_ttl=math.inf)
    ready_workers(1, pools=("ttl",))
    # When a job finishes
    wid = pool.enqueue_action(jobs.add, {"a": 1, "b": 2})
    assert finished(pool, wid).return_value == 3
    # Then its status hash has no TTL at all
    assert r.ttl(job_key(pool, wid)) == -1
    assert pool.status(wid).state is State.FINISHED


def test_status_ttl_starts_only_after_the_callback_ran(
    r, make_pool, ready_workers, job_key, callback_records
):
    # Given a pool keeping statuses for 0.5 s
    pool = make_pool("ttl", status_ttl=0.5)
    ready_workers(1, pools=("ttl",))
    # When a job finishes whose callback fails twice (backing off ~0.4-1.1 s) before returning
    wid = pool.enqueue_action(
        jobs.add, {"a": 2, "b": 2}, on_complete=jobs.flaky_callback, context={"failures": 2}
    )
    key = job_key(pool, wid)
    wait_until(lambda: pool.status(wid).state is State.FINISHED, 10, message="the job to finish")
    # Then while its callback has not run, the status has no TTL
    ttl_before = r.pttl(key)
    assert callback_records(wid) == []
    assert ttl_before == -1
    # And once the callback has run (with the job's result, so the status was still there)
    record = wait_until(lambda: callback_records(wid), 10, message="the callback")[0]
    assert record["kind"] == "success"
    assert record["return_value"] == 4
    # Then the TTL starts
    ttl_after = wait_until(lambda: (t := r.pttl(key)) != -1 and t, 5, message="the TTL to start")
    assert 0 < ttl_after <= 500
    # And the status then expires
    wait_until(lambda: pool.status(wid).state is State.UNKNOWN, 5, message="the status to expire")


def test_drained_pool_leaves_only_its_constant_keys(r, make_pool, ready_workers, callback_records):
    # Given a pool with a short status TTL and a worker
    pool = make_pool("mem", status_ttl=0.2, max_parallelism=8)
    ready_workers(1, pools=("mem",), concurrency=8)
    keys = PoolKeys.for_pool("mem")
    # When a mixed backlog drains: plain, delayed, retried, called-back and canceled work
    pool.enqueue_action_batch(jobs.add, [{"a": n, "b": 1} for n in range(300)])
    pool.enqueue_action_batch(jobs.add, [{"a": 0, "b": 0}] * 20, run_after=0.2)
    pool.enqueue_action_batch(
        jobs.fail_times,
        [{"key": f"test:mem:{n}", "failures": 1} for n in range(10)],
        retry=RetryBehavior(max_attempts=2, initial_backoff_ms=20, base=2),
    )
    pool.enqueue_action_batch(
        jobs.add, [{"a": 1, "b": 1}] * 20, on_complete=jobs.on_done, context="x"
    )
    canceled = pool.enqueue_action_batch(jobs.add, [{"a": 1, "b": 1}] * 5, run_after=30)
    assert all(pool.cancel(w) for w in canceled)
    # (statuses expire as they go, so progress is read from the pool's counters)
    executions = 300 + 20 + 10 * 2 + 20
    wait_until(
        lambda: (
            (s := pool.stats()).recent_executions == executions
            and (s.pending, s.running, s.scheduled) == (0, 0, 0)
        ),
        20,
        message="the backlog to drain",
    )
    wait_until(lambda: len(callback_records()) == 20, 10, message="20 callbacks")
    assert {rec["kind"] for rec in callback_records()} == {"success"}
    # Then every job's status hash expires
    wait_until(
        lambda: not any(r.scan_iter(match=keys.job_prefix + "*", count=1000)),
        10,
        message="every job hash to expire",
    )
    # And what remains of the pool is only its small constant keys and expiring stats buckets
    remaining = {k.decode() for k in r.scan_iter(match=f"workpool:{{{pool.name}}}:*")}
    stats_buckets = {k for k in remaining if k.startswith(keys.stats_prefix)}
    constant = {keys.stream, keys.config, keys.functions, keys.wake, keys.idle}
    assert remaining - stats_buckets <= constant
    # (the idle set holds at most one offer per worker)
    assert r.zcard(keys.idle) <= 1
    assert all(r.ttl(k) > 0 for k in stats_buckets)
    # And the stream, delayed, running and callback structures are empty
    assert r.xlen(keys.stream) == 0
    assert [g["pending"] for g in r.xinfo_groups(keys.stream)] == [0]
    assert r.zcard(keys.delayed) == r.zcard(keys.running) == r.zcard(keys.callbacks) == 0
    assert r.llen(keys.wake) <= 1
