"""Faults: a worker killed with SIGKILL mid-job. Its lease expires and a live worker takes the
work back: an action with attempts left is retried, a mutation fails "worker lost" (it ran once),
a query is re-run, and the slot it held is freed for other work.

Workers run with --lease 1. The survivor is started after the job began on the doomed worker, so
its first claim already sees the job's lease deadline and it wakes for it (no 5 s re-check).
"""

from __future__ import annotations

import signal
import time

import jobs
import pytest
from helpers import settle, wait_until

from workpool import ResultKind, RetryBehavior, State

LEASE = ("--lease", "1")
LEASE_S = 1.0
# Proving a negative: how long a test watches for something that must not happen.
QUIET_S = 0.5


def _started_on(r, key: str, worker) -> None:
    """Wait until jobs.faults_hold under `key` has started, and check it is on `worker`."""
    wait_until(lambda: r.exists(f"{key}:started"), 10, message=f"{key} to start")
    assert int(r.get(f"{key}:started")) == worker.pid


def _kill(worker) -> float:
    """SIGKILL a worker, reap it; returns the wall time of the kill."""
    killed_at = time.time()
    worker.signal(signal.SIGKILL)
    assert worker.wait(5) == -signal.SIGKILL
    return killed_at


@pytest.fixture(autouse=True)
def _settled(r) -> None:
    # Expired leases are only taken back once the server has been up for one lease.
    settle(r, 1000)


def test_killed_action_with_retries_is_retried_on_the_surviving_worker(
    r, make_pool, ready_workers, finished, job_hash, log_events
):
    # Given an action with retries left running on worker A, and an idle worker B
    pool = make_pool("kill_action")
    (a,) = ready_workers(1, pools=("kill_action",), extra_args=LEASE)
    wid = pool.enqueue_action(
        jobs.faults_hold,
        {"key": "test:kill_action"},
        retry=RetryBehavior(max_attempts=3, initial_backoff_ms=50, base=2),
    )
    _started_on(r, "test:kill_action", a)
    (b,) = ready_workers(1, pools=("kill_action",), extra_args=LEASE)
    # When A is killed with SIGKILL mid-job
    _kill(a)
    # Then the action is retried on B and succeeds there, on its second attempt
    result = finished(pool, wid, 10)
    assert result.kind is ResultKind.SUCCESS
    assert result.return_value == {"pid": b.pid, "attempt": 2, "starts": 2}
    # And its record shows the lost attempt and why it was lost
    status = pool.status(wid)
    assert status.state is State.FINISHED
    assert status.previous_attempts == 2
    assert job_hash(pool, wid)["last_error"] == b"worker lost"
    lost = [e for e in log_events(b, "lease_expired") if e["work_id"] == wid]
    assert [e["outcome"] for e in lost] == ["retry"]


def test_killed_mutation_fails_worker_lost_and_never_runs_again(
    r, make_pool, ready_workers, finished
):
    # Given a mutation running on worker A, and an idle worker B
    pool = make_pool("kill_mutation")
    (a,) = ready_workers(1, pools=("kill_mutation",), extra_args=LEASE)
    wid = pool.enqueue_mutation(jobs.faults_hold, {"key": "test:kill_mutation"})
    _started_on(r, "test:kill_mutation", a)
    (b,) = ready_workers(1, pools=("kill_mutation",), extra_args=LEASE)
    # When A is killed with SIGKILL mid-job
    _kill(a)
    # Then the mutation ends failed with "worker lost"
    result = finished(pool, wid, 10)
    assert result.kind is ResultKind.FAILED
    assert result.error == "worker lost"
    assert pool.status(wid).previous_attempts == 1
    # And it ran exactly once: B never started it
    time.sleep(QUIET_S)  # proving a negative: no second start
    assert int(r.get("test:kill_mutation:starts")) == 1
    assert [int(p) for p in r.lrange("test:kill_mutation:pids", 0, -1)] == [a.pid]
    # And B keeps serving the pool
    assert pool.run_action(jobs.worker_pid, timeout=10) == b.pid


