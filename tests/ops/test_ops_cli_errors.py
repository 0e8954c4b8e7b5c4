"""Bad usage of the `workpool` admin CLI: exit 2 with exactly one line on stderr, no traceback,
nothing written; and an unreachable Redis: exit 1 with one line.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from helpers import snapshot

from workpool import Workpool
from workpool.cli import main
from workpool.embedded import free_port
from workpool.keys import PoolKeys

EXIT_FAILED = 1
EXIT_USAGE = 2
POOL = "opserr"


@pytest.fixture
def pool(r, make_pool) -> Workpool:
    """A known pool with cap 4 and one ready job (no worker, so it stays ready)."""
    handle = make_pool(POOL, max_parallelism=4)
    handle.enqueue_action("jobs.add", {"a": 1, "b": 2})
    return handle


UNKNOWN_POOL_COMMANDS = [
    pytest.param(["stats", "nope"], id="stats"),
    pytest.param(["stats", "nope", "--watch", "1"], id="stats-watch"),
    pytest.param(["status", "nope", "someid"], id="status"),
    pytest.param(["result", "nope", "someid"], id="result"),
    pytest.param(["jobs", "nope", "--state", "pending"], id="jobs"),
    pytest.param(["pause", "nope"], id="pause"),
    pytest.param(["resume", "nope"], id="resume"),
    pytest.param(["cancel", "nope", "someid"], id="cancel-ids"),
    pytest.param(["cancel", "nope", "--all"], id="cancel-all"),
    pytest.param(["enqueue", "nope", "jobs.add", "--args", '{"a": 1, "b": 2}'], id="enqueue"),
]


@pytest.mark.parametrize("args", UNKNOWN_POOL_COMMANDS)
def test_unknown_pool_is_a_usage_error(r, pool, cli, ops, args):
    # Given Redis holding only pool opserr
    before = snapshot(r)
    # When an operator names a pool that does not exist
    result = cli(*args)
    # Then the command exits 2 with one line naming the pool, and writes nothing
    assert result.exit_code == EXIT_USAGE, result.output
    assert ops.error_line(result) == "Error: unknown pool 'nope' (see `workpool pools`)"
    assert result.stdout == ""
    assert snapshot(r) == before


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["stats", "bad pool"], id="stats"),
        pytest.param(["set", "bad pool", "--max-parallelism", "3"], id="set"),
        pytest.param(["set", "bad{pool}", "--max-parallelism", "3"], id="set-brace"),
    ],
)
def test_invalid_pool_name_is_a_usage_error(r, cli, ops, args):
    # Given an empty Redis
    # When an operator gives a pool name that cannot be a pool
    result = cli(*args)
    # Then the command exits 2 with one line, and creates nothing
    assert result.exit_code == EXIT_USAGE, result.output
    assert ops.error_line(result).startswith("Error: ")
    assert r.dbsize() == 0


@pytest.mark.parametrize(
    ("args_json", "fragment"),
    [
        pytest.param("{not json", "not JSON", id="not-json"),
        pytest.param("", "not JSON", id="empty"),
        pytest.param("[1, 2]", "must be a JSON object", id="list"),
        pytest.param('"text"', "must be a JSON object", id="string"),
        pytest.param("3", "must be a JSON object", id="number"),
        pytest.param("null", "must be a JSON object", id="null"),
    ],
)
def test_bad_args_json_is_a_usage_error(r, pool, cli, ops, args_json, fragment):
    # Given a known pool
    before = snapshot(r)
    # When an operator enqueues with --args that are not a JSON object
    result = cli("enqueue", POOL, "jobs.add", "--args", args_json)
    # Then it exits 2 with one line naming --args and the problem, and enqueues nothing
    assert result.exit_code == EXIT_USAGE, result.output
    line = ops.error_line(result)
    assert "--args" in line
    assert fragment in line
    assert result.stdout == ""
    assert snapshot(r) == before


@pytest.mark.parametrize("cap", ["-1", "two", "1.5"])
def test_bad_cap_is_a_usage_error_and_keeps_the_cap(pool, cli, ops, cap):
    # Given a pool with cap 4
    # When an operator sets a negative or non-integer cap
    result = cli("set", POOL, "--max-parallelism", cap)
    # Then it exits 2 with one line, and the cap is still 4
    assert result.exit_code == EXIT_USAGE, result.output
    assert "max-parallelism" in ops.error_line(result).replace("_", "-")
    assert pool.stats().max_parallelism == 4


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        pytest.param(["--all", "IDPLACEHOLDER"], "not both", id="ids-and-all"),
        pytest.param([], "not both", id="neither"),
        pytest.param(["IDPLACEHOLDER", "--limit", "1"], "--limit goes with --all", id="limit-ids"),
        pytest.param(["--all", "--limit", "0"], "--limit", id="limit-zero"),
    ],
)
def test_bad_cancel_usage_cancels_nothing(r, pool, cli, ops, extra, fragment):
    # Given a pool with one ready job
    (job,) = pool.jobs("pending")
    before = snapshot(r)
    # When an operator gives cancel both ids and --all, neither, or a bad --limit
    args = [job.work_id if a == "IDPLACEHOLDER" else a for a in extra]
    result = cli("cancel", POOL, *args)
    # Then it exits 2 with one line, and the job is still pending
    assert result.exit_code == EXIT_USAGE, result.output
    assert fragment in ops.error_line(result)
    assert snapshot(r) == before
    assert pool.status(job.work_id).state == "pending"


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--state", "finished"], id="state-finished"),
        pytest.param(["--state", "PENDINGX"], id="state-bogus"),
        pytest.param([], id="state-missing"),
        pytest.param(["--state", "pending", "--limit", "0"], id="limit-zero"),
        pytest.param(["--state", "pending", "--limit", "10001"], id="limit-too-big"),
    ],
)
def test_bad_jobs_options_are_usage_errors(pool, cli, ops, args):
    # Given a known pool
    # When an operator lists jobs with a bad or missing --state, or a limit out of range
    result = cli("jobs", POOL, *args)
    # Then it exits 2 with one line and lists nothing
    assert result.exit_code == EXIT_USAGE, result.output
    assert ops.error_line(result).startswith("Error: ")
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["stats", POOL, "--watch", "0"], id="watch-zero"),
        pytest.param(["stats", POOL, "--window", "0"], id="window-zero"),
        pytest.param(["stats", POOL, "--window", "3601"], id="window-too-long"),
        pytest.param(["enqueue", POOL, "jobs.add", "--run-after", "-1"], id="run-after-negative"),
        pytest.param(["enqueue", POOL, "jobs.add", "--kind", "nope"], id="bad-kind"),
        pytest.param(["status", POOL], id="status-without-ids"),
        pytest.param(["set", POOL], id="set-without-cap"),
        pytest.param(["enqueue", POOL], id="enqueue-without-function"),
        pytest.param(["pools", "--bogus"], id="unknown-option"),
        pytest.param(["frobnicate"], id="unknown-command"),
    ],
)
def test_other_bad_options_are_usage_errors(r, pool, cli, ops, args):
    # Given a known pool
    before = snapshot(r)
    # When an operator passes an option out of range, or no such command
    result = cli(*args)
    # Then it exits 2 with one line, and nothing changes
    assert result.exit_code == EXIT_USAGE, result.output
    assert ops.error_line(result).startswith("Error: ")
    assert snapshot(r) == before


def test_enqueue_of_a_function_the_workers_do_not_have_is_a_usage_error(r, ready_workers, cli, ops):
    # Given a pool served by a worker that registered the functions of tests/jobs.py
    ready_workers(pools=(POOL,))
    keys = PoolKeys.for_pool(POOL)
    # When an operator enqueues a function name no worker registered
    result = cli("enqueue", POOL, "jobs.no_such_function", "--args", "{}")
    # Then it exits 2 with one line naming the function, and enqueues nothing (the worker
    # itself may touch the pool's keys meanwhile, so look for jobs rather than compare all)
    assert result.exit_code == EXIT_USAGE, result.output
    assert "jobs.no_such_function" in ops.error_line(result)
    assert result.stdout == ""
    assert r.xlen(keys.stream) == 0
    assert r.zcard(keys.delayed) == 0
    assert list(r.scan_iter(match=keys.job("*"))) == []


UNREACHABLE_COMMANDS = [
    pytest.param(["pools"], id="pools"),
    pytest.param(["stats", POOL], id="stats"),
    pytest.param(["status", POOL, "someid"], id="status"),
    pytest.param(["jobs", POOL, "--state", "running"], id="jobs"),
    pytest.param(["pause", POOL], id="pause"),
    pytest.param(["cancel", POOL, "--all"], id="cancel"),
    pytest.param(["enqueue", POOL, "jobs.add"], id="enqueue"),
    pytest.param(["set", POOL, "--max-parallelism", "3"], id="set"),
]


@pytest.mark.parametrize("args", UNREACHABLE_COMMANDS)
def test_unreachable_redis_exits_1_with_one_line(ops, args):
    # Given a Redis URL nothing listens on
    url = f"redis://127.0.0.1:{free_port()}/0"
    # When an operator runs a command against it
    result = ops.invoke(url, *args)
    # Then it exits 1 with one line saying Redis cannot be reached, and prints nothing else
    assert result.exit_code == EXIT_FAILED, result.output
    assert ops.error_line(result).startswith("Error: cannot reach Redis: ")
    assert result.stdout == ""


def test_redis_url_comes_from_the_environment(pool, redis_url, ops):
    # Given a pool, and WORKPOOL_REDIS_URL pointing at its Redis
    env = {"WORKPOOL_REDIS_URL": redis_url}
    # When an operator lists the pools without --redis-url
    result = CliRunner(env=env).invoke(main, ["pools", "--json"])
    # Then the pools of that Redis are listed
    assert [p["pool"] for p in ops.json_out(result)] == [POOL]


def test_pools_on_an_empty_redis(r, cli, ops):
    # Given a Redis with no pools
    # When an operator lists the pools
    text = cli("pools")
    shown = ops.json_out(cli("pools", "--json"))
    # Then the table says there are none and the JSON is empty
    assert text.exit_code == 0, text.stderr
    assert text.stdout.strip() == "no pools in this Redis"
    assert shown == []
