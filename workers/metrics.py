"""Prometheus metrics of a worker (`workpool-worker --metrics-port PORT`).

Counters and histograms describe what this worker did; the pool gauges (running, slots free,
pending, scheduled) are read from Redis at scrape time, so every worker reports the same,
global, numbers for its pools.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from workpool.status import Stats

logger = structlog.get_logger(__name__)

# Run times and queue waits from a millisecond to ten minutes.
TIME_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
)
# The outcome codes of complete.lua, and the counter each one counts in.
OUTCOME_COUNTERS = {
    "success": "succeeded",
    "failed": "failed",
    "retry": "retried",
    "canceled": "canceled",
}


class WorkerMetrics:
    """The worker's metrics in a registry of their own."""

    def __init__(self, read_pools: Callable[[], list[Stats]]) -> None:
        self.registry = CollectorRegistry()
        labels = ["pool", "function"]

        def counter(name: str, text: str) -> Counter:
            return Counter(f"workpool_jobs_{name}", text, labels, registry=self.registry)

        self.started = counter("started", "Job attempts this worker started.")
        self.succeeded = counter("succeeded", "Job attempts that succeeded.")
        self.failed = counter("failed", "Jobs that ended failed (no attempts left).")
        self.retried = counter("retried", "Failed attempts that will be retried.")
        self.canceled = counter("canceled", "Jobs canceled while this worker ran them.")
        self.timed_out = counter("timed_out", "Job attempts that ran past their timeout.")
        self.run_seconds = Histogram(
            "workpool_job_run_seconds",
            "Run time of job attempts.",
            labels,
            buckets=TIME_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait_seconds = Histogram(
            "workpool_job_queue_wait_seconds",
            "Time a job waited ready before it started.",
            ["pool"],
            buckets=TIME_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "workpool_worker_runs_in_flight",
            "Jobs and callbacks this worker runs now.",
            registry=self.registry,
        )
        self.registry.register(_PoolCollector(read_pools))

    def serve(self, port: int, host: str = "0.0.0.0") -> None:
        """Serve /metrics over HTTP on a daemon thread."""
        start_http_server(port, addr=host, registry=self.registry)
        logger.info("metrics_serving", port=port, host=host)

    def job_started(self, pool: str, function: str, queued_ms: int) -> None:
        """Count a started attempt and how long it waited."""
        self.started.labels(pool, function).inc()
        self.queue_wait_seconds.labels(pool).observe(queued_ms / 1000)

    def job_ended(self, pool: str, function: str, code: str, duration_ms: float) -> None:
        """Count an attempt's recorded outcome (a complete.lua code) and its run time."""
        name = OUTCOME_COUNTERS.get(code)
        if name is None:
            return  # stale or released: nothing new happened to the job
        getattr(self, name).labels(pool, function).inc()
        self.run_seconds.labels(pool, function).observe(duration_ms / 1000)


class _PoolCollector(Collector):
    """Pool gauges read from Redis at scrape time."""

    def __init__(self, read_pools: Callable[[], list[Stats]]) -> None:
        self._read_pools = read_pools

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = {
            "running": GaugeMetricFamily(
                "workpool_pool_jobs_running",
                "Jobs of the pool running now, on all workers.",
                labels=["pool"],
            ),
            "slots_free": GaugeMetricFamily(
                "workpool_pool_slots_free",
                "Cap minus running jobs (0 when paused or full).",
                labels=["pool"],
            ),
            "pending": GaugeMetricFamily(
                "workpool_pool_jobs_pending", "Jobs ready to start.", labels=["pool"]
            ),
            "scheduled": GaugeMetricFamily(
                "workpool_pool_jobs_scheduled", "Jobs delayed or backing off.", labels=["pool"]
            ),
            "cap": GaugeMetricFamily(
                "workpool_pool_max_parallelism", "The pool's cap.", labels=["pool"]
            ),
        }
        try:
            pools = self._read_pools()
        except Exception as exc:  # a scrape must not fail on a Redis outage
            logger.warning("metrics_read_failed", error=str(exc))
            pools = []
        for s in pools:
            families["running"].add_metric([s.pool], s.running)
            families["slots_free"].add_metric([s.pool], max(0, s.max_parallelism - s.running))
            families["pending"].add_metric([s.pool], s.pending)
            families["scheduled"].add_metric([s.pool], s.scheduled)
            families["cap"].add_metric([s.pool], s.max_parallelism)
        yield from families.values()
