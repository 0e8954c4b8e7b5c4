"""The worker's Prometheus endpoint (`workpool-worker --metrics-port PORT`), scraped over HTTP
from a real worker subprocess after a known mix of jobs.

One scenario serves the module: a worker (concurrency 1) serves pool `opsm` (cap 3) and pool
`opsm2` (default cap 10). On `opsm` it runs three successes, one permanent failure, one job
that fails once and then succeeds on retry, one sync job that runs past its 0.3 s timeout, and
one job canceled while running; then it holds one blocking job while two more wait ready
(the worker has no room) and one waits an hour. `opsm2` runs one success.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from helpers import WorkerProcess, wait_until

from workpool import ResultKind, RetryBehavior, Workpool
from workpool.embedded import free_port

POOL = "opsm"
OTHER = "opsm2"
CAP = 3
TIMEOUT_S = 0.3
FAST_RETRY = RetryBehavior(max_attempts=3, initial_backoff_ms=10)

ADD = "jobs.add"
FAIL = "jobs.raise_value_error"
FLAKY = "jobs.fail_times"
SLOW = "jobs.block_until"
CANCELED = "jobs.block_then_fail"
HOLD = "jobs.faults_hold"


@dataclass
class Scenario:
    url: str
    port: int
    worker: WorkerProcess
    pool: Workpool
    samples: dict


@pytest.fixture(scope="module")
def scenario(redis_server, tmp_path_factory, ops) -> Iterator[Scenario]:
    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    client.flushall()
    url = redis_server.url
    port = free_port()
    log = tmp_path_factory.mktemp("opsmetrics") / "worker.log"
    metrics_args = ("--metrics-port", str(port), "--metrics-host", "127.0.0.1")
    worker = ops.start_ready_worker(url, [POOL, OTHER], log, concurrency=1, extra_args=metrics_args)
    pool = Workpool(POOL, redis_url=url, max_parallelism=CAP)
    other = Workpool(OTHER, redis_url=url)
    try:
        ops.wait_metrics(port)
        # Three successes, one permanent failure, one failure retried into a success.
        done = [pool.enqueue_action(ADD, {"a": i, "b": 1}) for i in range(3)]
        failed = pool.enqueue_action(FAIL, {"message": "boom"})
        flaky = pool.enqueue_action(FLAKY, {"key": "opsm:flaky", "failures": 1}, retry=FAST_RETRY)
        done.append(other.enqueue_action(ADD, {"a": 1, "b": 1}))
        ops.wait_finished(pool, [*done[:3], failed, flaky])
        ops.wait_finished(other, done[3:])
        assert pool.result(failed).kind is ResultKind.FAILED
        assert pool.result(flaky).return_value == 2
        # A sync job past its timeout: recorded failed, then its thread is let return.
        slow = pool.enqueue_action(SLOW, {"key": "opsm:slow"}, timeout=TIMEOUT_S)
        ops.wait_finished(pool, [slow])
        assert pool.result(slow).error == "timeout"
        client.set("opsm:slow:release", 1)
        wait_until(lambda: pool.stats().running == 0, 10, message="the timed-out thread to return")
        # A job canceled while running (it fails after the cancel, so it ends canceled).
        canceled = pool.enqueue_action(CANCELED, {"key": "opsm:cancel"})
        ops.wait_started(client, "opsm:cancel")
        assert pool.cancel(canceled)
        client.set("opsm:cancel:release", 1)
        ops.wait_finished(pool, [canceled])
        assert pool.result(canceled).kind is ResultKind.CANCELED
        # Now: one blocking job runs, two wait ready (the worker is full), one waits an hour.
        pool.enqueue_action(HOLD, {"key": "opsm:hold"})
        ops.wait_started(client, "opsm:hold")
        for i in range(2):
            pool.enqueue_action(ADD, {"a": i, "b": 0})
        pool.enqueue_action(ADD, {"a": 0, "b": 0}, run_after=3600)
        stats = pool.stats()
        assert (stats.running, stats.pending, stats.scheduled) == (1, 2, 1)
        samples = ops.parse_samples(ops.scrape(port))
        yield Scenario(url=url, port=port, worker=worker, pool=pool, samples=samples)
    finally:
        ops.release_blocked(client)
        worker.stop()
        pool.close()
        other.close()
        client.close()


def value(ops, scenario: Scenario, name: str, **labels: str) -> float:
    """A sample's value; 0 when the exposition has none (a counter never touched)."""
    found = ops.sample(scenario.samples, name, **labels)
    return 0.0 if found is None else found


# What each (pool, function) did, as counted per outcome.
EXPECTED_COUNTS = {
    # (pool, function): (started, succeeded, failed, retried, canceled, timed_out)
    (POOL, ADD): (3, 3, 0, 0, 0, 0),
    (POOL, FAIL): (1, 0, 1, 0, 0, 0),
    (POOL, FLAKY): (2, 1, 0, 1, 0, 0),
    (POOL, SLOW): (1, 0, 1, 0, 0, 1),
    (POOL, CANCELED): (1, 0, 0, 0, 1, 0),
    (POOL, HOLD): (1, 0, 0, 0, 0, 0),
    (OTHER, ADD): (1, 1, 0, 0, 0, 0),
}
COUNTERS = ("started", "succeeded", "failed", "retried", "canceled", "timed_out")


