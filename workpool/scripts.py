"""The Lua scripts: loading from `scripts/lua/`, and one typed wrapper per script.

Each atomic operation is one script. A script may pull shared helpers in with a line
`--- @include "name"`, replaced by `scripts/lua/includes/name.lua` when loaded (Redis 6.2 has no
server-side function libraries). Scripts go through redis-py's `register_script`, which calls
EVALSHA and falls back to loading the script on NOSCRIPT.
"""

from __future__ import annotations

import inspect
import os
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Generic, TypeVar

import msgpack
import redis
from redis.client import Pipeline
from redis.commands.core import Script
from redis.connection import AbstractConnection
from redis.exceptions import NoScriptError

from workpool.keys import CONSUMER_GROUP, PoolKeys

try:  # hiredis is optional (the "fast" extra); the serializer's name is redis-py's own
    from hiredis import pack_command as hiredis_pack_command
    from redis.connection import HiredisRespSerializer
except ImportError:
    hiredis_pack_command = None

T = TypeVar("T")

SCRIPT_NAMES = (
    "cancel",
    "claim",
    "complete",
    "complete_callback",
    "enqueue",
    "extend_lease",
    "hand_back",
    "inbox_return",
    "offer_withdraw",
    "stats",
    "update_config",
)
# redis-py before 5.1 requires a command name in ConnectionPool.get_connection; 6+ warns on one.
_GET_CONNECTION_TAKES_NO_ARGS = (
    inspect.signature(redis.ConnectionPool.get_connection).parameters["command_name"].default
    is not inspect.Parameter.empty
)
_INCLUDE = re.compile(r'^--- @include "([a-z_]+)"\s*$', re.MULTILINE)


def lua_dir() -> Path:
    """The folder holding the Lua files: inside the installed package, else the source tree."""
    packaged = Path(__file__).parent / "lua"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "scripts" / "lua"


@cache
def load_source(name: str) -> str:
    """The source of script `name` with its includes expanded."""
    folder = lua_dir()
    text = (folder / f"{name}.lua").read_text(encoding="utf-8")

    def expand(match: re.Match[str]) -> str:
        return (folder / "includes" / f"{match.group(1)}.lua").read_text(encoding="utf-8")

    return _INCLUDE.sub(expand, text)


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One prepared script call: run it now, or queue it on a pipeline and parse the reply."""

    script: Script
    keys: list[str]
    args: list[Any]
    parse: Callable[[Any], T]

    def run(self, client: redis.Redis) -> T:
        """Call the script and parse its reply.

        On a plain `redis.Redis` the call borrows a connection from the client's pool and
        sends on it directly (see run_on); other clients (cluster, single-connection) go
        through redis-py's usual path.
        """
        if not _sends_directly(client):
            return self.parse(self.script(keys=self.keys, args=self.args, client=client))
        pool = client.connection_pool
        conn = pool.get_connection() if _GET_CONNECTION_TAKES_NO_ARGS else pool.get_connection("")
        try:
            return self.run_on(conn)
        finally:
            pool.release(conn)

    def run_on(self, conn: AbstractConnection) -> T:
        """Call the script on a connection the caller owns, and parse its reply.

        For hot loops: it skips redis-py's per-command layers (pool checkout, retry wrapper,
        hooks), which cost more CPU than the round trip itself in recent redis-py versions.
        A server that lost the script gets it loaded once, and the call is sent again.
        """
        command = ("EVALSHA", self.script.sha, len(self.keys), *self.keys, *self.args)
        if getattr(conn, "_sock", None) is not None and _stale(conn):
            # Readable before we asked anything: the server closed it (restart, idle timeout)
            # or left stray data. Start afresh rather than fail this call (as redis-py's pool
            # checks a connection it hands out).
            conn.disconnect()
        try:
            _send(conn, command)
            try:
                reply = conn.read_response()
            except NoScriptError:
                conn.send_command("SCRIPT", "LOAD", self.script.script)
                conn.read_response()
                _send(conn, command)
                reply = conn.read_response()
        except redis.ResponseError:
            raise  # the reply was read whole: the connection stays usable
        except BaseException:
            # Anything else may leave a reply half read: start the next call on a new socket.
            conn.disconnect()
            raise
        return self.parse(reply)

    def queue(self, pipe: Pipeline) -> None:
        """Add the call to `pipe`; parse its slot of `pipe.execute()` with `self.parse`."""
        self.script(keys=self.keys, args=self.args, client=pipe)


def _send(conn: AbstractConnection, command: tuple[Any, ...]) -> None:
    # redis-py's hiredis packer first copies every argument through a generator and type checks;
    # with 25-40 arguments per script call that was a fifth of an enqueue's client CPU. When the
    # connection packs with hiredis anyway (and sends as redis-py does), the same bytes come
    # from calling it directly. Anything hiredis refuses goes redis-py's way, which converts
    # what it can and raises its own DataError for the rest.
    if (
        hiredis_pack_command is not None
        and isinstance(getattr(conn, "_command_packer", None), HiredisRespSerializer)
        and type(conn).send_command is AbstractConnection.send_command
    ):
        try:
            packed = hiredis_pack_command(command)
        except TypeError:
            pass
        else:
            conn.send_packed_command([packed])
            return
    conn.send_command(*command)


def _sends_directly(client: redis.Redis) -> bool:
    # Only a plain client with a pool of its own; cluster and single-connection clients route
    # and lock their connections themselves.
    return (
        type(client) is redis.Redis
        and client.connection is None
        and getattr(client, "connection_pool", None) is not None
    )


def own_connection(client: redis.Redis, **overrides: Any) -> AbstractConnection:
    """A new connection with `client`'s pool settings (and `overrides`), outside the pool."""
    pool = client.connection_pool
    return pool.connection_class(**{**pool.connection_kwargs, **overrides})


