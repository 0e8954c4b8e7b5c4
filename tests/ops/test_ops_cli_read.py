"""The read commands of the `workpool` admin CLI against a real, seeded pool: pools, stats
(once and --watch), status, result and jobs, as tables and as --json.

One seeded setup serves the whole module (reads change nothing): pool `opsread` with cap 1,
three finished jobs (two successes, one failure), one `block_until` job running on a real
worker, three ready jobs held back by the cap and two delayed by an hour; and pool `opsread2`
(cap 7) holding one delayed job and no worker.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import pytest
import redis
import structlog
from helpers import ROOT, WorkerProcess, wait_until

from workpool import Workpool

POOL = "opsread"
OTHER = "opsread2"
BLOCK_KEY = "opsread:block"
HOUR_S = 3600.0


@dataclass
class Seeded:
    url: str
    pool: Workpool
    worker: WorkerProcess
    succeeded: list[str]  # add(1, 2) -> 3 and add(2, 3) -> 5
    failed: str  # raise_value_error("boom")
    running: str  # block_until
    pending: list[str]  # add jobs held back by the cap, oldest first
    scheduled: list[str]  # add jobs due in an hour, soonest first
    other_scheduled: str
    seeded_at: float


@pytest.fixture(scope="module")
def seeded(redis_server, tmp_path_factory, ops) -> Seeded:
    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    client.flushall()
    url = redis_server.url
    log = tmp_path_factory.mktemp("opsread") / "worker.log"
    worker = ops.start_ready_worker(url, [POOL], log, concurrency=2)
    pool = Workpool(POOL, redis_url=url, max_parallelism=1)
    other = Workpool(OTHER, redis_url=url, max_parallelism=7)
    try:
        # Finished: two successes and one permanent failure (actions are not retried here).
        succeeded = [
            pool.enqueue_action("jobs.add", {"a": 1, "b": 2}),
            pool.enqueue_action("jobs.add", {"a": 2, "b": 3}),
        ]
        failed = pool.enqueue_action("jobs.raise_value_error", {"message": "boom"})
        ops.wait_finished(pool, [*succeeded, failed])
        # Running: a blocking job takes the pool's only slot.
        running = pool.enqueue_action("jobs.block_until", {"key": BLOCK_KEY})
        assert ops.wait_started(client, BLOCK_KEY) == running
        # Pending (held back by the cap) and scheduled (due in an hour).
        pending = [pool.enqueue_action("jobs.add", {"a": i, "b": 0}) for i in range(3)]
        scheduled = [
            pool.enqueue_action("jobs.add", {"a": 10 + i, "b": 0}, run_after=HOUR_S + 60 * i)
            for i in range(2)
        ]
        other_scheduled = other.enqueue_action("jobs.add", {"a": 0, "b": 0}, run_after=HOUR_S)
        yield Seeded(
            url=url,
            pool=pool,
            worker=worker,
            succeeded=succeeded,
            failed=failed,
            running=running,
            pending=pending,
            scheduled=scheduled,
            other_scheduled=other_scheduled,
            seeded_at=time.time(),
        )
    finally:
        ops.release_blocked(client)
        worker.stop()
        pool.close()
        other.close()
        client.close()


@pytest.fixture
def cli(seeded, ops):
    def run(*args: str):
        return ops.invoke(seeded.url, *args)

    return run


# -- pools ------------------------------------------------------------------------------------


def test_pools_table_lists_every_pool_with_its_numbers(seeded, cli, ops):
    # Given the seeded pools
    # When an operator lists the pools
    result = cli("pools")
    # Then the table has a header and one row per pool, in name order, with cap, pending,
    # scheduled, running, jobs finished in the last 5 minutes and the error rate
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].split() == [
        "POOL",
        "CAP",
        "PENDING",
        "SCHEDULED",
        "RUNNING",
        "FINISHED/5m",
        "ERRORS",
    ]
    assert ops.table(result) == [
        [POOL, "1", "3", "2", "1", "3", "33.3%"],
        [OTHER, "7", "0", "1", "0", "0", "0.0%"],
    ]


def test_pools_json_has_cap_queues_and_recent_finished_per_pool(seeded, cli, ops):
    # Given the seeded pools
    # When an operator lists the pools as JSON
    listed = ops.json_out(cli("pools", "--json"))
    # Then there is one object per pool with the numbers the seeding produced
    by_pool = {p["pool"]: p for p in listed}
    assert set(by_pool) == {POOL, OTHER}
    picked = ("max_parallelism", "pending", "scheduled", "running", "recent_finished")
    assert {k: by_pool[POOL][k] for k in picked} == {
        "max_parallelism": 1,
        "pending": 3,
        "scheduled": 2,
        "running": 1,
        "recent_finished": 3,
    }
    assert {k: by_pool[OTHER][k] for k in picked} == {
        "max_parallelism": 7,
        "pending": 0,
        "scheduled": 1,
        "running": 0,
        "recent_finished": 0,
    }
    assert by_pool[POOL]["recent_error_rate"] == pytest.approx(1 / 3)


# -- stats ------------------------------------------------------------------------------------


STABLE_STATS = (
    "pool",
    "pending",
    "running",
    "scheduled",
    "recent_executions",
    "recent_finished",
    "recent_error_rate",
    "recent_permanent_failure_rate",
    "max_parallelism",
    "window_s",
)


def test_stats_json_has_the_fields_and_values_of_the_library(seeded, cli, ops):
    # Given the seeded pool, and the stats the library reports and logs
    with structlog.testing.capture_logs() as logs:
        logged = seeded.pool.log_stats()
    # When an operator asks for its stats as JSON
    shown = ops.json_out(cli("stats", POOL, "--json"))
    # Then it has exactly the fields of Workpool.stats() and of the pool_stats log line
    assert set(shown) == set(logged.as_dict())
    (line,) = [e for e in logs if e["event"] == "pool_stats"]
    assert set(shown) == set(line) - {"event", "log_level"}
    # And the values that do not move with the clock are equal
    library = seeded.pool.stats().as_dict()
    assert {k: shown[k] for k in STABLE_STATS} == {k: library[k] for k in STABLE_STATS}
    assert shown["pending"] == 3
    assert shown["running"] == 1
    assert shown["scheduled"] == 2
    assert shown["recent_executions"] == 3
    assert shown["recent_permanent_failure_rate"] == pytest.approx(1 / 3)
    # And the oldest ready job's age is its age (it was enqueued during seeding)
    age_ms = (time.time() - seeded.seeded_at) * 1000
    assert 0 <= shown["oldest_pending_ms"] <= age_ms + 5000


def test_stats_window_option_sets_the_window(seeded, cli, ops):
    # Given the seeded pool
    # When an operator asks for the stats over one minute
    shown = ops.json_out(cli("stats", POOL, "--window", "60", "--json"))
    # Then they cover 60 s, and the jobs that finished during seeding are in it
    assert shown["window_s"] == 60.0
    assert shown["recent_finished"] == 3


def test_stats_table_prints_one_line_per_field(seeded, cli):
    # Given the seeded pool
    # When an operator asks for its stats as a table
    result = cli("stats", POOL)
    # Then each field is one "name value" line
    assert result.exit_code == 0, result.stderr
    fields = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert set(fields) == set(seeded.pool.stats().as_dict())
    assert fields["pool"] == POOL
    assert fields["max_parallelism"] == "1"
    assert fields["pending"] == "3"
    assert fields["running"] == "1"
    assert fields["scheduled"] == "2"


def _watch(seeded: Seeded, *extra: str) -> tuple[int, list[str], str]:
    """Run `workpool stats POOL --watch 0.1` as a process; SIGINT it once it has printed two
    complete refreshes.

    Returns the exit code, the stdout lines and stderr.
    """
    # Ctrl-C raises KeyboardInterrupt, as at a terminal, even if this run inherited an ignored
    # SIGINT (as background jobs of a shell do).
    code = (
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from workpool.cli import main; main()"
    )
    args = [sys.executable, "-c", code]
    args += ["--redis-url", seeded.url, "stats", POOL, "--watch", "0.1", *extra]
    process = subprocess.Popen(
        args, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in process.stdout], daemon=True)
    reader.start()
    seen: list[str] = []

    def refreshes() -> int:
        while True:
            try:
                seen.append(lines.get_nowait())
            except queue.Empty:
                break
        # A refresh is complete once its last field is out: a JSON line, or the window_s line.
        if "--json" in extra:
            return sum(line.endswith("}\n") for line in seen)
        return sum(line.startswith("window_s ") for line in seen)

    try:
        wait_until(lambda: refreshes() >= 2, 15, message="two refreshes of stats --watch")
        process.send_signal(signal.SIGINT)
        exit_code = process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
    reader.join(timeout=5)
    refreshes()
    return exit_code, seen, process.stderr.read()


def test_stats_watch_refreshes_until_interrupted(seeded):
    # Given the seeded pool
    # When an operator watches its stats every 0.1 s and presses Ctrl-C after two refreshes
    code, lines, stderr = _watch(seeded)
    # Then it exits 0 quietly
    assert code == 0, stderr
    assert stderr == ""
    # And each refresh prints a header and the stats (click drops the clear-screen escape
    # when stdout is not a terminal, as here)
    headers = [line for line in lines if f"workpool stats {POOL} " in line]
    assert len(headers) >= 2
    assert all("every 0.1 s" in h for h in headers)
    pending_lines = [line.split() for line in lines if line.startswith("pending ")]
    assert len(pending_lines) >= 2
    assert all(p == ["pending", "3"] for p in pending_lines)


def test_stats_watch_json_prints_one_object_per_refresh(seeded):
    # Given the seeded pool
    # When an operator watches its stats as JSON and interrupts after two refreshes
    code, lines, stderr = _watch(seeded, "--json")
    # Then it exits 0 quietly, and every line is one JSON snapshot of the pool
    assert code == 0, stderr
    assert stderr == ""
    snapshots = [json.loads(line) for line in lines if line.endswith("\n")]
    assert len(snapshots) >= 2
    assert all(s["pool"] == POOL and s["running"] == 1 for s in snapshots)


# -- status -----------------------------------------------------------------------------------


def test_status_json_for_known_and_unknown_ids(seeded, cli, ops):
    # Given jobs in every state, and an id that was never enqueued
    ids = [seeded.succeeded[0], seeded.failed, seeded.running]
    ids += [seeded.pending[0], seeded.scheduled[0], "nosuchjob"]
    # When an operator asks for their status as JSON
    shown = ops.json_out(cli("status", POOL, *ids, "--json"))
    # Then each id is reported, in order, with its state, ended attempts and next run
    assert [s["work_id"] for s in shown] == ids
    assert [s["state"] for s in shown] == [
        "finished",
        "finished",
        "running",
        "pending",
        "pending",
        "unknown",
    ]
    assert [s["previous_attempts"] for s in shown] == [1, 1, 0, 0, 0, 0]
    delayed = shown[4]["next_run_at"]
    assert delayed == pytest.approx(seeded.seeded_at + HOUR_S, abs=60)
    assert [s["next_run_at"] for s in (shown[0], shown[1], shown[2], shown[5])] == [None] * 4


def test_status_table_for_known_and_unknown_ids(seeded, cli, ops):
    # Given a finished job, a delayed job and an unknown id
    ids = [seeded.succeeded[0], seeded.scheduled[0], "nosuchjob"]
    # When an operator asks for their status
    result = cli("status", POOL, *ids)
    # Then there is one row per id with its state, ended attempts and next run ("-" when none)
    assert result.stdout.splitlines()[0].split() == [
        "WORK",
        "ID",
        "STATE",
        "PREVIOUS",
        "ATTEMPTS",
        "NEXT",
        "RUN",
    ]
    rows = ops.table(result)
    assert rows[0] == [seeded.succeeded[0], "finished", "1", "-"]
    assert rows[1][:3] == [seeded.scheduled[0], "pending", "0"]
    assert rows[1][3].endswith("+00:00")  # an ISO time in UTC
    assert rows[2] == ["nosuchjob", "unknown", "0", "-"]


# -- result -----------------------------------------------------------------------------------


def test_result_of_a_succeeded_job(seeded, cli, ops):
    # Given a job that returned 1 + 2
    work_id = seeded.succeeded[0]
    # When an operator asks for its result, as JSON and as text
    shown = ops.json_out(cli("result", POOL, work_id, "--json"))
    text = cli("result", POOL, work_id)
    # Then both say success with the return value, and exit 0
    assert shown == {"work_id": work_id, "kind": "success", "return_value": 3, "error": None}
    assert text.exit_code == 0, text.stderr
    assert [line.split() for line in text.stdout.splitlines()] == [
        ["kind", "success"],
        ["return_value", "3"],
    ]


def test_result_of_a_failed_job_shows_its_error(seeded, cli, ops):
    # Given a job that raised ValueError("boom")
    # When an operator asks for its result
    shown = ops.json_out(cli("result", POOL, seeded.failed, "--json"))
    text = cli("result", POOL, seeded.failed)
    # Then it is a finished outcome (exit 0) of kind failed with the error text
    assert shown["kind"] == "failed"
    assert shown["return_value"] is None
    assert "boom" in shown["error"]
    assert text.exit_code == 0, text.stderr
    assert text.stdout.splitlines()[0].split() == ["kind", "failed"]
    assert text.stdout.splitlines()[1].startswith("error")
    assert "boom" in text.stdout.splitlines()[1]


@pytest.mark.parametrize("which", ["pending", "running"])
def test_result_of_an_unfinished_job_exits_1_with_one_line(seeded, cli, ops, which):
    # Given a job that has not finished
    work_id = seeded.pending[0] if which == "pending" else seeded.running
    # When an operator asks for its result
    result = cli("result", POOL, work_id)
    # Then it exits 1 with one line on stderr naming its state, and prints nothing else
    assert result.exit_code == 1
    line = ops.error_line(result)
    assert line == f"Error: work {work_id} is {which}: no result yet"
    assert result.stdout == ""


def test_result_json_of_a_pending_job_still_prints_its_state(seeded, cli, ops):
    # Given a job that has not started
    work_id = seeded.pending[0]
    # When an operator asks for its result as JSON
    result = cli("result", POOL, work_id, "--json")
    # Then it exits 1 with one error line, and stdout holds JSON saying there is no result
    assert result.exit_code == 1
    ops.error_line(result)
    assert json.loads(result.stdout) == {"work_id": work_id, "state": "pending", "result": None}


# -- jobs -------------------------------------------------------------------------------------


def test_jobs_pending_oldest_first_within_the_limit(seeded, cli, ops):
    # Given three ready jobs
    # When an operator lists at most two of them, then all of them
    two = ops.json_out(cli("jobs", POOL, "--state", "pending", "--limit", "2", "--json"))
    every = ops.json_out(cli("jobs", POOL, "--state", "pending", "--json"))
    # Then the limit holds, and they come oldest first with their function and attempts
    assert [j["work_id"] for j in two] == seeded.pending[:2]
    assert [j["work_id"] for j in every] == seeded.pending
    for job in every:
        assert job["state"] == "pending"
        assert job["function"] == "jobs.add"
        assert job["kind"] == "action"
        assert job["attempts"] == 0
        assert job["age_s"] >= 0
        assert job["next_run_at"] is None
        assert job["started_at"] is None
        assert job["worker"] is None


def test_jobs_scheduled_soonest_first_with_next_run(seeded, cli, ops):
    # Given two jobs due in an hour and in an hour and a minute
    # When an operator lists scheduled jobs with a limit of one, then all of them
    one = ops.json_out(cli("jobs", POOL, "--state", "scheduled", "--limit", "1", "--json"))
    every = ops.json_out(cli("jobs", POOL, "--state", "scheduled", "--json"))
    # Then the limit holds, the soonest comes first, and each shows when it is due
    assert [j["work_id"] for j in one] == seeded.scheduled[:1]
    assert [j["work_id"] for j in every] == seeded.scheduled
    for i, job in enumerate(every):
        assert job["function"] == "jobs.add"
        assert job["attempts"] == 0
        assert job["next_run_at"] == pytest.approx(seeded.seeded_at + HOUR_S + 60 * i, abs=60)
        assert job["started_at"] is None


def test_jobs_running_shows_start_and_worker(seeded, cli, ops):
    # Given one job running on the worker
    # When an operator lists running jobs
    running = ops.json_out(cli("jobs", POOL, "--state", "running", "--limit", "5", "--json"))
    # Then it is there, with its function, attempt, start time and the worker that runs it
    (job,) = running
    assert job["work_id"] == seeded.running
    assert job["function"] == "jobs.block_until"
    assert job["attempts"] == 1
    assert job["started_at"] <= time.time()
    assert job["started_at"] >= seeded.seeded_at - 60
    assert f":{seeded.worker.pid}:" in job["worker"]
    assert job["next_run_at"] is None


def test_jobs_tables_have_state_specific_columns(seeded, cli, ops):
    # Given jobs in every listable state
    # When an operator lists each state as a table
    pending = cli("jobs", POOL, "--state", "pending", "--limit", "1")
    scheduled = cli("jobs", POOL, "--state", "scheduled", "--limit", "1")
    running = cli("jobs", POOL, "--state", "running")
    # Then each has the common columns plus its own, and at most `limit` rows
    header = ["WORK", "ID", "FUNCTION", "KIND", "ATTEMPTS", "AGE"]
    assert pending.stdout.splitlines()[0].split() == header
    assert scheduled.stdout.splitlines()[0].split() == [*header, "NEXT", "RUN"]
    assert running.stdout.splitlines()[0].split() == [*header, "STARTED", "WORKER"]
    (row,) = ops.table(pending)
    assert row[:4] == [seeded.pending[0], "jobs.add", "action", "0"]
    (row,) = ops.table(scheduled)
    assert row[:4] == [seeded.scheduled[0], "jobs.add", "action", "0"]
    assert row[5].endswith("+00:00")
    (row,) = ops.table(running)
    assert row[:4] == [seeded.running, "jobs.block_until", "action", "1"]
    assert f":{seeded.worker.pid}:" in row[6]


def test_jobs_in_an_empty_state_says_so(seeded, cli, ops):
    # Given a pool with nothing running
    # When an operator lists its running jobs, as a table and as JSON
    text = cli("jobs", OTHER, "--state", "running")
    shown = ops.json_out(cli("jobs", OTHER, "--state", "running", "--json"))
    # Then the table says there are none and the JSON is an empty list
    assert text.exit_code == 0, text.stderr
    assert text.stdout.strip() == "no running jobs"
    assert shown == []
