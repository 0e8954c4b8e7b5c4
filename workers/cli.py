"""`workpool-worker`: the worker daemon's command line (thin: parse, configure, run)."""

from __future__ import annotations

import importlib
import os
import sys

import click
import redis

import workpool
from workers.logconfig import configure_logging
from workers.worker import DEFAULT_CONCURRENCY, DEFAULT_GRACE_S, DEFAULT_LEASE_MS, Worker
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
    "--lease",
    "lease_s",
    type=click.FloatRange(min=0.3),
    envvar="WORKPOOL_LEASE",
    default=DEFAULT_LEASE_MS / 1000,
    show_default=True,
    help="Seconds a running job's lease lasts; renewed every third of it.",
)
@click.option(
    "--grace",
    "grace_s",
    type=click.FloatRange(min=0),
    envvar="WORKPOOL_GRACE",
    default=DEFAULT_GRACE_S,
    show_default=True,
    help="On SIGTERM, seconds to let running work finish before handing it back.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=1, max=65535),
    envvar="WORKPOOL_METRICS_PORT",
    default=None,
    help="Serve Prometheus metrics on this port (off by default).",
)
@click.option(
    "--metrics-host",
    envvar="WORKPOOL_METRICS_HOST",
    default="0.0.0.0",  # Prometheus scrapes from elsewhere
    show_default=True,
    help="Address the metrics server listens on.",
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
    lease_s: float,
    grace_s: float,
    metrics_port: int | None,
    metrics_host: str,
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
            lease_ms=round(lease_s * 1000),
            grace_s=grace_s,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
        )
        worker.run()
    except InvalidPoolName as exc:
        raise click.BadParameter(str(exc), param_hint="--pool") from exc
    except redis.ConnectionError as exc:
        raise click.ClickException(f"cannot reach Redis: {exc}") from exc
    if worker.abandoned:
        # Runs handed back after the grace period still hold threads: leave without them.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_OK)
    sys.exit(EXIT_OK)