class ThreadConnections:
    """Runs script calls on a connection of the calling thread's own (for a producer's hot path).

    Borrowing from redis-py's pool costs a pool lock, a liveness poll and its hooks on every
    call; a per-thread connection, made with the pool's own settings, skips them. A forked
    child makes its own. Clients other than a plain `redis.Redis` (cluster, single-connection)
    take redis-py's usual path. These connections live outside the pool: they do not count
    toward its max_connections, and each closes when its thread ends (or on `close` from it).
    """

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._direct = _sends_directly(client)
        self._local = threading.local()

    def run(self, call: Call[T]) -> T:
        """Run `call` on this thread's connection (see Call.run_on)."""
        if not self._direct:
            return call.run(self._client)
        conn: AbstractConnection | None = getattr(self._local, "conn", None)
        pid = os.getpid()
        if conn is None or self._local.pid != pid:
            conn = own_connection(self._client)
            self._local.conn, self._local.pid = conn, pid
        return call.run_on(conn)

    def close(self) -> None:
        """Close the calling thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.disconnect()
        self._local.conn = None


def run_in_transaction(client: redis.Redis, calls: Sequence[Call[T]]) -> list[T]:
    """Run calls of one script in a single MULTI/EXEC: one round trip, all or nothing.

    redis-py's pipelines spend an extra round trip on SCRIPT EXISTS; instead this sends EVALSHA
    and, if the server lost the script, every call in the transaction fails alike with NOSCRIPT
    (they share one script), so nothing was written: load the script and send it again.
    """
    if not calls:
        return []
    script = calls[0].script
    if any(c.script is not script for c in calls):
        raise ValueError("run_in_transaction takes calls of a single script")
    for attempt in range(2):
        pipe = client.pipeline(transaction=True)
        for c in calls:
            pipe.evalsha(script.sha, len(c.keys), *c.keys, *c.args)
        replies = pipe.execute(raise_on_error=False)
        if attempt == 0 and any(isinstance(r, NoScriptError) for r in replies):
            client.script_load(script.script)
            continue
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return [c.parse(r) for c, r in zip(calls, replies, strict=True)]
    raise AssertionError("unreachable")


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job handed to a worker by `claim`."""

    work_id: str
    function: str
    kind: str
    args: bytes
    attempt: int
    timeout_ms: int | None
    queued_ms: int = 0  # how long it waited, ready, before this claim
    offer: str = ""  # for a job an enqueue handed over: the offer it was handed under


@dataclass(frozen=True, slots=True)
class ClaimedCallback:
    """An on_complete call handed to a worker by `claim`."""

    work_id: str
    function: str
    context: bytes  # b"" when the caller gave none
    result: str
    return_value: bytes  # b"" unless the job succeeded
    error: str
    attempt: int


