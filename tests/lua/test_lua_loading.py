"""Loading the scripts: files, includes, headers, NOSCRIPT recovery, and the wheel's copy."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import redis

from workpool.keys import PoolKeys
from workpool.scripts import SCRIPT_NAMES, Scripts, load_source, lua_dir, run_in_transaction

ROOT = Path(__file__).resolve().parents[2]
LUA_SRC = ROOT / "scripts" / "lua"
INCLUDE_LINE = re.compile(r'^--- @include "([a-z_]+)"\s*$', re.MULTILINE)


def _lua_files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.lua"))


def test_loader_reads_the_source_tree():
    # Given a source checkout (no packaged copy next to workpool/)
    # When the loader looks for its scripts
    # Then it finds scripts/lua
    assert lua_dir().resolve() == LUA_SRC.resolve()


def test_script_names_match_lua_files_exactly():
    # Given the .lua files at the top of scripts/lua
    on_disk = {p.stem for p in LUA_SRC.glob("*.lua")}
    # Then the loader registers each of them, and nothing else
    assert set(SCRIPT_NAMES) == on_disk
    assert len(SCRIPT_NAMES) == len(set(SCRIPT_NAMES))
    assert {p.stem for p in lua_dir().glob("*.lua")} == on_disk


def test_includes_match_include_files_exactly():
    # Given every include line in the scripts
    used = {m for name in SCRIPT_NAMES for m in INCLUDE_LINE.findall(_raw(name))}
    # Then each names a file in includes/, and every file there is used
    assert used == {p.stem for p in (LUA_SRC / "includes").glob("*.lua")}
    # And scripts/lua holds nothing else
    assert set(_lua_files(LUA_SRC)) == {f"{n}.lua" for n in SCRIPT_NAMES} | {
        f"includes/{n}.lua" for n in used
    }


def _raw(name):
    return (LUA_SRC / f"{name}.lua").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_load_source_splices_every_include(name):
    # Given a script with include lines
    raw = _raw(name)
    # When it is loaded
    source = load_source(name)
    # Then no include line is left, and each include's text is in its place
    assert "@include" not in source
    for include in INCLUDE_LINE.findall(raw):
        text = (LUA_SRC / "includes" / f"{include}.lua").read_text(encoding="utf-8")
        assert text in source


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_header_declares_the_keys_the_wrapper_passes(script_calls, name):
    # Given a script's --[[ ]] header
    header = _raw(name).split("]]", 1)[0]
    declared = [int(n) for n in re.findall(r"^\s*KEYS\[(\d+)\]", header, re.MULTILINE)]
    # Then it declares KEYS[1..n] in order, n being what the Python wrapper passes
    call = script_calls(PoolKeys.for_pool("pool"))[name]
    assert declared == list(range(1, len(call.keys) + 1))
    # And it names its return value
    assert "Returns:" in header


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_every_script_compiles_on_the_server(client, name):
    # Given a running server
    # When a script's expanded source is loaded
    sha = client.script_load(load_source(name))
    # Then the server accepts it under the sha the wrapper will call
    assert sha == Scripts(client)._scripts[name].sha


def _enqueue_calls(pool, *work_ids):
    return [
        pool.scripts.enqueue(
            pool.keys,
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
            initial_cap=10,
            timeout_ms=None,
            jobs=[(w, b"\x80")],
        )
        for w in work_ids
    ]


def test_script_flush_then_call_reloads(pool, client):
    # Given the scripts were used once, then the server's script cache was flushed
    assert pool.enqueue("a") == (0, "10")
    sha = pool.scripts._scripts["claim"].sha
    client.script_flush()
    assert client.script_exists(sha) == [False]
    # When a script is called again
    reply = pool.claim()
    # Then the NOSCRIPT reply was recovered from and the call did its work
    assert [j.work_id for j in reply.jobs] == ["a"]
    assert client.script_exists(sha) == [True]


def test_script_flush_then_pipelined_call_reloads(pool, client):
    # Given a flushed script cache
    pool.enqueue("warm")
    client.script_flush()
    # When script calls are queued on a redis-py transaction pipeline (Call.queue)
    calls = _enqueue_calls(pool, "a", "b")
    pipe = client.pipeline(transaction=True)
    for call in calls:
        call.queue(pipe)
    replies = [c.parse(r) for c, r in zip(calls, pipe.execute(), strict=True)]
    # Then both ran
    assert replies == [(0, "10"), (0, "10")]
    assert pool.stream_work_ids() == ["warm", "a", "b"]


def test_run_in_transaction_after_script_flush_writes_each_call_once(pool, client):
    # Given a flushed script cache
    pool.enqueue("warm")
    client.script_flush()
    # When calls of one script run in one MULTI/EXEC
    replies = run_in_transaction(client, _enqueue_calls(pool, "a", "b", "c"))
    # Then the NOSCRIPT round wrote nothing, and the reloaded round wrote every job once
    assert replies == [(0, "10")] * 3
    assert pool.stream_work_ids() == ["warm", "a", "b", "c"]
    assert client.script_exists(pool.scripts._scripts["enqueue"].sha) == [True]


def test_run_in_transaction_with_cached_script(pool, client):
    # Given the script already cached
    pool.enqueue("warm")
    # When calls run in one transaction
    replies = run_in_transaction(client, _enqueue_calls(pool, "a", "b"))
    # Then each reply is parsed in order
    assert replies == [(0, "10"), (0, "10")]
    assert pool.stream_work_ids() == ["warm", "a", "b"]


def test_run_in_transaction_raises_a_script_error(pool, client):
    # Given a stream key of the wrong type, so enqueue's XADD fails
    client.set(pool.keys.stream, "x")
    # When calls run in one transaction
    # Then the error reaches the caller
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        run_in_transaction(client, _enqueue_calls(pool, "a"))


def test_run_in_transaction_refuses_mixed_scripts(pool, client):
    # Given calls of two different scripts
    calls = [
        *_enqueue_calls(pool, "a"),
        pool.scripts.cancel(pool.keys, ["a"], bucket_ms=1, stats_ttl_ms=1),
    ]
    # When run together
    # Then they are refused before anything is sent
    with pytest.raises(ValueError, match="single script"):
        run_in_transaction(client, calls)
    assert pool.job("a") == {}
    assert run_in_transaction(client, []) == []


def test_script_flush_between_two_clients(lua_server, client):
    # Given two clients with their own registered scripts
    other = redis.Redis(host="127.0.0.1", port=lua_server.port)
    try:
        keys = PoolKeys.for_pool("pool")
        first, second = Scripts(client), Scripts(other)
        assert first.update_config(keys, max_parallelism=3, default_cap=10).run(client) == (10, 3)
        # When the cache is flushed from one and both call again
        client.script_flush()
        # Then both recover
        assert second.update_config(keys, max_parallelism=4, default_cap=10).run(other) == (3, 4)
        assert first.update_config(keys, max_parallelism=5, default_cap=10).run(client) == (4, 5)
    finally:
        other.close()


# -- the wheel ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    [built] = out.glob("workpool-*.whl")
    return built


def test_wheel_ships_every_lua_file(wheel):
    # Given a wheel built from this tree
    names = set(zipfile.ZipFile(wheel).namelist())
    # Then it holds workpool/lua/<file> for every file under scripts/lua, and no other Lua
    expected = {f"workpool/lua/{f}" for f in _lua_files(LUA_SRC)}
    assert {n for n in names if n.endswith(".lua")} == expected


def test_installed_loader_sees_exactly_the_shipped_files(wheel, tmp_path):
    # Given the wheel unpacked as an installed package
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "import json, workpool, workpool.scripts as s\n"
        "d = s.lua_dir()\n"
        "print(json.dumps({'package': workpool.__file__, 'dir': str(d),\n"
        "  'files': sorted(p.relative_to(d).as_posix() for p in d.rglob('*.lua')),\n"
        "  'names': list(s.SCRIPT_NAMES),\n"
        "  'spliced': all('@include' not in s.load_source(n) for n in s.SCRIPT_NAMES)}))\n"
    )
    # When a fresh interpreter imports workpool from there
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    seen = json.loads(out)
    # Then its loader reads the packaged copy, which matches scripts/lua file for file
    assert Path(seen["package"]).resolve().is_relative_to(site.resolve())
    assert Path(seen["dir"]).resolve() == (site / "workpool" / "lua").resolve()
    assert seen["files"] == _lua_files(LUA_SRC)
    assert set(seen["names"]) == {p.stem for p in LUA_SRC.glob("*.lua")}
    assert seen["spliced"]
