"""End to end: a 10,000-job batch lands all at once and drains completely."""

from __future__ import annotations

import threading

import jobs
from helpers import wait_until

from workpool import State
from workpool.keys import PoolKeys

BATCH = 10_000


def _in_system(pool) -> int:
    """Jobs of the pool that are waiting, running, or ended recently (one atomic snapshot)."""
    s = pool.stats()
    return s.pending + s.running + s.scheduled + s.recent_executions


def test_ten_thousand_job_batch_is_atomic_and_all_succeed(r, make_pool, ready_workers):
    # Given a pool capped at 16 and, for now, no workers
    pool = make_pool("bulk", max_parallelism=16)
    keys = PoolKeys.for_pool("bulk")
    seen: set[int] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.add(r.xlen(keys.stream))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    # When 10,000 actions are enqueued in one batch while another client watches the queue
    try:
        ids = pool.enqueue_action_batch(jobs.add, [{"a": n, "b": 1} for n in range(BATCH)])
    finally:
        stop.set()
        watcher.join(timeout=5)
    # Then the ids are unique, and the watcher never saw part of the batch
    assert len(ids) == BATCH
    assert len(set(ids)) == BATCH
    assert seen <= {0, BATCH}
    # And all of it is visible right after the call returns
    assert pool.stats().pending == BATCH
    # When two workers with 8 slots each serve the pool
    ready_workers(2, pools=("bulk",), concurrency=8)
    # Then at every moment every job is accounted for (waiting, running or ended)
    for _ in range(5):
        assert _in_system(pool) == BATCH
    # And all of them finish
    wait_until(lambda: pool.stats().recent_executions >= BATCH, 60, message="the batch to drain")
    stats = pool.stats()
    assert (stats.pending, stats.running, stats.scheduled) == (0, 0, 0)
    assert stats.recent_executions == BATCH
    assert stats.recent_error_rate == 0.0
    # And every one succeeded with its own value
    assert {s.state for s in pool.status_batch(ids)} == {State.FINISHED}
    pipe = r.pipeline(transaction=False)
    for wid in ids:
        pipe.hget(keys.job(wid), "result")
    assert set(pipe.execute()) == {b"success"}
    for n in (0, 1234, BATCH - 1):
        assert pool.result(ids[n]).return_value == n + 1
