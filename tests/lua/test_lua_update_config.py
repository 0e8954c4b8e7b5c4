"""update_config.lua: returns the previous cap, stores the new one, wakes a worker when raised."""

from __future__ import annotations


def test_previous_cap_is_the_default_when_unset(pool, client):
    # Given a pool with no config hash
    # When its cap is set to 4
    previous = pool.update_config(4, default_cap=7)
    # Then the previous cap reads as the default, and 4 is stored
    assert previous == 7
    assert client.hget(pool.keys.config, "max_parallelism") == b"4"


def test_previous_cap_is_the_stored_one(pool):
    # Given a pool whose cap is 4
    pool.update_config(4)
    # When it is changed twice
    # Then each call returns the cap it replaced
    assert pool.update_config(9) == 4
    assert pool.update_config(0) == 9
    assert pool.update_config(2) == 0


def test_new_cap_governs_claim(pool):
    # Given five ready jobs and a cap lowered to 2
    pool.enqueue("a", "b", "c", "d", "e")
    pool.update_config(2)
    # When a worker claims with room for all
    reply = pool.claim(capacity=5)
    # Then only two start
    assert len(reply.jobs) == 2


def test_zero_pauses_the_pool(pool):
    # Given a ready job and a paused pool
    pool.enqueue("a")
    pool.update_config(0)
    # When a worker claims
    # Then nothing starts
    assert pool.claim(capacity=5).jobs == []
    assert pool.state("a") == "pending"


def test_raising_cap_with_work_waiting_wakes_a_worker(pool):
    # Given a paused pool with a ready job, and no wake token
    pool.update_config(0)
    pool.enqueue("a")
    pool.clear_wake()
    # When the cap is raised
    previous = pool.update_config(3)
    # Then an idle worker is woken to start the job
    assert previous == 0
    assert pool.wake_tokens() == 1
    assert [j.work_id for j in pool.claim().jobs] == ["a"]


def test_raising_above_default_when_unset_wakes(pool, client):
    # Given a pool with ready work but no config hash (default 10), and no wake token
    pool.enqueue("a")
    client.delete(pool.keys.config)
    pool.clear_wake()
    # When the cap is raised above the default
    pool.update_config(11, default_cap=10)
    # Then a worker is woken
    assert pool.wake_tokens() == 1


def test_raising_cap_with_nothing_waiting_wakes_no_one(pool):
    # Given a pool with nothing ready
    pool.update_config(1)
    # When the cap is raised
    pool.update_config(5)
    # Then no one is woken
    assert pool.wake_tokens() == 0


def test_lowering_or_keeping_cap_wakes_no_one(pool):
    # Given a pool with cap 5 and ready work, and no wake token
    pool.update_config(5)
    pool.enqueue("a")
    pool.clear_wake()
    # When the cap is lowered, then set to the same value
    pool.update_config(2)
    pool.update_config(2)
    # Then no one is woken
    assert pool.wake_tokens() == 0


def test_wake_token_is_never_doubled(pool):
    # Given ready work and a token already waiting
    pool.update_config(0)
    pool.enqueue("a")
    assert pool.wake_tokens() == 1
    # When the cap is raised
    pool.update_config(4)
    # Then there is still one token
    assert pool.wake_tokens() == 1


def test_pause_remembers_the_cap_and_resume_restores_it(pool, client):
    # Given a pool with cap 7
    pool.update_config(7)
    # When it is paused
    assert pool.set_cap(0, mode="pause") == (7, 0)
    # Then the cap is 0 and the old one is remembered
    assert client.hget(pool.keys.config, "resume_parallelism") == b"7"
    # And pausing again keeps the remembered cap
    assert pool.set_cap(0, mode="pause") == (0, 0)
    assert client.hget(pool.keys.config, "resume_parallelism") == b"7"
    # When it is resumed, it gets its cap back and forgets the remembered one
    assert pool.set_cap(10, mode="resume") == (0, 7)
    assert client.hget(pool.keys.config, "resume_parallelism") is None


def test_resume_without_a_pause_uses_the_given_cap(pool):
    # Given a pool that was never paused but stands at 0
    pool.update_config(0)
    # When it is resumed with a fallback cap of 4
    # Then it gets that cap
    assert pool.set_cap(4, mode="resume") == (0, 4)


def test_setting_a_cap_forgets_a_remembered_one(pool, client):
    # Given a paused pool
    pool.update_config(5)
    pool.set_cap(0, mode="pause")
    # When a cap is set explicitly
    pool.update_config(2)
    # Then a later resume does not bring the old cap back: the pool runs, so it stays as it is
    assert client.hget(pool.keys.config, "resume_parallelism") is None
    assert pool.set_cap(9, mode="resume") == (2, 2)
