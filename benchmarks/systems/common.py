"""Argument parsing and timing shared by the system scripts (no third-party imports)."""

from __future__ import annotations

import argparse
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

LATENCY_KEY = "bench:lat"
LATENESS_KEY = "bench:late"
COUNTER_KEY = "bench:count"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse `<sub> --url U` and the options the subcommands share (see the module doc)."""
    p = argparse.ArgumentParser()
    subs = ["produce", "latency", "delayed", "worker", "setup", "bodies", "bodies-part"]
    p.add_argument("sub", choices=subs)
    p.add_argument("--url", required=True)
    p.add_argument("--n", type=int, default=0)
    p.add_argument("--mode", choices=["single", "batch", "xadd"], default="single")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--interval-ms", type=float, default=10.0)
    p.add_argument("--due", type=float, default=0.0)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--processes", type=int, default=2)
    return p.parse_args(argv)


def emit(**fields: Any) -> None:
    """Print one JSON line for the harness."""
    print(json.dumps(fields), flush=True)


def timed(fn: Callable[[], Any]) -> float:
    """Seconds fn took."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def paced(n: int, interval_s: float, send: Callable[[float], None]) -> None:
    """Call send(time.time()) n times, interval_s apart (absolute schedule, no drift)."""
    t0 = time.perf_counter()
    for i in range(n):
        target = t0 + i * interval_s
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        send(time.time())


def chunks(n: int, size: int) -> list[int]:
    """Sizes of consecutive chunks covering n."""
    return [min(size, n - i) for i in range(0, n, size)]


class _Counter(threading.local):
    """One plain socket per thread speaking just enough RESP for the job body.

    Every sync system's job runs this same code, so none pays for its own client library in
    the work itself (redis-py 8 in the main venv costs about 40 us more CPU per call than the
    5.x the peers' venv holds); the figures compare the job systems, not their clients.
    """

    sock: socket.socket | None = None
    buffer: bytes = b""

    def call(self, *commands: tuple[str, ...]) -> None:
        """Send the commands in one write and read one reply per command."""
        if self.sock is None:
            parts = urlsplit(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
            self.sock = socket.create_connection((parts.hostname, parts.port or 6379))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        out = b"".join(_resp(c) for c in commands)
        self.sock.sendall(out)
        replies = 0
        while replies < len(commands):
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("the benchmark's Redis closed the connection")
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            if line.startswith(b"-"):
                raise RuntimeError(line.decode())
            replies += 1  # INCR and RPUSH reply with one integer line each


def _resp(command: tuple[str, ...]) -> bytes:
    out = [f"*{len(command)}\r\n".encode()]
    for arg in command:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


_counter = _Counter()


def record_run(ts: float | None, key: str | None) -> None:
    """What every benchmark job does: INCR the counter, and record its start.

    With `ts`, it also RPUSHes the seconds from `ts` to now onto `key`, in the same round trip.
    """
    start = time.time()
    if ts is None or key is None:
        _counter.call(("INCR", COUNTER_KEY))
        return
    _counter.call(("INCR", COUNTER_KEY), ("RPUSH", key, repr(start - ts)))
