"""Fixtures: a private redis-server per session (never port 6379), pools, worker subprocesses."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from helpers import WorkerProcess, release_blocked, wait_until

from workpool import Result, Workpool
from workpool.embedded import RedisServer, start_redis_server

_counter = itertools.count()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = start_redis_server()
    assert server.port != 6379
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def r(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def pool_name() -> str:
    return f"p{next(_counter)}"


@pytest.fixture
def make_pool(r: redis.Redis, redis_url: str) -> Iterator[Callable[..., Workpool]]:
    made: list[Workpool] = []

    def make(name: str = "pool", **options: Any) -> Workpool:
        pool = Workpool(name, redis_url=redis_url, **options)
        made.append(pool)
        return pool

    yield make
    for pool in made:
        pool.close()


@pytest.fixture
def start_workers(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., list[WorkerProcess]]]:
    started: list[WorkerProcess] = []

    def start(
        count: int = 1, pools: tuple[str, ...] = ("pool",), concurrency: int = 4, **kwargs: Any
    ) -> list[WorkerProcess]:
        workers = []
        for _ in range(count):
            log = tmp_path / f"worker-{len(started)}.log"
            w = WorkerProcess(
                redis_url, list(pools), concurrency=concurrency, log_path=log, **kwargs
            )
            started.append(w)
            workers.append(w)
        return workers

    yield start
    for w in started:
        w.stop()


@pytest.fixture
def ready_workers(start_workers, r: redis.Redis) -> Iterator[Callable[..., list[WorkerProcess]]]:
    """Like `start_workers`, but returns once every worker has logged `worker_started`.

    At teardown it releases every blocking test job first, so a test that failed before its
    release does not leave workers draining until they are killed.
    """

    def start(count: int = 1, **kwargs: Any) -> list[WorkerProcess]:
        return [w.wait_ready() for w in start_workers(count, **kwargs)]

    yield start
    release_blocked(r)


@pytest.fixture
def finished() -> Callable[..., Result]:
    """Poll until a job has finished and return its Result (plain reads, no pub/sub)."""

    def wait(pool: Workpool, work_id: str, timeout_s: float = 10.0) -> Result:
        return wait_until(
            lambda: pool.result(work_id), timeout_s, message=f"work {work_id} to finish"
        )

    return wait
