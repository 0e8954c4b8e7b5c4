"""The functions `make demo` runs: emails, scrapes and a three-step callback chain.

Each job counts itself in Redis while it runs (INCR on start, DECR on end, keeping the peak in
`demo:<pool>:peak`), so the demo can show that no pool ever ran more jobs at once than its cap.

The chain is step1 -> step2 -> step3, each step enqueued by the previous step's `on_complete`
through a `Workpool` built from $WORKPOOL_REDIS_URL (the demo sets it for its workers). The
callbacks record the work id of each step in the hash `demo:chain`, and `after_step3` records
how the chain ended, so the demo can follow a chain whose ids it never saw.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import Any

import redis

import workpool
from workpool import NonRetryableError, Result, ResultKind, RetryBehavior, Workpool

REDIS_URL_ENV = "WORKPOOL_REDIS_URL"
CHAIN_KEY = "demo:chain"  # hash: step1/step2/step3 -> work id, outcome -> how the chain ended
CALLBACKS_KEY = "demo:callbacks"  # hash: result kind -> on_complete calls for emails
FLAKY_RATE = 1 / 6  # share of email attempts that hit a flaky provider (and are retried)
BOUNCE_EVERY = 37  # every 37th address bounces: a permanent failure, never retried
# Short backoffs (0.1, 0.2, 0.4 s, with jitter) so retries show but the demo stays quick.
DEMO_RETRY = RetryBehavior(max_attempts=4, initial_backoff_ms=100, base=2)

_ENTER = """
local n = redis.call('INCR', KEYS[1])
if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end
return n
"""
_client: redis.Redis | None = None
_pools: dict[str, Workpool] = {}


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ[REDIS_URL_ENV])
    return _client


def _pool(name: str) -> Workpool:
    # One handle per pool per worker process; max_parallelism=None keeps the demo's cap.
    if name not in _pools:
        _pools[name] = Workpool(name, redis_url=os.environ[REDIS_URL_ENV], max_parallelism=None)
    return _pools[name]


def _measured(seconds: float) -> None:
    pool = workpool.current_job().pool
    _redis().eval(_ENTER, 2, f"demo:{pool}:now", f"demo:{pool}:peak")
    try:
        time.sleep(seconds)
    finally:
        _redis().decr(f"demo:{pool}:now")


# -- emails and scrapes ----------------------------------------------------------------------


@workpool.function(name="demo.send_welcome")
def send_welcome(user_id: int) -> dict[str, Any]:
    """Pretend to send an email: some attempts time out (retried), some addresses bounce."""
    _measured(random.uniform(0.02, 0.08))
    if user_id % BOUNCE_EVERY == BOUNCE_EVERY - 1:
        raise NonRetryableError(f"user {user_id}: mailbox does not exist")
    if random.random() < FLAKY_RATE:
        raise ConnectionError("smtp provider timed out")
    return {"user_id": user_id, "sent": True}


@workpool.function(name="demo.email_sent")
def email_sent(work_id: str, context: dict[str, Any], result: Result) -> None:
    """on_complete of every email: count each outcome, by kind."""
    _redis().hincrby(CALLBACKS_KEY, str(result.kind), 1)


@workpool.function(name="demo.scrape")
def scrape(city: str) -> dict[str, Any]:
    """Pretend to scrape a weather page (slow, so the scrape pool's cap of 1 shows)."""
    _measured(0.15)
    return {"city": city, "temp_c": round(random.uniform(-5, 30), 1)}


# -- the callback chain ----------------------------------------------------------------------


@workpool.function(name="demo.step1")
def step1(order: int) -> dict[str, Any]:
    """Chain step 1: look the order up."""
    _measured(0.2)
    return {"order": order, "items": 3, "total_cents": 4_200}


@workpool.function(name="demo.step2")
def step2(order: int, step1: dict[str, Any]) -> dict[str, Any]:
    """Chain step 2: charge what step 1 found."""
    _measured(0.2)
    return {"order": order, "charged_cents": step1["total_cents"]}


@workpool.function(name="demo.step3")
def step3(order: int, step2: dict[str, Any]) -> dict[str, Any]:
    """Chain step 3: send the receipt for what step 2 charged."""
    _measured(0.2)
    return {"order": order, "receipt_for_cents": step2["charged_cents"]}


def start_chain(pool: Workpool, order: int) -> str:
    """Enqueue step 1 of the chain for `order` on `pool`; returns its work id."""
    context = {"pool": pool.name, "order": order}
    work_id = pool.enqueue_action(
        step1, {"order": order}, retry=DEMO_RETRY, on_complete=after_step1, context=context
    )
    pool.redis.hset(CHAIN_KEY, "step1", work_id)  # the demo process has no $WORKPOOL_REDIS_URL
    return work_id


def _next_step(
    context: dict[str, Any],
    result: Result,
    step: Callable[..., Any],
    args: dict[str, Any],
    then: Callable[..., Any],
) -> None:
    # A step that did not succeed ends the chain; otherwise the next step gets its result.
    # Callbacks are at-least-once: after a worker crash this could enqueue a step twice. A real
    # workflow would key the next step on `work_id`; the demo has no crashes to survive.
    name = step.__name__
    if result.kind != ResultKind.SUCCESS:
        _redis().hset(CHAIN_KEY, "outcome", f"{result.kind} before {name}")
        return
    work_id = _pool(context["pool"]).enqueue_action(
        step,
        {"order": context["order"], **args},
        retry=DEMO_RETRY,
        on_complete=then,
        context=context,
    )
    _redis().hset(CHAIN_KEY, name, work_id)


@workpool.function(name="demo.after_step1")
def after_step1(work_id: str, context: dict[str, Any], result: Result) -> None:
    """on_complete of step 1: enqueue step 2 with step 1's result."""
    _next_step(context, result, step2, {"step1": result.return_value}, after_step2)


@workpool.function(name="demo.after_step2")
def after_step2(work_id: str, context: dict[str, Any], result: Result) -> None:
    """on_complete of step 2: enqueue step 3 with step 2's result."""
    _next_step(context, result, step3, {"step2": result.return_value}, after_step3)


@workpool.function(name="demo.after_step3")
def after_step3(work_id: str, context: dict[str, Any], result: Result) -> None:
    """on_complete of step 3: record how the chain ended."""
    _redis().hset(CHAIN_KEY, "outcome", str(result.kind))
