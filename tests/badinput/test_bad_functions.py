"""Bad functions: unknown ones are refused at enqueue when that can be known, otherwise (and for
functions that raise, return what msgpack cannot encode, or get bad arguments) the job ends
`failed` naming the cause, and the worker that ran it keeps serving."""

from __future__ import annotations

import jobs
import pytest
import redis
from helpers import snapshot, wait_until

from workpool import ResultKind, RetryBehavior, UnknownFunction
from workpool.keys import PoolKeys

WAIT_S = 15


def unregistered(a: int, b: int) -> int:
    """A plain function never passed to @workpool.function."""
    return a + b


def wait_for_idle_worker(r: redis.Redis, pool: str = "pool") -> None:
    """Wait until a started worker registered its functions and made its first claim."""
    keys = PoolKeys.for_pool(pool)
    wait_until(
        lambda: r.sismember(keys.functions, "jobs.add") and r.exists(keys.stream),
        WAIT_S,
        message=f"a worker to register its functions with pool {pool!r} and claim once",
    )


# -- refused at enqueue ------------------------------------------------------------------------


def test_unregistered_function_object_is_refused(r, make_pool):
    # Given a pool holding a job
    pool = make_pool("pool")
    pool.enqueue_action(jobs.add, {"a": 1, "b": 2})
    before = snapshot(r)
    # When a function object that was never registered is enqueued, alone or in a batch
    with pytest.raises(UnknownFunction) as excinfo:
        pool.enqueue_action(unregistered, {"a": 1, "b": 2})
    with pytest.raises(UnknownFunction):
        pool.enqueue_query_batch(unregistered, [{"a": 1, "b": 2}] * 3)
    # Then UnknownFunction (a LookupError) tells how to fix it, and nothing is written
    assert isinstance(excinfo.value, LookupError)
    assert "unregistered" in str(excinfo.value)
    assert "@workpool.function" in str(excinfo.value)
    assert snapshot(r) == before


def test_unregistered_callback_object_is_refused(r, make_pool):
    # Given a pool holding a job
    pool = make_pool("pool")
    pool.enqueue_action(jobs.add, {"a": 1, "b": 2})
    before = snapshot(r)
    # When a registered function is enqueued with an unregistered on_complete
    with pytest.raises(UnknownFunction, match=r"@workpool\.function"):
        pool.enqueue_mutation(jobs.add, {"a": 1, "b": 2}, on_complete=unregistered)
    # Then nothing is written
    assert snapshot(r) == before


@pytest.mark.parametrize(
    ("fn", "error"),
    [
        pytest.param("", UnknownFunction, id="empty-name"),
        pytest.param("   ", UnknownFunction, id="blank-name"),
        pytest.param(42, TypeError, id="int"),
        pytest.param(None, TypeError, id="none"),
    ],
)
def test_function_reference_of_the_wrong_kind_is_refused(r, make_pool, fn, error):
    # Given a pool holding a job
    pool = make_pool("pool")
    pool.enqueue_action(jobs.add, {"a": 1, "b": 2})
    before = snapshot(r)
    # When something that is neither a registered function nor a name is enqueued
    with pytest.raises(error):
        pool.enqueue_action(fn, {"a": 1, "b": 2})
    # Then nothing is written
    assert snapshot(r) == before


def test_unknown_name_is_refused_once_workers_registered(r, make_pool, start_workers):
    # Given a worker that has registered its functions with the pool
    start_workers(1)
    wait_for_idle_worker(r)
    pool = make_pool("pool")
    before = snapshot(r)
    # When a name no worker of the pool registered is enqueued
    with pytest.raises(UnknownFunction) as excinfo:
        pool.enqueue_action("no.such.fn", {"a": 1})
    # Then UnknownFunction names the function and the pool
    assert isinstance(excinfo.value, LookupError)
    assert "'no.such.fn'" in str(excinfo.value)
    assert "'pool'" in str(excinfo.value)
    # And nothing at all is written
    assert snapshot(r) == before


def test_unknown_name_in_a_batch_or_callback_is_refused(r, make_pool, start_workers):
    # Given a worker that has registered its functions and already ran a job of the pool
    start_workers(1)
    wait_for_idle_worker(r)
    pool = make_pool("pool")
    assert pool.run_action(jobs.add, {"a": 1, "b": 2}, timeout=WAIT_S) == 3
    before = snapshot(r)
    # When a batch of an unknown name, then a known function with an unknown callback, are sent
    with pytest.raises(UnknownFunction, match=r"no\.such\.fn"):
        pool.enqueue_action_batch("no.such.fn", [{"a": 1}] * 3)
    with pytest.raises(UnknownFunction, match=r"no\.such\.callback"):
        pool.enqueue_action(jobs.add, {"a": 1, "b": 2}, on_complete="no.such.callback")
    # Then neither wrote anything
    assert snapshot(r) == before


