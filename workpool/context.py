"""`current_job()`: what a running function may learn about itself."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from workpool.errors import NotInJob
from workpool.status import JobKind


@dataclass(frozen=True, slots=True)
class JobInfo:
    """The job a function is running as; `attempt` is 1 on the first run."""

    work_id: str
    pool: str
    attempt: int
    kind: JobKind


_current: contextvars.ContextVar[JobInfo] = contextvars.ContextVar("workpool_current_job")


def current_job() -> JobInfo:
    """The job being run by the calling function.

    Raises:
        NotInJob: called outside a function run by a worker.
    """
    try:
        return _current.get()
    except LookupError:
        raise NotInJob(
            "current_job() is only available inside a function run by a worker"
        ) from None


def set_current_job(info: JobInfo) -> contextvars.Token[JobInfo]:
    """Bind `info` for the running job (worker internal); returns a token for `reset`."""
    return _current.set(info)


def reset_current_job(token: contextvars.Token[JobInfo]) -> None:
    """Undo `set_current_job` (worker internal)."""
    _current.reset(token)
