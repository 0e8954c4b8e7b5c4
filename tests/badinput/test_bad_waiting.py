"""Waiting for work that does not exist, does not finish, or fails; current_job() misuse."""

from __future__ import annotations

import math
import threading
import time

import jobs
import pytest

from workpool import (
    InvalidSchedule,
    NotInJob,
    ResultKind,
    State,
    WaitTimeout,
    WorkFailed,
    WorkNotFound,
    WorkpoolError,
    current_job,
)

WAIT_S = 15


def test_wait_on_an_unknown_id_is_work_not_found(make_pool):
    # Given a pool
    pool = make_pool("pool")
    # When a work id that was never enqueued is awaited
    started = time.monotonic()
    with pytest.raises(WorkNotFound) as excinfo:
        pool.wait("0123456789abcdef0123", timeout=10)
    # Then WorkNotFound (a LookupError) names the id and the pool, at once
    assert isinstance(excinfo.value, LookupError)
    assert "'0123456789abcdef0123'" in str(excinfo.value)
    assert "'pool'" in str(excinfo.value)
    assert time.monotonic() - started < 5


def test_wait_on_an_id_of_another_pool_is_work_not_found(make_pool):
    # Given a job in pool "a"
    work_id = make_pool("a").enqueue_action(jobs.add, {"a": 1, "b": 2})
    # When it is awaited through pool "b"
    with pytest.raises(WorkNotFound):
        make_pool("b").wait(work_id, timeout=10)
    # Then the job in "a" is untouched
    assert make_pool("a").status(work_id).state is State.PENDING


def test_wait_timeout_is_a_timeout_error(make_pool):
    # Given a job that no worker will run
    pool = make_pool("pool")
    work_id = pool.enqueue_action(jobs.add, {"a": 1, "b": 2})
    # When it is awaited with a short timeout
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as excinfo:
        pool.wait(work_id, timeout=0.3)
    elapsed = time.monotonic() - started
    # Then WaitTimeout (a TimeoutError) names the id, after about the timeout
    assert isinstance(excinfo.value, TimeoutError)
    assert isinstance(excinfo.value, WorkpoolError)
    assert work_id in str(excinfo.value)
    assert 0.3 <= elapsed < 3
    # And the job is still waiting
    assert pool.status(work_id).state is State.PENDING


def test_run_action_times_out_with_wait_timeout(make_pool):
    # Given a paused pool (cap 0), so nothing starts
    pool = make_pool("pool", max_parallelism=0)
    # When run_action waits with a short timeout
    with pytest.raises(WaitTimeout):
        pool.run_action(jobs.add, {"a": 1, "b": 2}, timeout=0.2)
    # Then the action was still enqueued and is pending
    assert pool.stats().pending == 1


@pytest.mark.parametrize(
    "timeout",
    [
        pytest.param(-1, id="negative"),
        pytest.param(math.nan, id="nan"),
        pytest.param("5", id="str"),
    ],
)
def test_wait_rejects_a_bad_timeout(make_pool, timeout):
    # Given a pending job
    pool = make_pool("pool")
    work_id = pool.enqueue_action(jobs.add, {"a": 1, "b": 2})
    # When it is awaited with a bad timeout
    with pytest.raises(InvalidSchedule, match="timeout"):
        pool.wait(work_id, timeout=timeout)
    # Then the job is untouched
    assert pool.status(work_id).state is State.PENDING


@pytest.mark.parametrize(
    "work_id",
    [pytest.param("", id="empty"), pytest.param(None, id="none"), pytest.param(7, id="int")],
)
def test_reading_a_malformed_work_id_is_a_type_error(make_pool, work_id):
    # Given a pool
    pool = make_pool("pool")
    # When status, result, wait and cancel are asked about a malformed id
    # Then each raises TypeError naming the id
    for call in (pool.status, pool.result, pool.cancel, lambda w: pool.wait(w, timeout=1)):
        with pytest.raises(TypeError, match="work id must be a non-empty str"):
            call(work_id)


def test_run_action_on_a_failing_job_raises_work_failed(make_pool, start_workers):
    # Given one worker
    pool = make_pool("pool")
    start_workers(1)
    # When an action that raises is run
    with pytest.raises(WorkFailed) as excinfo:
        pool.run_action(jobs.raise_value_error, {"message": "nope"}, timeout=WAIT_S)
    # Then WorkFailed carries the failed result, its error and the work id
    failed = excinfo.value
    assert failed.result.kind is ResultKind.FAILED
    assert failed.result.error == "ValueError: nope"
    assert pool.result(failed.work_id) == failed.result
    assert failed.work_id in str(failed)
    assert "failed" in str(failed)


def test_run_mutation_and_query_with_bad_arguments_raise_work_failed(make_pool, start_workers):
    # Given one worker
    pool = make_pool("pool")
    start_workers(1)
    # When a mutation and a query are run with argument names the function does not take
    for run in (pool.run_mutation, pool.run_query):
        with pytest.raises(WorkFailed) as excinfo:
            run(jobs.add, {"a": 1, "c": 3}, timeout=WAIT_S)
        # Then each fails with "bad arguments"
        assert excinfo.value.result.kind is ResultKind.FAILED
        assert "bad arguments" in excinfo.value.result.error


def test_current_job_outside_a_job_is_not_in_job():
    # When current_job() is called by ordinary code, on the main thread and on another thread
    errors: list[BaseException] = []

    def call() -> None:
        try:
            current_job()
        except BaseException as exc:
            errors.append(exc)

    call()
    thread = threading.Thread(target=call)
    thread.start()
    thread.join()
    # Then both raise NotInJob, a LookupError, explaining where it works
    assert len(errors) == 2
    for exc in errors:
        assert isinstance(exc, NotInJob)
        assert isinstance(exc, LookupError)
        assert "inside a function run by a worker" in str(exc)
