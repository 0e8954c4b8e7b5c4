"""Listing a few jobs of a pool by state, for operators (`workpool jobs`).

Each listing reads only the first `limit` entries of one structure (the stream, the delayed set
or the running set) and those jobs' status hashes: never a whole backlog.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import redis

from workpool.keys import THREAD_SLOT_PREFIX, PoolKeys

LIST_STATES = ("pending", "scheduled", "running")
MAX_LIST_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class JobSummary:
    """One job as an operator sees it; times are epoch seconds."""

    work_id: str
    state: str
    function: str | None
    kind: str | None
    attempts: int
    enqueued_at: float | None
    age_s: float | None  # since it was enqueued
    next_run_at: float | None  # scheduled: when it is due
    started_at: float | None  # running: when this attempt started
    worker: str | None  # running: who runs it

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for JSON)."""
        return asdict(self)


def list_jobs(client: redis.Redis, keys: PoolKeys, state: str, limit: int) -> list[JobSummary]:
    """The first `limit` jobs of a pool in `state` (pending, scheduled or running).

    Raises:
        ValueError: an unknown state or a limit outside 1..10,000.
    """
    if state not in LIST_STATES:
        raise ValueError(f"state must be one of {', '.join(LIST_STATES)}, got {state!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
        raise ValueError(f"limit must be an int from 1 to {MAX_LIST_LIMIT}, got {limit!r}")
    if state == "pending":
        entries = client.xrange(keys.stream, count=limit)
        work_ids = [f[b"id"].decode() for _, f in entries if b"id" in f]
    else:
        key = keys.delayed if state == "scheduled" else keys.running
        members = [m.decode() for m in client.zrange(key, 0, limit - 1)]
        # A timed-out thread's slot counts against the cap but is not a job: leave it out.
        work_ids = [m for m in members if not m.startswith(THREAD_SLOT_PREFIX)]
    pipe = client.pipeline(transaction=False)
    for work_id in work_ids:
        pipe.hmget(keys.job(work_id), *_FIELDS)
    now = time.time()
    return [_summary(w, state, f, now) for w, f in zip(work_ids, pipe.execute(), strict=True)]


_FIELDS = ("fn", "kind", "attempts", "enqueued_at", "next_run_at", "started_at", "worker")


def _summary(work_id: str, state: str, fields: list[bytes | None], now: float) -> JobSummary:
    fn, kind, attempts, enqueued_at, next_run_at, started_at, worker = fields
    enqueued = _seconds(enqueued_at)
    return JobSummary(
        work_id=work_id,
        state=state,
        function=_text(fn),
        kind=_text(kind),
        attempts=int(attempts or 0),
        enqueued_at=enqueued,
        age_s=None if enqueued is None else max(0.0, now - enqueued),
        next_run_at=_seconds(next_run_at) if state == "scheduled" else None,
        started_at=_seconds(started_at) if state == "running" else None,
        worker=_text(worker) if state == "running" else None,
    )


def _seconds(ms: bytes | None) -> float | None:
    return None if ms is None else int(ms) / 1000


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")
