"""Faults: on_complete callbacks that raise, or whose worker dies. A callback is retried until it
returns and then never runs again; one interrupted by SIGKILL runs again on another worker once
its lease expires.
"""

from __future__ import annotations

import signal
import time

import jobs
import msgpack
from helpers import settle, wait_until

from workpool import ResultKind

# Proving a negative: how long a test watches for a second, unwanted callback call.
QUIET_S = 0.7


def _records(r, work_id: str) -> list[dict]:
    """The calls jobs.on_done recorded for `work_id`, oldest first."""
    records = [msgpack.unpackb(raw, raw=False) for raw in r.lrange("test:callbacks", 0, -1)]
    return [rec for rec in records if rec["work_id"] == work_id]


def test_callback_that_raises_twice_is_retried_until_it_returns_then_never_again(
    r, make_pool, ready_workers, finished, job_hash
):
    # Given a worker
    pool = make_pool("cb_flaky")
    ready_workers(1, pools=("cb_flaky",))
    # When a job succeeds and its callback raises on its first two calls
    wid = pool.enqueue_action(
        jobs.add, {"a": 1, "b": 2}, on_complete=jobs.flaky_callback, context={"failures": 2}
    )
    assert finished(pool, wid).kind is ResultKind.SUCCESS
    # Then the callback is called again until it returns (on its third call)
    wait_until(lambda: _records(r, wid), 10, message="the callback to return")
    wait_until(
        lambda: job_hash(pool, wid).get("callback") == b"done",
        5,
        message="the callback to be recorded done",
    )
    # And it is never called again after it returned
    time.sleep(QUIET_S)  # proving a negative: no call after the one that returned
    assert int(r.get(f"test:flaky_callback:{wid}")) == 3
    (record,) = _records(r, wid)
    assert record == {
        "work_id": wid,
        "context": {"failures": 2},
        "kind": "success",
        "return_value": 3,
        "error": None,
    }
    record_hash = job_hash(pool, wid)
    assert record_hash["callback_attempts"] == b"3"
    assert record_hash["callback_error"] == b"RuntimeError: callback failure 2"
    assert r.zscore(pool.keys.callbacks, wid) is None


def test_callback_interrupted_by_sigkill_runs_again_on_another_worker(
    r, make_pool, ready_workers, finished, job_hash
):
    # Given a callback running (blocked) on worker A with a 1 s lease, an idle worker B, and a
    # server that has been up for one lease
    settle(r, 1000)
    pool = make_pool("cb_kill")
    (a,) = ready_workers(1, pools=("cb_kill",), extra_args=("--lease", "1"))
    key = "test:cb_kill"
    wid = pool.enqueue_action(
        jobs.add, {"a": 2, "b": 2}, on_complete=jobs.faults_hold_callback, context={"key": key}
    )
    wait_until(lambda: r.exists(f"{key}:started"), 10, message="the callback to start")
    assert int(r.get(f"{key}:started")) == a.pid
    (b,) = ready_workers(1, pools=("cb_kill",), extra_args=("--lease", "1"))
    # When A is killed with SIGKILL mid-callback
    a.signal(signal.SIGKILL)
    assert a.wait(5) == -signal.SIGKILL
    # Then the callback runs again, on B, and completes
    wait_until(lambda: _records(r, wid), 10, message="the callback to run again")
    wait_until(
        lambda: job_hash(pool, wid).get("callback") == b"done",
        5,
        message="the callback to be recorded done",
    )
    assert [int(p) for p in r.lrange(f"{key}:pids", 0, -1)] == [a.pid, b.pid]
    (record,) = _records(r, wid)
    assert (record["kind"], record["return_value"]) == ("success", 4)
    assert job_hash(pool, wid)["callback_attempts"] == b"2"
    # And the job's own outcome was untouched by the lost callback
    assert finished(pool, wid).return_value == 4
