"""Where Redis is, and how clients connect to it."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import redis

from workpool.errors import WorkpoolConnectionError

P = ParamSpec("P")
R = TypeVar("R")

REDIS_URL_ENV = "WORKPOOL_REDIS_URL"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"


def resolve_redis_url(url: str | None) -> str:
    """`url`, else $WORKPOOL_REDIS_URL, else redis://localhost:6379/0."""
    return url or os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL


def connect(url: str | None, **options: object) -> redis.Redis:
    """A binary-safe client (payloads are msgpack bytes, so replies are never decoded)."""
    return redis.Redis.from_url(resolve_redis_url(url), decode_responses=False, **options)


def translate_connection_errors(method: Callable[P, R]) -> Callable[P, R]:
    """Decorate a public method so a lost or refused connection raises WorkpoolConnectionError.

    The driver's own exception stays attached as the cause.
    """

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise WorkpoolConnectionError(f"Redis unreachable: {exc}") from exc

    return wrapper
