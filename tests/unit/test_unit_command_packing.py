"""scripts._send: a script call packed by hiredis directly is byte for byte what redis-py sends."""

from __future__ import annotations

from typing import Any

import pytest
from redis._parsers.encoders import Encoder
from redis.connection import Connection, HiredisRespSerializer, PythonRespSerializer

from workpool import scripts

# What a script call carries: a sha, unicode keys, ints (negative too), empty strings, and
# msgpack payloads that are not valid UTF-8.
COMMAND: tuple[Any, ...] = (
    "EVALSHA",
    "3f2a0c1d",
    2,
    "workpool:{Ünïcødé-名前}:stream",
    "workpool:{Ünïcødé-名前}:job:",
    "",
    -1712,
    1800000,
    b"\x82\xa1a\x01\xa1b\xff\xc0",
    "0.75",
)


def reference_bytes(command: tuple[Any, ...]) -> bytes:
    """The bytes redis-py's pure-Python packer produces for `command` (UTF-8, as by default)."""
    encoder = Encoder(encoding="utf-8", encoding_errors="strict", decode_responses=False)
    return b"".join(PythonRespSerializer(6000, encoder.encode).pack(*command))


class CapturingConnection(Connection):
    """A connection that records what it would send instead of sending it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sent: list[bytes] = []

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        self.sent.append(command if isinstance(command, bytes) else b"".join(command))


@pytest.mark.skipif(scripts.hiredis_pack_command is None, reason="needs the 'fast' extra")
def test_a_hiredis_connection_sends_the_same_bytes_packed_directly(monkeypatch):
    # Given a connection whose packer is hiredis (redis-py's choice when hiredis is installed)
    conn = CapturingConnection(command_packer=HiredisRespSerializer())
    packed: list[tuple[Any, ...]] = []
    real_pack = scripts.hiredis_pack_command
    monkeypatch.setattr(scripts, "hiredis_pack_command", lambda c: packed.append(c) or real_pack(c))
    # When a script call is sent through scripts._send
    scripts._send(conn, COMMAND)
    # Then it was packed directly, and what goes on the wire is exactly what redis-py packs
    assert packed == [COMMAND]
    assert b"".join(conn.sent) == reference_bytes(COMMAND)


@pytest.mark.skipif(scripts.hiredis_pack_command is None, reason="needs the 'fast' extra")
def test_an_argument_hiredis_refuses_goes_through_redis_py():
    # Given a hiredis connection and an argument hiredis.pack_command does not take
    conn = CapturingConnection(command_packer=HiredisRespSerializer())
    # When it is sent
    scripts._send(conn, ("SET", "k", bytearray(b"v\xff")))
    # Then redis-py converted it as it always does
    assert b"".join(conn.sent) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv\xff\r\n"


def test_a_connection_with_another_packer_is_left_to_redis_py():
    # Given a connection packing in pure Python with its own encoder (latin-1 here)
    encoder = Encoder(encoding="latin-1", encoding_errors="strict", decode_responses=False)
    conn = CapturingConnection(command_packer=PythonRespSerializer(6000, encoder.encode))
    # When a command with a non-ASCII argument is sent
    scripts._send(conn, ("GET", "café"))
    # Then redis-py's packer encoded it, with the connection's encoding
    assert b"".join(conn.sent) == b"*2\r\n$3\r\nGET\r\n$4\r\ncaf\xe9\r\n"
