"""Faults: the Redis server dies under a running worker and producer, and comes back on the same
port and directory (AOF, fsync on every write). Nothing acknowledged is lost, the producer rides
out the outage, and the worker carries on. A worker started while Redis is down waits for it.

These tests use dedicated servers (never the session server, which other tests share).
"""

from __future__ import annotations

import threading
import time

import jobs
import redis
from helpers import wait_until

from workpool import ResultKind, State, Workpool
from workpool.embedded import RedisServer, find_redis_server, free_port

# How long the server stays down.
DOWNTIME_S = 1.0
# The producer's pace (about 50 enqueues a second) and each job's run time: a worker with 4
# slots keeps up, with a few jobs running at any moment, so the outage hits work in flight.
ENQUEUE_EVERY_S = 0.02
JOB_S = 0.05


class Producer(threading.Thread):
    """Enqueues jobs.add actions until stopped, keeping every id returned and every error."""

    def __init__(self, pool: Workpool) -> None:
        super().__init__(name="producer", daemon=True)
        self.pool = pool
        self.ids: list[str] = []
        self.errors: list[BaseException] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stopping.is_set():
            try:
                self.ids.append(
                    self.pool.enqueue_action(jobs.faults_nap, {"seconds": JOB_S, "value": i})
                )
            except BaseException as exc:
                self.errors.append(exc)
                return
            i += 1
            self.stopping.wait(ENQUEUE_EVERY_S)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=40)
        assert not self.is_alive(), "the producer is stuck"


def test_redis_killed_and_restarted_loses_no_acknowledged_job(
    private_redis, workers_on, ready, log_events
):
    # Given a dedicated Redis with AOF, a worker on it (lease 2 s) and a producer enqueueing
    server = private_redis()
    client = redis.Redis(host="127.0.0.1", port=server.port)
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    worker = ready(workers_on(server.url, ("restart",), extra_args=("--lease", "2")))
    pool = Workpool("restart", redis_url=server.url, reconnect_timeout=30)
    producer = Producer(pool)
    try:
        producer.start()
        wait_until(
            lambda: len(producer.ids) >= 20 and pool.result(producer.ids[19]),
            10,
            message="the first jobs to be served",
        )
        # When the server is killed with SIGKILL while jobs run, and restarted ~1 s later on its
        # port and directory
        running = pool.keys.running
        wait_until(lambda: client.zcard(running) > 0, 5, message="a job to be running")
        server.process.kill()
        server.process.wait(5)
        enqueued_before_kill = len(producer.ids)
        time.sleep(DOWNTIME_S)  # the outage itself, not a wait for some outcome
        private_redis(restart_of=server)
        # And the producer keeps enqueueing for a while after the restart
        wait_until(
            lambda: len(producer.ids) >= enqueued_before_kill + 50 or producer.errors,
            15,
            message="the producer to enqueue after the restart",
        )
    finally:
        producer.stop()
    # Then the producer never raised
    assert producer.errors == []
    # And every enqueue that returned an id reaches success: no job was lost
    ids = producer.ids
    wait_until(
        lambda: all(s.state is State.FINISHED for s in pool.status_batch(ids)),
        20,
        message=f"all {len(ids)} jobs to finish",
    )
    results = [pool.result(w) for w in ids]
    # (the ids and errors of any that did not succeed first: the telling failure message)
    assert [
        (ids[i], r.error) for i, r in enumerate(results) if r.kind is not ResultKind.SUCCESS
    ] == []
    assert [r.kind for r in results] == [ResultKind.SUCCESS] * len(ids)
    assert [r.return_value for r in results] == list(range(len(ids)))
    # And the worker lived through it (it noticed the outage and kept its process)
    assert worker.process.poll() is None
    assert log_events(worker, "redis_call_failed") or log_events(worker, "wake_wait_failed")
    assert pool.run_action(jobs.add, {"a": 1, "b": 2}, timeout=10) == 3
    pool.close()
    client.close()


def test_worker_started_while_redis_is_down_serves_once_it_comes_up(
    private_redis, workers_on, ready, log_events, tmp_path
):
    # Given a port and directory where no Redis runs yet
    directory = tmp_path / "redis"
    directory.mkdir()
    planned = RedisServer(find_redis_server(), free_port(), str(directory))
    # When a worker is started against it
    worker = workers_on(planned.url, ("late",))
    # Then it waits, saying Redis is unavailable, rather than exiting
    wait_until(
        lambda: log_events(worker, "redis_unavailable") or worker.process.poll() is not None,
        10,
        message="the worker to report Redis unavailable",
    )
    assert worker.process.poll() is None, worker.log()
    assert not log_events(worker, "worker_started")
    # When Redis comes up on that port
    server = private_redis(restart_of=planned)
    # Then the same worker process starts serving
    ready(worker)
    pool = Workpool("late", redis_url=server.url)
    try:
        assert pool.run_action(jobs.worker_pid, timeout=10) == worker.pid
    finally:
        pool.close()


def test_job_running_across_a_redis_restart_finishes_once_and_is_not_taken_back(
    private_redis, workers_on, ready, log_events
):
    # Given a dedicated Redis with AOF, two workers on it (lease 2 s), one running a 3 s job
    server = private_redis()
    a = ready(workers_on(server.url, ("across",), extra_args=("--lease", "2")))
    pool = Workpool("across", redis_url=server.url, reconnect_timeout=30)
    try:
        wid = pool.enqueue_action(jobs.faults_nap, {"seconds": 3.0, "value": 7})
        wait_until(lambda: pool.status(wid).state is State.RUNNING, 5, message="the job to run")
        b = ready(workers_on(server.url, ("across",), extra_args=("--lease", "2")))
        # When the server is killed with SIGKILL and restarted ~1 s later
        server.process.kill()
        server.process.wait(5)
        time.sleep(DOWNTIME_S)  # the outage itself, not a wait for some outcome
        private_redis(restart_of=server)
        # Then the job finishes successfully, on its first attempt, on the worker running it
        result = wait_until(lambda: pool.result(wid), 10, message="the job to finish")
        assert (result.kind, result.return_value) == (ResultKind.SUCCESS, 7)
        assert pool.status(wid).previous_attempts == 1
        # And no worker took its lease back, nor ran it again
        assert log_events(a, "lease_expired") == log_events(b, "lease_expired") == []
        claims = [[e for e in log_events(w, "job_claimed") if e["work_id"] == wid] for w in (a, b)]
        assert [len(c) for c in claims] == [1, 0]
        assert a.process.poll() is None and b.process.poll() is None
    finally:
        pool.close()
