"""Fixtures for end-to-end tests: workers that are known to be up, and readers of job records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack
import pytest
import redis
from helpers import WorkerProcess, wait_until

from workpool import State, Workpool
from workpool.keys import PoolKeys


@pytest.fixture
def logged() -> Callable[[WorkerProcess, str], bool]:
    """Whether a worker has written a JSON log line with the given `event`."""
    return WorkerProcess.logged


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
def all_finished() -> Callable[..., None]:
    """Poll until every job of `work_ids` reads as finished."""

    def wait(pool: Workpool, work_ids: list[str], timeout_s: float = 20.0) -> None:
        wait_until(
            lambda: all(s.state is State.FINISHED for s in pool.status_batch(work_ids)),
            timeout_s,
            message=f"{len(work_ids)} jobs to finish",
        )

    return wait
