"""Value objects returned to callers: Status, Result, Stats, and the enums behind them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class JobKind(StrEnum):
    """What a job is, which decides how it may be retried."""

    ACTION = "action"  # retried on failure when its retry behaviour allows
    MUTATION = "mutation"  # never retried: runs at most once
    QUERY = "query"  # not retried on failure, but may be re-run after a lost worker


class State(StrEnum):
    """Where a job is in its life."""

    PENDING = "pending"  # waiting to start: ready, delayed, or backing off before a retry
    RUNNING = "running"
    FINISHED = "finished"
    UNKNOWN = "unknown"  # never enqueued, or finished and expired


class ResultKind(StrEnum):
    """How a finished job ended."""

    SUCCESS = "success"
    FAILED = "failed"
    CANCELED = "canceled"


@dataclass(frozen=True, slots=True)
class Status:
    """A job's state as read from Redis.

    `previous_attempts` counts attempts that have ended; `next_run_at` (epoch seconds) is set
    while a job waits for its delay or its retry backoff.
    """

    work_id: str
    state: State
    previous_attempts: int = 0
    next_run_at: float | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of a finished job; `error` is set for failed and canceled jobs."""

    kind: ResultKind
    return_value: Any = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Stats:
    """A snapshot of one pool; rates are ratios in [0, 1] over the last `window_s` seconds."""

    pool: str
    pending: int  # ready to start now
    running: int
    scheduled: int  # delayed or backing off before a retry
    oldest_pending_ms: int  # age of the oldest ready job; 0 when none
    recent_executions: int  # attempts that ended within the window
    recent_finished: int  # jobs that reached a terminal outcome within the window
    recent_error_rate: float  # attempts that raised / recent_executions
    recent_permanent_failure_rate: float  # jobs that ended failed / recent_executions
    max_parallelism: int
    window_s: float

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for JSON logs and CLIs)."""
        return asdict(self)
