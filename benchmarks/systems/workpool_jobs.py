"""The benchmark's workpool job: one INCR, and optionally a latency sample."""

from __future__ import annotations

from common import record_run

import workpool


@workpool.function(name="bench.incr")
def incr(ts: float | None = None, key: str | None = None) -> None:
    """INCR the counter; with `ts`, RPUSH (start - ts) seconds to `key`."""
    record_run(ts, key)
