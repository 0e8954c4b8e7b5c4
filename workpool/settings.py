"""Where Redis is, and how clients connect to it."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

import redis
import structlog

from workpool.errors import WorkpoolConnectionError

logger = structlog.get_logger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")
# Retries while Redis is unreachable start at this wait and double up to the cap.
RECONNECT_MIN_S = 0.05
RECONNECT_MAX_S = 2.0

REDIS_URL_ENV = "WORKPOOL_REDIS_URL"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"


def resolve_redis_url(url: str | None) -> str:
    """`url`, else $WORKPOOL_REDIS_URL, else redis://localhost:6379/0."""
    return url or os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL


def connect(url: str | None, **options: object) -> redis.Redis:
    """A binary-safe client (payloads are msgpack bytes, so replies are never decoded)."""
    return redis.Redis.from_url(resolve_redis_url(url), decode_responses=False, **options)


def call_with_reconnect(fn: Callable[[], R], *, timeout_s: float, operation: str) -> R:
    """Call `fn`, retrying with capped exponential backoff while Redis is unreachable.

    Each failed try is logged (`redis_unavailable`). After `timeout_s` seconds of failures it
    raises WorkpoolConnectionError, keeping the driver's error as the cause. `fn` must be safe to
    call again after a connection error (idempotent, or able to tell its own earlier write).
    """
    deadline = time.monotonic() + timeout_s
    delay = RECONNECT_MIN_S
    while True:
        try:
            return fn()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkpoolConnectionError(f"Redis unreachable: {exc}") from exc
            wait = min(delay, remaining)
            logger.warning(
                "redis_unavailable", operation=operation, error=str(exc), retry_in_s=wait
            )
            time.sleep(wait)
            delay = min(RECONNECT_MAX_S, delay * 2)


def reconnecting(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Decorate a method of an object with `reconnect_timeout` so it rides out Redis outages."""

    @functools.wraps(method)
    def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
        return call_with_reconnect(
            lambda: method(self, *args, **kwargs),
            timeout_s=self.reconnect_timeout,  # type: ignore[attr-defined]
            operation=method.__name__,
        )

    return wrapper


def translate_connection_errors(method: Callable[P, R]) -> Callable[P, R]:
    """Decorate a method so a lost or refused connection raises WorkpoolConnectionError.

    For methods that handle reconnecting themselves, where a blind retry would be wrong.
    """

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise WorkpoolConnectionError(f"Redis unreachable: {exc}") from exc

    return wrapper
