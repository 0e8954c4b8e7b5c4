"""One pool as seen by one worker: claiming work, recording outcomes, and waking when idle.

Idle workers block in BLPOP on the pool's wake list; scripts leave a token there whenever work
may have become claimable (work arrived, a slot freed, the cap rose). A waiter only blocks while
its worker has free capacity, so it never takes a token another idle worker could have used.

A worker of one pool also offers to be handed one job directly: each claim leaves an offer in
the pool's idle set while capacity is left, and keeps one unit of capacity back for it. An
enqueue that finds a free slot and an offer writes the job running under a lease in that
worker's name and pushes it to the worker's inbox, which the waiter BLPOPs with the wake list:
the job starts without a claim round trip. Offers are named (a sequence number each), and the
job names its offer, so every unit kept back is accounted for by name: it comes back when a
claim finds its offer unused or gone, and turns into a running job when that job arrives.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import redis
import structlog

from workers.executor import Finished
from workpool.keys import POOLS_KEY, PoolKeys
from workpool.pool import DEFAULT_MAX_PARALLELISM, STATS_BUCKET_MS, STATS_TTL_MS
from workpool.retry import RetryBehavior, draw_jitter
from workpool.scripts import (
    Call,
    CallbackReport,
    ClaimedJob,
    ClaimReply,
    LeaseItem,
    Outcome,
    Scripts,
    offer_member,
    own_connection,
    read_handed_job,
)

logger = structlog.get_logger(__name__)
T = TypeVar("T")

# An idle waiter re-checks the pool at least this often even without a token, in case one was
# lost (e.g. a worker died holding it), and at least once a lease, so an idle worker that never
# saw a dead worker's lease still takes it back within about a lease of its expiry. It adds no
# latency when tokens flow.
WAKE_SAFETY_S = 5.0
# Most delayed jobs moved to the stream per claim call (and expired leases taken back), and most
# jobs taken per claim call: bounds the script's run time and its reply size. Promoting 1,000
# due jobs before taking any made the first of them start ~10 ms late; the rest are moved by the
# claims that follow, which come at least as fast as slots free.
PROMOTE_LIMIT = 100
MAX_CLAIM = 1000
# The waiter's socket timeout exceeds its BLPOP timeout by this much.
WAKE_SOCKET_SLACK_S = 5.0
# How long stopping waits for the waiter thread to leave its BLPOP.
STOP_WAITER_S = 2.0
# A callback that keeps raising is retried with this backoff, then recorded as failed.
CALLBACK_RETRY = RetryBehavior(max_attempts=10, initial_backoff_ms=250, base=2)
# A query whose worker is lost is run again up to this many times, then fails.
MAX_QUERY_RERUNS = 3
# Entries moved aside from the stream are kept in the dead stream, trimmed to about this many.
DEAD_MAXLEN = 10_000


# An offer stands this many re-check periods: an idle worker renews it every period, and an
# expired one (its worker died) is never used.
OFFER_PERIODS = 2


@dataclass(frozen=True, slots=True)
class Wake:
    """The waiter of `pool` returned: with a token, a job an enqueue handed over, or neither."""

    pool: str
    token: bool
    job: ClaimedJob | None = None


class PoolConsumer:
    """Claims and records work of one pool for one worker."""

    def __init__(
        self,
        pool: str,
        client: redis.Redis,
        *,
        worker_id: str,
        lease_ms: int,
        post: Callable[[Wake], None],
        on_recorded: Callable[[Finished, str], None] | None = None,
        offers: bool = False,
    ) -> None:
        self.pool = pool
        self.keys = PoolKeys.for_pool(pool)
        self._client = client
        self._scripts = Scripts(client)
        self._worker_id = worker_id
        self._lease_ms = lease_ms
        self._recheck_s = min(WAKE_SAFETY_S, lease_ms / 1000)
        self._post = post
        self._on_recorded = on_recorded  # told each job outcome's code once it is recorded
        self.debug = False  # log each success (set by the worker from the logging config)
        self.needs_claim = True  # something may be claimable: claim at the next chance
        self.holding_token = False  # the last wake consumed a token nobody has acted on yet
        self.maybe_more = False  # the last claim was limited by our capacity, not the pool
        # Monotonic times at which the next delayed job / callback of the pool falls due.
        self.next_delayed: float | None = None
        self.next_callback: float | None = None
        self.next_lease: float | None = None
        # After a Redis error on this pool: when to try again, and how long the last wait was.
        self.retry_at = 0.0
        self.retry_s = 0.0
        self._finished: list[Finished] = []
        # Direct hand-over (see the module doc): whether this worker makes offers at all.
        self._offers = offers
        self._offer_ttl_ms = int(self._recheck_s * 1000 * OFFER_PERIODS)
        self._inbox = self.keys.inbox(worker_id)
        # Sequence numbers from a random start, so offers of an earlier process that used the
        # same worker id never collide with ours.
        self._next_seq = secrets.randbits(40)
        # Each offer below keeps one unit of capacity back. Made (or maybe made: the call that
        # made it failed) and not known used: settled by the next claim.
        self._standing: set[str] = set()
        # Known used, its job not arrived yet -> when to stop waiting (monotonic). One lost on
        # the way is forgotten after a lease: its lease has expired and the job is back.
        self._transit: dict[str, float] = {}
        self._done: set[str] = set()  # used marks to delete with the next claim
        # The dispatcher's own connection for this pool's script calls (see Call.run_on).
        self._conn: redis.connection.AbstractConnection | None = None
        self._armed = threading.Event()
        self._stopped = threading.Event()
        self._waiter_client_id: int | None = None
        # The keys the waiter BLPOPs: the inbox first (if we make offers), then the wake list.
        self._listen: tuple[str, ...] = ((self._inbox,) if self._offers else ()) + (self.keys.wake,)
        self._blocked_on: tuple[str, ...] | None = None  # keys of the BLPOP in progress
        self._waiter = threading.Thread(
            target=self._wait_loop, name=f"workpool-wake-{pool}", daemon=True
        )

    # -- setup ------------------------------------------------------------------------------

    def register(self, function_names: list[str]) -> None:
        """Announce this pool and the functions this worker can run (checked at enqueue)."""
        pipe = self._client.pipeline(transaction=False)
        pipe.sadd(POOLS_KEY, self.pool)
        if function_names:
            pipe.sadd(self.keys.functions, *function_names)
        pipe.execute()

    def start(self) -> None:
        """Start the waiter thread."""
        self._waiter.start()

    def stop(self, *, take_inbox: bool = True) -> list[ClaimedJob]:
        """Stop the waiter, take back the offer, leave a wake token if work waits.

        Called as soon as the worker starts stopping, so a draining worker never sits on the
        pool's wake list taking tokens meant for the idle workers. Returns the jobs an enqueue
        had already handed over (leased to this worker): the caller runs them. With
        take_inbox=False (a worker that will run nothing more) they are left to the reclaim.
        """
        if self._stopped.is_set():
            return []
        self._stopped.set()
        self._armed.set()
        handed: list[ClaimedJob] = []
        try:
            deadline = time.monotonic() + STOP_WAITER_S
            while self._waiter.is_alive() and time.monotonic() < deadline:
                if self._waiter_client_id is not None:
                    self._client.client_unblock(self._waiter_client_id)
                self._waiter.join(0.05)
            handed = self.withdraw_offers(take=take_inbox)
            if self._client.xlen(self.keys.stream) or self._client.zcard(self.keys.callbacks):
                self.pass_token()
        except redis.RedisError as exc:
            # An offer left behind expires unused; jobs left in the inbox go back to the pool
            # when their leases expire.
            logger.warning("wake_handoff_failed", pool=self.pool, error=str(exc))
        return handed

    # -- claiming ---------------------------------------------------------------------------

    def next_due(self, *, has_capacity: bool) -> float | None:
        """When this pool next needs a claim call (monotonic time), or None.

        That is when a delayed job falls due, or a callback does (counted only when the worker
        has capacity to run it).
        """
        dues = [self.next_delayed, self.next_lease]
        if has_capacity:
            dues.append(self.next_callback)
        return min((d for d in dues if d is not None), default=None)

    def claim(self, capacity: int) -> ClaimReply:
        """Record queued job outcomes, then claim up to `capacity` callbacks and jobs.

        With capacity 0 it only records, reclaims and promotes due jobs. One round trip: the
        slots the outcomes free are counted in the same step.
        """
        capacity = min(capacity, MAX_CLAIM)
        ended = self._take(callbacks=False)
        offer = ""
        if self._offers:
            self._next_seq += 1
            offer = offer_member(self._worker_id, self._lease_ms, self._next_seq)
        call = self._scripts.claim(
            self.keys,
            worker=self._worker_id,
            capacity=capacity,
            lease_ms=self._lease_ms,
            promote_limit=PROMOTE_LIMIT,
            default_cap=DEFAULT_MAX_PARALLELISM,
            bucket_ms=STATS_BUCKET_MS,
            stats_ttl_ms=STATS_TTL_MS,
            jitter=draw_jitter(),
            max_query_reruns=MAX_QUERY_RERUNS,
            callback_max_attempts=CALLBACK_RETRY.max_attempts,
            dead_maxlen=DEAD_MAXLEN,
            outcomes=_outcomes(ended),
            offer=offer,
            offer_ttl_ms=self._offer_ttl_ms,
            prev_offers=sorted(self._standing),
            done_offers=sorted(self._done),
        )
        try:
            reply = self._run(call)
        except redis.RedisError:
            # Keep them for the next call; the caller backs off.
            self._finished = ended + self._finished
            if offer:
                self._standing.add(offer)  # it may have been made: keep its unit back
            raise
        self._settle_offers(reply, offer)
        for job in reply.handed:
            self.job_handed(job)
        self._recorded_jobs(ended, reply.codes)
        self.needs_claim = False
        self.holding_token = False
        got = len(reply.jobs) + len(reply.callbacks)
        self.maybe_more = capacity > 0 and got >= capacity
        now = time.monotonic()
        self.next_delayed = _local_time(reply.next_delayed_ms, reply.now_ms, now)
        self.next_callback = _local_time(reply.next_callback_ms, reply.now_ms, now)
        self.next_lease = _local_time(reply.next_lease_ms, reply.now_ms, now)
        for stream_id, work_id in reply.skipped:
            logger.warning(
                "entry_moved_aside",
                pool=self.pool,
                stream_id=stream_id,
                work_id=work_id,
                dead_stream=self.keys.dead,
            )
        for work_id, code in reply.reclaimed:
            if code != "dropped":
                logger.warning("lease_expired", pool=self.pool, work_id=work_id, outcome=code)
        return reply

    # -- direct hand-over -------------------------------------------------------------------

    @property
    def reserved(self) -> int:
        """Capacity units kept back: one per offer that may stand, one per job in transit."""
        self._forget_lost()
        return len(self._standing) + len(self._transit)

    @property
    def offers_standing(self) -> int:
        """Offers that may stand: a claim gets their units back if they were not used."""
        return len(self._standing)

    @property
    def awaits_inbox(self) -> bool:
        """Whether a job may yet arrive in the inbox (its waiter must keep listening)."""
        return bool(self._standing or self._transit)

    def job_handed(self, job: ClaimedJob) -> None:
        """Account for a job that arrived from the inbox: its offer's unit now runs it."""
        if job.offer in self._standing:
            self._standing.discard(job.offer)
            self._done.add(job.offer)
        else:
            self._transit.pop(job.offer, None)

    def _settle_offers(self, reply: ClaimReply, offer: str) -> None:
        # The marks this claim carried in `done` are deleted; the used offers it reports keep
        # their marks (so a claim re-sent after a lost reply reads the same) until the next.
        deadline = time.monotonic() + self._lease_ms / 1000
        used = set(reply.offers_used)
        for member in self._standing & used:
            self._transit[member] = deadline
        self._standing = {offer} if reply.offer_made else set()
        self._done = used

    def _forget_lost(self) -> None:
        if not self._transit:
            return
        now = time.monotonic()
        for member in [m for m, until in self._transit.items() if until <= now]:
            del self._transit[member]

    def withdraw_offers(self, *, take: bool) -> list[ClaimedJob]:
        """Take back the offers (stopping); with `take`, returns the inbox's jobs, to be run.

        Without it they stay in the inbox, where the reclaim of their leases finds them
        unstarted and puts them back.
        """
        if not self._offers:
            return []
        jobs = self._run(
            self._scripts.offer_withdraw(
                self.keys,
                worker=self._worker_id,
                offers=sorted(self._standing | self._done | set(self._transit)),
                take=take,
            )
        )
        self._standing.clear()
        self._transit.clear()
        self._done.clear()
        return jobs

    def renew(self, items: list[LeaseItem]) -> list[tuple[str, str]]:
        """Renew the leases of `items`; returns the (kind, member) of those this worker lost."""
        return self._run(
            self._scripts.extend_lease(
                self.keys, worker=self._worker_id, lease_ms=self._lease_ms, items=items
            )
        )

    def hand_back(self, items: list[LeaseItem]) -> list[str]:
        """Give unfinished items back to the pool (a stopping worker); one code per item."""
        return self._run(
            self._scripts.hand_back(
                self.keys,
                worker=self._worker_id,
                bucket_ms=STATS_BUCKET_MS,
                stats_ttl_ms=STATS_TTL_MS,
                items=items,
            )
        )

    def pass_token(self) -> None:
        """Put back a wake token this worker took but cannot use, for another idle worker.

        Best effort: if Redis is unreachable the token is lost, and idle workers' periodic
        re-check covers it.
        """
        self.holding_token = False
        pipe = self._client.pipeline(transaction=True)
        pipe.lpush(self.keys.wake, "1")
        pipe.ltrim(self.keys.wake, 0, 0)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            logger.warning("wake_handoff_failed", pool=self.pool, error=str(exc))

    # -- recording --------------------------------------------------------------------------

    def add_finished(self, finished: Finished) -> None:
        """Queue an ended run for the next `flush`."""
        self._finished.append(finished)
        self.needs_claim = True

    def flush(self, *, jobs: bool = True) -> bool:
        """Record queued ended runs in Redis, one script call per kind.

        With jobs=False only callbacks' reports: job outcomes then wait for the next claim,
        which carries them. Returns whether there was anything to record.
        """
        callbacks = self._take(callbacks=True)
        jobs_ended = self._take(callbacks=False) if jobs else []
        if not callbacks and not jobs_ended:
            return False
        try:
            if jobs_ended:
                self._record_jobs(jobs_ended)
            if callbacks:
                self._record_callbacks(callbacks)
        except redis.RedisError:
            # Keep them and try again on the next flush; the caller backs off.
            self._finished = jobs_ended + callbacks + self._finished
            raise
        return True

    def _take(self, *, callbacks: bool) -> list[Finished]:
        # Remove and return the queued callback reports (or job outcomes), keeping the rest.
        taken = [f for f in self._finished if f.is_callback == callbacks]
        if taken:
            self._finished = [f for f in self._finished if f.is_callback != callbacks]
        return taken

    def _record_jobs(self, jobs: list[Finished]) -> None:
        codes = self._run(
            self._scripts.complete(
                self.keys,
                worker=self._worker_id,
                bucket_ms=STATS_BUCKET_MS,
                stats_ttl_ms=STATS_TTL_MS,
                lease_ms=self._lease_ms,
                outcomes=_outcomes(jobs),
            )
        )
        self._recorded_jobs(jobs, codes)

    def _recorded_jobs(self, jobs: list[Finished], codes: list[str]) -> None:
        for finished, code in zip(jobs, codes, strict=True):
            _log_job(self.pool, finished, code, self.debug)
            if self._on_recorded is not None:
                self._on_recorded(finished, code)

    def _record_callbacks(self, callbacks: list[Finished]) -> None:
        reports = [
            CallbackReport(
                f.work_id,
                f.attempt,
                "" if f.status == "ok" else f.payload.decode("utf-8", "replace"),
                CALLBACK_RETRY.backoff_ms(f.attempt, draw_jitter()),
            )
            for f in callbacks
        ]
        codes = self._run(
            self._scripts.complete_callback(
                self.keys,
                worker=self._worker_id,
                max_attempts=CALLBACK_RETRY.max_attempts,
                reports=reports,
            )
        )
        for finished, code in zip(callbacks, codes, strict=True):
            _log_callback(self.pool, finished, code)

    def _run(self, call: Call[T]) -> T:
        # Only the dispatcher thread makes these calls, so one connection serves them all.
        if self._conn is None:
            self._conn = own_connection(self._client)
        return call.run_on(self._conn)

    def close(self) -> None:
        """Close the dispatcher's connection of this pool."""
        if self._conn is not None:
            self._conn.disconnect()
            self._conn = None

    # -- waiting ----------------------------------------------------------------------------

    def arm(self, *, tokens: bool = True) -> None:
        """Let the waiter block: for wake tokens if `tokens` (the worker has free capacity).

        A worker that makes offers always listens to its inbox too (only an offer of its own
        puts anything there), and stays armed while an offer stands or a handed job is on its
        way, even when it wants no tokens.
        """
        if not tokens and not self.awaits_inbox:
            self.disarm()
            return
        inbox = (self._inbox,) if self._offers else ()
        keys = inbox + ((self.keys.wake,) if tokens else ())
        blocked = self._blocked_on
        self._listen = keys
        self._armed.set()
        if tokens and blocked is not None and self.keys.wake not in blocked:
            # Blocked on the inbox alone while the worker was full: let it listen for tokens too.
            try:
                if self._waiter_client_id is not None:
                    self._client.client_unblock(self._waiter_client_id)
            except redis.RedisError as exc:
                logger.warning("wake_rearm_failed", pool=self.pool, error=str(exc))

    def disarm(self) -> None:
        """Stop the waiter from taking tokens (the worker is full)."""
        self._armed.clear()

    def _waiter_connection(self) -> redis.connection.AbstractConnection:
        # The client's socket timeout (redis-py defaults to 5 s) must not cut a BLPOP short;
        # inbox items are msgpack, whatever the client decodes.
        return own_connection(
            self._client,
            socket_timeout=self._recheck_s + WAKE_SOCKET_SLACK_S,
            decode_responses=False,
        )

    def _wait_loop(self) -> None:
        # A dedicated connection, so `stop` can end a blocked BLPOP by its client id (CLIENT
        # UNBLOCK) instead of waiting out the timeout - and cannot lose a token to it.
        conn: redis.connection.AbstractConnection | None = None
        inbox = self._inbox.encode()
        while True:
            self._armed.wait()
            if self._stopped.is_set():
                break
            try:
                if conn is None:
                    conn = self._waiter_connection()
                    conn.send_command("CLIENT", "ID")
                    self._waiter_client_id = int(conn.read_response())
                self._blocked_on = keys = self._listen
                conn.send_command("BLPOP", *keys, self._recheck_s)
                reply = conn.read_response()
            except redis.TimeoutError:
                # Should not happen (the socket outlives the BLPOP), but a timeout is still
                # due a look at the pool.
                if conn is not None:
                    conn.disconnect()
                conn = None
                self._post(Wake(self.pool, False))
                continue
            except redis.RedisError as exc:
                logger.warning("wake_wait_failed", pool=self.pool, error=str(exc))
                if conn is not None:
                    conn.disconnect()
                conn = None
                if not self._stopped.wait(1.0):
                    # A look at the pool: the claim also empties the inbox, should a job have
                    # been handed over while this wait was broken.
                    self._post(Wake(self.pool, False))
                continue
            finally:
                self._blocked_on = None
            if reply is not None and reply[0] == inbox:
                self._deliver_handed(conn, reply[1])
                continue
            if self._stopped.is_set():
                break
            self._post(Wake(self.pool, reply is not None))
        if conn is not None:
            conn.disconnect()

    def _deliver_handed(self, conn: redis.connection.AbstractConnection, item: bytes) -> None:
        """Pass a job popped from the inbox to the dispatcher, or put it back once stopping.

        Once `stop` has begun, the dispatcher may have stopped reading events: a job posted
        then would never run and would fail "worker lost" at its lease's expiry. Put back at
        the head of the inbox (only while it is still leased to us, in one script), it is
        either taken by `stop`'s withdrawal (and run) or found there by the reclaim, which
        returns it to the pool unstarted.
        """
        job = read_handed_job(item)
        if job is None:
            logger.error("inbox_item_unreadable", pool=self.pool, item=repr(item[:100]))
            return
        if not self._stopped.is_set():
            self._post(Wake(self.pool, False, job))  # leased to us: posted even when stopping
            return
        try:
            call = self._scripts.inbox_return(self.keys, worker=self._worker_id, job=job, item=item)
            call.run_on(conn)
        except redis.RedisError as exc:
            # Never posted now: the put-back may have landed. If it did not, the reclaim
            # treats the job as a lost run (as for any job a dead worker held).
            logger.warning(
                "inbox_return_failed", pool=self.pool, work_id=job.work_id, error=str(exc)
            )


