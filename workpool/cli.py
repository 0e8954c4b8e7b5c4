"""`workpool`: see and steer pools from the shell (thin: parse, call the library, print).

Exit codes: 0 done, 1 failed (e.g. Redis unreachable, no result yet), 2 bad usage (unknown pool,
bad JSON, a negative cap...). Errors are one line on stderr, never a traceback. Every read
command takes --json.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

import click
import redis

import workpool
from workpool.errors import WorkpoolConnectionError, WorkpoolError
from workpool.keys import POOLS_KEY, validate_pool_name
from workpool.listing import LIST_STATES
from workpool.pool import Workpool
from workpool.settings import REDIS_URL_ENV, connect
from workpool.status import State, Stats

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
# The CLI should answer quickly when Redis is down rather than retry for long.
CLI_RECONNECT_TIMEOUT_S = 3.0
# Bad-input errors are usage errors (exit 2); anything else from workpool is a failure (exit 1).
USAGE_ERRORS = (ValueError, TypeError, LookupError)


class _Group(click.Group):
    """Turns library and driver errors into one line and the right exit code."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Run the CLI; every error is one line on stderr, usage errors included (exit 2)."""
        standalone = kwargs.pop("standalone_mode", True)
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.ClickException as exc:
            if not standalone:
                raise
            # One line, always: click's own messages may span several (e.g. choices).
            click.echo(f"Error: {' '.join(exc.format_message().split())}", err=True)
            raise SystemExit(
                EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code
            ) from None
        except click.Abort:
            if not standalone:
                raise
            click.echo("Aborted!", err=True)
            raise SystemExit(EXIT_FAILED) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (WorkpoolConnectionError, redis.ConnectionError, redis.TimeoutError) as exc:
            cause = exc.__cause__ if isinstance(exc, WorkpoolConnectionError) else exc
            raise click.ClickException(f"cannot reach Redis: {_first_line(cause or exc)}") from exc
        except WorkpoolError as exc:
            if isinstance(exc, USAGE_ERRORS):
                raise click.UsageError(_first_line(exc)) from exc
            raise click.ClickException(_first_line(exc)) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--redis-url",
    envvar=REDIS_URL_ENV,
    default=None,
    show_envvar=True,
    help="Redis holding the pools [default: redis://localhost:6379/0].",
)
@click.version_option(workpool.__version__, prog_name="workpool")
@click.pass_context
def main(ctx: click.Context, redis_url: str | None) -> None:
    """See and steer workpool pools."""
    ctx.obj = connect(redis_url, socket_connect_timeout=CLI_RECONNECT_TIMEOUT_S)


def _client() -> redis.Redis:
    return click.get_current_context().find_root().obj  # type: ignore[no-any-return]


def _pool(name: str, *, must_exist: bool = True) -> Workpool:
    """A handle on pool `name`; an unknown pool is a usage error (exit 2)."""
    try:
        validate_pool_name(name)
    except WorkpoolError as exc:
        raise click.UsageError(_first_line(exc)) from exc
    client = _client()
    # Both checks answer at once when Redis is down, instead of the library's retrying.
    if not must_exist:
        client.ping()
    elif not client.sismember(POOLS_KEY, name):
        raise click.UsageError(f"unknown pool {name!r} (see `workpool pools`)")
    return Workpool(name, redis=client, reconnect_timeout=CLI_RECONNECT_TIMEOUT_S)


def _pool_names() -> list[str]:
    return sorted(m.decode() for m in _client().smembers(POOLS_KEY))


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


# -- reading ----------------------------------------------------------------------------------


@main.command()
@json_option
def pools(as_json: bool) -> None:
    """Every pool in Redis: cap, queue sizes, finished and error rate (last 5 minutes)."""
    stats = [_pool(name, must_exist=False).stats() for name in _pool_names()]
    if as_json:
        _print_json([s.as_dict() for s in stats])
        return
    rows = [
        (
            s.pool,
            _cap(s),
            s.pending,
            s.scheduled,
            s.running,
            s.recent_finished,
            f"{s.recent_error_rate:.1%}",
        )
        for s in stats
    ]
    headers = ("POOL", "CAP", "PENDING", "SCHEDULED", "RUNNING", "FINISHED/5m", "ERRORS")
    _print_table(headers, rows, empty="no pools in this Redis")


