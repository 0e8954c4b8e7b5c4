"""End to end: on_complete callbacks run exactly once per outcome, with their context."""

from __future__ import annotations

import time

import jobs
import pytest
from helpers import wait_until

from workpool import RetryBehavior

CONTEXT = {"order": 17, "tags": ["a", "b"], "nested": {"ratio": 1.5, "note": None}}
# How long a test watches for a second, unwanted callback call (proving a negative).
QUIET_S = 0.5


def _exactly_one(callback_records, work_id: str) -> dict:
    """Wait for the callback of `work_id`, then check no second call follows."""
    wait_until(lambda: callback_records(work_id), 10, message=f"the callback of {work_id}")
    time.sleep(QUIET_S)  # proving a negative: no second call of the same callback
    records = callback_records(work_id)
    assert len(records) == 1, records
    return records[0]


@pytest.mark.parametrize("callback", [jobs.on_done, jobs.on_done_async])
def test_callback_after_success_gets_value_and_context(
    callback, make_pool, ready_workers, callback_records
):
    # Given a worker
    pool = make_pool("cb")
    ready_workers(1, pools=("cb",))
    # When a job that succeeds is enqueued with a (sync or async) callback and a context
    wid = pool.enqueue_action(jobs.add, {"a": 2, "b": 3}, on_complete=callback, context=CONTEXT)
    # Then the callback runs exactly once, with the result and the context as given
    record = _exactly_one(callback_records, wid)
    assert record == {
        "work_id": wid,
        "context": CONTEXT,
        "kind": "success",
        "return_value": 5,
        "error": None,
    }


def test_callback_after_failure_gets_the_error(make_pool, ready_workers, callback_records):
    # Given a worker
    pool = make_pool("cb")
    ready_workers(1, pools=("cb",))
    # When an action that fails is enqueued with a callback (and no retries)
    wid = pool.enqueue_action(
        jobs.fail_times,
        {"key": "test:cb:fail", "failures": 1},
        on_complete=jobs.on_done,
        context={"id": 1},
    )
    # Then the callback runs exactly once, told it failed and why
    record = _exactly_one(callback_records, wid)
    assert record["kind"] == "failed"
    assert record["error"] == "RuntimeError: failure 1"
    assert record["context"] == {"id": 1}
    assert record["return_value"] is None


def test_callback_after_retries_runs_once_for_the_final_outcome(
    r, make_pool, ready_workers, callback_records
):
    # Given a worker
    pool = make_pool("cb")
    ready_workers(1, pools=("cb",))
    # When an action that fails twice before succeeding is enqueued with a callback
    wid = pool.enqueue_action(
        jobs.fail_times,
        {"key": "test:cb:retry", "failures": 2},
        retry=RetryBehavior(max_attempts=3, initial_backoff_ms=20, base=2),
        on_complete=jobs.on_done,
        context="ctx",
    )
    # Then the callback is not called per attempt, only once, for the success
    record = _exactly_one(callback_records, wid)
    assert record["kind"] == "success"
    assert record["return_value"] == 3
    assert record["context"] == "ctx"
    assert int(r.get("test:cb:retry")) == 3


def test_callback_of_canceled_pending_work_runs_even_while_paused(
    r, make_pool, ready_workers, callback_records
):
    # Given a paused pool with an idle worker and a job waiting in it
    pool = make_pool("cb", max_parallelism=0)
    ready_workers(1, pools=("cb",))
    wid = pool.enqueue_action(
        jobs.count_calls, {"key": "test:cb:never"}, on_complete=jobs.on_done, context=[1, 2]
    )
    # When the waiting job is canceled
    assert pool.cancel(wid) is True
    # Then its callback runs exactly once, told it was canceled (callbacks take no slot)
    record = _exactly_one(callback_records, wid)
    assert record["kind"] == "canceled"
    assert record["context"] == [1, 2]
    # And the job itself never ran
    assert r.get("test:cb:never") is None


def test_callback_that_raises_is_retried_until_it_returns_then_never_again(
    r, make_pool, ready_workers, callback_records
):
    # Given a worker
    pool = make_pool("cb")
    ready_workers(1, pools=("cb",))
    # When a job's callback raises on its first two calls
    wid = pool.enqueue_action(
        jobs.add, {"a": 1, "b": 1}, on_complete=jobs.flaky_callback, context={"failures": 2}
    )
    # Then it is called again until it returns, and then exactly once recorded
    record = _exactly_one(callback_records, wid)
    assert record["kind"] == "success"
    assert record["return_value"] == 2
    assert record["context"] == {"failures": 2}
    # And it was called three times in all: two failures and the success, no more
    assert int(r.get(f"test:flaky_callback:{wid}")) == 3


def test_each_job_of_a_batch_gets_its_own_callback(make_pool, ready_workers, callback_records):
    # Given a worker
    pool = make_pool("cb")
    ready_workers(1, pools=("cb",), concurrency=8)
    # When a batch of 20 jobs is enqueued with one callback and context
    ids = pool.enqueue_action_batch(
        jobs.add, [{"a": n, "b": 0} for n in range(20)], on_complete=jobs.on_done, context="b"
    )
    # Then every job's callback runs exactly once with that job's value
    wait_until(lambda: len(callback_records()) >= 20, 10, message="20 callbacks")
    time.sleep(QUIET_S)  # proving a negative: no second call of any callback
    records = callback_records()
    assert sorted(rec["work_id"] for rec in records) == sorted(ids)
    assert {rec["work_id"]: rec["return_value"] for rec in records} == {
        wid: n for n, wid in enumerate(ids)
    }


def test_callback_of_running_work_canceled_then_failing_reports_canceled(
    r, make_pool, ready_workers, callback_records
):
    # Given a running job with retries on, a callback, and a context
    pool = make_pool("cb")
    ready_workers(1, pools=("cb",))
    wid = pool.enqueue_action(
        jobs.block_then_fail,
        {"key": "test:cb:run"},
        retry=RetryBehavior(max_attempts=5, initial_backoff_ms=20, base=2),
        on_complete=jobs.on_done,
        context={"k": "v"},
    )
    wait_until(lambda: r.exists("test:cb:run:started"), 10, message="the job to start")
    # When it is canceled while it runs, and then fails
    assert pool.cancel(wid) is True
    r.set("test:cb:run:release", 1)
    # Then its callback runs exactly once, told it was canceled, with the job's error
    record = _exactly_one(callback_records, wid)
    assert record["kind"] == "canceled"
    assert record["error"] == "RuntimeError: failed after release"
    assert record["context"] == {"k": "v"}
