"""End to end: a producer and a real worker process on a private redis-server."""

from __future__ import annotations

import jobs

from workpool import ResultKind, State


def test_action_runs_and_returns_its_value(make_pool, start_workers):
    # Given a pool and one worker
    pool = make_pool("pool")
    start_workers(1)
    # When an action is run
    value = pool.run_action(jobs.add, {"a": 2, "b": 3}, timeout=15)
    # Then its return value comes back
    assert value == 5


def test_async_function_and_current_job(make_pool, start_workers):
    pool = make_pool("pool")
    start_workers(1)
    assert pool.run_action("tests.async_add", {"a": 1, "b": 1}, timeout=15) == 2
    wid = pool.enqueue_query(jobs.job_info)
    result = pool.wait(wid, timeout=15)
    assert result.kind is ResultKind.SUCCESS
    assert result.return_value == {"work_id": wid, "pool": "pool", "attempt": 1, "kind": "query"}
    assert pool.status(wid).state is State.FINISHED
