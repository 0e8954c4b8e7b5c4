"""`workpool-worker`: the worker daemon's command line (thin: parse, configure, run)."""

from __future__ import annotations

import importlib
import sys

import click
import redis

import workpool
from workers.logconfig import configure_logging
from workers.worker import DEFAULT_CONCURRENCY, DEFAULT_LEASE_MS, Worker
from workpool.errors import InvalidPoolName
from workpool.settings import REDIS_URL_ENV, resolve_redis_url

EXIT_OK = 0
EXIT_FAILED = 1


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--redis-url",
    envvar=REDIS_URL_ENV,
    default=None,
    show_envvar=True,
    help="Redis to serve [default: redis://localhost:6379/0].",
)
@click.option(
    "--pool", "pools", multiple=True, required=True, help="A pool to serve; repeat for several."
)
@click.option(
    "--import",
    "modules",
    multiple=True,
    metavar="MODULE",
    help="A module whose @workpool.function functions to run; repeat for several.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=DEFAULT_CONCURRENCY,
    envvar="WORKPOOL_CONCURRENCY",
    show_default=True,
    help="Most jobs this process runs at once, across its pools.",
)
@click.option(
    "--log-level",
    envvar="WORKPOOL_LOG_LEVEL",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.option(
    "--log-format",
    envvar="WORKPOOL_LOG_FORMAT",
    default="auto",
    show_default=True,
    type=click.Choice(["json", "console", "auto"]),
    help="auto: console on a terminal, JSON otherwise.",
)
@click.version_option(workpool.__version__, prog_name="workpool-worker")
def main(
    redis_url: str | None,
    pools: tuple[str, ...],
    modules: tuple[str, ...],
    concurrency: int,
    log_level: str,
    log_format: str,
) -> None:
    """Run registered functions from the given pools until SIGTERM or SIGINT."""
    configure_logging(log_level, log_format)  # type: ignore[arg-type]
    # Let `--import tasks` find tasks.py in the directory the worker was started from.
    if "" not in sys.path:
        sys.path.insert(0, "")
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise click.ClickException(f"cannot import {module!r}: {exc}") from exc
    try:
        worker = Worker(
            list(pools),
            redis_url=resolve_redis_url(redis_url),
            concurrency=concurrency,
            lease_ms=DEFAULT_LEASE_MS,
        )
        worker.run()
    except InvalidPoolName as exc:
        raise click.BadParameter(str(exc), param_hint="--pool") from exc
    except redis.ConnectionError as exc:
        raise click.ClickException(f"cannot reach Redis: {exc}") from exc
    sys.exit(EXIT_OK)