@pytest.mark.parametrize(("pool", "function"), list(EXPECTED_COUNTS))
def test_job_counters_per_pool_and_function(scenario, ops, pool, function):
    # Given the scenario's jobs have run (see the module docstring)
    # When the worker's /metrics was scraped
    counted = tuple(
        value(ops, scenario, f"workpool_jobs_{c}_total", pool=pool, function=function)
        for c in COUNTERS
    )
    # Then each counter counts exactly what happened to that function in that pool
    assert dict(zip(COUNTERS, counted, strict=True)) == dict(
        zip(COUNTERS, EXPECTED_COUNTS[pool, function], strict=True)
    )


def test_run_time_histogram_counts_every_ended_attempt(scenario, ops):
    # Given the scenario's jobs have run; the blocking job has not ended
    # When the worker's /metrics was scraped
    counts = {
        key: value(ops, scenario, "workpool_job_run_seconds_count", pool=key[0], function=key[1])
        for key in EXPECTED_COUNTS
    }
    # Then the run-time histogram holds one observation per ended attempt (successes, failures,
    # retried attempts, the timeout and the cancel), none for the job still running
    ended = {key: sum(c[1:5]) for key, c in EXPECTED_COUNTS.items()}
    assert counts == ended
    assert counts[POOL, HOLD] == 0
    # And the +Inf bucket equals the count
    for pool, function in EXPECTED_COUNTS:
        inf = ops.sample(
            scenario.samples,
            "workpool_job_run_seconds_bucket",
            pool=pool,
            function=function,
            le="+Inf",
        )
        assert (inf or 0.0) == counts[pool, function]


def test_timed_out_attempt_records_at_least_its_timeout_as_run_time(scenario, ops):
    # Given one sync attempt that ran past its 0.3 s timeout (its thread ran on after that)
    # When the worker's /metrics was scraped
    total = value(ops, scenario, "workpool_job_run_seconds_sum", pool=POOL, function=SLOW)
    count = value(ops, scenario, "workpool_job_run_seconds_count", pool=POOL, function=SLOW)
    # Then its one observed run time is at least the timeout, and it is not in the fastest bucket
    assert count == 1
    assert total >= TIMEOUT_S
    fastest = value(
        ops, scenario, "workpool_job_run_seconds_bucket", pool=POOL, function=SLOW, le="0.001"
    )
    assert fastest == 0


def test_queue_wait_histogram_counts_every_start(scenario, ops):
    # Given the scenario's jobs have run
    # When the worker's /metrics was scraped
    waits = {
        pool: value(ops, scenario, "workpool_job_queue_wait_seconds_count", pool=pool)
        for pool in (POOL, OTHER)
    }
    # Then each pool's queue-wait histogram has one observation per started attempt
    starts = {
        pool: sum(c[0] for (p, _), c in EXPECTED_COUNTS.items() if p == pool)
        for pool in (POOL, OTHER)
    }
    assert waits == starts == {POOL: 9, OTHER: 1}
    for pool in (POOL, OTHER):
        assert value(ops, scenario, "workpool_job_queue_wait_seconds_sum", pool=pool) >= 0


GAUGES = (
    ("running", "workpool_pool_jobs_running"),
    ("slots_free", "workpool_pool_slots_free"),
    ("pending", "workpool_pool_jobs_pending"),
    ("scheduled", "workpool_pool_jobs_scheduled"),
    ("max_parallelism", "workpool_pool_max_parallelism"),
)


def test_pool_gauges_match_the_pools(scenario, ops):
    # Given pool opsm (cap 3) with one job running, two ready and one delayed, and an idle
    # pool opsm2 with the default cap
    # When the worker's /metrics was scraped
    gauges = {
        pool: {short: ops.sample(scenario.samples, name, pool=pool) for short, name in GAUGES}
        for pool in (POOL, OTHER)
    }
    # Then the gauges read from Redis describe both pools, slots free being cap - running
    assert gauges[POOL] == {
        "running": 1,
        "slots_free": 2,
        "pending": 2,
        "scheduled": 1,
        "max_parallelism": 3,
    }
    assert gauges[OTHER] == {
        "running": 0,
        "slots_free": 10,
        "pending": 0,
        "scheduled": 0,
        "max_parallelism": 10,
    }


def test_in_flight_gauge_counts_the_running_job(scenario, ops):
    # Given the worker runs one blocking job and nothing else
    # When the worker's /metrics was scraped
    # Then its in-flight gauge is 1
    assert ops.sample(scenario.samples, "workpool_worker_runs_in_flight") == 1


def test_pool_gauges_are_read_at_scrape_time(scenario, ops):
    # Given the scenario's worker, its blocking job running in pool opsm (cap 3)
    # When an operator raises the cap with the CLI, then pauses the other pool, and /metrics
    # is scraped again
    raised = ops.invoke(scenario.url, "set", POOL, "--max-parallelism", "5")
    paused = ops.invoke(scenario.url, "pause", OTHER)
    assert (raised.exit_code, paused.exit_code) == (0, 0)
    samples = ops.parse_samples(ops.scrape(scenario.port))
    # Then the new scrape shows the new caps and slots free, without restarting the worker
    assert ops.sample(samples, "workpool_pool_max_parallelism", pool=POOL) == 5
    assert ops.sample(samples, "workpool_pool_slots_free", pool=POOL) == 4
    assert ops.sample(samples, "workpool_pool_max_parallelism", pool=OTHER) == 0
    assert ops.sample(samples, "workpool_pool_slots_free", pool=OTHER) == 0
    # And the counters kept their values
    assert ops.sample(samples, "workpool_jobs_started_total", pool=POOL, function=ADD) == 3
