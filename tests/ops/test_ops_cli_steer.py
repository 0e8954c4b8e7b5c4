"""The steering commands of the `workpool` admin CLI against a real server and real workers:
set, pause, resume, cancel (ids and --all) and enqueue.
"""

from __future__ import annotations

import re
import time

import pytest
import redis

from workpool import ResultKind, Workpool

POOL = "opssteer"
SIDE = "opsside"
HOUR_S = 3600.0


def test_set_changes_the_cap_and_lets_held_back_work_start(
    r: redis.Redis, make_pool, ready_workers, cli, ops
):
    # Given a pool with cap 1, whose only slot a blocking job holds, and a job held back
    pool: Workpool = make_pool(POOL, max_parallelism=1)
    ready_workers(pools=(POOL,))
    blocker = pool.enqueue_action("jobs.block_until", {"key": "opssteer:set"})
    ops.wait_started(r, "opssteer:set")
    waiting = pool.enqueue_action("jobs.add", {"a": 20, "b": 22})
    assert ops.json_out(cli("stats", POOL, "--json"))["pending"] == 1
    # When an operator raises the cap to 2
    result = cli("set", POOL, "--max-parallelism", "2")
    # Then it says what changed, and stats show the new cap
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{POOL}: max_parallelism 1 -> 2\n"
    assert ops.json_out(cli("stats", POOL, "--json"))["max_parallelism"] == 2
    # And the held-back job runs while the blocker still holds its slot
    ops.wait_finished(pool, [waiting])
    assert pool.result(waiting).return_value == 42
    assert pool.status(blocker).state == "running"


def test_set_creates_a_new_pool(r, cli, ops):
    # Given an empty Redis
    # When an operator sets the cap of a pool nobody has used yet
    result = cli("set", "opsfresh", "--max-parallelism", "4")
    # Then it reports the default cap it replaced, and the pool is listed with cap 4
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "opsfresh: max_parallelism 10 -> 4\n"
    (listed,) = ops.json_out(cli("pools", "--json"))
    assert listed["pool"] == "opsfresh"
    assert listed["max_parallelism"] == 4


def test_set_zero_pauses_and_pools_table_says_so(r, make_pool, cli, ops):
    # Given a pool with cap 3
    make_pool(POOL, max_parallelism=3).enqueue_action("jobs.add", {"a": 1, "b": 1})
    # When an operator sets its cap to 0
    result = cli("set", POOL, "--max-parallelism", "0")
    # Then the pools table shows it as paused
    assert result.stdout == f"{POOL}: max_parallelism 3 -> 0\n"
    (row,) = ops.table(cli("pools"))
    assert row[:3] == [POOL, "0", "(paused)"]


def test_pause_starts_nothing_new_and_resume_restores_the_cap(
    r: redis.Redis, make_pool, ready_workers, cli, ops
):
    # Given a pool with cap 3 running one blocking job, and a second pool on the same worker
    pool: Workpool = make_pool(POOL, max_parallelism=3)
    side: Workpool = make_pool(SIDE, max_parallelism=3)
    ready_workers(pools=(POOL, SIDE), concurrency=4)
    blocker = pool.enqueue_action("jobs.block_until", {"key": "opssteer:pause"})
    ops.wait_started(r, "opssteer:pause")

    # When an operator pauses the pool
    paused = cli("pause", POOL)
    # Then it reports the cap it had, and stats and the pools table show cap 0
    assert paused.exit_code == 0, paused.stderr
    assert paused.stdout == f"{POOL}: paused (max_parallelism 3 -> 0)\n"
    assert ops.json_out(cli("stats", POOL, "--json"))["max_parallelism"] == 0
    rows = {row[0]: row for row in ops.table(cli("pools"))}
    assert rows[POOL][1:3] == ["0", "(paused)"]

    # When a job is enqueued to the paused pool, the running job ends, and later work on the
    # other pool runs through the same worker
    held = cli("enqueue", POOL, "jobs.add", "--args", '{"a": 1, "b": 1}')
    held_id = held.stdout.strip()
    r.set("opssteer:pause:release", 1)
    ops.wait_finished(pool, [blocker])
    later = side.enqueue_action("jobs.add", {"a": 2, "b": 2})
    ops.wait_finished(side, [later])
    # Then the running job was let finish, and the paused pool started nothing new
    assert pool.result(blocker).kind is ResultKind.SUCCESS
    assert pool.status(held_id).state == "pending"
    assert ops.json_out(cli("jobs", POOL, "--state", "pending", "--json"))[0]["work_id"] == held_id
    stats = ops.json_out(cli("stats", POOL, "--json"))
    assert (stats["running"], stats["pending"]) == (0, 1)

    # When the operator resumes the pool
    resumed = cli("resume", POOL)
    # Then it gets its previous cap back and the held job runs
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.stdout == f"{POOL}: resumed (max_parallelism 3)\n"
    assert ops.json_out(cli("stats", POOL, "--json"))["max_parallelism"] == 3
    ops.wait_finished(pool, [held_id])
    assert pool.result(held_id).return_value == 2


