"""`make bench`: workpool against its peers, each on a private Redis server.

Prints a table and writes benchmarks/results.md (and results.json).

    python benchmarks/run.py [--systems workpool,raw,huey,...] [--n 20000] [--runs 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import (
    BENCH_DIR,
    CELERY_PYTHON,
    LATENCY_KEY,
    LATENESS_KEY,
    MAIN_PYTHON,
    PEERS_PYTHON,
    SystemSpec,
    Workers,
)

PEERS = ["huey", "dramatiq", "rq", "celery", "arq", "bullmq"]
ALL_SYSTEMS = ["workpool", *PEERS, "raw"]
LATENCY_JOBS = 200
LATENCY_INTERVAL_MS = 10
DELAYED_JOBS = 1000
DELAY_LEAD_S = 4.0


@dataclass(frozen=True)
class Figure:
    """One row of the table."""

    key: str
    label: str
    unit: str
    higher_is_better: bool


FIGURES = [
    Figure("enqueue_single", "(a) enqueue, single calls", "jobs/s", True),
    Figure("enqueue_batch", "(a) enqueue, batch API", "jobs/s", True),
    Figure("xadd_single", "(a) reference: bare XADD round trips (redis-py)", "jobs/s", True),
    Figure("drain", "(b) drain N pre-filled", "jobs/s", True),
    Figure("drain_total", "(b) drain incl. worker start", "s", False),
    Figure("e2e", "(c) end to end (producer + workers)", "jobs/s", True),
    Figure("pickup_p50", "(d) pickup latency p50", "ms", False),
    Figure("pickup_p95", "(d) pickup latency p95", "ms", False),
    Figure("pickup_p99", "(d) pickup latency p99", "ms", False),
    Figure("late_first", "(e) delayed lateness, first job", "ms", False),
    Figure("late_p50", "(e) delayed lateness p50", "ms", False),
    Figure("late_p99", "(e) delayed lateness p99", "ms", False),
    Figure("bodies", "(g) ceiling: the job bodies alone, 2 x 8 threads, no queue", "jobs/s", True),
]


def spec_for(name: str) -> SystemSpec:
    """The SystemSpec of a system name."""
    if name == "workpool":
        return SystemSpec(name, MAIN_PYTHON, BENCH_DIR / "systems" / "workpool_bench.py")
    if name == "raw":
        return SystemSpec(
            name,
            MAIN_PYTHON,
            BENCH_DIR / "systems" / "raw_floor.py",
            label="raw LPUSH/BRPOP",
            supports_delayed=False,
        )
    return SystemSpec(name, peer_python(name), BENCH_DIR / "peers" / f"{name}_bench.py")


def peer_python(name: str) -> str:
    """The Python of the venv a peer is installed in."""
    return CELERY_PYTHON if name == "celery" else PEERS_PYTHON


def peer_available(name: str) -> str | None:
    """None if the peer can run, else why not."""
    python = peer_python(name)
    if not Path(python).exists():
        return f"no venv at {python} (run benchmarks/setup_peers.sh)"
    script = BENCH_DIR / "peers" / f"{name}_bench.py"
    if not script.exists():
        return "no adapter written yet"
    probe = subprocess.run([python, "-c", f"import {name}"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"not installed ({probe.stderr.strip().splitlines()[-1:]})"
    return None


class Runner:
    """Runs every figure for one system on its own private redis-server."""

    def __init__(self, spec: SystemSpec, n: int, log: Callable[[str], None]) -> None:
        self.spec = spec
        self.n = n
        self.log = log
        self.server = harness.start_redis()
        self.url = self.server.url
        self.r = harness.client(self.url)
        self.problems: list[str] = []

    def close(self) -> None:
        """Stop the private server."""
        self.r.close()
        self.server.stop()

    def fresh(self) -> None:
        """Empty the private Redis and prepare the system."""
        self.r.flushall()
        harness.run_script(self.spec, "setup", self.url)

    def check(self, what: str, done: harness.Completion) -> None:
        """Record a verification failure."""
        if not done.verification.ok:
            self.problems.append(f"{what}: {done.verification}")

    def timeout(self) -> float:
        """Generous limit for a drain of n jobs."""
        return max(120.0, self.n / 100)

    def one_run(self) -> dict[str, float]:
        """Every figure once."""
        out: dict[str, float] = {}
        s, url, n = self.spec, self.url, self.n
        for mode in ("single", "batch"):
            self.fresh()
            res = harness.run_script(s, "produce", url, "--n", str(n), "--mode", mode)
            if res.get("unsupported"):
                self.log(f"  enqueue {mode}: no batch API")
                continue
            out[f"enqueue_{mode}"] = n / res["elapsed"]
            self.log(f"  enqueue {mode}: {out[f'enqueue_{mode}']:.0f}/s")

        if s.name == "workpool":
            # What the single-enqueue target is measured against: one plain XADD per call.
            self.fresh()
            res = harness.run_script(s, "produce", url, "--n", str(n), "--mode", "xadd")
            out["xadd_single"] = n / res["elapsed"]
            self.log(f"  bare XADD: {out['xadd_single']:.0f}/s")

        if s.name == "raw":
            # The ceiling: what the machine does with the job bodies and no job system at all.
            self.fresh()
            res = harness.run_script(
                s,
                "bodies",
                url,
                *("--n", str(n), "--concurrency", str(s.concurrency)),
                *("--processes", str(s.workers)),
            )
            ran = int(self.r.get(harness.COUNTER_KEY) or 0)
            if ran != n:
                self.problems.append(f"bodies: {ran} of {n} job bodies ran")
            out["bodies"] = n / res["elapsed"]
            self.log(f"  job bodies alone: {out['bodies']:.0f}/s")

        # (b) drain: pre-fill, start workers, time to the last completion.
        self.fresh()
        harness.run_script(s, "produce", url, "--n", str(n), "--mode", "batch")
        workers = Workers(s, url).start()
        try:
            done = harness.wait_for_count(self.r, n, self.timeout(), workers)
        finally:
            workers.stop()
        self.check("drain", done)
        span = done.last_at - done.first_at
        out["drain"] = (n - done.first_count) / span if span > 0 else float("nan")
        out["drain_total"] = done.last_at - workers.started_at
        self.log(f"  drain: {out['drain']:.0f}/s ({done.verification})")

        # (c), (d), (e) with one set of warm workers.
        self.fresh()
        workers = Workers(s, url).start()
        try:
            harness.warm_up(s, url, self.r, workers)
            res = harness.run_script(s, "produce", url, "--n", str(n), "--mode", "single")
            done = harness.wait_for_count(self.r, n, self.timeout(), workers)
            self.check("e2e", done)
            out["e2e"] = n / (done.last_at - res["started"])
            self.log(f"  e2e: {out['e2e']:.0f}/s ({done.verification})")

            self.r.delete(harness.COUNTER_KEY)
            time.sleep(0.5)
            harness.run_script(
                s,
                "latency",
                url,
                "--n",
                str(LATENCY_JOBS),
                "--interval-ms",
                str(LATENCY_INTERVAL_MS),
            )
            done = harness.wait_for_count(self.r, LATENCY_JOBS, 60, workers)
            self.check("pickup", done)
            lat = [x * 1000 for x in harness.read_floats(self.r, LATENCY_KEY)]
            for p in (50, 95, 99):
                out[f"pickup_p{p}"] = harness.percentile(lat, p)
            self.log(f"  pickup p50/p99: {out['pickup_p50']:.2f}/{out['pickup_p99']:.2f} ms")

            if s.supports_delayed:
                self.r.delete(harness.COUNTER_KEY)
                due = time.time() + DELAY_LEAD_S
                harness.run_script(s, "delayed", url, "--n", str(DELAYED_JOBS), "--due", repr(due))
                done = harness.wait_for_count(self.r, DELAYED_JOBS, 60, workers)
                self.check("delayed", done)
                late = [x * 1000 for x in harness.read_floats(self.r, LATENESS_KEY)]
                if late and min(late) < -1:
                    self.problems.append(f"delayed: a job started {-min(late):.1f} ms early")
                out["late_first"] = min(late)
                out["late_p50"] = harness.percentile(late, 50)
                out["late_p99"] = harness.percentile(late, 99)
                self.log(f"  delayed p50/p99: {out['late_p50']:.1f}/{out['late_p99']:.1f} ms")
        finally:
            workers.stop()
        return out


def fmt(value: float | None, unit: str) -> str:
    """A figure for the table."""
    if value is None or value != value:
        return "-"
    if unit == "jobs/s":
        return f"{value:,.0f}"
    if unit == "s":
        return f"{value:.2f}"
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def ratio(fig: Figure, results: dict[str, dict[str, float]]) -> str:
    """Workpool's figure over the best peer's (peers exclude the raw floor)."""
    wp = results.get("workpool", {}).get(fig.key)
    peers = [
        v.get(fig.key)
        for name, v in results.items()
        if name not in ("workpool", "raw") and v.get(fig.key) == v.get(fig.key)
    ]
    peers = [p for p in peers if p is not None]
    if wp is None or wp != wp or not peers:
        return "-"
    best = max(peers) if fig.higher_is_better else min(peers)
    if best == 0:
        return "-"
    return f"{wp / best:.2f}"


def table(results: dict[str, dict[str, float]], names: list[str]) -> list[str]:
    """The figures as markdown table lines."""
    head = ["figure", "unit", *names, "workpool / best peer"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for fig in FIGURES:
        row = [fig.label, fig.unit]
        row += [fmt(results.get(nm, {}).get(fig.key), fig.unit) for nm in names]
        row.append(ratio(fig, results))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def main() -> None:
    """Parse arguments, run every system, print and write the results."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--systems", default=",".join(ALL_SYSTEMS))
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smoke run: N=1000, 1 run")
    ap.add_argument("--out", default=str(BENCH_DIR / "results.md"))
    ap.add_argument(
        "--merge", action="store_true", help="keep other systems' figures from results.json"
    )
    a = ap.parse_args()
    if a.quick:
        a.n, a.runs = 1000, 1
    out = Path(a.out)
    json_path = out.with_suffix(".json")
    store: dict[str, Any] = {"systems": {}, "skipped": {}, "machine": {}}
    if a.merge and json_path.exists():
        store = json.loads(json_path.read_text())
    names = [s.strip() for s in a.systems.split(",") if s.strip()]
    for nm in list(names):
        if nm in PEERS:
            why = peer_available(nm)
            if why:
                store["skipped"][nm] = why
                names.remove(nm)
                print(f"skipping {nm}: {why}", flush=True)

    for nm in names:
        spec = spec_for(nm)
        print(f"== {nm} (N={a.n}, runs={a.runs})", flush=True)
        runner = Runner(spec, a.n, lambda m: print(m, flush=True))
        store["machine"] = store["machine"] or harness.machine_info(runner.url)
        runs: list[dict[str, float]] = []
        try:
            for i in range(a.runs):
                print(f" run {i + 1}", flush=True)
                try:
                    runs.append(runner.one_run())
                except Exception as exc:  # a system's failure must not sink the others
                    runner.problems.append(f"run {i + 1} failed: {exc}")
                    print(f"  failed: {exc}", flush=True)
        finally:
            runner.close()
        keys = {k for r in runs for k in r}
        store["skipped"].pop(nm, None)
        store["systems"][nm] = {
            "figures": {k: harness.median([r[k] for r in runs if k in r]) for k in keys},
            "all_runs": runs,
            "runs": len(runs),
            "n": a.n,
            "problems": runner.problems,
        }
        json_path.write_text(json.dumps(store, indent=1))

    order = [nm for nm in ALL_SYSTEMS if nm in store["systems"]]
    results = {nm: store["systems"][nm]["figures"] for nm in order}
    lines = table(results, order)
    print("\n".join(lines))
    write_results(out, store, order, lines)
    print(f"wrote {out}")


