"""codec.py: msgpack round trips, and typed refusals of what msgpack cannot carry."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from workpool import PayloadNotSerializable
from workpool.codec import pack, unpack

ROUND_TRIPS = [
    pytest.param(0, id="zero"),
    pytest.param(-1, id="negative-int"),
    pytest.param(2**63 - 1, id="int64-max"),
    pytest.param(-(2**63), id="int64-min"),
    pytest.param(2**64 - 1, id="uint64-max"),
    pytest.param(1.5, id="float"),
    pytest.param(-0.1, id="inexact-float"),
    pytest.param(1e308, id="huge-float"),
    pytest.param(math.inf, id="inf"),
    pytest.param("", id="empty-str"),
    pytest.param("héllo ✓ 名前", id="unicode-str"),
    pytest.param(b"", id="empty-bytes"),
    pytest.param(b"\x00\xff" * 100, id="binary-bytes"),
    pytest.param(None, id="none"),
    pytest.param(True, id="true"),
    pytest.param(False, id="false"),
    pytest.param([], id="empty-list"),
    pytest.param({}, id="empty-dict"),
    pytest.param([1, [2, [3, [None]]], {"a": [b"x"]}], id="nested-list"),
    pytest.param({"a": {"b": {"c": [1, 2.5, "d"]}}, "e": None}, id="nested-dict"),
    pytest.param({1: "int key", "s": "str key"}, id="int-keys"),
    pytest.param(datetime(2024, 2, 29, 12, 30, 15, 123456, tzinfo=UTC), id="aware-datetime"),
    pytest.param(datetime(1960, 1, 1, tzinfo=UTC), id="pre-epoch-datetime"),
]


@pytest.mark.parametrize("value", ROUND_TRIPS)
def test_values_round_trip(value):
    # When a value is packed and unpacked
    decoded = unpack(pack(value))
    # Then the same value, of the same type, comes back
    assert decoded == value
    assert type(decoded) is type(value)


def test_bool_stays_bool_and_int_stays_int():
    # When a list mixing bools and ints round-trips
    decoded = unpack(pack([True, 1, False, 0]))
    # Then the types are kept apart
    assert [type(v) for v in decoded] == [bool, int, bool, int]


def test_nan_round_trips_as_nan():
    assert math.isnan(unpack(pack(math.nan)))


def test_aware_datetime_in_another_zone_comes_back_as_the_same_instant_in_utc():
    # Given an aware datetime at +02:00
    value = datetime(2024, 6, 1, 14, 0, 0, 500, tzinfo=timezone(timedelta(hours=2)))
    # When it round-trips
    decoded = unpack(pack(value))
    # Then it is the same instant, aware, in UTC, with microseconds kept
    assert decoded == value
    assert decoded.utcoffset() == timedelta(0)
    assert decoded.microsecond == 500


def test_tuples_come_back_as_lists():
    assert unpack(pack({"t": (1, (2, 3))})) == {"t": [1, [2, 3]]}


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        pytest.param(object(), "object", id="object"),
        pytest.param({1, 2}, "set", id="set"),
        pytest.param(datetime(2024, 1, 1), "tzinfo=None", id="naive-datetime"),
        pytest.param(2**64, "out of range", id="int-too-big"),
        pytest.param(-(2**63) - 1, "out of range", id="int-too-small"),
        pytest.param("\ud800", "surrogates", id="lone-surrogate"),
        pytest.param({"deep": [1, {"x": object()}]}, "object", id="nested-object"),
        pytest.param(1j, "complex", id="complex"),
    ],
)
def test_unencodable_values_raise_payload_not_serializable(value, fragment):
    # When a value msgpack cannot encode is packed
    with pytest.raises(PayloadNotSerializable) as excinfo:
        pack(value, what="return value")
    # Then the typed error (a TypeError) names what was being packed and why
    assert isinstance(excinfo.value, TypeError)
    assert str(excinfo.value).startswith("return value is not msgpack-serializable")
    assert fragment in str(excinfo.value)
    assert excinfo.value.__cause__ is not None


def test_self_referencing_value_is_refused():
    # Given a list that contains itself
    value: list[object] = []
    value.append(value)
    # When it is packed, it is refused rather than recursing forever
    with pytest.raises(PayloadNotSerializable):
        pack(value)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xc1", id="reserved-byte"),
        pytest.param(b"\x92\x01", id="truncated"),
        pytest.param(b"\x01\x02", id="extra-data"),
    ],
)
def test_bad_bytes_raise_payload_not_serializable(data):
    # When bytes that are not one msgpack value are unpacked
    with pytest.raises(PayloadNotSerializable) as excinfo:
        unpack(data, what="args")
    # Then the typed error names what was being decoded
    assert str(excinfo.value).startswith("args is not valid msgpack")
