"""Figure (f), workpool only: Redis memory per pending job, and drain rate with a deep backlog.

    python benchmarks/scale.py [--deep 1000000] [--shallow 1000] [--measure 20000] [--runs 3]

Fills the pool with `--deep` pending jobs (batch enqueue), reads Redis `used_memory` before and
after, then starts the 2 x 8 workers and times the first `--measure` completions. The same for
`--shallow` pending jobs (all of them drained). Results go into results.json under "scale" and
results.md is rewritten.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import BENCH_DIR, Workers
from run import ALL_SYSTEMS, spec_for, table, write_results


def used_memory(runner_client: Any) -> int:
    """Redis used_memory in bytes."""
    return int(runner_client.info("memory")["used_memory"])


def drain_rate(backlog: int, measure: int) -> dict[str, float]:
    """Fill `backlog` jobs on a fresh server, then time the first `measure` completions."""
    spec = spec_for("workpool")
    server = harness.start_redis()
    r = harness.client(server.url)
    try:
        r.flushall()
        harness.run_script(spec, "setup", server.url)
        before = used_memory(r)
        res = harness.run_script(
            spec,
            "produce",
            server.url,
            "--n",
            str(backlog),
            "--mode",
            "batch",
            "--batch-size",
            "2000",
            timeout=3600,
        )
        after = used_memory(r)
        workers = Workers(spec, server.url).start()
        try:
            done = harness.wait_for_count(r, measure, max(120.0, measure / 100), workers)
        finally:
            workers.stop()
        span = done.last_at - done.first_at
        # Workers stopped while jobs remained: the counter may run a little past `measure`.
        return {
            "backlog": backlog,
            "bytes_per_pending_job": (after - before) / backlog,
            "fill_rate": backlog / res["elapsed"],
            "drain_rate": (measure - done.first_count) / span if span > 0 else float("nan"),
            "measured": measure,
            "counted": done.verification.counted,
        }
    finally:
        r.close()
        server.stop()


def main() -> None:
    """Run (f) and fold it into results.json and results.md."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--deep", type=int, default=1_000_000)
    ap.add_argument("--shallow", type=int, default=1_000)
    ap.add_argument("--measure", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=str(BENCH_DIR / "results.md"))
    a = ap.parse_args()
    scale: dict[str, Any] = {}
    for label, backlog, measure in (
        ("deep", a.deep, min(a.measure, a.deep)),
        ("shallow", a.shallow, a.shallow),
    ):
        runs = []
        for i in range(a.runs):
            print(f"== workpool, {backlog} pending, run {i + 1}", flush=True)
            runs.append(drain_rate(backlog, measure))
            print(json.dumps(runs[-1]), flush=True)
        scale[label] = {
            k: harness.median([float(r[k]) for r in runs]) for k in runs[0] if k != "counted"
        }
        scale[label]["runs"] = len(runs)
    out = Path(a.out)
    json_path = out.with_suffix(".json")
    store = json.loads(json_path.read_text()) if json_path.exists() else {}
    store.setdefault("systems", {})
    store.setdefault("skipped", {})
    store.setdefault("machine", {})
    store["scale"] = scale
    json_path.write_text(json.dumps(store, indent=1))
    order = [nm for nm in ALL_SYSTEMS if nm in store["systems"]]
    results = {nm: store["systems"][nm]["figures"] for nm in order}
    write_results(out, store, order, table(results, order))
    print(json.dumps(scale, indent=1))


if __name__ == "__main__":
    main()