@dataclass(frozen=True, slots=True)
class ClaimReply:
    """What `claim` handed out, and when the next delayed job and callback fall due."""

    now_ms: int
    next_delayed_ms: int | None  # earliest due time in the delayed set
    next_callback_ms: int | None  # earliest due time or lease deadline in the callbacks set
    next_lease_ms: int | None  # earliest lease deadline in the running set
    jobs: list[ClaimedJob]
    callbacks: list[ClaimedCallback]
    skipped: list[tuple[str, str]]  # (stream id, work id or "") of entries moved aside
    reclaimed: list[tuple[str, str]]  # (work id, code) of expired leases taken back
    codes: list[str]  # one per outcome recorded first, as `complete` returns them
    offer_made: bool = False  # the new offer stands: one unit of capacity is kept back for it
    offers_used: list[str] = field(default_factory=list)  # previous offers an enqueue used
    handed: list[ClaimedJob] = field(default_factory=list)  # the inbox, emptied: run these too


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended, as reported to `complete`."""

    work_id: str
    attempt: int
    status: str  # "ok" | "error" | "fatal"
    payload: bytes  # msgpack return value for ok, UTF-8 error text otherwise
    jitter: float


@dataclass(frozen=True, slots=True)
class LeaseItem:
    """Something a worker holds a lease on: a job, a callback, or a timed-out thread's slot."""

    kind: str  # "job" | "callback" | "slot"
    member: str  # work id, or the slot's name in the running set
    attempt: int


@dataclass(frozen=True, slots=True)
class CallbackReport:
    """How one on_complete call ended, as reported to `complete_callback`."""

    work_id: str
    attempt: int
    error: str  # "" when it returned
    backoff_ms: int


