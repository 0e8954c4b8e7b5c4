"""workpool: named work pools on Redis with a global per-pool concurrency cap.

Producers enqueue registered functions into pools; `workpool-worker` processes run them, never
more at once per pool than its `max_parallelism`, across every worker on every host.
"""

from workpool.context import JobInfo, current_job
from workpool.errors import (
    InvalidArguments,
    InvalidParallelism,
    InvalidPoolName,
    InvalidRetryBehavior,
    InvalidSchedule,
    NonRetryableError,
    NotInJob,
    PayloadNotSerializable,
    PayloadTooLarge,
    UnknownFunction,
    WaitTimeout,
    WorkFailed,
    WorkNotFound,
    WorkpoolConnectionError,
    WorkpoolError,
)
from workpool.functions import function
from workpool.pool import Workpool
from workpool.retry import DEFAULT_RETRY_BEHAVIOR, RetryBehavior
from workpool.status import JobKind, Result, ResultKind, State, Stats, Status

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_RETRY_BEHAVIOR",
    "InvalidArguments",
    "InvalidParallelism",
    "InvalidPoolName",
    "InvalidRetryBehavior",
    "InvalidSchedule",
    "JobInfo",
    "JobKind",
    "NonRetryableError",
    "NotInJob",
    "PayloadNotSerializable",
    "PayloadTooLarge",
    "Result",
    "ResultKind",
    "RetryBehavior",
    "State",
    "Stats",
    "Status",
    "UnknownFunction",
    "WaitTimeout",
    "WorkFailed",
    "WorkNotFound",
    "Workpool",
    "WorkpoolConnectionError",
    "WorkpoolError",
    "__version__",
    "current_job",
    "function",
]
