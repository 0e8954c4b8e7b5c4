"""Test helpers: polling with a deadline, and worker subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import redis

T = TypeVar("T")

TESTS_DIR = Path(__file__).parent
# Generous upper bound for a worker subprocess to start; a passing test never waits this long.
STARTUP_TIMEOUT_S = 15.0
ROOT = TESTS_DIR.parent


def wait_until(
    predicate: Callable[[], T],
    timeout_s: float = 10.0,
    interval_s: float = 0.01,
    message: str = "condition",
) -> T:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {message}")
        time.sleep(interval_s)


def settle(client: redis.Redis, lease_ms: int = 1000) -> int:
    """Wait until the server has been up for `lease_ms`: only then are expired leases taken back
    (right after a restart every deadline looks passed). Returns the lease to claim with.
    """
    wait_until(
        lambda: client.info("server")["uptime_in_seconds"] * 1000 >= lease_ms,
        timeout_s=5,
        message="server uptime to pass one lease",
    )
    return lease_ms


def snapshot(r: redis.Redis) -> dict[bytes, tuple[bytes, object]]:
    """Every key with its type and contents: equal snapshots mean nothing was written."""
    readers = {
        b"string": r.get,
        b"hash": r.hgetall,
        b"set": r.smembers,
        b"list": lambda k: r.lrange(k, 0, -1),
        b"zset": lambda k: r.zrange(k, 0, -1, withscores=True),
        b"stream": r.xrange,
    }
    return {k: (t, readers[t](k)) for k in r.keys("*") for t in [r.type(k)]}


class WorkerProcess:
    """A `workpool-worker` subprocess serving test pools with the functions in tests/jobs.py."""

    def __init__(
        self,
        redis_url: str,
        pools: list[str],
        concurrency: int = 4,
        modules: tuple[str, ...] = ("jobs",),
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        args = [
            sys.executable,
            "-m",
            "workers",
            "--redis-url",
            redis_url,
            "--concurrency",
            str(concurrency),
            "--log-level",
            "DEBUG",
            "--log-format",
            "json",
        ]
        for pool in pools:
            args += ["--pool", pool]
        for module in modules:
            args += ["--import", module]
        args += list(extra_args)
        full_env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), str(ROOT)]),
            "WORKPOOL_TEST_REDIS_URL": redis_url,
            **(env or {}),
        }
        self.log_path = log_path
        self._log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            args, env=full_env, stdout=self._log, stderr=self._log, cwd=str(TESTS_DIR)
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path else ""

    def events(self, event: str | None = None) -> list[dict]:
        """The JSON log lines it wrote (only those with `event`, if given), oldest first."""
        found = []
        for line in self.log().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and (event is None or record.get("event") == event):
                found.append(record)
        return found

    def logged(self, event: str) -> bool:
        """Whether it has written a JSON log line with the given `event`."""
        return bool(self.events(event))

    def wait_ready(self, timeout_s: float = STARTUP_TIMEOUT_S) -> WorkerProcess:
        """Wait until it has logged `worker_started` (and has not exited)."""
        wait_until(
            lambda: self.logged("worker_started") or self.process.poll() is not None,
            timeout_s,
            message="worker_started in the worker log",
        )
        assert self.process.poll() is None, f"worker exited at startup:\n{self.log()}"
        return self

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def wait(self, timeout_s: float = 15.0) -> int:
        return self.process.wait(timeout=timeout_s)

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout_s`."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._log is not subprocess.DEVNULL:
            self._log.close()


def release_blocked(client: redis.Redis) -> None:
    """Let every blocking test job that started (`jobs.block_until` and kin) return."""
    for key in client.scan_iter(match="*:started"):
        client.set(key.decode().removesuffix(":started") + ":release", 1)
