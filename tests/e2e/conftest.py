"""Fixtures for end-to-end tests: workers that are known to be up, and readers of job records."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest
import redis
from helpers import WorkerProcess, wait_until

from workpool import Result, State, Workpool
from workpool.keys import PoolKeys

# Generous upper bounds for polling; a passing test never waits this long.
STARTUP_TIMEOUT_S = 15.0


def _logged(worker: WorkerProcess, event: str) -> bool:
    for line in worker.log().splitlines():
        try:
            if json.loads(line).get("event") == event:
                return True
        except ValueError:
            continue
    return False


@pytest.fixture
def logged() -> Callable[[WorkerProcess, str], bool]:
    """Whether a worker has written a JSON log line with the given `event`."""
    return _logged


@pytest.fixture
def ready_workers(start_workers, r: redis.Redis) -> Iterator[Callable[..., list[WorkerProcess]]]:
    """Like `start_workers`, but returns once every worker has logged `worker_started`.

    At teardown it releases every `jobs.block_until` job, so a test that failed before its
    release does not leave workers draining until they are killed.
    """

    def start(count: int = 1, **kwargs: Any) -> list[WorkerProcess]:
        workers = start_workers(count, **kwargs)
        for w in workers:
            wait_until(
                lambda w=w: _logged(w, "worker_started") or w.process.poll() is not None,
                STARTUP_TIMEOUT_S,
                message="worker_started in the worker log",
            )
            assert w.process.poll() is None, f"worker exited at startup:\n{w.log()}"
        return workers

    yield start
    for key in r.scan_iter(match="*:started"):
        r.set(key.decode().removesuffix(":started") + ":release", 1)


@pytest.fixture
def callback_records(r: redis.Redis) -> Callable[[str | None], list[dict[str, Any]]]:
    """The calls jobs.on_done recorded (optionally only those for one work id), oldest first."""

    def read(work_id: str | None = None) -> list[dict[str, Any]]:
        records = [msgpack.unpackb(raw, raw=False) for raw in r.lrange("test:callbacks", 0, -1)]
        return [rec for rec in records if work_id is None or rec["work_id"] == work_id]

    return read


@pytest.fixture
def job_key() -> Callable[[Workpool, str], str]:
    """The Redis key of one job's status hash."""

    def key(pool: Workpool, work_id: str) -> str:
        return PoolKeys.for_pool(pool.name).job(work_id)

    return key


@pytest.fixture
def finished() -> Callable[..., Result]:
    """Poll until a job has finished and return its Result (no pub/sub: plain reads)."""

    def wait(pool: Workpool, work_id: str, timeout_s: float = 10.0) -> Result:
        return wait_until(
            lambda: pool.result(work_id), timeout_s, message=f"work {work_id} to finish"
        )

    return wait


@pytest.fixture
def all_finished() -> Callable[..., None]:
    """Poll until every job of `work_ids` reads as finished."""

    def wait(pool: Workpool, work_ids: list[str], timeout_s: float = 20.0) -> None:
        wait_until(
            lambda: all(s.state is State.FINISHED for s in pool.status_batch(work_ids)),
            timeout_s,
            message=f"{len(work_ids)} jobs to finish",
        )

    return wait