def test_killed_query_is_re_run_on_the_surviving_worker(
    r, make_pool, ready_workers, finished, job_hash
):
    # Given a query running on worker A, and an idle worker B
    pool = make_pool("kill_query")
    (a,) = ready_workers(1, pools=("kill_query",), extra_args=LEASE)
    wid = pool.enqueue_query(jobs.faults_hold, {"key": "test:kill_query"})
    _started_on(r, "test:kill_query", a)
    (b,) = ready_workers(1, pools=("kill_query",), extra_args=LEASE)
    # When A is killed with SIGKILL mid-job
    _kill(a)
    # Then the query runs again on B and succeeds
    result = finished(pool, wid, 10)
    assert result.kind is ResultKind.SUCCESS
    assert result.return_value["pid"] == b.pid
    assert result.return_value["starts"] == 2
    # And its record shows one re-run after a lost worker
    record = job_hash(pool, wid)
    assert record["reruns"] == b"1"
    assert record["last_error"] == b"worker lost"


def test_slot_of_a_killed_worker_is_freed_within_about_one_lease(
    r, make_pool, ready_workers, finished
):
    # Given a pool with cap 1 whose only slot is held by a mutation on worker A
    pool = make_pool("kill_slot", max_parallelism=1)
    (a,) = ready_workers(1, pools=("kill_slot",), extra_args=LEASE)
    held = pool.enqueue_mutation(jobs.faults_hold, {"key": "test:kill_slot"})
    _started_on(r, "test:kill_slot", a)
    # And a second job queued behind it, with an idle worker B
    (b,) = ready_workers(1, pools=("kill_slot",), extra_args=LEASE)
    queued = pool.enqueue_action(jobs.record_start, {"key": "test:kill_slot:second"})
    time.sleep(QUIET_S)  # proving a negative: the cap keeps it waiting while A lives
    assert pool.status(queued).state is State.PENDING
    # When A is killed with SIGKILL
    killed_at = _kill(a)
    # Then B starts the queued job within about one lease (+ waking and claiming)
    result = finished(pool, queued, 10)
    assert result.kind is ResultKind.SUCCESS
    started_after_s = result.return_value - killed_at
    assert started_after_s < LEASE_S + 2.0, f"slot freed {started_after_s:.2f} s after the kill"
    # And the job that held the slot was failed, not left running
    assert finished(pool, held).error == "worker lost"
    assert b.process.poll() is None


def test_slot_of_a_killed_worker_is_freed_within_about_one_lease_for_an_unaware_survivor(
    r, make_pool, ready_workers, finished
):
    # Given a pool with cap 1 and two idle workers
    pool = make_pool("kill_unaware", max_parallelism=1)
    workers = ready_workers(2, pools=("kill_unaware",), extra_args=LEASE)
    # And two jobs enqueued while the pool is paused: a mutation that blocks, and a quick job
    # behind it. Neither is handed to an idle worker's offer (no free slot)
    pool.update_config(max_parallelism=0)
    r.set("test:kill_unaware:second:release", 1)  # the second job returns at once
    held, queued = pool.enqueue_mutation_batch(
        jobs.faults_hold, [{"key": "test:kill_unaware"}, {"key": "test:kill_unaware:second"}]
    )
    # And the cap raised to 1: one wake token; the worker taking it (A) claims the mutation, the
    # cap stops it from taking the other, and the other worker (B) is not woken while the
    # lease exists
    pool.update_config(max_parallelism=1)
    wait_until(lambda: r.exists("test:kill_unaware:started"), 10, message="the mutation to start")
    started_pid = int(r.get("test:kill_unaware:started"))
    a, b = sorted(workers, key=lambda w: w.pid != started_pid)
    assert a.pid == started_pid
    assert pool.status(queued).state is State.PENDING
    # When A is killed with SIGKILL
    killed_at = time.monotonic()
    _kill(a)
    # Then B starts the queued job within about one lease (+ waking and claiming), not only
    # at its 5 s idle re-check
    result = finished(pool, queued, 10)
    done_after_s = time.monotonic() - killed_at
    assert result.return_value["pid"] == b.pid
    assert finished(pool, held).error == "worker lost"
    assert done_after_s < LEASE_S + 2.0, f"slot freed {done_after_s:.2f} s after the kill"
