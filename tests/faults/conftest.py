"""Fixtures for fault-tolerance tests: workers known to be up, their log events, private servers.

Copied in spirit from tests/e2e/conftest.py (fixtures there are not visible from this folder),
plus what fault tests need beyond it: reading a worker's JSON log by event, and dedicated
redis-server processes that a test may kill and restart on the same port and directory.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from helpers import STARTUP_TIMEOUT_S, WorkerProcess

from workpool import Workpool
from workpool.embedded import RedisServer, start_redis_server
from workpool.keys import PoolKeys

# AOF with an fsync per write: every write acknowledged to a client survives a SIGKILL.
AOF_ARGS = ("--appendonly", "yes", "--appendfsync", "always")


def events(worker: WorkerProcess, event: str | None = None) -> list[dict[str, Any]]:
    """The JSON log lines a worker wrote (only those with `event`, if given), oldest first."""
    return worker.events(event)


def wait_ready(worker: WorkerProcess, timeout_s: float = STARTUP_TIMEOUT_S) -> WorkerProcess:
    """Wait until `worker` has logged `worker_started` (and has not exited)."""
    return worker.wait_ready(timeout_s)


@pytest.fixture
def log_events() -> Callable[..., list[dict[str, Any]]]:
    """`log_events(worker, event=None)`: the JSON lines a worker logged, oldest first."""
    return events


@pytest.fixture
def ready() -> Callable[..., WorkerProcess]:
    """`ready(worker)`: wait until a worker started by hand has logged `worker_started`."""
    return wait_ready


@pytest.fixture
def job_hash(r: redis.Redis) -> Callable[[Workpool, str], dict[str, bytes]]:
    """One job's status hash, with str field names."""

    def read(pool: Workpool, work_id: str) -> dict[str, bytes]:
        raw = r.hgetall(PoolKeys.for_pool(pool.name).job(work_id))
        return {k.decode(): v for k, v in raw.items()}

    return read


@pytest.fixture
def private_redis() -> Iterator[Callable[..., RedisServer]]:
    """Start a dedicated redis-server (AOF on by default); every server stopped at teardown.

    `private_redis(restart_of=server)` starts a new process on the port and directory of a
    dead `server`, as after a crash.
    """
    servers: list[RedisServer] = []

    def start(*extra_args: str, restart_of: RedisServer | None = None) -> RedisServer:
        if restart_of is not None:
            old = restart_of
            server = RedisServer(old.binary, old.port, old.directory, extra_args=old.extra_args)
            servers.append(server)
            return server.start()
        server = start_redis_server(None, *(extra_args or AOF_ARGS))
        assert server.port != 6379
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
    for directory in {s.directory for s in servers}:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def workers_on(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start a worker subprocess against any Redis URL (not only the session server)."""
    started: list[WorkerProcess] = []

    def start(redis_url: str, pools: tuple[str, ...], **kwargs: Any) -> WorkerProcess:
        log = tmp_path / f"private-worker-{len(started)}.log"
        worker = WorkerProcess(redis_url, list(pools), log_path=log, **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
