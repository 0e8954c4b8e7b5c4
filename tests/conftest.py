"""Fixtures: a private redis-server per session (never port 6379), pools, worker subprocesses."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from helpers import WorkerProcess

from workpool import Workpool
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