def test_pause_twice_then_resume_restores_the_original_cap(r, make_pool, cli, ops):
    # Given a pool with cap 5
    make_pool(POOL, max_parallelism=5).enqueue_action("jobs.add", {"a": 1, "b": 1})
    # When an operator pauses it twice, then resumes it
    first = cli("pause", POOL)
    second = cli("pause", POOL)
    resumed = cli("resume", POOL)
    # Then the second pause reports 0 -> 0, and resume gives back 5, not 0 or the default
    assert first.stdout == f"{POOL}: paused (max_parallelism 5 -> 0)\n"
    assert second.stdout == f"{POOL}: paused (max_parallelism 0 -> 0)\n"
    assert resumed.stdout == f"{POOL}: resumed (max_parallelism 5)\n"
    assert ops.json_out(cli("stats", POOL, "--json"))["max_parallelism"] == 5


def test_resume_of_a_running_pool_keeps_its_cap(r, make_pool, cli, ops):
    # Given a pool with cap 6 that is not paused
    make_pool(POOL, max_parallelism=6).enqueue_action("jobs.add", {"a": 1, "b": 1})
    # When an operator resumes it
    result = cli("resume", POOL)
    # Then nothing changes: the cap stays 6
    assert result.stdout == f"{POOL}: resumed (max_parallelism 6)\n"
    assert ops.json_out(cli("stats", POOL, "--json"))["max_parallelism"] == 6


def test_cancel_by_ids_reports_each_and_cancels_unfinished_work(
    r: redis.Redis, make_pool, ready_workers, cli, ops
):
    # Given a finished job, a running job, a ready job held back by cap 1, and a delayed job
    pool: Workpool = make_pool(POOL, max_parallelism=1)
    ready_workers(pools=(POOL,))
    done = pool.enqueue_action("jobs.add", {"a": 1, "b": 1})
    ops.wait_finished(pool, [done])
    running = pool.enqueue_action("jobs.block_then_fail", {"key": "opssteer:cancel"})
    ops.wait_started(r, "opssteer:cancel")
    ready = pool.enqueue_action("jobs.add", {"a": 2, "b": 2})
    delayed = pool.enqueue_action("jobs.add", {"a": 3, "b": 3}, run_after=HOUR_S)
    # When an operator cancels all four by id
    result = cli("cancel", POOL, done, running, ready, delayed)
    # Then one line per id says what happened
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{done}: already finished",
        f"{running}: cancel requested (running: it may still succeed)",
        f"{ready}: canceled",
        f"{delayed}: canceled",
    ]
    # And the ready and delayed jobs finished canceled at once, leaving nothing queued
    for work_id in (ready, delayed):
        assert pool.result(work_id).kind is ResultKind.CANCELED
    stats = ops.json_out(cli("stats", POOL, "--json"))
    assert (stats["pending"], stats["scheduled"]) == (0, 0)
    # And the running job, once it fails, reads as canceled rather than failed
    r.set("opssteer:cancel:release", 1)
    ops.wait_finished(pool, [running])
    assert pool.result(running).kind is ResultKind.CANCELED
    # And the finished job kept its result
    assert pool.result(done).kind is ResultKind.SUCCESS


def test_cancel_of_an_unknown_id_does_not_claim_it_finished(r, make_pool, cli, ops):
    # Given a pool, and an id that was never enqueued to it
    make_pool(POOL).enqueue_action("jobs.add", {"a": 1, "b": 1})
    # When an operator cancels that id (a typo, say)
    result = cli("cancel", POOL, "nosuchjob")
    # Then the CLI does not report it as a job that already finished (`status` calls it unknown)
    assert ops.json_out(cli("status", POOL, "nosuchjob", "--json"))[0]["state"] == "unknown"
    assert result.stdout == "nosuchjob: unknown (no such job)\n"
    # And the command fails (exit 1) with one line saying so
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == ["Error: 1 of 1 work ids are unknown"]


def test_cancel_all_with_a_limit_then_all(r, make_pool, cli, ops):
    # Given a pool (no worker) with four ready jobs and two delayed ones
    pool: Workpool = make_pool(POOL)
    ready = [pool.enqueue_action("jobs.add", {"a": i, "b": 0}) for i in range(4)]
    delayed = [pool.enqueue_action("jobs.add", {"a": i, "b": 0}, run_after=HOUR_S) for i in (5, 6)]
    # When an operator cancels all with a limit of 3
    first = cli("cancel", POOL, "--all", "--limit", "3")
    # Then it prints the count, and exactly the three oldest ready jobs are canceled
    assert first.exit_code == 0, first.stderr
    assert first.stdout == f"{POOL}: canceled 3 jobs\n"
    states = [s.state for s in pool.status_batch(ready + delayed)]
    assert states == ["finished"] * 3 + ["pending"] * 3
    assert all(pool.result(w).kind is ResultKind.CANCELED for w in ready[:3])
    stats = ops.json_out(cli("stats", POOL, "--json"))
    assert (stats["pending"], stats["scheduled"]) == (1, 2)
    # When the operator cancels all without a limit
    rest = cli("cancel", POOL, "--all")
    # Then the remaining three are canceled and counted, and nothing is left queued
    assert rest.stdout == f"{POOL}: canceled 3 jobs\n"
    assert all(pool.result(w).kind is ResultKind.CANCELED for w in ready + delayed)
    stats = ops.json_out(cli("stats", POOL, "--json"))
    assert (stats["pending"], stats["scheduled"], stats["recent_finished"]) == (0, 0, 6)
    # And a third --all finds nothing to cancel
    assert cli("cancel", POOL, "--all").stdout == f"{POOL}: canceled 0 jobs\n"


