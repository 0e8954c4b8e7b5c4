"""Bad pool names are rejected with InvalidPoolName (a ValueError), never rewritten or written."""

from __future__ import annotations

import pytest
import redis
from helpers import snapshot

from workpool import InvalidPoolName, Workpool, WorkpoolError
from workpool.keys import MAX_POOL_NAME_LENGTH, PoolKeys, validate_pool_name

# (name, a fragment the message must contain)
BAD_NAMES = [
    pytest.param("", "empty", id="empty"),
    pytest.param("a{b", "'{'", id="open-brace"),
    pytest.param("a}b", "'}'", id="close-brace"),
    pytest.param("{a}", "'{'", id="hash-tag"),
    pytest.param("a b", "whitespace", id="space"),
    pytest.param("a\tb", "whitespace", id="tab"),
    pytest.param("a\nb", "whitespace", id="newline"),
    pytest.param("a\rb", "whitespace", id="carriage-return"),
    pytest.param(" a", "whitespace", id="leading-space"),
    pytest.param("a\u00a0b", "whitespace", id="no-break-space"),
    pytest.param("a\x00b", "control character", id="nul"),
    pytest.param("\x7f", "control character", id="del"),
    pytest.param("a\x1bb", "control character", id="escape"),
    pytest.param("a\u200bb", "control character", id="zero-width-space"),
    pytest.param("x" * (MAX_POOL_NAME_LENGTH + 1), "at most", id="too-long"),
]

NON_STR_NAMES = [
    pytest.param(123, "int", id="int"),
    pytest.param(b"pool", "bytes", id="bytes"),
    pytest.param(None, "NoneType", id="none"),
    pytest.param(["pool"], "list", id="list"),
]


@pytest.mark.parametrize(("name", "fragment"), BAD_NAMES)
def test_workpool_rejects_bad_name_and_writes_nothing(r, redis_url, name, fragment):
    # Given an empty Redis
    assert r.dbsize() == 0
    # When a Workpool is built with a bad name
    with pytest.raises(InvalidPoolName) as excinfo:
        Workpool(name, redis_url=redis_url)
    # Then the error is typed, is also a ValueError, and says what is wrong
    assert isinstance(excinfo.value, ValueError)
    assert isinstance(excinfo.value, WorkpoolError)
    assert fragment in str(excinfo.value)
    # And Redis holds nothing
    assert r.dbsize() == 0


@pytest.mark.parametrize(("name", "fragment"), BAD_NAMES)
def test_message_shows_the_name_escaped(name, fragment):
    # Given a bad name
    # When it is validated
    with pytest.raises(InvalidPoolName) as excinfo:
        validate_pool_name(name)
    # Then the message is one line: control characters appear escaped, never raw
    message = str(excinfo.value)
    assert "\n" not in message
    assert "\x00" not in message
    assert fragment in message
    if name and len(name) <= MAX_POOL_NAME_LENGTH:
        assert repr(name) in message


@pytest.mark.parametrize(("name", "type_name"), NON_STR_NAMES)
def test_non_str_name_is_rejected(r, redis_url, name, type_name):
    # Given an empty Redis
    # When a Workpool is built with a name that is not a str
    with pytest.raises(InvalidPoolName) as excinfo:
        Workpool(name, redis_url=redis_url)
    # Then InvalidPoolName names the type, and nothing is written
    assert isinstance(excinfo.value, ValueError)
    assert type_name in str(excinfo.value)
    assert r.dbsize() == 0


@pytest.mark.parametrize(("name", "fragment"), BAD_NAMES)
def test_pool_keys_refuse_bad_name(name, fragment):
    # When keys are built for a bad name
    with pytest.raises(InvalidPoolName) as excinfo:
        PoolKeys.for_pool(name)
    # Then no key string is ever produced from it
    assert fragment in str(excinfo.value)


def test_bad_name_leaves_an_existing_pool_untouched(r, make_pool, redis_url):
    # Given a pool "a" holding a job
    pool = make_pool("a")
    pool.enqueue_action("jobs.add", {"a": 1, "b": 2})
    before = snapshot(r)
    # When pools are built from names that a rewriting validator would turn into "a"
    for name in (" a", "a ", "{a}", "a\n"):
        with pytest.raises(InvalidPoolName):
            Workpool(name, redis_url=redis_url)
    # Then nothing in Redis changed: the names were rejected, not mapped onto "a"
    assert snapshot(r) == before


def test_name_at_the_length_limit_is_accepted(r: redis.Redis, make_pool):
    # Given a name of exactly the maximum length
    name = "x" * MAX_POOL_NAME_LENGTH
    # When a job is enqueued into it
    pool = make_pool(name)
    pool.enqueue_action("jobs.add", {"a": 1, "b": 2})
    # Then its keys carry the name unchanged
    assert r.xlen(PoolKeys.for_pool(name).stream) == 1