@main.command()
@click.argument("pool")
@click.option(
    "--watch",
    type=click.FloatRange(min=0.1),
    default=None,
    metavar="SECONDS",
    help="Refresh in place every SECONDS until Ctrl-C.",
)
@click.option(
    "--window",
    type=click.FloatRange(min=1, max=3600),
    default=300.0,
    show_default=True,
    help="Seconds the recent rates cover.",
)
@json_option
def stats(pool: str, watch: float | None, window: float, as_json: bool) -> None:
    """The stats of one pool (the same fields as `pool.log_stats()`)."""
    handle = _pool(pool)

    def show() -> None:
        s = handle.stats(window)
        if as_json:
            _print_json(s.as_dict())
        else:
            for key, value in s.as_dict().items():
                click.echo(f"{key:32s}{_format(value)}")

    if watch is None:
        show()
        return
    try:
        while True:
            if not as_json:
                click.echo("\x1b[H\x1b[2J", nl=False)  # home and clear: refresh in place
                click.echo(f"workpool stats {pool}   every {watch:g} s   {_now()}\n")
            show()
            time.sleep(watch)
    except KeyboardInterrupt:
        return


@main.command()
@click.argument("pool")
@click.argument("work_ids", nargs=-1, required=True)
@json_option
def status(pool: str, work_ids: Sequence[str], as_json: bool) -> None:
    """The state of one or more jobs."""
    statuses = _pool(pool).status_batch(list(work_ids))
    if as_json:
        _print_json([_status_dict(s) for s in statuses])
        return
    rows = [(s.work_id, s.state, s.previous_attempts, _when(s.next_run_at)) for s in statuses]
    _print_table(("WORK ID", "STATE", "PREVIOUS ATTEMPTS", "NEXT RUN"), rows)


@main.command()
@click.argument("pool")
@click.argument("work_id")
@json_option
def result(pool: str, work_id: str, as_json: bool) -> None:
    """The outcome of a finished job (exit 1 while it has none)."""
    handle = _pool(pool)
    outcome = handle.result(work_id)
    if outcome is None:
        state = handle.status(work_id).state
        if as_json:
            _print_json({"work_id": work_id, "state": state, "result": None})
        _fail(f"work {work_id} is {state}: no result yet")
    payload = {
        "work_id": work_id,
        "kind": outcome.kind,
        "return_value": outcome.return_value,
        "error": outcome.error,
    }
    if as_json:
        _print_json(payload)
        return
    click.echo(f"kind          {outcome.kind}")
    if outcome.error is not None:
        click.echo(f"error         {outcome.error}")
    else:
        click.echo(f"return_value  {_to_json(outcome.return_value)}")


@main.command()
@click.argument("pool")
@click.option("--state", type=click.Choice(LIST_STATES), required=True)
@click.option("--limit", type=click.IntRange(min=1, max=10_000), default=20, show_default=True)
@json_option
def jobs(pool: str, state: str, limit: int, as_json: bool) -> None:
    """List the first jobs in a state, with function, attempts, age and next run."""
    summaries = _pool(pool).jobs(state, limit)
    if as_json:
        _print_json([s.as_dict() for s in summaries])
        return
    headers = ["WORK ID", "FUNCTION", "KIND", "ATTEMPTS", "AGE"]
    rows = [[s.work_id, s.function, s.kind, s.attempts, _age(s.age_s)] for s in summaries]
    if state == "scheduled":
        headers.append("NEXT RUN")
        rows = [[*row, _when(s.next_run_at)] for row, s in zip(rows, summaries, strict=True)]
    elif state == "running":
        headers += ["STARTED", "WORKER"]
        rows = [
            [*row, _when(s.started_at), s.worker] for row, s in zip(rows, summaries, strict=True)
        ]
    _print_table(headers, rows, empty=f"no {state} jobs")


# -- steering ---------------------------------------------------------------------------------