class Scripts:
    """Every script, registered once on one client; each method prepares a typed `Call`."""

    def __init__(self, client: redis.Redis) -> None:
        self._scripts = {name: client.register_script(load_source(name)) for name in SCRIPT_NAMES}

    def enqueue(
        self,
        keys: PoolKeys,
        *,
        fn: str,
        kind: str,
        schedule: str,
        schedule_ms: int,
        ttl_ms: int,
        max_attempts: int,
        initial_backoff_ms: float,
        base: float,
        on_complete: str,
        context: bytes,
        check_functions: bool,
        initial_cap: int,
        timeout_ms: int | None,
        jobs: Iterable[tuple[str, bytes]],
    ) -> Call[tuple[int, str]]:
        """Create jobs; parses to (code, detail).

        (0, stored cap) on success; (1, unknown function name) or (2, duplicate work id) when
        nothing was written.
        """
        args: list[Any] = [
            keys.job_prefix,
            fn,
            kind,
            schedule,
            schedule_ms,
            ttl_ms,
            max_attempts,
            repr(float(initial_backoff_ms)),
            repr(float(base)),
            on_complete,
            context,
            "1" if check_functions else "0",
            initial_cap,
            "" if timeout_ms is None else timeout_ms,
            keys.inbox_prefix,
        ]
        for work_id, packed_args in jobs:
            args += [work_id, packed_args]
        return self._call(
            "enqueue",
            [
                keys.stream,
                keys.delayed,
                keys.wake,
                keys.functions,
                keys.config,
                keys.running,
                keys.idle,
            ],
            args,
            lambda reply: (int(reply[0]), _text(reply[1])),
        )

    def claim(
        self,
        keys: PoolKeys,
        *,
        worker: str,
        capacity: int,
        lease_ms: int,
        promote_limit: int,
        default_cap: int,
        bucket_ms: int,
        stats_ttl_ms: int,
        jitter: float,
        max_query_reruns: int,
        callback_max_attempts: int,
        dead_maxlen: int,
        outcomes: Sequence[Outcome] = (),
        offer: str = "",
        offer_ttl_ms: int = 0,
        prev_offers: Sequence[str] = (),
        done_offers: Sequence[str] = (),
    ) -> Call[ClaimReply]:
        """Admission: record `outcomes`, reclaim expired leases, promote due jobs, take work.

        At most `capacity` callbacks and jobs in all; see claim.lua. Recording outcomes in the
        same call saves the worker a round trip per batch. Offers (see `offer_member`): it
        settles `prev_offers` (each unused one adds its kept-back unit to `capacity`), deletes
        the used marks of `done_offers`, and makes `offer` for `offer_ttl_ms` if capacity is left.
        """
        return self._call(
            "claim",
            [
                keys.stream,
                keys.delayed,
                keys.running,
                keys.config,
                keys.wake,
                keys.callbacks,
                keys.dead,
                keys.idle,
                keys.inbox(worker),
            ],
            [
                keys.job_prefix,
                CONSUMER_GROUP,
                worker,
                capacity,
                lease_ms,
                promote_limit,
                default_cap,
                keys.finished,
                keys.stats_prefix,
                bucket_ms,
                stats_ttl_ms,
                repr(jitter),
                max_query_reruns,
                callback_max_attempts,
                dead_maxlen,
                offer,
                offer_ttl_ms,
                keys.inbox_prefix,
                len(prev_offers),
                *prev_offers,
                len(done_offers),
                *done_offers,
                *_outcome_args(outcomes),
            ],
            _parse_claim,
        )

    def complete(
        self,
        keys: PoolKeys,
        *,
        worker: str,
        bucket_ms: int,
        stats_ttl_ms: int,
        lease_ms: int,
        outcomes: Sequence[Outcome],
    ) -> Call[list[str]]:
        """Record ended attempts; parses to one code per outcome."""
        args: list[Any] = [
            keys.job_prefix,
            keys.stats_prefix,
            bucket_ms,
            stats_ttl_ms,
            keys.finished,
            worker,
            lease_ms,
            *_outcome_args(outcomes),
        ]
        return self._call(
            "complete",
            [keys.running, keys.delayed, keys.stream, keys.wake, keys.callbacks],
            args,
            _texts,
        )

    def complete_callback(
        self,
        keys: PoolKeys,
        *,
        worker: str,
        max_attempts: int,
        reports: Sequence[CallbackReport],
    ) -> Call[list[str]]:
        """Record ended callbacks; parses to one code per report."""
        args: list[Any] = [keys.job_prefix, worker, max_attempts]
        for r in reports:
            args += [r.work_id, r.attempt, r.error, r.backoff_ms]
        return self._call("complete_callback", [keys.callbacks], args, _texts)

    def extend_lease(
        self, keys: PoolKeys, *, worker: str, lease_ms: int, items: Sequence[LeaseItem]
    ) -> Call[list[tuple[str, str]]]:
        """Renew leases; parses to the (kind, member) items that were not renewed."""
        args: list[Any] = [keys.job_prefix, worker, lease_ms]
        for item in items:
            args += [item.kind, item.member, item.attempt]
        return self._call(
            "extend_lease",
            [keys.running, keys.callbacks],
            args,
            lambda reply: [(_text(k), _text(m)) for k, m in reply],
        )

    def hand_back(
        self,
        keys: PoolKeys,
        *,
        worker: str,
        bucket_ms: int,
        stats_ttl_ms: int,
        items: Sequence[LeaseItem],
    ) -> Call[list[str]]:
        """Return unfinished items of a stopping worker; parses to one code per item."""
        args: list[Any] = [
            keys.job_prefix,
            worker,
            keys.finished,
            keys.stats_prefix,
            bucket_ms,
            stats_ttl_ms,
        ]
        for item in items:
            args += [item.kind, item.member, item.attempt]
        return self._call(
            "hand_back", [keys.running, keys.stream, keys.callbacks, keys.wake], args, _texts
        )

    def offer_withdraw(
        self, keys: PoolKeys, *, worker: str, offers: Sequence[str], take: bool
    ) -> Call[list[ClaimedJob]]:
        """Take back a stopping worker's `offers`; with `take`, parses to its inbox's jobs."""
        return self._call(
            "offer_withdraw",
            [keys.idle, keys.inbox(worker)],
            ["1" if take else "0", *offers],
            _handed_jobs,
        )

    def inbox_return(
        self, keys: PoolKeys, *, worker: str, job: ClaimedJob, item: bytes
    ) -> Call[bool]:
        """Put a handed job's inbox `item` back if `job` is still leased to this attempt."""
        return self._call(
            "inbox_return",
            [keys.inbox(worker), keys.job(job.work_id)],
            [item, worker, job.attempt],
            lambda reply: reply == 1,
        )

    def cancel(
        self, keys: PoolKeys, work_ids: Sequence[str], *, bucket_ms: int, stats_ttl_ms: int
    ) -> Call[list[str]]:
        """Cancel jobs; parses to one code per work id."""
        return self._call(
            "cancel",
            [keys.stream, keys.delayed, keys.callbacks, keys.wake],
            [keys.job_prefix, keys.finished, keys.stats_prefix, bucket_ms, stats_ttl_ms, *work_ids],
            _texts,
        )

    def update_config(
        self, keys: PoolKeys, *, max_parallelism: int, default_cap: int, mode: str = "set"
    ) -> Call[tuple[int, int]]:
        """Set the cap (mode set), pause or resume; parses to (previous cap, new cap)."""
        return self._call(
            "update_config",
            [keys.config, keys.stream, keys.wake],
            [max_parallelism, default_cap, mode],
            lambda reply: (int(reply[0]), int(reply[1])),
        )

    def stats(
        self, keys: PoolKeys, *, window_ms: int, bucket_ms: int, default_cap: int
    ) -> Call[list[int]]:
        """Snapshot counters; see stats.lua for the order."""
        return self._call(
            "stats",
            [keys.stream, keys.running, keys.delayed, keys.config],
            [keys.stats_prefix, window_ms, bucket_ms, default_cap],
            lambda reply: [int(x) for x in reply],
        )

    def _call(
        self, name: str, keys: list[str], args: list[Any], parse: Callable[[Any], T]
    ) -> Call[T]:
        return Call(self._scripts[name], keys, args, parse)


