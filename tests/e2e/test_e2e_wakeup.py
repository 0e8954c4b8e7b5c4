"""End to end: an idle worker's safety re-check when no wake token reaches it."""

from __future__ import annotations

import time

import jobs
import pytest
from helpers import wait_until

from workpool.keys import PoolKeys

# workers.consumer.WAKE_SAFETY_S: how often an idle worker re-checks its pools without a token.
WAKE_SAFETY_S = 5.0


@pytest.mark.parametrize(
    "url_options",
    [
        pytest.param("", id="default-client"),
        # A socket timeout below the safety period is an ordinary production setting.
        pytest.param("?socket_timeout=2", id="socket_timeout-2s"),
    ],
)
def test_idle_worker_rechecks_the_pool_when_a_wake_token_was_lost(
    url_options, r, redis_url, make_pool, ready_workers
):
    # Given a paused pool whose idle worker has already seen (and used up) the wake token of
    # a job waiting in it
    pool = make_pool("lost", max_parallelism=0)
    ready_workers(1, pools=("lost",), extra_args=("--redis-url", redis_url + url_options))
    keys = PoolKeys.for_pool("lost")
    wid = pool.enqueue_action(jobs.add, {"a": 1, "b": 1})
    wait_until(lambda: r.llen(keys.wake) == 0, 5, message="the worker to take the wake token")
    # When the cap is raised behind the library's back, so no new token is left (as when a
    # token is lost with a dead worker)
    raised_at = time.monotonic()
    r.hset(keys.config, "max_parallelism", 1)
    # Then the idle worker still finds the job within its safety re-check period
    wait_until(
        lambda: pool.result(wid),
        WAKE_SAFETY_S + 2.5,
        message="the idle worker's safety re-check to run the job",
    )
    assert time.monotonic() - raised_at <= WAKE_SAFETY_S + 1.0
    assert pool.result(wid).return_value == 2
