"""`make chaos`: drive real work through real failures and check that nothing is lost.

Two pools (caps 3 and 8), a mix of actions with retries, mutations, delayed jobs and random
failures, every job with an on_complete callback; several worker processes, one SIGKILLed every
1-2 s and replaced; the queue's Redis (AOF, appendfsync always) SIGKILLed and restarted during
the run. The jobs measure their own concurrency in a second Redis that is never killed. At the
end it prints a report and exits non-zero if any check fails.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click
import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import chaos_tasks  # noqa: E402 - registers the functions once sys.path can find them

from workpool import RetryBehavior, Workpool  # noqa: E402
from workpool.embedded import RedisServer, start_redis_server  # noqa: E402

POOLS = {"chaos-a": 3, "chaos-b": 8}
AOF = ("--appendonly", "yes", "--appendfsync", "always")
LEASE_S = 2.0
RETRY = RetryBehavior(max_attempts=5, initial_backoff_ms=50, base=2)
# Drop the killed process's running count from the gauge (its jobs never say they ended).
_FORGET_PROCESS = """
local n = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if n ~= 0 then redis.call('DECRBY', KEYS[1], n) end
redis.call('HDEL', KEYS[2], ARGV[1])
return n
"""


@dataclass
class Run:
    """Everything the run started, and what it saw."""

    queue: RedisServer
    metrics: RedisServer
    log_dir: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    enqueued: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (pool, kind)
    kills: int = 0
    restarts: int = 0
    enqueue_errors: int = 0
    producer_done: threading.Event = field(default_factory=threading.Event)
    stop_killing: threading.Event = field(default_factory=threading.Event)


@click.command()
@click.option("--jobs", default=20_000, show_default=True, help="Jobs to enqueue.")
@click.option("--workers", "worker_count", default=4, show_default=True)
@click.option("--restarts", default=2, show_default=True, help="Redis restarts during the run.")
@click.option(
    "--rate",
    default=800.0,
    show_default=True,
    help="Jobs enqueued per second, so load, kills and restarts overlap.",
)
@click.option("--seed", default=None, type=int, help="Random seed (default: random).")
@click.option(
    "--timeout",
    "timeout_s",
    default=240.0,
    show_default=True,
    help="Seconds to wait for everything to finish after enqueueing.",
)
def main(
    jobs: int, worker_count: int, restarts: int, rate: float, seed: int | None, timeout_s: float
) -> None:
    """Run the chaos test and print its report; exit 1 if any check fails."""
    seed = seed if seed is not None else random.randrange(1 << 30)
    random.seed(seed)
    started = time.monotonic()
    run = Run(
        queue=start_redis_server(None, *AOF),
        metrics=start_redis_server(),
        log_dir=Path(tempfile.mkdtemp(prefix="workpool-chaos-")),
    )
    print(
        f"chaos: seed {seed}, {jobs} jobs, {worker_count} workers, {restarts} Redis restarts, "
        f"logs in {run.log_dir}"
    )
    try:
        ok = drive(run, jobs, worker_count, restarts, rate, timeout_s, started)
    finally:
        for w in run.workers:
            w.kill()
        run.queue.stop()
        run.metrics.stop()
    sys.exit(0 if ok else 1)


def drive(
    run: Run,
    jobs: int,
    worker_count: int,
    restarts: int,
    rate: float,
    timeout_s: float,
    started: float,
) -> bool:
    os.environ["CHAOS_METRICS_URL"] = run.metrics.url
    pools = {name: make_pool(name, run.queue.url) for name in POOLS}
    for name, cap in POOLS.items():
        pools[name].update_config(max_parallelism=cap)
    for _ in range(worker_count):
        run.workers.append(start_worker(run))
    producer = threading.Thread(target=produce, args=(run, pools, jobs, rate), daemon=True)
    killer = threading.Thread(target=kill_workers, args=(run,), daemon=True)
    producer.start()
    killer.start()
    restart_redis_during(run, jobs, restarts)
    producer.join()
    # Workers keep being killed while the backlog drains; the killing stops once all is done.
    drained = wait_for_everything(run, pools, timeout_s)
    run.stop_killing.set()
    killer.join()
    return report(run, pools, drained, time.monotonic() - started)


def make_pool(name: str, url: str) -> Workpool:
    return Workpool(
        name,
        redis_url=url,
        retry_actions_by_default=True,
        default_retry_behavior=RETRY,
        status_ttl=float("inf"),
        reconnect_timeout=60.0,
    )


def start_worker(run: Run) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)])}
    args = [
        sys.executable,
        "-m",
        "workers",
        "--redis-url",
        run.queue.url,
        "--import",
        "chaos_tasks",
        "--concurrency",
        "6",
        "--lease",
        str(LEASE_S),
        "--grace",
        "1",
        "--log-level",
        "WARNING",
        "--log-format",
        "json",
    ]
    for name in POOLS:
        args += ["--pool", name]
    log = open(run.log_dir / f"worker-{len(run.workers)}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(args, env=env, stdout=log, stderr=log)


def produce(run: Run, pools: dict[str, Workpool], jobs: int, rate: float) -> None:
    """Enqueue `jobs` in small batches of mixed kinds, about `rate` a second, through restarts."""
    i = 0
    began = time.monotonic()
    while i < jobs:
        ahead = began + i / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        pool_name = random.choice(["chaos-a", "chaos-b", "chaos-b"])
        pool = pools[pool_name]
        n = min(random.randint(20, 120), jobs - i)
        kind = random.choice(["action", "action", "mutation", "delayed"])
        args = [{"i": i + k} for k in range(n)]
        options = {"on_complete": chaos_tasks.on_complete, "context": {"kind": kind}}
        try:
            if kind == "mutation":
                ids = pool.enqueue_mutation_batch(chaos_tasks.mutation, args, **options)
            elif kind == "delayed":
                ids = pool.enqueue_action_batch(
                    chaos_tasks.action, args, run_after=random.uniform(0, 3), **options
                )
            else:
                ids = pool.enqueue_action_batch(chaos_tasks.action, args, **options)
        except Exception as exc:  # an enqueue that was not acknowledged is not counted
            run.enqueue_errors += 1
            print(f"  enqueue failed (not acknowledged, not counted): {exc}")
            continue
        for wid in ids:
            run.enqueued[wid] = (pool_name, "mutation" if kind == "mutation" else "action")
        i += n
    run.producer_done.set()


def kill_workers(run: Run) -> None:
    """SIGKILL a random worker every 1-2 s and start a replacement."""
    metrics = redis.Redis.from_url(run.metrics.url)
    while not run.stop_killing.wait(random.uniform(1.0, 2.0)):
        victim = random.randrange(len(run.workers))
        proc = run.workers[victim]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for pool in POOLS:
            metrics.eval(_FORGET_PROCESS, 2, f"now:{pool}", f"byproc:{pool}", str(proc.pid))
        run.workers[victim] = start_worker(run)
        run.kills += 1


def restart_redis_during(run: Run, jobs: int, restarts: int) -> None:
    """SIGKILL and restart the queue's Redis (same port, same AOF) at spread-out moments."""
    for k in range(restarts):
        target = jobs * (k + 1) / (restarts + 1)
        while len(run.enqueued) < target and not run.producer_done.is_set():
            time.sleep(0.05)
        old = run.queue
        assert old.process is not None
        old.process.send_signal(signal.SIGKILL)
        old.process.wait()
        time.sleep(random.uniform(0.3, 1.0))
        run.queue = RedisServer(
            old.binary, old.port, old.directory, extra_args=old.extra_args, owns_directory=True
        )
        run.queue.start()
        run.restarts += 1
        print(f"  restarted Redis ({run.restarts}/{restarts}) at {len(run.enqueued)} enqueued")