def _stale(conn: AbstractConnection) -> bool:
    try:
        return bool(conn.can_read(timeout=0))
    except (redis.ConnectionError, OSError):
        return True  # the parser saw the close


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _texts(reply: list[bytes]) -> list[str]:
    return [_text(x) for x in reply]


def _outcome_args(outcomes: Sequence[Outcome]) -> list[Any]:
    args: list[Any] = []
    for o in outcomes:
        args += [o.work_id, o.attempt, o.status, o.payload, repr(o.jitter)]
    return args


def offer_member(worker: str, lease_ms: int, seq: int) -> str:
    """One offer of a worker in a pool's idle set: enqueue.lua reads the lease length from it."""
    return f"{lease_ms}/{seq}/{worker}"


def handed_job(item: bytes) -> ClaimedJob:
    """A job an enqueue handed to a worker's inbox (packed by enqueue.lua with cmsgpack)."""
    work_id, fn, kind, args, attempt, timeout_ms, offer = msgpack.unpackb(item, raw=True)
    return ClaimedJob(
        _text(work_id),
        _text(fn),
        _text(kind),
        args,
        int(attempt),
        int(timeout_ms) if timeout_ms else None,
        offer=_text(offer),
    )


def _parse_claim(reply: list[Any]) -> ClaimReply:
    now, next_delayed, next_callback, next_lease, jobs, callbacks, skipped, reclaimed, codes = (
        reply[:9]
    )
    (offer_made, offers_used), handed = reply[9:11]
    return ClaimReply(
        now_ms=int(now),
        next_delayed_ms=int(next_delayed) if next_delayed else None,
        next_callback_ms=int(next_callback) if next_callback else None,
        next_lease_ms=int(next_lease) if next_lease else None,
        jobs=[
            ClaimedJob(_text(w), _text(f), _text(k), a, int(n), int(t) if t else None, int(q))
            for w, f, k, a, n, t, q in jobs
        ],
        callbacks=[
            ClaimedCallback(_text(w), _text(f), c, _text(r), v, _text(e), int(n))
            for w, f, c, r, v, e, n in callbacks
        ],
        skipped=[(_text(s), _text(w)) for s, w in skipped],
        reclaimed=[(_text(w), _text(c)) for w, c in reclaimed],
        codes=_texts(codes),
        offer_made=bool(offer_made),
        offers_used=_texts(offers_used),
        handed=_handed_jobs(handed),
    )


def read_handed_job(item: bytes) -> ClaimedJob | None:
    """`handed_job`, or None for an item enqueue.lua did not pack.

    Such a job's lease expiry hands it back; a bad item must not break a claim or the waiter.
    """
    try:
        return handed_job(item)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None


def _handed_jobs(items: list[bytes]) -> list[ClaimedJob]:
    return [job for job in map(read_handed_job, items) if job is not None]
