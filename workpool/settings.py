"""Where Redis is, and how clients connect to it."""

from __future__ import annotations

import os

import redis

REDIS_URL_ENV = "WORKPOOL_REDIS_URL"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"


def resolve_redis_url(url: str | None) -> str:
    """`url`, else $WORKPOOL_REDIS_URL, else redis://localhost:6379/0."""
    return url or os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL


def connect(url: str | None, **options: object) -> redis.Redis:
    """A binary-safe client (payloads are msgpack bytes, so replies are never decoded)."""
    return redis.Redis.from_url(resolve_redis_url(url), decode_responses=False, **options)
