"""Faults: SIGTERM while work runs. After --grace the worker hands unfinished work back and
exits 0: an action goes straight to another worker (no waiting out the lease), a mutation fails
"worker stopped". A second signal during the grace period exits at once, non-zero.
"""

from __future__ import annotations

import signal
import subprocess
import time

import jobs
import pytest
from helpers import settle, wait_until

from workpool import ResultKind, RetryBehavior, State

# A lease far longer than any wait here: work that moves on quickly was handed back, not
# taken back after its lease expired.
LONG_LEASE = ("--lease", "30")


def _started_on(r, key: str, worker) -> None:
    """Wait until jobs.faults_hold under `key` has started, and check it is on `worker`."""
    wait_until(lambda: r.exists(f"{key}:started"), 10, message=f"{key} to start")
    assert int(r.get(f"{key}:started")) == worker.pid


def test_sigterm_hands_a_running_action_back_to_an_idle_worker_at_once(
    r, make_pool, ready_workers, finished, log_events
):
    # Given worker A (grace 0.5 s, lease 30 s) running an action, and an idle worker B
    pool = make_pool("hb_action")
    (a,) = ready_workers(1, pools=("hb_action",), extra_args=(*LONG_LEASE, "--grace", "0.5"))
    wid = pool.enqueue_action(jobs.faults_hold, {"key": "test:hb_action"})
    _started_on(r, "test:hb_action", a)
    (b,) = ready_workers(1, pools=("hb_action",), extra_args=LONG_LEASE)
    # When A gets SIGTERM and the action does not end within the grace period
    signalled = time.monotonic()
    a.signal(signal.SIGTERM)
    # Then A exits 0 promptly
    assert a.wait(5) == 0
    assert time.monotonic() - signalled < 3.0
    # And B runs the handed-back action at once, long before its 30 s lease could expire
    result = finished(pool, wid, 5)
    picked_up_s = time.monotonic() - signalled
    assert picked_up_s < 3.0, f"B finished it {picked_up_s:.2f} s after the SIGTERM"
    assert result.kind is ResultKind.SUCCESS
    # And the interrupted attempt is not counted against the action
    assert result.return_value == {"pid": b.pid, "attempt": 1, "starts": 2}
    assert pool.status(wid).previous_attempts == 1
    # And A's log says it handed the work back; B did not have to take back an expired lease
    handed = [e for e in log_events(a, "work_handed_back") if e["work_id"] == wid]
    assert [e["outcome"] for e in handed] == ["handed_back"]
    assert log_events(b, "lease_expired") == []


def test_sigterm_fails_a_running_mutation_worker_stopped(r, make_pool, ready_workers, finished):
    # Given worker A (grace 0.5 s) running a mutation, and an idle worker B
    pool = make_pool("hb_mutation")
    (a,) = ready_workers(1, pools=("hb_mutation",), extra_args=(*LONG_LEASE, "--grace", "0.5"))
    wid = pool.enqueue_mutation(jobs.faults_hold, {"key": "test:hb_mutation"})
    _started_on(r, "test:hb_mutation", a)
    (b,) = ready_workers(1, pools=("hb_mutation",), extra_args=LONG_LEASE)
    # When A gets SIGTERM and the mutation does not end within the grace period
    a.signal(signal.SIGTERM)
    # Then A exits 0 and the mutation ends failed with "worker stopped"
    assert a.wait(5) == 0
    result = finished(pool, wid, 5)
    assert (result.kind, result.error) == (ResultKind.FAILED, "worker stopped")
    # And it never ran again: a mutation runs at most once
    assert pool.run_action(jobs.worker_pid, timeout=5) == b.pid  # B is up and serving
    assert int(r.get("test:hb_mutation:starts")) == 1


