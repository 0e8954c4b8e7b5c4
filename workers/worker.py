"""The worker: one dispatcher loop that claims work for its pools and records outcomes.

All state changes happen on the dispatcher thread; job threads, the async loop and the waiter
threads only post events to one queue. The loop sleeps on that queue until something happens:
a run ends, a waiter brings a wake token, or a delayed item falls due. No fixed poll interval.
"""

from __future__ import annotations

import os
import queue
import secrets
import signal
import socket
import threading
import time
from types import FrameType

import redis
import structlog

from workers.consumer import PoolConsumer, Wake
from workers.executor import Executor, Finished
from workpool.errors import WorkpoolError
from workpool.functions import registered_names
from workpool.keys import validate_pool_name
from workpool.settings import connect

logger = structlog.get_logger(__name__)

DEFAULT_CONCURRENCY = 10
DEFAULT_LEASE_MS = 30_000
# After a Redis error the dispatcher waits this long before trying again (doubling, capped).
RETRY_MIN_S = 0.05
RETRY_MAX_S = 2.0


class _Stop:
    """Event: stop gracefully."""


class Worker:
    """Runs registered functions from one or more pools, at most `concurrency` at a time."""

    def __init__(
        self,
        pools: list[str],
        *,
        redis_url: str | None = None,
        client: redis.Redis | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        lease_ms: int = DEFAULT_LEASE_MS,
        worker_id: str | None = None,
    ) -> None:
        if not pools:
            raise ValueError("a worker needs at least one pool")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
        self.pools = [validate_pool_name(p) for p in dict.fromkeys(pools)]
        self.concurrency = concurrency
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._client = client if client is not None else connect(redis_url)
        self._events: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._consumers = {
            pool: PoolConsumer(
                pool,
                self._client,
                worker_id=self.worker_id,
                lease_ms=lease_ms,
                post=self._events.put,
            )
            for pool in self.pools
        }
        self._executor: Executor | None = None
        self._in_flight = 0
        self._stopping = False
        self._signals = 0
        self._rotation = 0
        self._retry_s = 0.0

    # -- control ------------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until stopped; SIGTERM/SIGINT stop gracefully (a second one exits at once)."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        self._serve()

    def stop(self) -> None:
        """Ask the worker to stop: it takes nothing new and lets running work finish."""
        # SimpleQueue.put is reentrant, so this is safe from a signal handler.
        self._events.put(_Stop())

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals == 1:
            logger.info(
                "worker_stopping",
                worker=self.worker_id,
                signal=signal.Signals(signum).name,
                running=self._in_flight,
            )
            self.stop()
            return
        logger.warning("worker_killed", worker=self.worker_id, running=self._in_flight)
        os._exit(128 + signum)

    # -- the loop -----------------------------------------------------------------------------

    def _serve(self) -> None:
        self._startup()
        try:
            while True:
                self._wait_for_events()
                self._flush()
                if self._stopping:
                    if self._in_flight == 0:
                        return
                    continue
                self._claim()
        finally:
            self._shutdown()

    def _startup(self) -> None:
        names = registered_names()
        for consumer in self._consumers.values():
            consumer.register(names)
        self._executor = Executor(self.concurrency, self._events.put)
        for consumer in self._consumers.values():
            consumer.start()
        logger.info(
            "worker_started",
            worker=self.worker_id,
            pools=self.pools,
            concurrency=self.concurrency,
            functions=len(names),
        )
        self._claim()

    def _shutdown(self) -> None:
        for consumer in self._consumers.values():
            consumer.stop()
        if self._executor is not None:
            self._executor.shutdown()
        logger.info("worker_stopped", worker=self.worker_id)

    def _wait_for_events(self) -> None:
        timeout = self._sleep_budget()
        try:
            event = self._events.get(timeout=timeout) if timeout != 0 else self._events.get_nowait()
        except queue.Empty:
            return
        self._handle(event)
        while True:  # take everything else already waiting, so it is handled in one pass
            try:
                self._handle(self._events.get_nowait())
            except queue.Empty:
                return

    def _sleep_budget(self) -> float | None:
        if self._retry_s:
            return self._retry_s
        if self._stopping:
            return None
        has_capacity = self._in_flight < self.concurrency
        dues = [c.next_due(has_capacity=has_capacity) for c in self._consumers.values()]
        due = min((d for d in dues if d is not None), default=None)
        return None if due is None else max(0.0, due - time.monotonic())

    def _handle(self, event: object) -> None:
        if isinstance(event, Finished):
            self._in_flight -= 1
            self._consumers[event.pool].add_finished(event)
            # Capacity freed: pools that had more than we could take are worth asking again.
            for consumer in self._consumers.values():
                if consumer.maybe_more:
                    consumer.needs_claim = True
        elif isinstance(event, Wake):
            consumer = self._consumers[event.pool]
            if self._stopping:
                if event.token:
                    consumer.pass_token()  # a draining worker takes nothing: hand it on
                return
            consumer.needs_claim = True
            consumer.holding_token = consumer.holding_token or event.token
        elif isinstance(event, _Stop) and not self._stopping:
            self._stopping = True
            for consumer in self._consumers.values():
                consumer.stop()

    def _flush(self) -> None:
        try:
            for consumer in self._consumers.values():
                consumer.flush()
        except (redis.RedisError, WorkpoolError) as exc:
            self._back_off("flush", exc)
            return
        self._retry_s = 0.0

    def _claim(self) -> None:
        assert self._executor is not None
        consumers = list(self._consumers.values())
        # Start at a different pool each pass so one busy pool cannot starve the others.
        self._rotation = (self._rotation + 1) % len(consumers)
        now = time.monotonic()
        try:
            for consumer in consumers[self._rotation :] + consumers[: self._rotation]:
                free = self.concurrency - self._in_flight
                if free == 0 and consumer.holding_token:
                    consumer.pass_token()
                due = consumer.next_due(has_capacity=free > 0)
                if not (consumer.needs_claim and free > 0) and not (due is not None and due <= now):
                    continue
                reply = consumer.claim(free)
                for callback in reply.callbacks:
                    self._executor.run_callback(consumer.pool, callback)
                for job in reply.jobs:
                    logger.debug(
                        "job_claimed",
                        pool=consumer.pool,
                        work_id=job.work_id,
                        function=job.function,
                        attempt=job.attempt,
                    )
                    self._executor.run_job(consumer.pool, job)
                self._in_flight += len(reply.callbacks) + len(reply.jobs)
        except (redis.RedisError, WorkpoolError) as exc:
            self._back_off("claim", exc)
            for consumer in consumers:
                consumer.needs_claim = True
            return
        self._retry_s = 0.0
        idle = self._in_flight < self.concurrency
        for consumer in consumers:
            if idle:
                consumer.arm()
            else:
                consumer.disarm()

    def _back_off(self, operation: str, exc: Exception) -> None:
        self._retry_s = min(RETRY_MAX_S, max(RETRY_MIN_S, self._retry_s * 2))
        logger.warning(
            "redis_call_failed", operation=operation, error=str(exc), retry_in_s=self._retry_s
        )