def test_cancel_all_includes_running_work(r: redis.Redis, make_pool, ready_workers, cli, ops):
    # Given a running job (cap 1) and one ready job behind it
    pool: Workpool = make_pool(POOL, max_parallelism=1)
    ready_workers(pools=(POOL,))
    running = pool.enqueue_action("jobs.block_then_fail", {"key": "opssteer:all"})
    ops.wait_started(r, "opssteer:all")
    ready = pool.enqueue_action("jobs.add", {"a": 1, "b": 1})
    # When an operator cancels everything
    result = cli("cancel", POOL, "--all")
    # Then both count, the ready one is canceled, and the running one ends canceled
    assert result.stdout == f"{POOL}: canceled 2 jobs\n"
    assert pool.result(ready).kind is ResultKind.CANCELED
    r.set("opssteer:all:release", 1)
    ops.wait_finished(pool, [running])
    assert pool.result(running).kind is ResultKind.CANCELED


def test_enqueue_by_name_runs_with_the_json_args(make_pool, ready_workers, cli, ops):
    # Given a pool served by a worker
    pool: Workpool = make_pool(POOL)
    ready_workers(pools=(POOL,))
    # When an operator enqueues jobs.add by name with JSON arguments
    result = cli("enqueue", POOL, "jobs.add", "--args", '{"a": 40, "b": 2}')
    # Then it prints just the new work id
    assert result.exit_code == 0, result.stderr
    work_id = result.stdout.strip()
    assert result.stdout == work_id + "\n"
    assert re.fullmatch(r"[0-9a-f]{20}", work_id)
    # And the worker runs it with those arguments
    ops.wait_finished(pool, [work_id])
    shown = ops.json_out(cli("result", POOL, work_id, "--json"))
    assert shown == {"work_id": work_id, "kind": "success", "return_value": 42, "error": None}


def test_enqueue_with_run_after_is_scheduled_with_its_kind(make_pool, ready_workers, cli, ops):
    # Given a pool served by a worker
    make_pool(POOL)
    ready_workers(pools=(POOL,))
    # When an operator enqueues a job to run in an hour
    before = time.time()
    result = cli("enqueue", POOL, "jobs.add", "--args", '{"a": 1, "b": 2}', "--run-after", "3600")
    work_id = result.stdout.strip()
    # Then its status is pending with its next run an hour away
    assert result.exit_code == 0, result.stderr
    (status,) = ops.json_out(cli("status", POOL, work_id, "--json"))
    assert status["state"] == "pending"
    assert status["next_run_at"] == pytest.approx(before + HOUR_S, abs=30)
    # And it is listed as scheduled, by function name, as an action (the default kind)
    (job,) = ops.json_out(cli("jobs", POOL, "--state", "scheduled", "--json"))
    assert (job["work_id"], job["function"], job["kind"]) == (work_id, "jobs.add", "action")

    # When the operator enqueues delayed jobs of each --kind
    kinds = {}
    for kind in ("action", "mutation", "query"):
        made = cli("enqueue", POOL, "jobs.add", "--kind", kind, "--run-after", "60")
        assert made.exit_code == 0, made.stderr
        kinds[made.stdout.strip()] = kind
    # Then each is stored with its kind
    listed = ops.json_out(cli("jobs", POOL, "--state", "scheduled", "--json"))
    assert {j["work_id"]: j["kind"] for j in listed if j["work_id"] in kinds} == kinds


def test_jobs_running_lists_only_jobs_after_a_sync_timeout(
    r: redis.Redis, make_pool, ready_workers, cli, ops
):
    # Given a sync job that ran past its 0.3 s timeout and was recorded failed, while its
    # thread still runs (and keeps a slot, so stats count it as running)
    pool: Workpool = make_pool(POOL)
    ready_workers(pools=(POOL,))
    slow = pool.enqueue_action("jobs.block_until", {"key": "opssteer:slow"}, timeout=0.3)
    ops.wait_finished(pool, [slow])
    assert pool.result(slow).error == "timeout"
    assert ops.json_out(cli("stats", POOL, "--json"))["running"] == 1
    # When an operator lists the running jobs
    listed = ops.json_out(cli("jobs", POOL, "--state", "running", "--json"))
    # Then every entry is a job the other commands know: a work id with a function
    for job in listed:
        (status,) = ops.json_out(cli("status", POOL, job["work_id"], "--json"))
        assert status["state"] != "unknown", job
        assert job["function"] is not None, job
