"""msgpack encoding of job arguments, contexts and return values (never pickle)."""

from __future__ import annotations

from typing import Any

import msgpack

from workpool.errors import PayloadNotSerializable


def pack(value: Any, *, what: str = "value") -> bytes:
    """Encode `value` as msgpack; aware datetimes travel as the msgpack timestamp type.

    Raises:
        PayloadNotSerializable: naming `what` and the offending type.
    """
    try:
        return msgpack.packb(value, use_bin_type=True, datetime=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise PayloadNotSerializable(f"{what} is not msgpack-serializable: {exc}") from exc


def unpack(data: bytes, *, what: str = "value") -> Any:
    """Decode msgpack written by `pack`.

    Raises:
        PayloadNotSerializable: the bytes are not valid msgpack.
    """
    try:
        return msgpack.unpackb(data, raw=False, timestamp=3, strict_map_key=False)
    except (
        ValueError,
        TypeError,
        msgpack.ExtraData,
        msgpack.FormatError,
        msgpack.StackError,
    ) as exc:
        raise PayloadNotSerializable(f"{what} is not valid msgpack: {exc}") from exc
