"""Plot benchmarks/results.json to benchmarks/results.png (needs matplotlib).

Run with the peers venv, which has matplotlib: `benchmarks/.peers-venv/bin/python
benchmarks/plot.py`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
ORDER = ["workpool", "huey", "dramatiq", "rq", "celery", "arq", "bullmq", "raw"]
PANELS = [
    ("(a) enqueue rate (jobs/s)", ["enqueue_single", "enqueue_batch"], ["single", "batch"], True),
    ("(b) drain / (c) end to end (jobs/s)", ["drain", "e2e"], ["drain", "end to end"], False),
    ("(d) pickup latency, idle workers (ms)", ["pickup_p50", "pickup_p99"], ["p50", "p99"], True),
    ("(e) delayed-job lateness (ms)", ["late_p50", "late_p99"], ["p50", "p99"], True),
]


def main() -> None:
    """Read results.json, write results.png."""
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results.json"
    dst = src.with_suffix(".png")
    systems = json.loads(src.read_text())["systems"]
    names = [n for n in ORDER if n in systems]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8))
    for ax, (title, keys, labels, log) in zip(axes.flat, PANELS, strict=True):
        width = 0.8 / len(keys)
        for j, (key, label) in enumerate(zip(keys, labels, strict=True)):
            values = [systems[n]["figures"].get(key, float("nan")) for n in names]
            xs = [i + (j - (len(keys) - 1) / 2) * width for i in range(len(names))]
            ax.bar(xs, values, width, label=label)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30)
        for tick in ax.get_xticklabels():
            if tick.get_text() == "workpool":
                tick.set_fontweight("bold")
        ax.set_title(title)
        if log:
            ax.set_yscale("log")
        ax.legend()
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("workpool vs peers on Redis (2 workers x 8; medians; same 2-core machine)")
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
