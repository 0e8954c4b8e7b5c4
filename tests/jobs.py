"""Functions the test workers run (imported by worker subprocesses as `jobs`).

They record what they see in the test's Redis (the URL arrives in $WORKPOOL_TEST_REDIS_URL),
so tests can check behaviour from outside the worker.
"""

from __future__ import annotations

import asyncio
import os
import time

import redis

import workpool

_client: redis.Redis | None = None

# Tracks running jobs per pool and keeps the peak: INCR on start, DECR on end, in one script so
# the peak cannot miss a moment.
_ENTER = """
local n = redis.call('INCR', KEYS[1])
local peak = tonumber(redis.call('GET', KEYS[2]) or '0')
if n > peak then redis.call('SET', KEYS[2], n) end
return n
"""


def client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["WORKPOOL_TEST_REDIS_URL"])
    return _client


def _enter(pool: str) -> None:
    client().eval(_ENTER, 2, f"test:{pool}:now", f"test:{pool}:peak")


def _leave(pool: str) -> None:
    client().decr(f"test:{pool}:now")


@workpool.function
def measured(seconds: float = 0.05, tag: str = "") -> str:
    """Counts itself in the pool's concurrency gauge while it sleeps."""
    job = workpool.current_job()
    _enter(job.pool)
    try:
        client().rpush(f"test:{job.pool}:started", f"{job.work_id}:{time.time()}:{tag}")
        time.sleep(seconds)
    finally:
        _leave(job.pool)
    return job.work_id


@workpool.function
async def measured_async(seconds: float = 0.05) -> str:
    job = workpool.current_job()
    _enter(job.pool)
    try:
        await asyncio.sleep(seconds)
    finally:
        _leave(job.pool)
    return job.work_id


@workpool.function
def add(a: int, b: int) -> int:
    return a + b


@workpool.function(name="tests.async_add")
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@workpool.function
def job_info() -> dict:
    job = workpool.current_job()
    return {"work_id": job.work_id, "pool": job.pool, "attempt": job.attempt, "kind": job.kind}


@workpool.function
def record_start(key: str) -> float:
    """Appends the Redis-independent wall time it started at to list `key`."""
    now = time.time()
    client().rpush(key, repr(now))
    return now


@workpool.function
def fail_times(key: str, failures: int, nonretryable: bool = False) -> int:
    """Fails (raising) the first `failures` calls counted under `key`, then returns the count."""
    job = workpool.current_job()
    n = client().incr(key)
    client().rpush(f"{key}:times", f"{job.attempt}:{time.time()}")
    if n <= failures:
        if nonretryable:
            raise workpool.NonRetryableError(f"permanent failure {n}")
        raise RuntimeError(f"failure {n}")
    return n


@workpool.function
def count_calls(key: str) -> int:
    return int(client().incr(key))


@workpool.function
def block_until(key: str, timeout_s: float = 30.0) -> str:
    """Marks `key:started`, then waits until `key:release` exists."""
    job = workpool.current_job()
    client().set(f"{key}:started", job.work_id)
    deadline = time.monotonic() + timeout_s
    while not client().exists(f"{key}:release"):
        if time.monotonic() > deadline:
            raise TimeoutError("never released")
        time.sleep(0.01)
    return "released"


@workpool.function
def block_then_fail(key: str) -> None:
    block_until(key)
    raise RuntimeError("failed after release")


@workpool.function
def unencodable_return() -> object:
    return object()


@workpool.function
def on_done(work_id: str, context: object, result: workpool.Result) -> None:
    """A callback: records every call it receives."""
    import msgpack

    client().rpush(
        "test:callbacks",
        msgpack.packb(
            {
                "work_id": work_id,
                "context": context,
                "kind": str(result.kind),
                "return_value": result.return_value,
                "error": result.error,
            }
        ),
    )


@workpool.function
async def on_done_async(work_id: str, context: object, result: workpool.Result) -> None:
    on_done(work_id, context, result)


@workpool.function
def flaky_callback(work_id: str, context: object, result: workpool.Result) -> None:
    """A callback that raises the first `context["failures"]` times."""
    n = client().incr(f"test:flaky_callback:{work_id}")
    if n <= context["failures"]:
        raise RuntimeError(f"callback failure {n}")
    on_done(work_id, context, result)


# --- e2e ---


@workpool.function
def record_pid(key: str) -> int:
    """Appends the id of the worker process that ran it to list `key`, and returns it."""
    pid = os.getpid()
    client().rpush(key, pid)
    return pid


@workpool.function
def measured_pid(seconds: float = 0.05) -> int:
    """Like `measured`, but returns the id of the worker process that ran it."""
    measured(seconds)
    return os.getpid()


# --- bad input ---


@workpool.function
def worker_pid() -> int:
    """The pid of the worker process running it (proves which process ran a job)."""
    return os.getpid()


@workpool.function
def raise_value_error(message: str) -> None:
    raise ValueError(message)


@workpool.function
async def async_raise_value_error(message: str) -> None:
    await asyncio.sleep(0)
    raise ValueError(message)


@workpool.function
def raise_system_exit() -> None:
    raise SystemExit(3)


@workpool.function
async def async_unencodable_return() -> object:
    await asyncio.sleep(0)
    return {1, 2}


# --- faults ---


def _block_first_start(key: str, timeout_s: float = 60.0) -> int:
    """Counts a start under `key:starts`; the first start blocks until `key:release` exists."""
    n = int(client().incr(f"{key}:starts"))
    client().rpush(f"{key}:pids", os.getpid())
    if n == 1:
        client().set(f"{key}:started", os.getpid())
        deadline = time.monotonic() + timeout_s
        while not client().exists(f"{key}:release"):
            if time.monotonic() > deadline:
                raise TimeoutError("never released")
            time.sleep(0.01)
    return n


@workpool.function
def faults_hold(key: str) -> dict:
    """Blocks on its first start only (see _block_first_start); later starts return at once.

    Returns who ran it: {"pid", "attempt", "starts"}.
    """
    job = workpool.current_job()
    n = _block_first_start(key)
    return {"pid": os.getpid(), "attempt": job.attempt, "starts": n}


@workpool.function
def faults_slow_first(key: str, seconds: float) -> int:
    """Counts itself in the pool's gauge; its first attempt sleeps `seconds`, later ones do not.

    Appends "attempt:epoch" to `key:starts` on start and to `key:ends` when its thread returns.
    """
    job = workpool.current_job()
    _enter(job.pool)
    try:
        client().rpush(f"{key}:starts", f"{job.attempt}:{time.time()}")
        if job.attempt == 1:
            time.sleep(seconds)
    finally:
        _leave(job.pool)
        client().rpush(f"{key}:ends", f"{job.attempt}:{time.time()}")
    return job.attempt


@workpool.function
async def faults_async_sleep(key: str, seconds: float) -> str:
    """Sleeps `seconds` on the event loop; records `key:cancelled` if it is cancelled."""
    client().set(f"{key}:started", os.getpid())
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        client().rpush(f"{key}:cancelled", time.time())
        raise
    client().set(f"{key}:done", 1)
    return "slept"


@workpool.function
def faults_hold_callback(work_id: str, context: object, result: workpool.Result) -> None:
    """A callback that blocks on its first start (key from the context), then records itself."""
    _block_first_start(context["key"])
    on_done(work_id, context, result)


@workpool.function
def faults_nap(seconds: float, value: int) -> int:
    """Sleeps, then returns `value`; touches no Redis (safe to run while Redis is down)."""
    time.sleep(seconds)
    return value
