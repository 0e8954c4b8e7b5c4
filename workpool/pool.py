"""`Workpool`: the producer's handle on one named pool."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import redis
import structlog

from workpool.codec import unpack
from workpool.enqueue import JobWriter
from workpool.errors import (
    InvalidRetryBehavior,
    InvalidSchedule,
    WaitTimeout,
    WorkFailed,
    WorkNotFound,
)
from workpool.functions import resolve_name
from workpool.keys import POOLS_KEY, PoolKeys
from workpool.listing import JobSummary, list_jobs
from workpool.options import (
    NOW,
    pack_args,
    pack_limited,
    parallelism_of,
    retry_of,
    schedule_of,
    timeout_ms_of,
    to_seconds,
    ttl_ms_of,
)
from workpool.retry import DEFAULT_RETRY_BEHAVIOR, NO_RETRY, RetryBehavior
from workpool.scripts import Scripts, ThreadConnections
from workpool.settings import (
    connect,
    reconnecting,
    translate_connection_errors,
)
from workpool.status import JobKind, Result, ResultKind, State, Stats, Status

logger = structlog.get_logger(__name__)

DEFAULT_MAX_PARALLELISM = 10
DEFAULT_STATUS_TTL_S = 24 * 3600.0
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
DEFAULT_STATS_WINDOW_S = 300.0
DEFAULT_RECONNECT_TIMEOUT_S = 30.0
STATS_BUCKET_MS = 10_000
# Stats buckets outlive the longest window stats() accepts, then expire on their own.
STATS_TTL_MS = 3600 * 1000
# How long wait() trusts pub/sub alone before re-reading the status (a message can be lost
# when a connection drops and reconnects).
WAIT_RECHECK_S = 1.0

FunctionRef = Callable[..., Any] | str


class Workpool:
    """A named pool of work with a global cap on how many of its jobs run at once.

    Args:
        name: the pool name; no `{`, `}`, whitespace or control characters.
        redis_url: None -> $WORKPOOL_REDIS_URL -> redis://localhost:6379/0.
        max_parallelism: int >= 0 to set the cap of a new pool; None keeps the stored cap (a
            new pool gets 10). An existing pool's cap is only changed by `update_config`.
        retry_actions_by_default: whether actions enqueued with retry=None are retried.
        default_retry_behavior: used for actions with retry=True, or None when retrying by default.
        status_ttl: seconds a finished job's status is kept; math.inf keeps it forever.
        timeout: default run-time limit of each attempt, in seconds (None: no limit); an
            attempt past it fails with error "timeout" (and is retried if allowed).
        max_payload_bytes: largest encoded args or context accepted.
        reconnect_timeout: how long a call keeps retrying (with capped backoff, logging each
            try) while Redis is unreachable before it raises WorkpoolConnectionError.
        redis: an existing client to use instead of `redis_url` (decode_responses must be off).
    """

    def __init__(
        self,
        name: str,
        redis_url: str | None = None,
        max_parallelism: int | None = None,
        retry_actions_by_default: bool = False,
        default_retry_behavior: RetryBehavior = DEFAULT_RETRY_BEHAVIOR,
        status_ttl: float = DEFAULT_STATUS_TTL_S,
        *,
        timeout: float | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT_S,
        redis: redis.Redis | None = None,
    ) -> None:
        self.name = name
        self.keys = PoolKeys.for_pool(name)
        self._initial_cap = None if max_parallelism is None else parallelism_of(max_parallelism)
        if not isinstance(default_retry_behavior, RetryBehavior):
            raise InvalidRetryBehavior(
                f"default_retry_behavior must be a RetryBehavior, got {default_retry_behavior!r}"
            )
        self.retry_actions_by_default = bool(retry_actions_by_default)
        self.default_retry_behavior = default_retry_behavior
        self._ttl_ms = ttl_ms_of(status_ttl)
        self._timeout_ms = timeout_ms_of(timeout)
        if (
            isinstance(max_payload_bytes, bool)
            or not isinstance(max_payload_bytes, int)
            or (max_payload_bytes <= 0)
        ):
            raise ValueError(f"max_payload_bytes must be a positive int, got {max_payload_bytes!r}")
        self.max_payload_bytes = max_payload_bytes
        self.reconnect_timeout = to_seconds(reconnect_timeout, "reconnect_timeout")
        self.redis = redis if redis is not None else connect(redis_url)
        if self.redis.get_connection_kwargs().get("decode_responses"):
            raise ValueError("the Redis client must not decode responses (payloads are bytes)")
        self.scripts = Scripts(self.redis)
        self._connections = ThreadConnections(self.redis)
        self._writer = JobWriter(self.redis, self.keys, self.reconnect_timeout, self._connections)
        self._initialized = False

    def __repr__(self) -> str:
        return f"Workpool({self.name!r})"

    # -- enqueue ------------------------------------------------------------------------------

    @translate_connection_errors
    def enqueue_action(
        self,
        fn: FunctionRef,
        args: dict[str, Any] | None = None,
        *,
        run_after: float | None = None,
        run_at: Any = None,
        retry: bool | RetryBehavior | None = None,
        on_complete: FunctionRef | None = None,
        context: Any = None,
        timeout: float | None = None,
    ) -> str:
        """Enqueue an action (retried on failure per `retry`); returns its work id."""
        behavior = self._retry(retry)
        return self._enqueue(
            JobKind.ACTION, fn, [args], run_after, run_at, behavior, on_complete, context, timeout
        )[0]

    @translate_connection_errors
    def enqueue_mutation(
        self,
        fn: FunctionRef,
        args: dict[str, Any] | None = None,
        *,
        run_after: float | None = None,
        run_at: Any = None,
        on_complete: FunctionRef | None = None,
        context: Any = None,
        timeout: float | None = None,
    ) -> str:
        """Enqueue a mutation: it runs at most once and is never retried; returns its work id."""
        return self._enqueue(
            JobKind.MUTATION, fn, [args], run_after, run_at, NO_RETRY, on_complete, context, timeout
        )[0]

    @translate_connection_errors
    def enqueue_query(
        self,
        fn: FunctionRef,
        args: dict[str, Any] | None = None,
        *,
        run_after: float | None = None,
        run_at: Any = None,
        on_complete: FunctionRef | None = None,
        context: Any = None,
        timeout: float | None = None,
    ) -> str:
        """Enqueue a query: not retried on failure, but safe to re-run; returns its work id."""
        return self._enqueue(
            JobKind.QUERY, fn, [args], run_after, run_at, NO_RETRY, on_complete, context, timeout
        )[0]

    @translate_connection_errors
    def enqueue_action_batch(
        self,
        fn: FunctionRef,
        args_list: Iterable[dict[str, Any]],
        *,
        run_after: float | None = None,
        run_at: Any = None,
        retry: bool | RetryBehavior | None = None,
        on_complete: FunctionRef | None = None,
        context: Any = None,
        timeout: float | None = None,
    ) -> list[str]:
        """Enqueue one action per args mapping, all or nothing; returns the work ids in order."""
        behavior = self._retry(retry)
        return self._enqueue(
            JobKind.ACTION,
            fn,
            list(args_list),
            run_after,
            run_at,
            behavior,
            on_complete,
            context,
            timeout,
        )

    @translate_connection_errors
    def enqueue_mutation_batch(
        self,
        fn: FunctionRef,
        args_list: Iterable[dict[str, Any]],
        *,
        run_after: float | None = None,
        run_at: Any = None,
        on_complete: FunctionRef | None = None,
        context: Any = None,
        timeout: float | None = None,
    ) -> list[str]:
        """Enqueue one mutation per args mapping, all or nothing; returns the work ids."""
        return self._enqueue(
            JobKind.MUTATION,
            fn,
            list(args_list),
            run_after,
            run_at,
            NO_RETRY,
            on_complete,
            context,
            timeout,
        )

    @translate_connection_errors
    def enqueue_query_batch(
        self,
        fn: FunctionRef,
        args_list: Iterable[dict[str, Any]],
        *,
        run_after: float | None = None,
        run_at: Any = None,
        on_complete: FunctionRef | None = None,
        context: Any = None,
        timeout: float | None = None,
    ) -> list[str]:
        """Enqueue one query per args mapping, all or nothing; returns the work ids."""
        return self._enqueue(
            JobKind.QUERY,
            fn,
            list(args_list),
            run_after,
            run_at,
            NO_RETRY,
            on_complete,
            context,
            timeout,
        )

    def _retry(self, retry: bool | RetryBehavior | None) -> RetryBehavior:
        return retry_of(
            retry, default=self.default_retry_behavior, by_default=self.retry_actions_by_default
        )

    def _enqueue(
        self,
        kind: JobKind,
        fn: FunctionRef,
        args_list: list[Any],
        run_after: Any,
        run_at: Any,
        behavior: RetryBehavior,
        on_complete: FunctionRef | None,
        context: Any,
        timeout: float | None,
    ) -> list[str]:
        # Validate and encode everything first: nothing is written unless all of it is good.
        fn_name = resolve_name(fn)
        schedule = schedule_of(run_after, run_at) if (run_after, run_at) != (None, None) else NOW
        callback = "" if on_complete is None else resolve_name(on_complete)
        packed_context = b""
        if context is not None:
            packed_context = pack_limited(context, what="context", limit=self.max_payload_bytes)
        timeout_ms = self._timeout_ms if timeout is None else timeout_ms_of(timeout)
        packed = [pack_args(a, limit=self.max_payload_bytes) for a in args_list]
        if not packed:
            return []

        def call(chunk_ids: Sequence[str], chunk_args: Sequence[bytes]) -> Any:
            return self.scripts.enqueue(
                self.keys,
                fn=fn_name,
                kind=kind.value,
                schedule=schedule.mode,
                schedule_ms=schedule.ms,
                ttl_ms=self._ttl_ms,
                max_attempts=behavior.max_attempts,
                initial_backoff_ms=behavior.initial_backoff_ms,
                base=behavior.base,
                on_complete=callback,
                context=packed_context if callback else b"",
                check_functions=True,
                initial_cap=self._cap_for_new_pool(),
                timeout_ms=timeout_ms,
                jobs=zip(chunk_ids, chunk_args, strict=True),
            )

        # No log line here: enqueue is a producer's hot path, and an application that has not
        # configured structlog would see every call printed.
        ids, stored_cap = self._writer.write(fn_name, packed, call)
        self._note_pool(stored_cap)
        return ids

    def _cap_for_new_pool(self) -> int:
        return DEFAULT_MAX_PARALLELISM if self._initial_cap is None else self._initial_cap

    def _note_pool(self, stored_cap: int | None) -> None:
        # Once per handle: list the pool for admin tools, and say so if the constructor asked
        # for a cap other than the stored one (config lives in Redis and is never overridden).
        if self._initialized:
            return
        self._initialized = True
        self.redis.sadd(POOLS_KEY, self.name)
        if self._initial_cap is not None and stored_cap not in (None, self._initial_cap):
            logger.warning(
                "config_kept",
                pool=self.name,
                stored_max_parallelism=stored_cap,
                requested_max_parallelism=self._initial_cap,
                hint="use update_config() to change a pool's cap",
            )

    # -- reading ------------------------------------------------------------------------------

    def status(self, work_id: str) -> Status:
        """The state of one job; an unknown or expired id reads as `unknown`."""
        return self.status_batch([work_id])[0]

    @reconnecting
    def status_batch(self, work_ids: Sequence[str]) -> list[Status]:
        """The states of several jobs, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for work_id in work_ids:
            pipe.hmget(self.keys.job(_check_id(work_id)), "state", "attempts", "next_run_at")
        return [_status_of(w, r) for w, r in zip(work_ids, pipe.execute(), strict=True)]

    @reconnecting
    def result(self, work_id: str) -> Result | None:
        """The outcome of a finished job; None until it has finished (or if unknown)."""
        fields = self.redis.hmget(
            self.keys.job(_check_id(work_id)), "state", "result", "return_value", "error"
        )
        state, kind, value, error = fields
        if state != b"finished":
            return None
        return Result(
            kind=ResultKind(kind.decode()),
            return_value=unpack(value, what="return value") if value else None,
            error=error.decode() if error is not None else None,
        )

    @reconnecting
    def wait(self, work_id: str, timeout: float = 30.0) -> Result:
        """Block until the job has finished and return its Result.

        Raises:
            WaitTimeout: (a TimeoutError) not finished within `timeout` seconds.
            WorkNotFound: no such job.
        """
        deadline = time.monotonic() + to_seconds(timeout, "timeout")
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self.keys.finished)
            while True:
                # Read after subscribing, so a finish between the two cannot be missed.
                result = self.result(work_id)
                if result is not None:
                    return result
                if self.status(work_id).state is State.UNKNOWN:
                    raise WorkNotFound(f"no work {work_id!r} in pool {self.name!r}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitTimeout(f"work {work_id!r} did not finish within {timeout} s")
                _await_message(pubsub, work_id.encode(), min(remaining, WAIT_RECHECK_S))
        finally:
            pubsub.close()

    def run_action(
        self, fn: FunctionRef, args: dict[str, Any] | None = None, timeout: float = 30.0
    ) -> Any:
        """Enqueue an action, wait, and return its value; raises WorkFailed unless it succeeded."""
        return self._run(self.enqueue_action(fn, args), timeout)

    def run_mutation(
        self, fn: FunctionRef, args: dict[str, Any] | None = None, timeout: float = 30.0
    ) -> Any:
        """Enqueue a mutation, wait, and return its value; raises WorkFailed on failure."""
        return self._run(self.enqueue_mutation(fn, args), timeout)

    def run_query(
        self, fn: FunctionRef, args: dict[str, Any] | None = None, timeout: float = 30.0
    ) -> Any:
        """Enqueue a query, wait, and return its value; raises WorkFailed on failure."""
        return self._run(self.enqueue_query(fn, args), timeout)

    def _run(self, work_id: str, timeout: float) -> Any:
        result = self.wait(work_id, timeout)
        if result.kind is not ResultKind.SUCCESS:
            raise WorkFailed(work_id, result)
        return result.return_value

    # -- control ------------------------------------------------------------------------------

    @reconnecting
    def cancel(self, work_id: str) -> bool:
        """Cancel a job; returns whether it was still unfinished.

        Pending, delayed or backing-off work never starts again and finishes canceled; running
        work is let finish and is never retried.
        """
        code = self._cancel([_check_id(work_id)])[0]
        return code in ("canceled", "cancel_requested", "already_requested")

    @reconnecting
    def cancel_all(self, limit: int | None = None, *, batch_size: int = 500) -> int:
        """Cancel every pending, delayed and running job (at most `limit`); returns how many."""
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise ValueError(f"limit must be an int >= 0 or None, got {limit!r}")
        total = 0
        for batch in self._unfinished_id_batches(batch_size):
            work_ids = batch if limit is None else batch[: limit - total]
            if not work_ids:
                continue
            codes = self._cancel(work_ids)
            total += sum(c in ("canceled", "cancel_requested") for c in codes)
            if limit is not None and total >= limit:
                break
        return total

    def _cancel(self, work_ids: list[str]) -> list[str]:
        return self.scripts.cancel(
            self.keys, work_ids, bucket_ms=STATS_BUCKET_MS, stats_ttl_ms=STATS_TTL_MS
        ).run(self.redis)

    def _unfinished_id_batches(self, batch_size: int) -> Iterable[list[str]]:
        # Running first (small: at most the cap), then ready work by a cursor over the stream,
        # then delayed work from the head of the sorted set (cancel removes what it takes).
        running = [w.decode() for w in self.redis.zrange(self.keys.running, 0, -1)]
        yield running
        cursor = "-"
        while True:
            entries = self.redis.xrange(self.keys.stream, min=cursor, count=batch_size)
            if not entries:
                break
            cursor = "(" + entries[-1][0].decode()
            yield [f[b"id"].decode() for _, f in entries if b"id" in f]
        seen: set[bytes] = set()
        while True:
            members = [
                m for m in self.redis.zrange(self.keys.delayed, 0, batch_size - 1) if m not in seen
            ]
            if not members:
                break
            seen.update(members)
            yield [m.decode() for m in members]

    @reconnecting
    def update_config(self, *, max_parallelism: int) -> int:
        """Change the pool's cap for every producer and worker at once; returns the previous cap.

        0 pauses the pool: nothing new starts, running work ends.
        """
        return self._set_cap(parallelism_of(max_parallelism), "set")[0]

    @reconnecting
    def pause(self) -> int:
        """Pause the pool (cap 0), remembering its cap for `resume`; returns the previous cap."""
        return self._set_cap(0, "pause")[0]

    @reconnecting
    def resume(self) -> int:
        """Give a paused pool back the cap it had before `pause`; returns the new cap."""
        return self._set_cap(self._cap_for_new_pool(), "resume")[1]

    def _set_cap(self, cap: int, mode: str) -> tuple[int, int]:
        caps = self.scripts.update_config(
            self.keys, max_parallelism=cap, default_cap=self._cap_for_new_pool(), mode=mode
        ).run(self.redis)
        self._initialized = True  # an explicit cap now stands: no config_kept warning
        self.redis.sadd(POOLS_KEY, self.name)
        return caps

    @reconnecting
    def jobs(self, state: str, limit: int = 100) -> list[JobSummary]:
        """The first `limit` jobs in `state`: pending, scheduled or running.

        Pending come oldest first, scheduled soonest due first, running soonest lease end
        first. Only those jobs are read, never the backlog.
        """
        return list_jobs(self.redis, self.keys, state, limit)

    @reconnecting
    def stats(self, window: float = DEFAULT_STATS_WINDOW_S) -> Stats:
        """Queue sizes and recent outcome rates (over `window` seconds, at most an hour)."""
        window_s = to_seconds(window, "window")
        if window_s * 1000 > STATS_TTL_MS:
            raise InvalidSchedule(
                f"window must be at most {STATS_TTL_MS // 1000} s, got {window!r}"
            )
        (pending, running, scheduled, oldest_ms, executions, errors, failures, cap, finished) = (
            self.scripts.stats(
                self.keys,
                window_ms=round(window_s * 1000),
                bucket_ms=STATS_BUCKET_MS,
                # A pool nobody has enqueued to yet gets this handle's cap on first enqueue.
                default_cap=self._cap_for_new_pool(),
            ).run(self.redis)
        )
        return Stats(
            pool=self.name,
            pending=pending,
            running=running,
            scheduled=scheduled,
            oldest_pending_ms=oldest_ms,
            recent_executions=executions,
            recent_finished=finished,
            recent_error_rate=errors / executions if executions else 0.0,
            recent_permanent_failure_rate=failures / executions if executions else 0.0,
            max_parallelism=cap,
            window_s=window_s,
        )

    def log_stats(self, window: float = DEFAULT_STATS_WINDOW_S) -> Stats:
        """Write the pool's stats as one JSON log line (event `pool_stats`) and return them."""
        stats = self.stats(window)
        _stats_logger().info("pool_stats", **stats.as_dict())
        return stats

    def close(self) -> None:
        """Close the Redis connections this pool opened."""
        self._connections.close()
        self.redis.close()


def _check_id(work_id: object) -> str:
    if not isinstance(work_id, str) or not work_id:
        raise TypeError(f"work id must be a non-empty str, got {work_id!r}")
    return work_id


def _status_of(work_id: str, fields: list[bytes | None]) -> Status:
    state, attempts, next_run_at = fields
    if state is None:
        return Status(work_id, State.UNKNOWN)
    n = int(attempts or 0)
    due = int(next_run_at) / 1000 if next_run_at else None
    if state == b"running":
        return Status(work_id, State.RUNNING, previous_attempts=n - 1)
    if state == b"finished":
        return Status(work_id, State.FINISHED, previous_attempts=n)
    return Status(work_id, State.PENDING, previous_attempts=n, next_run_at=due)


def _await_message(pubsub: redis.client.PubSub, work_id: bytes, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        message = pubsub.get_message(timeout=remaining)
        if message is not None and message.get("data") == work_id:
            return


def _stats_logger() -> Any:
    # Honour the application's structlog setup; otherwise still emit one JSON line, as promised.
    if structlog.is_configured():
        return structlog.get_logger("workpool.stats")
    return structlog.wrap_logger(
        structlog.PrintLogger(sys.stderr),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
    )
