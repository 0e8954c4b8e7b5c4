"""Runs job functions and callbacks: sync ones on a thread pool, async ones on an event loop.

Every run ends by handing one `Finished` event to `post`; nothing a function does (raise,
return something msgpack cannot encode, take bad arguments) escapes into the worker.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog

from workpool.codec import pack, unpack
from workpool.context import JobInfo, reset_current_job, set_current_job
from workpool.errors import NonRetryableError, PayloadNotSerializable, UnknownFunction
from workpool.functions import RegisteredFunction, lookup
from workpool.scripts import ClaimedCallback, ClaimedJob
from workpool.status import JobKind, Result, ResultKind

logger = structlog.get_logger(__name__)

# Error texts are stored in the status hash; keep them readable and bounded.
MAX_ERROR_CHARS = 4000


@dataclass(frozen=True, slots=True)
class Finished:
    """One job or callback run that ended. `status`: ok | error | fatal (never retried)."""

    pool: str
    work_id: str
    attempt: int
    function: str
    is_callback: bool
    status: str
    payload: bytes  # msgpack return value for ok; UTF-8 error text otherwise
    duration_ms: float


class _Fatal(Exception):
    """A failure no retry can fix (bad arguments, unknown function, bad return value)."""


class _TimedOut(Exception):
    """An async job ran past its timeout and was cancelled."""


TIMEOUT_ERROR = b"timeout"


class _JobThreads:
    """A fixed set of threads taking runs from one queue.

    Lighter per run than ThreadPoolExecutor (no Future, no per-submit thread bookkeeping): the
    dispatcher hands over thousands of runs a second, and learns of each end through `post`.
    """

    def __init__(self, count: int) -> None:
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._serve, name=f"workpool-job-{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, run: Callable[[], None]) -> None:
        """Run `run` on the next free thread."""
        self._queue.put(run)

    def shutdown(self) -> None:
        """Let every thread finish what it runs, then end them."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()

    def _serve(self) -> None:
        while (run := self._queue.get()) is not None:
            try:
                run()  # _run_sync catches everything a job does; this is the last guard
            except BaseException:  # a job thread must outlive anything (as the pool's did)
                logger.exception("job_thread_error")


