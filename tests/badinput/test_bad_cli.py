"""Bad worker command lines: a one-line error and a named exit code, never a traceback."""

from __future__ import annotations

import logging

import pytest
import structlog
from click.testing import CliRunner, Result

from workers.cli import EXIT_FAILED, main

USAGE_ERROR = 2  # click's exit code for bad usage


@pytest.fixture
def invoke(redis_url):
    """Run the worker CLI in-process; the logging setup it does is undone afterwards."""
    config = structlog.get_config()
    was_configured = structlog.is_configured()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def run(*args: str) -> Result:
        # Point it at the test server, so nothing could ever reach a developer's Redis.
        return CliRunner().invoke(main, ["--redis-url", redis_url, *args])

    yield run
    structlog.reset_defaults()
    if was_configured:
        structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)


def error_lines(result: Result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("Error:")]


@pytest.mark.parametrize(
    ("pool", "fragment"),
    [
        pytest.param("a b", "whitespace", id="space"),
        pytest.param("a{b", "'{'", id="brace"),
        pytest.param("a\nb", "whitespace", id="newline"),
        pytest.param("", "empty", id="empty"),
    ],
)
def test_bad_pool_name_is_a_usage_error(r, invoke, pool, fragment):
    # When the worker is started with a bad pool name
    result = invoke("--pool", pool)
    # Then it exits 2 with one error line naming --pool and the problem, and no traceback
    assert result.exit_code == USAGE_ERROR, result.output
    (line,) = error_lines(result)
    assert "--pool" in line
    assert fragment in line
    assert "Traceback" not in result.output
    # And it wrote nothing to Redis
    assert r.dbsize() == 0


def test_one_bad_pool_among_good_ones_is_refused(r, invoke):
    # When the worker is started with a good pool and a bad one
    result = invoke("--pool", "good", "--pool", "bad pool")
    # Then it refuses to start at all: exit 2, nothing registered for the good pool
    assert result.exit_code == USAGE_ERROR, result.output
    assert "'bad pool'" in error_lines(result)[0]
    assert r.dbsize() == 0


def test_missing_pool_is_a_usage_error(r, invoke):
    # When the worker is started without --pool
    result = invoke()
    # Then it exits 2 saying --pool is missing
    assert result.exit_code == USAGE_ERROR, result.output
    (line,) = error_lines(result)
    assert "--pool" in line
    assert "Missing option" in line
    assert r.dbsize() == 0


def test_unimportable_module_exits_1_with_a_clear_message(r, invoke):
    # When the worker is asked to import a module that does not exist
    result = invoke("--pool", "pool", "--import", "no_such_module_xyz")
    # Then it exits 1 with one line naming the module
    assert result.exit_code == EXIT_FAILED == 1, result.output
    (line,) = error_lines(result)
    assert "cannot import 'no_such_module_xyz'" in line
    assert "Traceback" not in result.output
    assert r.dbsize() == 0


@pytest.mark.parametrize("concurrency", ["0", "-1", "two"])
def test_bad_concurrency_is_a_usage_error(r, invoke, concurrency):
    # When the worker is started with a concurrency below 1 or not a number
    result = invoke("--pool", "pool", "--concurrency", concurrency)
    # Then it exits 2 naming --concurrency
    assert result.exit_code == USAGE_ERROR, result.output
    (line,) = error_lines(result)
    assert "--concurrency" in line
    assert r.dbsize() == 0


def test_bad_log_level_is_a_usage_error(r, invoke):
    # When the worker is started with an unknown log level
    result = invoke("--pool", "pool", "--log-level", "LOUD")
    # Then it exits 2 naming --log-level
    assert result.exit_code == USAGE_ERROR, result.output
    assert "--log-level" in error_lines(result)[0]
    assert r.dbsize() == 0