def test_unknown_name_before_registration_fails_the_job(r, make_pool, start_workers):
    # Given a fresh pool no worker has served yet, so enqueue cannot know the name is unknown
    pool = make_pool("pool")
    work_id = pool.enqueue_action("jobs.missing", {"a": 1}, retry=True)
    # When a worker that lacks the function starts and picks the job up
    (worker,) = start_workers(1)
    result = pool.wait(work_id, timeout=WAIT_S)
    # Then the job ends failed, naming the unknown function, after a single attempt
    assert result.kind is ResultKind.FAILED
    assert "unknown function 'jobs.missing'" in result.error
    assert pool.status(work_id).previous_attempts == 1
    # And the same worker process is alive and runs a normal job
    assert worker.process.poll() is None
    assert pool.run_action(jobs.worker_pid, timeout=WAIT_S) == worker.pid


# -- failures inside the worker ----------------------------------------------------------------


def test_bad_jobs_fail_with_their_cause_and_the_worker_survives(r, make_pool, start_workers):
    # Given one worker serving a pool that retries actions by default
    pool = make_pool("pool", retry_actions_by_default=True)
    (worker,) = start_workers(1)
    no_retry = RetryBehavior(max_attempts=1)
    # When jobs that raise, return unencodable values, get bad arguments or exit are run
    raises = pool.enqueue_action(jobs.raise_value_error, {"message": "boom"}, retry=no_retry)
    raises_async = pool.enqueue_action(
        jobs.async_raise_value_error, {"message": "async boom"}, retry=no_retry
    )
    unencodable = pool.enqueue_action(jobs.unencodable_return, retry=True)
    unencodable_async = pool.enqueue_action(jobs.async_unencodable_return, retry=True)
    wrong_name = pool.enqueue_action(jobs.add, {"x": 1, "y": 2}, retry=True)
    missing_arg = pool.enqueue_action(jobs.add, {"a": 1}, retry=True)
    extra_arg = pool.enqueue_action("tests.async_add", {"a": 1, "b": 2, "c": 3}, retry=True)
    exits = pool.enqueue_action(jobs.raise_system_exit, retry=no_retry)
    bad = [raises, raises_async, unencodable, unencodable_async]
    bad += [wrong_name, missing_arg, extra_arg, exits]
    results = {w: pool.wait(w, timeout=WAIT_S) for w in bad}
    # Then every one ended failed, and its error names the cause
    assert all(res.kind is ResultKind.FAILED for res in results.values())
    assert results[raises].error == "ValueError: boom"
    assert results[raises_async].error == "ValueError: async boom"
    assert "msgpack" in results[unencodable].error
    assert "return value" in results[unencodable].error
    assert "msgpack" in results[unencodable_async].error
    for work_id in (wrong_name, missing_arg, extra_arg):
        assert "bad arguments" in results[work_id].error
    assert "jobs.add" in results[wrong_name].error
    assert "tests.async_add" in results[extra_arg].error
    assert results[exits].error.startswith("SystemExit")
    # And the ones that cannot succeed on a retry were not retried, even with retry=True
    for work_id in (unencodable, unencodable_async, wrong_name, missing_arg, extra_arg):
        assert pool.status(work_id).previous_attempts == 1
    # And the same worker process is still alive and runs a normal job
    assert worker.process.poll() is None
    assert pool.run_action(jobs.add, {"a": 2, "b": 3}, timeout=WAIT_S) == 5
    assert pool.run_action(jobs.worker_pid, timeout=WAIT_S) == worker.pid


def test_raising_action_is_retried_then_fails_with_the_last_error(make_pool, start_workers):
    # Given one worker
    pool = make_pool("pool")
    (worker,) = start_workers(1)
    # When an action that always raises is enqueued with three attempts and no backoff
    retry = RetryBehavior(max_attempts=3, initial_backoff_ms=0)
    work_id = pool.enqueue_action(
        jobs.fail_times, {"key": "test:always", "failures": 99}, retry=retry
    )
    result = pool.wait(work_id, timeout=WAIT_S)
    # Then it ran three times and failed naming the last exception
    assert result.kind is ResultKind.FAILED
    assert result.error == "RuntimeError: failure 3"
    assert pool.status(work_id).previous_attempts == 3
    assert worker.process.poll() is None


def test_zero_backoff_with_huge_base_still_ends(make_pool, start_workers):
    # Given one worker, and a retry behaviour that passes validation: no backoff, a huge base
    pool = make_pool("pool")
    (worker,) = start_workers(1)
    retry = RetryBehavior(max_attempts=4, initial_backoff_ms=0, base=1e300)
    # When an action that always raises is enqueued with it
    work_id = pool.enqueue_action(
        jobs.fail_times, {"key": "test:huge-base", "failures": 99}, retry=retry
    )
    # Then it ends failed after its four attempts (0 * base**n must not become NaN)
    result = pool.wait(work_id, timeout=5)
    assert result.kind is ResultKind.FAILED
    assert result.error == "RuntimeError: failure 4"
    # And the worker keeps running normal jobs
    assert worker.process.poll() is None
    assert pool.run_action(jobs.add, {"a": 1, "b": 1}, timeout=WAIT_S) == 2
