"""Every Redis key name workpool uses, and pool-name validation.

All keys of one pool share the hash tag `{<pool>}`, so every script touches a single Redis Cluster
slot. Nothing outside this module spells the `workpool:` prefix.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from workpool.errors import InvalidPoolName

PREFIX = "workpool"
# The one global key: a set of pool names, for discovery by admin tools. It is never touched
# inside a script, so it does not break Redis Cluster.
POOLS_KEY = f"{PREFIX}:pools"
# Workers read a pool's stream through this consumer group.
CONSUMER_GROUP = "workers"
MAX_POOL_NAME_LENGTH = 200
# A timed-out thread holds a running-set member named THREAD_SLOT_PREFIX + "<work id>:<attempt>"
# (complete.lua builds the same name) until it returns: it counts against the cap, but is no job.
THREAD_SLOT_PREFIX = "thread:"


def validate_pool_name(name: object) -> str:
    """Return `name` if it is a valid pool name, else raise InvalidPoolName.

    Names are rejected, never rewritten: a silently changed name would split one pool in two.
    """
    if not isinstance(name, str):
        raise InvalidPoolName(f"pool name must be a str, got {type(name).__name__}")
    if not name:
        raise InvalidPoolName("pool name must not be empty")
    if len(name) > MAX_POOL_NAME_LENGTH:
        raise InvalidPoolName(
            f"pool name is {len(name)} characters; at most {MAX_POOL_NAME_LENGTH}"
        )
    for ch in name:
        if ch in "{}":
            raise InvalidPoolName(f"pool name {name!r} contains {ch!r}; braces form the hash tag")
        if ch.isspace() or unicodedata.category(ch).startswith("C"):
            raise InvalidPoolName(
                f"pool name {name!r} contains whitespace or a control character ({ch!r})"
            )
    return name


@dataclass(frozen=True, slots=True)
class PoolKeys:
    """The key names of one pool."""

    pool: str
    stream: str  # stream: one entry per ready job, field `id` = work id
    delayed: str  # zset: work id -> due time (ms); delayed and backing-off jobs
    running: str  # zset: work id -> lease deadline (ms)
    config: str  # hash: max_parallelism
    wake: str  # list: at most one token; idle workers BLPOP it
    callbacks: str  # zset: work id -> due time (ms) of its on_complete call, or lease deadline
    dead: str  # stream: entries moved aside because no pending job stood behind them
    functions: str  # set: function names registered by the pool's workers
    finished: str  # pub/sub channel: work id of each job that finished
    job_prefix: str  # hash per job: job_prefix + work id
    stats_prefix: str  # hash per 10 s bucket of outcome counters: stats_prefix + bucket number
    idle: str  # zset: "<lease ms>/<seq>/<worker id>" -> expiry (ms) of an offer to take a job
    inbox_prefix: str  # list per worker: jobs an enqueue handed it directly (inbox_prefix + id)

    @classmethod
    def for_pool(cls, pool: str) -> PoolKeys:
        """Build the keys of `pool` (validated)."""
        base = f"{PREFIX}:{{{validate_pool_name(pool)}}}"
        return cls(
            pool=pool,
            stream=f"{base}:stream",
            delayed=f"{base}:delayed",
            running=f"{base}:running",
            config=f"{base}:config",
            wake=f"{base}:wake",
            callbacks=f"{base}:callbacks",
            dead=f"{base}:dead",
            functions=f"{base}:functions",
            finished=f"{base}:finished",
            job_prefix=f"{base}:job:",
            stats_prefix=f"{base}:stats:",
            idle=f"{base}:idle",
            inbox_prefix=f"{base}:inbox:",
        )

    def inbox(self, worker_id: str) -> str:
        """The list where an enqueue leaves `worker_id` a job it handed over directly."""
        return self.inbox_prefix + worker_id

    def job(self, work_id: str) -> str:
        """The status hash of one job."""
        return self.job_prefix + work_id
