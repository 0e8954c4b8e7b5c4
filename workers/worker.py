"""The worker: one dispatcher loop that claims work for its pools and records outcomes.

All state changes happen on the dispatcher thread; job threads, the async loop and the waiter
threads only post events to one queue. The loop sleeps on that queue until something happens:
a run ends, a waiter brings a wake token, a delayed item falls due, a lease needs renewing or a
sync job reaches its timeout. No fixed poll interval.
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
from redis.backoff import NoBackoff
from redis.retry import Retry

from workers.consumer import PoolConsumer, Wake
from workers.executor import TIMEOUT_ERROR, Executor, Finished
from workers.lease import Held, Leases
from workers.logconfig import debug_enabled
from workers.metrics import WorkerMetrics
from workpool import Workpool
from workpool.errors import UnknownFunction, WorkpoolError
from workpool.functions import lookup, registered_names
from workpool.keys import validate_pool_name
from workpool.scripts import ClaimedCallback, ClaimedJob
from workpool.settings import connect

logger = structlog.get_logger(__name__)

NO_RETRY = Retry(NoBackoff(), 0)

DEFAULT_CONCURRENCY = 10
DEFAULT_LEASE_MS = 30_000
DEFAULT_GRACE_S = 30.0
# After a Redis error on a pool the dispatcher waits this long before trying it again
# (doubling, capped); other pools carry on meanwhile.
RETRY_MIN_S = 0.05
RETRY_MAX_S = 2.0
REDIS_ERRORS = (redis.RedisError, WorkpoolError)


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
        grace_s: float = DEFAULT_GRACE_S,
        worker_id: str | None = None,
        metrics_port: int | None = None,
        metrics_host: str = "0.0.0.0",  # Prometheus scrapes from elsewhere
    ) -> None:
        if not pools:
            raise ValueError("a worker needs at least one pool")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
        if lease_ms < 300:
            raise ValueError(f"lease must be at least 0.3 s, got {lease_ms} ms")
        self.pools = [validate_pool_name(p) for p in dict.fromkeys(pools)]
        self.concurrency = concurrency
        self.grace_s = grace_s
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        # No hidden retries inside a call: the loop backs off per pool and must stay free to
        # renew leases the moment Redis is back.
        self._client = client if client is not None else connect(redis_url, retry=NO_RETRY)
        self._events: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._metrics: WorkerMetrics | None = None
        self._metrics_address = (metrics_host, metrics_port)
        self._consumers = {
            pool: PoolConsumer(
                pool,
                self._client,
                worker_id=self.worker_id,
                lease_ms=lease_ms,
                post=self._events.put,
                on_recorded=self._recorded,
                # Offers keep a capacity unit back per pool; with several pools one pool's
                # idle offer could hold back the unit another pool needs, so only one-pool
                # workers make them.
                offers=len(self.pools) == 1,
            )
            for pool in self.pools
        }
        self._leases = Leases(lease_ms)
        self._executor: Executor | None = None
        self._debug = False
        self._in_flight = 0
        self._stopping = False
        self._stop_deadline = 0.0
        self._signals = 0
        self._rotation = 0
        self.abandoned = 0  # runs still going when the grace period ended (handed back)

    # -- control ------------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until stopped; SIGTERM/SIGINT stop gracefully (a second one exits at once).

        A graceful stop takes nothing new, waits up to `grace_s` for running work, then hands
        back what has not finished. `abandoned` tells how many runs were handed back; their
        threads still run, so the caller should then exit the process.
        """
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
                grace_s=self.grace_s,
            )
            self.stop()
            return
        # Leases cover whatever was running: other workers take it back when they expire.
        logger.warning("worker_killed", worker=self.worker_id, running=self._in_flight)
        os._exit(128 + signum)

    # -- the loop -----------------------------------------------------------------------------

    def _serve(self) -> None:
        self._startup()
        try:
            while True:
                self._wait_for_events()
                self._tend_leases()
                # Callbacks' reports first, so the claim's reply knows when retried ones are due.
                self._flush(jobs=self._stopping)
                if not self._stopping:
                    # Carries the pools' job outcomes too: one round trip ends and starts work.
                    self._claim()
                    self._flush(jobs=True)  # outcomes of pools no claim was made for
                if self._stopping:
                    if self._in_flight == 0:
                        return
                    if time.monotonic() >= self._stop_deadline:
                        self._hand_back()
                        return
        finally:
            self._shutdown()

    def _startup(self) -> None:
        names = registered_names()
        delay = RETRY_MIN_S
        while True:  # Redis may not be up yet: wait for it rather than die
            try:
                for consumer in self._consumers.values():
                    consumer.register(names)
                break
            except redis.RedisError as exc:
                logger.warning(
                    "redis_unavailable", operation="register", error=str(exc), retry_in_s=delay
                )
                time.sleep(delay)
                delay = min(RETRY_MAX_S, delay * 2)
        self._executor = Executor(self.concurrency, self._events.put)
        # Read once: per-job debug events cost measurable CPU to build even when filtered out.
        self._debug = debug_enabled(logger)
        for consumer in self._consumers.values():
            consumer.debug = self._debug
        host, port = self._metrics_address
        if port is not None:
            # One handle per pool, made once; scrapes read stats through them from the metrics
            # server's thread (the client is thread-safe).
            handles = [Workpool(p, redis=self._client, reconnect_timeout=0) for p in self.pools]
            self._metrics = WorkerMetrics(lambda: [h.stats() for h in handles])
            self._metrics.in_flight.set_function(lambda: self._in_flight)
            self._metrics.serve(port, host)
        for consumer in self._consumers.values():
            consumer.start()
        logger.info(
            "worker_started",
            worker=self.worker_id,
            pools=self.pools,
            concurrency=self.concurrency,
            functions=len(names),
            lease_s=self._leases.lease_ms / 1000,
        )
        self._claim()

    def _shutdown(self) -> None:
        for consumer in self._consumers.values():
            # A no-op after a graceful stop. Otherwise jobs handed over stay in the inbox: the
            # reclaim of their leases puts them back unstarted.
            consumer.stop(take_inbox=False)
            consumer.close()
        if self._executor is not None and not self.abandoned:
            self._executor.shutdown()
        logger.info("worker_stopped", worker=self.worker_id, handed_back=self.abandoned)

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
        now = time.monotonic()
        moments = [self._leases.next_deadline()]
        if self._stopping:
            moments.append(self._stop_deadline)
        else:
            free = self.concurrency - self._in_flight - self._reserved()
            for consumer in self._consumers.values():
                has_capacity = free + consumer.offers_standing > 0
                # While a pool backs off after an error, look at it again when the wait ends.
                backing_off = consumer.retry_at > now
                due = (
                    consumer.retry_at
                    if backing_off
                    else consumer.next_due(has_capacity=has_capacity)
                )
                moments.append(due)
        soonest = min(m for m in moments if m is not None)
        return max(0.0, soonest - now)

    def _handle(self, event: object) -> None:
        if isinstance(event, Finished):
            self._finished(event)
        elif isinstance(event, Wake):
            consumer = self._consumers[event.pool]
            if event.job is not None:
                # Already leased to this worker by an enqueue: run it, even while stopping.
                consumer.job_handed(event.job)
                self._start_job(event.pool, event.job)
                return
            if self._stopping:
                if event.token:
                    consumer.pass_token()  # a draining worker takes nothing: hand it on
                return
            consumer.needs_claim = True
            consumer.holding_token = consumer.holding_token or event.token
        elif isinstance(event, _Stop) and not self._stopping:
            self._stopping = True
            self._stop_deadline = time.monotonic() + self.grace_s
            for consumer in self._consumers.values():
                for job in consumer.stop():
                    self._start_job(consumer.pool, job)

    def _finished(self, event: Finished) -> None:
        self._in_flight -= 1
        held = self._leases.release(event.pool, event.work_id, event.attempt, event.is_callback)
        consumer = self._consumers[event.pool]
        if held is not None and held.kind == "slot":
            # Its timeout was already recorded; now the thread is back, free the slot it kept.
            consumer.add_finished(_with_status(event, "release", b""))
        else:
            consumer.add_finished(event)
        # Capacity freed: pools that had more than we could take are worth asking again.
        for other in self._consumers.values():
            if other.maybe_more:
                other.needs_claim = True

    def _tend_leases(self) -> None:
        now = time.monotonic()
        for held in self._leases.expire_timeouts(now):
            if self._metrics is not None:
                self._metrics.timed_out.labels(held.pool, held.function).inc()
            logger.warning(
                "job_timed_out",
                pool=held.pool,
                work_id=held.work_id,
                function=held.function,
                attempt=held.attempt,
            )
            self._consumers[held.pool].add_finished(
                Finished(
                    held.pool,
                    held.work_id,
                    held.attempt,
                    held.function,
                    False,
                    "timeout",
                    TIMEOUT_ERROR,
                    (now - held.started) * 1000,
                )
            )
        if not self._leases.heartbeat_due(now):
            return
        for pool, items in self._leases.by_pool().items():
            try:
                lost = self._consumers[pool].renew([h.lease_item() for h in items])
            except REDIS_ERRORS as exc:
                logger.warning("lease_renewal_failed", pool=pool, error=str(exc))
                continue
            by_member = {(h.kind, h.member): h for h in items}
            for kind, member in lost:
                held = by_member.get((kind, member))
                logger.warning(
                    "lease_lost",
                    pool=pool,
                    kind=kind,
                    work_id=held.work_id if held else member,
                    function=held.function if held else None,
                )

    def _flush(self, *, jobs: bool = True) -> None:
        now = time.monotonic()
        for consumer in self._consumers.values():
            if consumer.retry_at > now:
                continue
            try:
                if consumer.flush(jobs=jobs):
                    consumer.retry_s = 0.0
            except REDIS_ERRORS as exc:
                self._back_off(consumer, "record", exc)

    def _claim(self) -> None:
        consumers = list(self._consumers.values())
        # Start at a different pool each pass so one busy pool cannot starve the others.
        self._rotation = (self._rotation + 1) % len(consumers)
        now = time.monotonic()
        for consumer in consumers[self._rotation :] + consumers[: self._rotation]:
            # Units kept back for offers and handed jobs on their way are not free; a pool's
            # claim may still use the unit of its own offer (the script adds it if unused).
            free = self.concurrency - self._in_flight - self._reserved()
            usable = free + consumer.offers_standing
            if usable == 0 and consumer.holding_token:
                consumer.pass_token()
            due = consumer.next_due(has_capacity=usable > 0)
            wanted = (consumer.needs_claim and usable > 0) or (due is not None and due <= now)
            if not wanted or consumer.retry_at > now:
                continue
            try:
                reply = consumer.claim(free)
            except REDIS_ERRORS as exc:
                consumer.needs_claim = True
                self._back_off(consumer, "claim", exc)
                continue
            consumer.retry_s = 0.0
            for callback in reply.callbacks:
                self._start_callback(consumer.pool, callback)
            for job in reply.jobs + reply.handed:
                self._start_job(consumer.pool, job)
        free = self.concurrency - self._in_flight - self._reserved()
        for consumer in consumers:
            consumer.arm(tokens=free > 0 or consumer.offers_standing > 0)

    def _reserved(self) -> int:
        return sum(consumer.reserved for consumer in self._consumers.values())

    def _start_job(self, pool: str, job: ClaimedJob) -> None:
        assert self._executor is not None
        if self._debug:
            logger.debug(
                "job_claimed",
                pool=pool,
                work_id=job.work_id,
                function=job.function,
                attempt=job.attempt,
            )
        deadline = None
        if job.timeout_ms is not None and not _is_async(job.function):
            deadline = time.monotonic() + job.timeout_ms / 1000
        self._leases.hold(
            Held(pool, "job", job.work_id, job.work_id, job.attempt, job.function, deadline)
        )
        self._in_flight += 1
        if self._metrics is not None:
            self._metrics.job_started(pool, job.function, job.queued_ms)
        self._executor.run_job(pool, job)

    def _start_callback(self, pool: str, callback: ClaimedCallback) -> None:
        assert self._executor is not None
        self._leases.hold(
            Held(
                pool,
                "callback",
                callback.work_id,
                callback.work_id,
                callback.attempt,
                callback.function,
            )
        )
        self._in_flight += 1
        self._executor.run_callback(pool, callback)

    def _hand_back(self) -> None:
        # The grace period is over: what still runs goes back to the pools for others to take.
        self._flush()
        for pool, items in self._leases.by_pool().items():
            try:
                codes = self._consumers[pool].hand_back([h.lease_item() for h in items])
            except REDIS_ERRORS as exc:
                logger.warning("hand_back_failed", pool=pool, error=str(exc))
                continue
            for held, code in zip(items, codes, strict=True):
                logger.warning(
                    "work_handed_back",
                    pool=pool,
                    work_id=held.work_id,
                    function=held.function,
                    kind=held.kind,
                    outcome=code,
                )
        self.abandoned = self._in_flight

    def _recorded(self, finished: Finished, code: str) -> None:
        if self._metrics is not None:
            self._metrics.job_ended(finished.pool, finished.function, code, finished.duration_ms)

    def _back_off(self, consumer: PoolConsumer, operation: str, exc: Exception) -> None:
        consumer.retry_s = min(RETRY_MAX_S, max(RETRY_MIN_S, consumer.retry_s * 2))
        consumer.retry_at = time.monotonic() + consumer.retry_s
        logger.warning(
            "redis_call_failed",
            pool=consumer.pool,
            operation=operation,
            error=str(exc),
            retry_in_s=consumer.retry_s,
        )


def _is_async(function: str) -> bool:
    try:
        return lookup(function).is_async
    except UnknownFunction:
        return False


def _with_status(event: Finished, status: str, payload: bytes) -> Finished:
    return Finished(
        event.pool,
        event.work_id,
        event.attempt,
        event.function,
        event.is_callback,
        status,
        payload,
        event.duration_ms,
    )