def wait_for_everything(run: Run, pools: dict[str, Workpool], timeout_s: float) -> bool:
    """Wait until every enqueued job finished and every callback ended."""
    deadline = time.monotonic() + timeout_s
    client = redis.Redis.from_url(run.queue.url)
    while time.monotonic() < deadline:
        busy = 0
        for pool in pools.values():
            s = pool.stats()
            busy += s.pending + s.running + s.scheduled + client.zcard(pool.keys.callbacks)
        if busy == 0 and not unfinished(run, pools):
            return True
        time.sleep(0.5)
    return False


def unfinished(run: Run, pools: dict[str, Workpool]) -> list[str]:
    return [w for w, (state, *_rest) in job_fields(run, pools) if state != b"finished"]


def job_fields(run: Run, pools: dict[str, Workpool]) -> Iterator[tuple[str, list[bytes | None]]]:
    client = redis.Redis.from_url(run.queue.url)
    ids = list(run.enqueued)
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        pipe = client.pipeline(transaction=False)
        for wid in chunk:
            pool = pools[run.enqueued[wid][0]]
            pipe.hmget(pool.keys.job(wid), "state", "result", "callback", "callback_finished_at")
        yield from zip(chunk, pipe.execute(), strict=True)


def report(run: Run, pools: dict[str, Workpool], drained: bool, wall_s: float) -> bool:
    metrics = redis.Redis.from_url(run.metrics.url)
    outcomes: dict[str, int] = {}
    lost = callback_missing = late_callback_starts = callback_reruns = mutation_dupes = 0
    for wid, (state, result, callback, cb_finished_at) in job_fields(run, pools):
        if state != b"finished":
            lost += 1
            continue
        kind = result.decode() if result else "?"
        outcomes[kind] = outcomes.get(kind, 0) + 1
        if callback != b"done":
            callback_missing += 1
            continue
        returned = int(metrics.get(f"cb_returned:{wid}") or 0)
        callback_reruns += returned > 1
        finished_s = int(cb_finished_at) / 1000
        starts = [float(t) for t in metrics.lrange(f"cb_start_times:{wid}", 0, -1)]
        late_callback_starts += sum(t > finished_s + 0.05 for t in starts)
        if run.enqueued[wid][1] == "mutation" and int(metrics.get(f"starts:{wid}") or 0) > 1:
            mutation_dupes += 1
    peaks = {name: int(metrics.get(f"peak:{name}") or 0) for name in POOLS}
    checks = [
        ("jobs lost", lost, lost == 0),
        ("mutations that ran more than once", mutation_dupes, mutation_dupes == 0),
        (
            "callbacks started again after their return was recorded",
            late_callback_starts,
            late_callback_starts == 0,
        ),
        ("jobs whose callback never ran to completion", callback_missing, callback_missing == 0),
    ] + [
        (f"peak concurrency of {name} (cap {cap})", peaks[name], 0 < peaks[name] <= cap)
        for name, cap in POOLS.items()
    ]
    print("\nchaos report")
    print(f"  jobs enqueued (acknowledged)        {len(run.enqueued)}")
    print(f"  jobs with a terminal outcome        {len(run.enqueued) - lost}  {outcomes}")
    print(f"  workers killed with SIGKILL         {run.kills}")
    print(f"  Redis restarts (AOF always)         {run.restarts}")
    print(f"  enqueue calls that gave up          {run.enqueue_errors}")
    print(
        f"  callbacks that returned more than once: {callback_reruns} (each a worker SIGKILLed in "
        "the instant between a callback returning and its return reaching Redis; callbacks are "
        "at-least-once there; a recorded return is never run again, checked below)"
    )
    for label, value, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {label}: {value}")
    print(f"  drained before the deadline         {drained}")
    print(f"  wall time                           {wall_s:.1f} s")
    return drained and all(ok for _, _, ok in checks)


if __name__ == "__main__":
    main()
