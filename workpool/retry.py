"""Retry behaviour: exponential backoff with jitter."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from workpool.errors import InvalidRetryBehavior

# No single wait exceeds a day, whatever max_attempts and base say: a score beyond that is
# almost surely a configuration slip, and it keeps due times far from float precision limits.
MAX_BACKOFF_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class RetryBehavior:
    """How a failed action is retried.

    After failed attempt n the job waits
    `initial_backoff_ms * base**(n-1) * uniform(0.5, 1.5)` ms (capped at one day) before the next.
    `max_attempts` counts the first run.
    """

    max_attempts: int = 5
    initial_backoff_ms: float = 250
    base: float = 2

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise InvalidRetryBehavior(f"max_attempts must be an int, got {self.max_attempts!r}")
        if self.max_attempts < 1:
            raise InvalidRetryBehavior(f"max_attempts must be >= 1, got {self.max_attempts}")
        _require_number("initial_backoff_ms", self.initial_backoff_ms, minimum=0)
        _require_number("base", self.base, minimum=1)

    def backoff_ms(self, failed_attempt: int, jitter: float) -> int:
        """The wait after failed attempt `failed_attempt` (1-based) for a given jitter factor."""
        if self.initial_backoff_ms == 0:
            return 0
        try:
            raw = self.initial_backoff_ms * float(self.base) ** (failed_attempt - 1) * jitter
        except OverflowError:
            return MAX_BACKOFF_MS
        return int(min(raw, MAX_BACKOFF_MS))


def _require_number(name: str, value: object, *, minimum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRetryBehavior(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < minimum:
        raise InvalidRetryBehavior(f"{name} must be finite and >= {minimum}, got {value!r}")


DEFAULT_RETRY_BEHAVIOR = RetryBehavior()
# Used when retries are off: a single attempt.
NO_RETRY = RetryBehavior(max_attempts=1)


def draw_jitter() -> float:
    """A jitter factor, uniform in [0.5, 1.5)."""
    return random.uniform(0.5, 1.5)
