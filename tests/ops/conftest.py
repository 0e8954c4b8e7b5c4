"""Fixtures for the operators' surface: the `workpool` admin CLI run in-process against the
session's real redis-server, worker subprocesses known to be up, and Prometheus scrapes.

Fixtures of other test folders are not visible here, so the worker-readiness check of
tests/e2e/conftest.py is repeated in spirit.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result
from helpers import STARTUP_TIMEOUT_S, WorkerProcess, release_blocked, wait_until
from prometheus_client.parser import text_string_to_metric_families

from workpool import State, Workpool
from workpool.cli import main

FINISH_TIMEOUT_S = 15.0


# -- the CLI ----------------------------------------------------------------------------------


def invoke(redis_url: str, *args: str, env: dict[str, str] | None = None) -> Result:
    """Run `workpool --redis-url URL ARGS...` in-process; stdout and stderr are kept apart."""
    return CliRunner(env=env).invoke(main, ["--redis-url", redis_url, *args])


def error_line(result: Result) -> str:
    """The single line a failed command wrote on stderr; fails unless there is exactly one."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line on stderr, got {lines!r}"
    assert "Traceback" not in result.stderr + result.stdout
    # CliRunner catches what escaped the command: a real error exit is a SystemExit.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return lines[0]


def json_out(result: Result) -> Any:
    """The JSON a successful read command printed on stdout."""
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    return json.loads(result.stdout)


def table(result: Result) -> list[list[str]]:
    """The rows (header excluded) of a table a command printed, split on whitespace."""
    assert result.exit_code == 0, result.stderr
    return [line.split() for line in result.stdout.splitlines()[1:]]


@pytest.fixture
def cli(redis_url: str) -> Callable[..., Result]:
    """`cli(*args)`: run the admin CLI against the test server."""

    def run(*args: str) -> Result:
        return invoke(redis_url, *args)

    return run


# -- workers ----------------------------------------------------------------------------------


def logged(worker: WorkerProcess, event: str) -> bool:
    """Whether a worker has written a JSON log line with the given `event`."""
    return worker.logged(event)


def wait_ready(worker: WorkerProcess) -> WorkerProcess:
    """Wait until `worker` has logged `worker_started` (and has not exited)."""
    return worker.wait_ready()


def start_ready_worker(
    redis_url: str, pools: list[str], log_path: Path, **kwargs: Any
) -> WorkerProcess:
    """A worker subprocess (for module-scoped setups) that has logged `worker_started`."""
    worker = WorkerProcess(redis_url, pools, log_path=log_path, **kwargs)
    try:
        return wait_ready(worker)
    except BaseException:
        worker.stop()
        raise


def wait_finished(pool: Workpool, work_ids: list[str]) -> None:
    """Poll until every job of `work_ids` reads as finished."""
    wait_until(
        lambda: all(s.state is State.FINISHED for s in pool.status_batch(work_ids)),
        FINISH_TIMEOUT_S,
        message=f"{len(work_ids)} jobs of {pool.name} to finish",
    )


def wait_started(client: redis.Redis, key: str) -> str:
    """Poll until the blocking job keyed `key` has started; returns its work id."""
    work_id = wait_until(
        lambda: client.get(f"{key}:started"), FINISH_TIMEOUT_S, message=f"{key} to start"
    )
    return work_id.decode()


# -- metrics ----------------------------------------------------------------------------------

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int, timeout_s: float = 2.0) -> str:
    """The text a worker's /metrics endpoint serves."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        assert response.status == 200
        return response.read().decode()


def wait_metrics(port: int) -> str:
    """Poll until /metrics answers; returns its first answer."""

    def answer() -> str | None:
        try:
            return scrape(port, timeout_s=0.5)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    return wait_until(answer, STARTUP_TIMEOUT_S, message=f"/metrics on port {port} to answer")


def parse_samples(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, keyed by sample name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    """One sample's value, or None when the exposition has no such sample."""
    return samples.get((name, frozenset(labels.items())))


class Ops:
    """The helpers above, for test modules (a conftest cannot be imported by name)."""

    invoke = staticmethod(invoke)
    error_line = staticmethod(error_line)
    json_out = staticmethod(json_out)
    table = staticmethod(table)
    wait_ready = staticmethod(wait_ready)
    start_ready_worker = staticmethod(start_ready_worker)
    release_blocked = staticmethod(release_blocked)
    wait_finished = staticmethod(wait_finished)
    wait_started = staticmethod(wait_started)
    scrape = staticmethod(scrape)
    wait_metrics = staticmethod(wait_metrics)
    parse_samples = staticmethod(parse_samples)
    sample = staticmethod(sample)


@pytest.fixture(scope="session")
def ops() -> type[Ops]:
    """Helpers for the ops tests: `ops.invoke(url, *args)`, `ops.error_line(result)`, ..."""
    return Ops