def write_results(path: Path, store: dict[str, Any], names: list[str], lines: list[str]) -> None:
    """Write results.md."""
    machine = store["machine"]
    systems = store["systems"]
    md = [
        "# workpool benchmark",
        "",
        f"Machine: {machine.get('cores')} cores ({machine.get('cpu')}), "
        f"Redis {machine.get('redis')}, Python {machine.get('python')}. "
        f"Written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "Every system: its own redis-server on a free port, no persistence; 2 worker processes"
        " x 8 (threads, greenlets or asyncio tasks); workpool with a pool cap of 16. Each job"
        " does one INCR. The harness, Redis, the producer and both workers share the machine's"
        " cores, so every figure includes CPU contention.",
        "",
        "N and runs per system (each figure is the median of the runs): "
        + ", ".join(f"{nm} N={systems[nm]['n']} x{systems[nm]['runs']}" for nm in names)
        + ".",
        "",
        *lines,
        "",
        "Ratio: workpool's figure over the best peer's (the raw floor is not a peer). For"
        " rates above 1 is better; for latencies and times below 1 is better. '-': the"
        " library documents no such API (batch enqueue) or no delayed jobs (raw floor). The XADD"
        " reference is one redis-py `xadd` per call on workpool's Redis, the round trip the"
        " single-enqueue target compares with; the first delayed job's lateness shows how"
        " precisely due work is promoted, the percentiles also include waiting for a free slot"
        " (1,000 jobs due at once through 16 slots). The ceiling (g) runs only the job bodies,"
        " N of them on the same 2 x 8 threads with no queue: no job system can exceed it here,"
        " and the gap between a system's drain rate and it is what that system costs per job.",
        "",
        "## Verification (exactly N jobs ran, by an INCR counter)",
        "",
    ]
    for nm in names:
        md.append(f"- {nm}: " + ("; ".join(systems[nm]["problems"]) or "ok, every run"))
    scale = store.get("scale")
    if scale:
        md += [
            "",
            "## (f) workpool with a deep backlog (benchmarks/scale.py)",
            "",
            f"Each row is the median of {scale['deep'].get('runs', 1):.0f} runs.",
            "",
            "| pending jobs | Redis bytes per pending job | batch fill rate (jobs/s) |"
            " drain rate (jobs/s) | completions timed |",
            "|---|---|---|---|---|",
        ]
        for s in (scale.get("deep"), scale.get("shallow")):
            if s:
                md.append(
                    f"| {s['backlog']:,.0f} | {s['bytes_per_pending_job']:.0f} |"
                    f" {s['fill_rate']:,.0f} | {s['drain_rate']:,.0f} | {s['measured']:,.0f} |"
                )
    if store["skipped"]:
        md += ["", "## Skipped", ""]
        md += [f"- {nm}: {why}" for nm, why in store["skipped"].items()]
    path.write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
