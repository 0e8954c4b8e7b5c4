"""End to end: the global per-pool cap across worker processes, sync and async, pause/resume."""

from __future__ import annotations

import time

import jobs
from helpers import wait_until

from workpool import ResultKind, State


def _peak(r, pool: str) -> int:
    return int(r.get(f"test:{pool}:peak") or 0)


def _started(r, pool: str) -> list[float]:
    """Start times (epoch s) that `measured` jobs of `pool` recorded, oldest first."""
    return [
        float(entry.decode().split(":")[1]) for entry in r.lrange(f"test:{pool}:started", 0, -1)
    ]


def test_cap_holds_exactly_across_three_worker_processes(r, make_pool, ready_workers, all_finished):
    # Given a pool capped at 3 and three workers with 2 free slots each (6 in all): the cap
    # binds, and no single worker can fill it alone
    pool = make_pool("capped", max_parallelism=3)
    workers = ready_workers(3, pools=("capped",), concurrency=2)
    # When 30 jobs that count how many of them run at once are enqueued
    ids = pool.enqueue_action_batch(jobs.measured_pid, [{"seconds": 0.05}] * 30)
    # Then every one finishes successfully
    all_finished(pool, ids)
    results = [pool.result(w) for w in ids]
    assert all(res.kind is ResultKind.SUCCESS for res in results)
    # And the jobs themselves never saw more than 3 running at once, and did see 3
    assert _peak(r, "capped") == 3
    assert r.llen("test:capped:started") == 30
    assert int(r.get("test:capped:now")) == 0
    # And the work was shared by more than one worker process
    pids = {res.return_value for res in results}
    assert pids <= {w.pid for w in workers}
    assert len(pids) >= 2


def test_two_pools_have_independent_caps(r, make_pool, ready_workers, all_finished):
    # Given pool "one" capped at 1 and pool "four" capped at 4, served by the same two workers
    one = make_pool("one", max_parallelism=1)
    four = make_pool("four", max_parallelism=4)
    ready_workers(2, pools=("one", "four"), concurrency=5)
    # When both pools get a backlog at the same time
    ids_one = one.enqueue_action_batch(jobs.measured, [{"seconds": 0.05}] * 6)
    ids_four = four.enqueue_action_batch(jobs.measured, [{"seconds": 0.05}] * 24)
    # Then all of it finishes
    all_finished(one, ids_one)
    all_finished(four, ids_four)
    # And each pool reached exactly its own cap, never more
    assert _peak(r, "one") == 1
    assert _peak(r, "four") == 4
    # And the busy pool did not hold the small one back until it was done
    assert min(_started(r, "one")) < max(_started(r, "four"))


def test_sync_and_async_functions_run_and_async_respects_the_cap(
    r, make_pool, ready_workers, all_finished
):
    # Given a pool capped at 3 and one worker with 8 slots
    pool = make_pool("mixed", max_parallelism=3)
    ready_workers(1, pools=("mixed",), concurrency=8)
    # When a sync and an async function are run
    # Then both return their values
    assert pool.run_action(jobs.add, {"a": 20, "b": 22}, timeout=15) == 42
    assert pool.run_action("tests.async_add", {"a": 1, "b": 2}, timeout=15) == 3
    # When 15 async jobs that count themselves are enqueued
    ids = pool.enqueue_action_batch(jobs.measured_async, [{"seconds": 0.05}] * 15)
    # Then they all succeed, and at most 3 (and at some point exactly 3) ran at once
    all_finished(pool, ids)
    assert {pool.result(w).kind for w in ids} == {ResultKind.SUCCESS}
    assert [pool.result(w).return_value for w in ids] == ids
    assert _peak(r, "mixed") == 3


def test_pause_starts_nothing_and_resume_wakes_idle_workers_promptly(
    r, make_pool, ready_workers, finished, all_finished
):
    # Given a pool capped at 2 with one worker that runs a job until released
    pool = make_pool("pausable", max_parallelism=2)
    ready_workers(1, pools=("pausable",), concurrency=4)
    running = pool.enqueue_action(jobs.block_until, {"key": "test:pause"})
    wait_until(lambda: r.exists("test:pause:started"), 10, message="the blocking job to start")
    # When the pool is paused and more work arrives while the worker has free slots
    assert pool.update_config(max_parallelism=0) == 2
    waiting = pool.enqueue_action_batch(jobs.measured, [{"seconds": 0.01}] * 3)
    time.sleep(0.5)  # proving a negative: nothing may start during this period
    # Then none of it starts
    assert r.llen("test:pausable:started") == 0
    assert {s.state for s in pool.status_batch(waiting)} == {State.PENDING}
    assert pool.stats().pending == 3
    # When the work that was already running is released
    r.set("test:pause:release", 1)
    # Then it still finishes successfully
    assert finished(pool, running).return_value == "released"
    time.sleep(0.3)  # proving a negative: the freed slot must not start anything while paused
    assert r.llen("test:pausable:started") == 0
    # When the pool is resumed
    resumed_at = time.time()
    assert pool.update_config(max_parallelism=2) == 0
    # Then everything waiting finishes
    all_finished(pool, waiting)
    assert {pool.result(w).kind for w in waiting} == {ResultKind.SUCCESS}
    # And the idle worker was woken at once, not by its 5 s safety poll
    first_start = min(_started(r, "pausable"))
    assert first_start - resumed_at < 1.0
