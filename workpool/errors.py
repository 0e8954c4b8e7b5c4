"""Every exception workpool raises, under one root.

    WorkpoolError
    ├── InvalidPoolName            (ValueError)   pool name empty, or holds { } whitespace/control
    ├── InvalidParallelism         (ValueError)   max_parallelism not an int >= 0
    ├── InvalidRetryBehavior       (ValueError)   max_attempts/backoff/base out of range
    ├── InvalidSchedule            (ValueError)   bad run_after / run_at / status_ttl / timeout
    ├── InvalidArguments           (TypeError)    args is not a mapping with str keys
    ├── PayloadNotSerializable     (TypeError)    args/context/return value not msgpack-encodable
    ├── PayloadTooLarge            (ValueError)   args or context over max_payload_bytes
    ├── UnknownFunction            (LookupError)  function not registered (here or with workers)
    ├── WorkNotFound               (LookupError)  no such work id (never enqueued, or expired)
    ├── WaitTimeout                (TimeoutError) wait()/run_*() timed out
    ├── NotInJob                   (LookupError)  current_job() called outside a running job
    ├── WorkpoolConnectionError    (ConnectionError) Redis unreachable
    ├── WorkFailed                               run_*() ended failed or canceled; .result
    └── NonRetryableError                        raise it from a job to fail without retrying

Bad-input errors also subclass the matching builtin, so generic handlers keep working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workpool.status import Result


class WorkpoolError(Exception):
    """Root of every exception raised by workpool."""


class InvalidPoolName(WorkpoolError, ValueError):
    """A pool name is empty or contains `{`, `}`, whitespace or control characters."""


class InvalidParallelism(WorkpoolError, ValueError):
    """`max_parallelism` is not an integer >= 0."""


class InvalidRetryBehavior(WorkpoolError, ValueError):
    """A RetryBehavior field is out of range."""


class InvalidSchedule(WorkpoolError, ValueError):
    """`run_after`, `run_at`, `status_ttl` or a timeout is not a valid time."""


class InvalidArguments(WorkpoolError, TypeError):
    """Job arguments are not a mapping with string keys."""


class PayloadNotSerializable(WorkpoolError, TypeError):
    """A value cannot be encoded as msgpack."""


class PayloadTooLarge(WorkpoolError, ValueError):
    """Encoded args or context exceed the pool's `max_payload_bytes`."""


class UnknownFunction(WorkpoolError, LookupError):
    """A function is not registered with `@workpool.function` (or with the pool's workers)."""


class WorkNotFound(WorkpoolError, LookupError):
    """No job with this work id exists (never enqueued, or its status expired)."""


class WaitTimeout(WorkpoolError, TimeoutError):
    """Waiting for a job's result took longer than the timeout."""


class NotInJob(WorkpoolError, LookupError):
    """`current_job()` was called outside a function run by a worker."""


class WorkpoolConnectionError(WorkpoolError, ConnectionError):
    """Redis could not be reached."""


class WorkFailed(WorkpoolError):
    """A job run with `run_action`/`run_mutation`/`run_query` failed or was canceled."""

    def __init__(self, work_id: str, result: Result) -> None:
        self.work_id = work_id
        self.result = result
        super().__init__(f"work {work_id} {result.kind}: {result.error}")


class NonRetryableError(WorkpoolError):
    """Raise from a job function to fail the job at once, without further retries."""
