"""Validation of enqueue options: schedules, retries, TTLs and payloads.

Everything here runs before any write, so bad input never leaves anything half-done in Redis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from workpool.codec import pack
from workpool.errors import (
    InvalidArguments,
    InvalidParallelism,
    InvalidRetryBehavior,
    InvalidSchedule,
    PayloadTooLarge,
)
from workpool.retry import NO_RETRY, RetryBehavior

Seconds = float | int | timedelta


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a job becomes ready: now, after a delay, or at an epoch time."""

    mode: str  # "now" | "after" | "at"
    ms: int = 0


NOW = Schedule("now")


def to_seconds(value: object, what: str) -> float:
    """A non-negative duration in seconds from a number or a timedelta (math.inf allowed)."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSchedule(f"{what} must be seconds (int, float or timedelta), got {value!r}")
    if math.isnan(value) or value < 0:
        raise InvalidSchedule(f"{what} must be >= 0 seconds, got {value!r}")
    return float(value)


def schedule_of(run_after: object, run_at: object) -> Schedule:
    """Turn `run_after` (seconds from now) or `run_at` (epoch s, aware datetime) into a Schedule.

    For `run_after` the due time itself is computed on Redis's clock, at enqueue.
    """
    if run_after is not None and run_at is not None:
        raise InvalidSchedule("give run_after or run_at, not both")
    if run_after is not None:
        seconds = to_seconds(run_after, "run_after")
        if math.isinf(seconds):
            raise InvalidSchedule("run_after must be finite")
        return Schedule("after", round(seconds * 1000))
    if run_at is not None:
        return Schedule("at", round(_epoch_seconds(run_at) * 1000))
    return NOW


def _epoch_seconds(run_at: object) -> float:
    if isinstance(run_at, datetime):
        if run_at.tzinfo is None or run_at.utcoffset() is None:
            raise InvalidSchedule(f"run_at datetime must be timezone-aware, got {run_at!r}")
        return run_at.timestamp()
    if isinstance(run_at, bool) or not isinstance(run_at, int | float):
        raise InvalidSchedule(f"run_at must be epoch seconds or an aware datetime, got {run_at!r}")
    if not math.isfinite(run_at) or run_at < 0:
        raise InvalidSchedule(f"run_at must be a finite epoch time, got {run_at!r}")
    return float(run_at)


def ttl_ms_of(status_ttl: object) -> int:
    """Status TTL in ms; -1 means keep forever (math.inf)."""
    seconds = to_seconds(status_ttl, "status_ttl")
    return -1 if math.isinf(seconds) else round(seconds * 1000)


def timeout_ms_of(timeout: object) -> int | None:
    """A per-attempt run-time limit in ms (None: no limit); it must be positive and finite."""
    if timeout is None:
        return None
    seconds = to_seconds(timeout, "timeout")
    if seconds <= 0 or math.isinf(seconds):
        raise InvalidSchedule(
            f"timeout must be a positive, finite number of seconds, got {timeout!r}"
        )
    return max(1, round(seconds * 1000))


def retry_of(retry: object, *, default: RetryBehavior, by_default: bool) -> RetryBehavior:
    """The retry behaviour of one action: None -> pool default; True/False; or a RetryBehavior."""
    if retry is None:
        return default if by_default else NO_RETRY
    if retry is True:
        return default
    if retry is False:
        return NO_RETRY
    if isinstance(retry, RetryBehavior):
        return retry
    raise InvalidRetryBehavior(f"retry must be None, True, False or a RetryBehavior, got {retry!r}")


def parallelism_of(value: object) -> int:
    """A validated max_parallelism."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParallelism(f"max_parallelism must be an int, got {value!r}")
    if value < 0:
        raise InvalidParallelism(f"max_parallelism must be >= 0 (0 pauses), got {value}")
    return value


def pack_args(args: object, *, limit: int) -> bytes:
    """Encode one job's arguments, which must be a mapping with str keys (called as fn(**args))."""
    if args is None:
        args = {}
    if not isinstance(args, Mapping):
        raise InvalidArguments(
            f"args must be a mapping of argument names, got {type(args).__name__}"
        )
    bad = [k for k in args if not isinstance(k, str)]
    if bad:
        raise InvalidArguments(f"args keys must be str, got {bad[0]!r}")
    return pack_limited(dict(args), what="args", limit=limit)


def pack_limited(value: Any, *, what: str, limit: int) -> bytes:
    """Encode `value`, refusing it if the encoding is larger than `limit` bytes."""
    data = pack(value, what=what)
    if len(data) > limit:
        raise PayloadTooLarge(
            f"{what} is {len(data)} bytes encoded, over max_payload_bytes={limit}"
        )
    return data
