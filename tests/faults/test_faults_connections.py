"""A connection the server closed (restart, idle timeout) is replaced, not failed on.

Producers send single enqueues on a connection of their thread's own, and workers send their
script calls on one of their own; neither goes through redis-py's pool, whose checkout would
notice a closed socket. These tests close such a connection from the server side.
"""

from __future__ import annotations

import select

import jobs
from helpers import wait_until

from workpool import State


def _close_from_server(r, conn) -> None:
    host, port = conn._sock.getsockname()[:2]
    r.client_kill(f"{host}:{port}")
    # The close has reached the client once its socket reads as ready (EOF).
    wait_until(lambda: select.select([conn._sock], [], [], 0)[0], 5, message="the server's close")


def test_enqueue_after_the_server_closed_the_producers_connection(r, make_pool):
    # Given a pool that retries nothing (any failed call raises at once), after one enqueue
    pool = make_pool("conn", reconnect_timeout=0)
    pool.enqueue_action(jobs.add, {"a": 1, "b": 1})
    # When the server closes the connection that enqueue went out on (white box: the thread's)
    _close_from_server(r, pool._connections._local.conn)
    # Then the next enqueue succeeds on a fresh connection
    work_id = pool.enqueue_action(jobs.add, {"a": 2, "b": 2})
    assert pool.status(work_id).state is State.PENDING
    assert r.xlen(pool.keys.stream) == 2
