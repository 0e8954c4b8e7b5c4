"""What `make demo` shows: the live view, the progress line and the closing report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from workpool import ResultKind, State

CHAIN_ORDER = 42
CHAIN_STEPS = ("step1", "step2", "step3")

# -- what the view shows -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PoolView:
    """One pool at one moment: queue sizes from `stats()`, our jobs' states and outcomes."""

    name: str
    cap: int
    jobs: int
    pending: int
    scheduled: int
    running: int
    finished: int
    success: int
    failed: int
    canceled: int
    retried: int  # jobs that needed (or are on) a second attempt
    peak: int  # most of the pool's jobs ever running at once, as counted by the jobs
    errors: Counter[str]  # failed jobs by the exception type of their last attempt

    @property
    def within_cap(self) -> bool:
        """Whether the pool never ran more jobs at once than its cap."""
        return self.peak <= self.cap


@dataclass(frozen=True, slots=True)
class ChainView:
    """Each chain step's state (None before it was enqueued) and how the chain ended."""

    states: dict[str, State | None]
    outcome: str | None  # "success", or why the chain stopped; None while it runs
    receipt: object = None  # step 3's return value

    @property
    def completed(self) -> bool:
        """Whether all three steps succeeded."""
        return self.outcome == ResultKind.SUCCESS


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the view draws, read from Redis in one poll."""

    elapsed_s: float
    pools: list[PoolView]
    chain: ChainView
    callbacks: dict[str, int]  # result kind -> on_complete calls for emails
    emails: int

    @property
    def done(self) -> bool:
        """Every job finished, the chain ended and every email's on_complete ran."""
        return (
            all(p.finished == p.jobs for p in self.pools)
            and self.chain.outcome is not None
            and sum(self.callbacks.values()) >= self.emails
        )


# -- drawing -----------------------------------------------------------------------------------


def running_bar(running: int, cap: int) -> Text:
    """Running jobs against the cap, e.g. "■■■□□ 3/5"; red if the cap is ever passed."""
    style = "red bold" if running > cap else "green"
    bar = Text("■" * running, style=style) + Text("□" * max(cap - running, 0), style="dim")
    return bar + Text(f" {running}/{cap}")


def chain_line(chain: ChainView) -> Text:
    """The chain's progress, e.g. "chain: step1 ✓ → step2 running → step3 ·"."""
    marks = {State.FINISHED: "✓", State.RUNNING: "running", State.PENDING: "queued"}
    parts = [
        f"{step} {marks.get(state, '·') if state else '·'}" for step, state in chain.states.items()
    ]
    end = f"  ({chain.outcome})" if chain.outcome else ""
    return Text(f"chain (order {CHAIN_ORDER}): " + " → ".join(parts) + end)


def live_view(snapshot: Snapshot) -> Group:
    """The table the live view refreshes: one row per pool, then the chain and callbacks."""
    table = Table(title=f"workpool demo  {snapshot.elapsed_s:5.1f} s", title_justify="left")
    table.add_column("pool")
    table.add_column("pending", justify="right")
    table.add_column("delayed", justify="right")  # Stats.scheduled: delays and retry backoffs
    table.add_column("running", no_wrap=True)
    for column in ("finished", "failed", "retried", "peak"):
        table.add_column(column, justify="right")
    for p in snapshot.pools:
        table.add_row(
            p.name,
            str(p.pending),
            str(p.scheduled),
            running_bar(p.running, p.cap),
            f"{p.finished}/{p.jobs}",
            str(p.failed),
            str(p.retried),
            f"{p.peak}/{p.cap}",
        )
    calls = sum(snapshot.callbacks.values())
    return Group(table, chain_line(snapshot.chain), Text(f"email on_complete calls: {calls}"))


def plain_line(snapshot: Snapshot) -> str:
    """One progress line, for output that is not a terminal."""
    parts = [
        f"{p.name} {p.pending} pending {p.scheduled} delayed {p.running}/{p.cap} running "
        f"{p.finished}/{p.jobs} finished ({p.failed} failed, {p.retried} retried)"
        for p in snapshot.pools
    ]
    steps = sum(s == State.FINISHED for s in snapshot.chain.states.values())
    return f"{snapshot.elapsed_s:5.1f}s  " + " | ".join(parts) + f" | chain {steps}/3 steps"


def outcome_table(snapshot: Snapshot) -> Table:
    """The closing table: outcomes per pool and the peak against the cap."""
    table = Table(title="outcomes", title_justify="left")
    table.add_column("pool")
    for column in ("jobs", "success", "failed", "canceled", "retried", "peak", "cap"):
        table.add_column(column, justify="right")
    for p in snapshot.pools:
        counts = (p.jobs, p.success, p.failed, p.canceled, p.retried, p.peak, p.cap)
        table.add_row(p.name, *map(str, counts))
    return table


def cap_verdict(p: PoolView) -> Text:
    """One line per pool: the most jobs that ran at once against the cap."""
    line = f"{p.name}: at most {p.peak} running at once, cap {p.cap}: "
    if p.within_cap:
        return Text(line) + Text("✓ cap never exceeded", style="green")
    return Text(line) + Text("✗ CAP EXCEEDED", style="red bold")


def report(console: Console, snapshot: Snapshot, timeout_s: float) -> bool:
    """Print the closing summary; returns whether the demo succeeded."""
    console.print()
    console.print(outcome_table(snapshot))
    for p in snapshot.pools:
        console.print(cap_verdict(p))
    for p in snapshot.pools:
        if p.errors:
            why = ", ".join(f"{n} {error}" for error, n in p.errors.most_common())
            console.print(f"{p.name} failures: {why}", highlight=False)
    chain = snapshot.chain
    if chain.completed:
        receipt = f"receipt {chain.receipt}"
        console.print(f"chain completed: step1 → step2 → step3, {receipt}", soft_wrap=True)
    else:
        console.print(f"[red]chain did not complete[/]: {chain.outcome or 'still running'}")
    calls = ", ".join(f"{n} {kind}" for kind, n in sorted(snapshot.callbacks.items())) or "none"
    console.print(f"email on_complete calls: {calls} (for {snapshot.emails} emails)")
    if snapshot.done:
        console.print(f"all done in {snapshot.elapsed_s:.1f} s")
    else:
        console.print(f"[red]NOT DONE[/] after {timeout_s:.0f} s")
    return snapshot.done and chain.completed and all(p.within_cap for p in snapshot.pools)
