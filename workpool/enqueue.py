"""Writing new jobs to Redis: in chunks, in one round trip, all or nothing, safe to retry."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from workpool.errors import UnknownFunction
from workpool.keys import PoolKeys
from workpool.scripts import Call, ThreadConnections, run_in_transaction
from workpool.settings import call_with_reconnect

# Jobs per enqueue script call; larger batches go as several calls in one MULTI/EXEC.
ENQUEUE_CHUNK = 2000

# Prepares the enqueue script call for some work ids and their packed args.
MakeCall = Callable[[Sequence[str], Sequence[bytes]], Call[tuple[int, str]]]


def new_work_id() -> str:
    """A fresh work id: 80 random bits in hex (short keys matter; collisions are checked)."""
    return secrets.token_hex(10)


@dataclass(frozen=True, slots=True)
class JobWriter:
    """Sends enqueue calls for one pool."""

    client: redis.Redis
    keys: PoolKeys
    reconnect_timeout: float
    connections: ThreadConnections  # a single call goes on the calling thread's connection

    def write(
        self, fn: str, packed: list[bytes], make_call: MakeCall
    ) -> tuple[list[str], int | None]:
        """Write one job per packed args; returns their work ids and the pool's stored cap.

        The cap is None if no reply carried it (every chunk was an earlier try that landed).

        Raises:
            UnknownFunction: the pool's workers registered no such function (nothing written).
        """
        ids = [new_work_id() for _ in packed]
        return ids, self._send(fn, ids, packed, make_call)

    def _send(
        self, fn: str, ids: list[str], packed: list[bytes], make_call: MakeCall
    ) -> int | None:
        chunks = [
            range(i, min(i + ENQUEUE_CHUNK, len(ids))) for i in range(0, len(ids), ENQUEUE_CHUNK)
        ]
        calls = [make_call([ids[i] for i in c], [packed[i] for i in c]) for c in chunks]

        # A large batch goes as several script calls in one MULTI/EXEC: it lands whole or not.
        def send() -> list[tuple[int, str]]:
            if len(calls) == 1:
                return [self.connections.run(calls[0])]
            return run_in_transaction(self.client, calls)

        # Retrying is safe: the ids are fixed, so a write that landed before its reply was lost
        # shows up below as "ids exist" - all of them, holding our very function and args - and
        # is recognised as ours (a redis-py retry inside the call ends up the same way).
        replies = call_with_reconnect(send, timeout_s=self.reconnect_timeout, operation="enqueue")
        stored_cap = None
        for chunk, (code, detail) in zip(chunks, replies, strict=True):
            if code == 1:
                raise UnknownFunction(
                    f"function {detail!r} is not registered by the workers of pool "
                    f"{self.keys.pool!r}"
                )
            if code == 2 and self._written_by_us(fn, [ids[i] for i in chunk], chunk, packed):
                # Our own earlier try of this very call landed; only its reply was lost.
                continue
            if code == 2:
                # An id collision (astronomically rare): nothing of this chunk was written.
                chunk_ids = [new_work_id() for _ in chunk]
                chunk_args = [packed[i] for i in chunk]
                stored_cap = self._send(fn, chunk_ids, chunk_args, make_call)
                for i, work_id in zip(chunk, chunk_ids, strict=True):
                    ids[i] = work_id  # the retry may have drawn fresh ids again
            else:
                stored_cap = int(detail)
        return stored_cap

    def _written_by_us(
        self, fn: str, work_ids: list[str], chunk: range, packed: list[bytes]
    ) -> bool:
        pipe = self.client.pipeline(transaction=False)
        for work_id in work_ids:
            pipe.hmget(self.keys.job(work_id), "fn", "args")
        stored = pipe.execute()
        expected = [[fn.encode(), packed[i]] for i in chunk]
        return bool(stored == expected)