class Executor:
    """Starts runs without blocking the caller; reports each end through `post`."""

    def __init__(self, threads: int, post: Callable[[Finished], None]) -> None:
        self._post = post
        self._threads = _JobThreads(threads)
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self._loop.run_forever, name="workpool-async", daemon=True
        )
        self._loop_thread.start()
        self._signatures: dict[str, inspect.Signature] = {}

    def run_job(self, pool: str, job: ClaimedJob) -> None:
        """Run a claimed job as fn(**args)."""
        info = JobInfo(job.work_id, pool, job.attempt, _kind(job.kind))

        def prepare() -> tuple[Callable[..., Any], dict[str, Any]]:
            fn = lookup(job.function)
            args = unpack(job.args, what="args")
            if not isinstance(args, dict):
                raise _Fatal(f"args must decode to a mapping, got {type(args).__name__}")
            self._check_arguments(fn, args)
            return fn.func, args

        timeout_s = None if job.timeout_ms is None else job.timeout_ms / 1000
        self._start(pool, job.work_id, job.attempt, job.function, False, prepare, info, timeout_s)

    def run_callback(self, pool: str, callback: ClaimedCallback) -> None:
        """Run an on_complete function as fn(work_id=..., context=..., result=Result)."""

        def prepare() -> tuple[Callable[..., Any], dict[str, Any]]:
            fn = lookup(callback.function)
            result = Result(
                kind=ResultKind(callback.result),
                return_value=unpack(callback.return_value) if callback.return_value else None,
                error=callback.error or None,
            )
            context = unpack(callback.context, what="context") if callback.context else None
            return fn.func, {"work_id": callback.work_id, "context": context, "result": result}

        self._start(
            pool, callback.work_id, callback.attempt, callback.function, True, prepare, None, None
        )

    def shutdown(self) -> None:
        """Stop the threads and the event loop (after runs have ended)."""
        self._threads.shutdown()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join(timeout=5)
        if not self._loop_thread.is_alive():
            # Closed here, not by the garbage collector at interpreter exit (which warns).
            self._loop.close()

    def _start(
        self,
        pool: str,
        work_id: str,
        attempt: int,
        function: str,
        is_callback: bool,
        prepare: Callable[[], tuple[Callable[..., Any], dict[str, Any]]],
        info: JobInfo | None,
        timeout_s: float | None,
    ) -> None:
        # Sync jobs' timeouts are watched by the dispatcher (a thread cannot be stopped);
        # async jobs are cancelled here.
        def finish(status: str, payload: bytes, started: float) -> None:
            duration_ms = (time.perf_counter() - started) * 1000
            self._post(
                Finished(
                    pool, work_id, attempt, function, is_callback, status, payload, duration_ms
                )
            )

        try:
            registered = lookup(function)
        except UnknownFunction as exc:
            finish("fatal", _error_text(exc, fatal=True), time.perf_counter())
            return
        if registered.is_async:
            coro = self._run_async(prepare, info, finish, timeout_s)
            asyncio.run_coroutine_threadsafe(coro, self._loop)
        else:
            self._threads.submit(partial(self._run_sync, prepare, info, finish))

    def _run_sync(
        self,
        prepare: Callable[[], tuple[Callable[..., Any], dict[str, Any]]],
        info: JobInfo | None,
        finish: Callable[[str, bytes, float], None],
    ) -> None:
        started = time.perf_counter()
        token = set_current_job(info) if info is not None else None
        try:
            func, kwargs = _guard(prepare)
            value = func(**kwargs)
            status, payload = "ok", _encode_return(value)
        except BaseException as exc:  # a job must never take its thread down
            status, payload = _failure(exc)
        finally:
            if token is not None:
                reset_current_job(token)
        finish(status, payload, started)

    def _run_async(
        self,
        prepare: Callable[[], tuple[Callable[..., Any], dict[str, Any]]],
        info: JobInfo | None,
        finish: Callable[[str, bytes, float], None],
        timeout_s: float | None,
    ) -> Coroutine[Any, Any, None]:
        async def run() -> None:
            started = time.perf_counter()
            # Each task runs in its own context copy, so this binding is private to the job.
            if info is not None:
                set_current_job(info)
            try:
                func, kwargs = _guard(prepare)
                value = await _with_timeout(func(**kwargs), timeout_s)
                status, payload = "ok", _encode_return(value)
            except BaseException as exc:  # CancelledError included: report, never leak
                status, payload = _failure(exc)
            finish(status, payload, started)

        return run()

    def _check_arguments(self, fn: RegisteredFunction, args: dict[str, Any]) -> None:
        signature = self._signatures.get(fn.name)
        if signature is None:
            signature = self._signatures[fn.name] = inspect.signature(fn.func)
        try:
            signature.bind(**args)
        except TypeError as exc:
            raise _Fatal(f"bad arguments for {fn.name}: {exc}") from None


async def _with_timeout(awaitable: Coroutine[Any, Any, Any], timeout_s: float | None) -> Any:
    if timeout_s is None:
        return await awaitable
    try:
        async with asyncio.timeout(timeout_s) as scope:
            return await awaitable
    except TimeoutError:
        if scope.expired():
            raise _TimedOut from None
        raise  # the function's own TimeoutError: an ordinary failure


def _guard(
    prepare: Callable[[], tuple[Callable[..., Any], dict[str, Any]]],
) -> tuple[Callable[..., Any], dict[str, Any]]:
    try:
        return prepare()
    except (UnknownFunction, PayloadNotSerializable) as exc:
        raise _Fatal(str(exc)) from exc


def _encode_return(value: Any) -> bytes:
    try:
        return pack(value, what="return value")
    except PayloadNotSerializable as exc:
        raise _Fatal(str(exc)) from exc


def _failure(exc: BaseException) -> tuple[str, bytes]:
    if isinstance(exc, _TimedOut):
        return "error", TIMEOUT_ERROR
    fatal = isinstance(exc, _Fatal | NonRetryableError)
    return ("fatal" if fatal else "error"), _error_text(exc, fatal=fatal)


def _error_text(exc: BaseException, *, fatal: bool) -> bytes:
    text = str(exc) if isinstance(exc, _Fatal | UnknownFunction) else f"{type(exc).__name__}: {exc}"
    if len(text) > MAX_ERROR_CHARS:
        text = text[:MAX_ERROR_CHARS] + "…"
    return text.encode("utf-8", "replace")


def _kind(kind: str) -> JobKind:
    try:
        return JobKind(kind)
    except ValueError:
        return JobKind.ACTION