def _outcomes(ended: list[Finished]) -> list[Outcome]:
    return [Outcome(f.work_id, f.attempt, f.status, f.payload, draw_jitter()) for f in ended]


def _local_time(redis_ms: int | None, redis_now_ms: int, local_now: float) -> float | None:
    # Due times are on the Redis clock; convert through the reply's own "now" to stay skew-free.
    if redis_ms is None:
        return None
    return local_now + max(0, redis_ms - redis_now_ms) / 1000


def _log_job(pool: str, f: Finished, code: str, debug: bool) -> None:
    if code == "success" and not debug:
        return  # the common case: skip building an event nobody will see
    fields = {
        "pool": pool,
        "work_id": f.work_id,
        "function": f.function,
        "attempt": f.attempt,
        "duration_ms": round(f.duration_ms, 3),
    }
    if code == "success":
        logger.debug("job_succeeded", **fields)
    elif code == "retry":
        logger.info("job_retrying", error=f.payload.decode("utf-8", "replace"), **fields)
    elif code in ("failed", "canceled"):
        logger.warning(f"job_{code}", error=f.payload.decode("utf-8", "replace"), **fields)
    elif code == "released":
        logger.info("timed_out_thread_returned", **fields)
    else:
        logger.warning("job_outcome_stale", **fields)


def _log_callback(pool: str, f: Finished, code: str) -> None:
    fields = {"pool": pool, "work_id": f.work_id, "function": f.function, "attempt": f.attempt}
    if code == "done":
        logger.debug("callback_succeeded", **fields)
    elif code == "retry":
        logger.info("callback_retrying", error=f.payload.decode("utf-8", "replace"), **fields)
    elif code == "failed":
        logger.error("callback_failed", error=f.payload.decode("utf-8", "replace"), **fields)
    else:
        logger.warning("callback_outcome_stale", **fields)
