"""End to end: a worker stops gracefully on SIGTERM, and at once on a second signal."""

from __future__ import annotations

import signal
import subprocess
import time

import jobs
import pytest
from helpers import wait_until

from workpool import ResultKind, State


def _running_blocked(pool, r, key: str) -> str:
    wid = pool.enqueue_action(jobs.block_until, {"key": key})
    wait_until(lambda: r.exists(f"{key}:started"), 10, message=f"{key} to start")
    return wid


def test_sigterm_drains_running_work_takes_nothing_new_and_exits_0(
    r, make_pool, ready_workers, logged, finished
):
    # Given a worker with free slots running one job
    pool = make_pool("drain")
    (worker,) = ready_workers(1, pools=("drain",), concurrency=4)
    running = _running_blocked(pool, r, "test:drain")
    # When it gets SIGTERM
    worker.signal(signal.SIGTERM)
    wait_until(lambda: logged(worker, "worker_stopping"), 10, message="worker_stopping")
    # Then it takes no new work while it drains, though it has free slots
    late = pool.enqueue_action(jobs.record_pid, {"key": "test:drain:pids"})
    time.sleep(0.5)  # proving a negative: the draining worker must not start it
    assert pool.status(late).state is State.PENDING
    assert r.llen("test:drain:pids") == 0
    assert worker.process.poll() is None
    # When the running job is released
    r.set("test:drain:release", 1)
    # Then the worker exits 0 and the job it drained succeeded
    assert worker.wait(10) == 0
    assert finished(pool, running).kind is ResultKind.SUCCESS
    assert pool.status(late).state is State.PENDING
    # And a new worker runs the job that arrived during the drain
    (successor,) = ready_workers(1, pools=("drain",))
    assert finished(pool, late).return_value == successor.pid


def test_second_signal_exits_at_once_with_nonzero_status(r, make_pool, ready_workers, logged):
    # Given a worker draining a job that will not end by itself
    pool = make_pool("drain")
    (worker,) = ready_workers(1, pools=("drain",))
    running = _running_blocked(pool, r, "test:kill")
    worker.signal(signal.SIGTERM)
    wait_until(lambda: logged(worker, "worker_stopping"), 10, message="worker_stopping")
    # When it gets a second signal
    worker.signal(signal.SIGTERM)
    # Then it exits at once, with a non-zero status, not waiting for the job
    try:
        code = worker.wait(3)
    except subprocess.TimeoutExpired:
        pytest.fail("the worker did not exit on the second signal")
    assert code != 0
    assert pool.result(running) is None


def test_work_arriving_during_a_drain_goes_to_another_idle_worker_promptly(
    r, make_pool, ready_workers, logged, finished
):
    # Given two idle-capable workers, one of them (A) running a job
    pool = make_pool("handover")
    (a,) = ready_workers(1, pools=("handover",), concurrency=4)
    _running_blocked(pool, r, "test:handover")
    (b,) = ready_workers(1, pools=("handover",), concurrency=4)
    # When A is told to stop, then new work arrives
    a.signal(signal.SIGTERM)
    wait_until(lambda: logged(a, "worker_stopping"), 10, message="worker_stopping")
    enqueued_at = time.monotonic()
    late = pool.enqueue_action(jobs.record_pid, {"key": "test:handover:pids"})
    # Then the idle worker B runs it promptly (not after its 5 s safety poll), while A drains
    result = wait_until(
        lambda: pool.result(late),
        3,
        message="idle worker B to run work that arrived during A's drain",
    )
    picked_up_s = time.monotonic() - enqueued_at
    assert result.return_value == b.pid
    assert picked_up_s < 1.0, f"B took {picked_up_s:.2f} s to pick up work A could not take"
    assert a.process.poll() is None
