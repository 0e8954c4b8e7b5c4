"""Shared benchmark machinery: private Redis, timing, percentiles, counter verification.

Every system is driven through one protocol: a "system script" run as a subprocess with the
system's own Python (the main venv for workpool and the raw floor, the peers venv for the
others). Its subcommands are:

    produce  --url U --n N --mode single|batch   enqueue N no-op jobs; prints {"elapsed": s}
                                                  (workpool also: --mode xadd, N bare XADDs)
    latency  --url U --n N --interval-ms MS       N jobs MS apart, each carrying its enqueue time
    delayed  --url U --n N --due EPOCH            N jobs all due at EPOCH
    worker   --url U --concurrency C              run one worker process (until SIGTERM)
    setup    --url U                              optional per-run preparation (e.g. a cap)
    bodies   --url U --n N --concurrency C --processes P
                                                  raw floor only: N job bodies on P x C threads
                                                  with no queue, the ceiling; {"elapsed": s}

Each job does one INCR on `bench:count`; a job carrying a timestamp also RPUSHes its start time
minus that timestamp (seconds) to the list it names. The harness watches the counter to time
completions and to verify that exactly N jobs ran.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from workpool.embedded import RedisServer, start_redis_server

BENCH_DIR = Path(__file__).resolve().parent
MAIN_PYTHON = sys.executable
PEERS_PYTHON = str(BENCH_DIR / ".peers-venv" / "bin" / "python")
CELERY_PYTHON = str(BENCH_DIR / ".peers-venv-celery" / "bin" / "python")
COUNTER_KEY = "bench:count"
LATENCY_KEY = "bench:lat"
LATENESS_KEY = "bench:late"
POLL_S = 0.005
SETTLE_S = 0.5


@dataclass
class SystemSpec:
    """How to run one system: its script and the Python that runs it."""

    name: str
    python: str
    script: Path
    label: str = ""
    supports_delayed: bool = True
    workers: int = 2
    concurrency: int = 8
    extra_env: dict[str, str] = field(default_factory=dict)

    def command(self, sub: str, url: str, *args: str) -> list[str]:
        """The argv for one subcommand of the system script."""
        return [self.python, str(self.script), sub, "--url", url, *args]


@dataclass
class Verification:
    """What the INCR counter said against the expected N."""

    expected: int
    counted: int

    @property
    def lost(self) -> int:
        """Jobs that never ran."""
        return max(0, self.expected - self.counted)

    @property
    def duplicated(self) -> int:
        """Extra runs beyond N."""
        return max(0, self.counted - self.expected)

    @property
    def ok(self) -> bool:
        """Exactly N ran."""
        return self.counted == self.expected

    def __str__(self) -> str:
        if self.ok:
            return "ok"
        return f"lost={self.lost} dup={self.duplicated}"


def start_redis() -> RedisServer:
    """A private redis-server on a free port (no persistence)."""
    return start_redis_server()


def client(url: str) -> redis.Redis:
    """A plain client to the benchmark's Redis."""
    return redis.Redis.from_url(url)


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100) by linear interpolation; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    """Median of the finite values; nan if none."""
    finite = [v for v in values if v == v]
    return statistics.median(finite) if finite else float("nan")


def system_env(spec: SystemSpec, url: str) -> dict[str, str]:
    """Environment for a system subprocess."""
    env = dict(os.environ)
    env["BENCH_REDIS_URL"] = url
    env.pop("VIRTUAL_ENV", None)
    env.update(spec.extra_env)
    return env


def run_script(spec: SystemSpec, sub: str, url: str, *args: str, timeout: float = 600) -> Any:
    """Run a subcommand to completion; returns its last stdout line parsed as JSON."""
    proc = subprocess.run(
        spec.command(sub, url, *args),
        env=system_env(spec, url),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=BENCH_DIR,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{spec.name} {sub} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("{")]
    return json.loads(lines[-1]) if lines else {}


class Workers:
    """The worker processes of one system, started and stopped by PID."""

    def __init__(self, spec: SystemSpec, url: str) -> None:
        self.spec = spec
        self.url = url
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started_at = 0.0

    def start(self) -> Workers:
        """Start `spec.workers` processes of `spec.concurrency` each."""
        self.started_at = time.time()
        for _ in range(self.spec.workers):
            self.procs.append(
                subprocess.Popen(
                    self.spec.command(
                        "worker", self.url, "--concurrency", str(self.spec.concurrency)
                    ),
                    env=system_env(self.spec, self.url),
                    cwd=BENCH_DIR,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        return self

    def stop(self) -> None:
        """SIGTERM each worker's process group, then SIGKILL what is left after 10 s."""
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
        self.procs.clear()

    def alive(self) -> bool:
        """Whether every worker process is still running."""
        return all(p.poll() is None for p in self.procs)


@dataclass
class Completion:
    """When the counter first moved and when it reached N."""

    first_at: float
    first_count: int
    last_at: float
    verification: Verification


def wait_for_count(
    r: redis.Redis, n: int, timeout: float, workers: Workers | None = None
) -> Completion:
    """Poll the counter until it reaches n (or timeout), then settle and verify."""
    deadline = time.time() + timeout
    first_at = 0.0
    first_count = 0
    last_at = 0.0
    while True:
        count = int(r.get(COUNTER_KEY) or 0)
        now = time.time()
        if count and not first_at:
            first_at, first_count = now, count
        if count >= n:
            last_at = now
            break
        if now > deadline or (workers is not None and not workers.alive()):
            last_at = now
            break
        time.sleep(POLL_S)
    time.sleep(SETTLE_S)
    counted = int(r.get(COUNTER_KEY) or 0)
    return Completion(first_at, first_count, last_at, Verification(n, counted))


def warm_up(spec: SystemSpec, url: str, r: redis.Redis, workers: Workers) -> None:
    """Run a few jobs through fresh workers so they are idle and ready, then reset the count."""
    n = spec.workers * spec.concurrency
    run_script(spec, "produce", url, "--n", str(n), "--mode", "single")
    done = wait_for_count(r, n, timeout=60, workers=workers)
    if not done.verification.ok:
        raise RuntimeError(f"{spec.name}: warm-up saw {done.verification}")
    r.delete(COUNTER_KEY, LATENCY_KEY, LATENESS_KEY)


def read_floats(r: redis.Redis, key: str) -> list[float]:
    """Every float RPUSHed to key."""
    return [float(x) for x in r.lrange(key, 0, -1)]


def machine_info(url: str) -> dict[str, str]:
    """Cores, CPU model, Redis and Python versions."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    r = client(url)
    try:
        version = str(r.info("server")["redis_version"])
    finally:
        r.close()
    return {
        "cores": str(os.cpu_count()),
        "cpu": model,
        "redis": version,
        "python": sys.version.split()[0],
    }