@main.command(name="set")
@click.argument("pool")
@click.option("--max-parallelism", type=int, required=True, help="The new cap; 0 pauses.")
def set_(pool: str, max_parallelism: int) -> None:
    """Change a pool's cap for every producer and worker at once (creates the pool if new)."""
    previous = _pool(pool, must_exist=False).update_config(max_parallelism=max_parallelism)
    click.echo(f"{pool}: max_parallelism {previous} -> {max_parallelism}")


@main.command()
@click.argument("pool")
def pause(pool: str) -> None:
    """Pause a pool: nothing new starts, running work ends."""
    previous = _pool(pool).pause()
    click.echo(f"{pool}: paused (max_parallelism {previous} -> 0)")


@main.command()
@click.argument("pool")
def resume(pool: str) -> None:
    """Resume a paused pool with the cap it had before the pause."""
    cap = _pool(pool).resume()
    click.echo(f"{pool}: resumed (max_parallelism {cap})")


@main.command()
@click.argument("pool")
@click.argument("work_ids", nargs=-1)
@click.option("--all", "cancel_all", is_flag=True, help="Cancel every unfinished job.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="With --all: at most N.")
def cancel(pool: str, work_ids: Sequence[str], cancel_all: bool, limit: int | None) -> None:
    """Cancel jobs by id, or all of them with --all."""
    if bool(work_ids) == cancel_all:
        raise click.UsageError("give work ids, or --all (not both)")
    if limit is not None and not cancel_all:
        raise click.UsageError("--limit goes with --all")
    handle = _pool(pool)
    if cancel_all:
        click.echo(f"{pool}: canceled {handle.cancel_all(limit=limit)} jobs")
        return
    unknown = 0
    for status in handle.status_batch(list(work_ids)):
        if status.state == State.UNKNOWN:
            unknown += 1
            click.echo(f"{status.work_id}: unknown (no such job)")
        elif status.state == State.FINISHED or not handle.cancel(status.work_id):
            click.echo(f"{status.work_id}: already finished")
        elif status.state == State.RUNNING:
            click.echo(f"{status.work_id}: cancel requested (running: it may still succeed)")
        else:
            click.echo(f"{status.work_id}: canceled")
    if unknown:
        _fail(f"{unknown} of {len(work_ids)} work ids are unknown")


@main.command()
@click.argument("pool")
@click.argument("function")
@click.option(
    "--args", "args_json", default="{}", show_default=True, help="The arguments, a JSON object."
)
@click.option("--run-after", type=click.FloatRange(min=0), default=None, metavar="SECONDS")
@click.option(
    "--kind",
    type=click.Choice(["action", "mutation", "query"]),
    default="action",
    show_default=True,
)
def enqueue(pool: str, function: str, args_json: str, run_after: float | None, kind: str) -> None:
    """Enqueue a registered function by name; prints its work id."""
    try:
        args = json.loads(args_json)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--args") from exc
    if not isinstance(args, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--args")
    handle = _pool(pool)
    enqueue_fn: Callable[..., str] = getattr(handle, f"enqueue_{kind}")
    click.echo(enqueue_fn(function, args, run_after=run_after))


# -- output -----------------------------------------------------------------------------------


def _print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], empty: str = "") -> None:
    cells = [[_format(c) for c in row] for row in rows]
    if not cells and empty:
        click.echo(empty)
        return
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _print_json(value: Any) -> None:
    click.echo(_to_json(value))


def _to_json(value: Any) -> str:
    return json.dumps(value, default=_json_default, sort_keys=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _status_dict(s: workpool.Status) -> dict[str, Any]:
    return {
        "work_id": s.work_id,
        "state": s.state,
        "previous_attempts": s.previous_attempts,
        "next_run_at": s.next_run_at,
    }


def _format(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else str(value)
    return str(value)


def _cap(s: Stats) -> str:
    return "0 (paused)" if s.max_parallelism == 0 else str(s.max_parallelism)


def _when(epoch_s: float | None) -> str:
    if epoch_s is None:
        return "-"
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _fail(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    raise SystemExit(EXIT_FAILED)