def test_second_sigterm_during_the_grace_period_exits_at_once_nonzero(
    r, make_pool, ready_workers, finished, log_events
):
    # Given worker A with a long grace period (lease 1 s) running an action with retries,
    # an idle worker B, and a server that has been up for one lease
    settle(r, 1000)
    pool = make_pool("hb_twice")
    (a,) = ready_workers(1, pools=("hb_twice",), extra_args=("--lease", "1", "--grace", "20"))
    wid = pool.enqueue_action(
        jobs.faults_hold,
        {"key": "test:hb_twice"},
        retry=RetryBehavior(max_attempts=2, initial_backoff_ms=0, base=1),
    )
    _started_on(r, "test:hb_twice", a)
    (b,) = ready_workers(1, pools=("hb_twice",), extra_args=("--lease", "1"))
    a.signal(signal.SIGTERM)
    wait_until(lambda: log_events(a, "worker_stopping"), 5, message="A to log worker_stopping")
    # When A gets a second SIGTERM during its grace period
    signalled = time.monotonic()
    a.signal(signal.SIGTERM)
    # Then it exits at once with a non-zero status, without waiting for its work
    try:
        code = a.wait(3)
    except subprocess.TimeoutExpired:
        pytest.fail("the worker did not exit on the second SIGTERM")
    assert code != 0
    assert time.monotonic() - signalled < 2.0
    assert log_events(a, "worker_killed")
    # And the work it dropped is not lost: its lease expires and B runs it
    result = finished(pool, wid, 10)
    assert result.kind is ResultKind.SUCCESS
    assert result.return_value["pid"] == b.pid


def test_sigterm_hands_a_running_callback_back_to_an_idle_worker(
    r, make_pool, ready_workers, finished, job_hash, log_events
):
    # Given worker A (grace 0.5 s, lease 30 s) running a job's callback, and an idle worker B
    pool = make_pool("hb_callback")
    (a,) = ready_workers(1, pools=("hb_callback",), extra_args=(*LONG_LEASE, "--grace", "0.5"))
    key = "test:hb_callback"
    wid = pool.enqueue_action(
        jobs.add, {"a": 5, "b": 5}, on_complete=jobs.faults_hold_callback, context={"key": key}
    )
    wait_until(lambda: r.exists(f"{key}:started"), 10, message="the callback to start")
    (b,) = ready_workers(1, pools=("hb_callback",), extra_args=LONG_LEASE)
    # When A gets SIGTERM and the callback does not end within the grace period
    signalled = time.monotonic()
    a.signal(signal.SIGTERM)
    assert a.wait(5) == 0
    # Then B runs the callback at once (not after the 30 s lease) and it is recorded done
    wait_until(
        lambda: job_hash(pool, wid).get("callback") == b"done",
        5,
        message="the handed-back callback to be done",
    )
    assert time.monotonic() - signalled < 3.0
    assert [int(p) for p in r.lrange(f"{key}:pids", 0, -1)] == [a.pid, b.pid]
    # And the interrupted call is not counted against the callback
    assert job_hash(pool, wid)["callback_attempts"] == b"1"
    assert finished(pool, wid).return_value == 10
    handed = [e for e in log_events(a, "work_handed_back") if e["work_id"] == wid]
    assert [(e["kind"], e["outcome"]) for e in handed] == [("callback", "handed_back")]


def test_sigterm_frees_the_slot_a_timed_out_thread_keeps(r, make_pool, ready_workers, finished):
    # Given a pool with cap 1 whose slot is kept by the thread of a timed-out job on worker A
    # (grace 0.5 s, lease 30 s), a job queued behind it, and an idle worker B
    pool = make_pool("hb_slot", max_parallelism=1)
    (a,) = ready_workers(1, pools=("hb_slot",), extra_args=(*LONG_LEASE, "--grace", "0.5"))
    timed_out = pool.enqueue_action(jobs.measured, {"seconds": 20.0}, timeout=0.3)
    assert finished(pool, timed_out, 5).error == "timeout"
    (b,) = ready_workers(1, pools=("hb_slot",), extra_args=LONG_LEASE)
    queued = pool.enqueue_action(jobs.worker_pid)
    assert pool.status(queued).state is State.PENDING
    # When A gets SIGTERM and its thread does not return within the grace period
    signalled = time.monotonic()
    a.signal(signal.SIGTERM)
    # Then A exits 0, giving the slot back, and B runs the queued job at once
    assert a.wait(5) == 0
    assert finished(pool, queued, 5).return_value == b.pid
    assert time.monotonic() - signalled < 3.0
    # And the timed-out job's outcome is unchanged
    assert pool.result(timed_out).error == "timeout"
