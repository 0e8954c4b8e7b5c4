"""Fixtures for fault-tolerance tests: workers known to be up, their log events, private servers.

Copied in spirit from tests/e2e/conftest.py (fixtures there are not visible from this folder),
plus what fault tests need beyond it: reading a worker's JSON log by event, and dedicated
redis-server processes that a test may kill and restart on the same port and directory.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from helpers import WorkerProcess, wait_until

from workpool import Result, Workpool
from workpool.embedded import RedisServer, start_redis_server
from workpool.keys import PoolKeys

# Generous upper bound for a worker to come up; a passing test never waits this long.
STARTUP_TIMEOUT_S = 15.0
# AOF with an fsync per write: every write acknowledged to a client survives a SIGKILL.
AOF_ARGS = ("--appendonly", "yes", "--appendfsync", "always")


def events(worker: WorkerProcess, event: str | None = None) -> list[dict[str, Any]]:
    """The JSON log lines a worker wrote (only those with `event`, if given), oldest first."""
    found = []
    for line in worker.log().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and (event is None or record.get("event") == event):
            found.append(record)
    return found


def wait_ready(worker: WorkerProcess, timeout_s: float = STARTUP_TIMEOUT_S) -> WorkerProcess:
    """Wait until `worker` has logged `worker_started` (and has not exited)."""
    wait_until(
        lambda: events(worker, "worker_started") or worker.process.poll() is not None,
        timeout_s,
        message="worker_started in the worker log",
    )
    assert worker.process.poll() is None, f"worker exited at startup:\n{worker.log()}"
    return worker


@pytest.fixture
def log_events() -> Callable[..., list[dict[str, Any]]]:
    """`log_events(worker, event=None)`: the JSON lines a worker logged, oldest first."""
    return events


@pytest.fixture
def ready() -> Callable[..., WorkerProcess]:
    """`ready(worker)`: wait until a worker started by hand has logged `worker_started`."""
    return wait_ready


@pytest.fixture
def ready_workers(start_workers, r: redis.Redis) -> Iterator[Callable[..., list[WorkerProcess]]]:
    """Like `start_workers`, but returns once every worker has logged `worker_started`.

    At teardown it releases every blocking test job (keys `*:started`), so a test that failed
    before its release does not leave workers draining until they are killed.
    """

    def start(count: int = 1, **kwargs: Any) -> list[WorkerProcess]:
        return [wait_ready(w) for w in start_workers(count, **kwargs)]

    yield start
    for key in r.scan_iter(match="*:started"):
        r.set(key.decode().removesuffix(":started") + ":release", 1)


@pytest.fixture
def finished() -> Callable[..., Result]:
    """Poll until a job has finished and return its Result (plain reads, no pub/sub)."""

    def wait(pool: Workpool, work_id: str, timeout_s: float = 10.0) -> Result:
        return wait_until(
            lambda: pool.result(work_id), timeout_s, message=f"work {work_id} to finish"
        )

    return wait


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
