"""structlog setup for the worker daemon, configured once at start."""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import structlog

LogFormat = Literal["json", "console", "auto"]


def configure_logging(level: str = "INFO", log_format: LogFormat = "auto") -> None:
    """Route structlog (and stdlib logging) to stderr as JSON or console lines at `level`.

    "auto" picks the console renderer on a terminal and JSON otherwise.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    if log_format == "auto":
        log_format = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(name)s %(message)s")


def debug_enabled(logger: Any) -> bool:
    """Whether `logger` would emit a debug event (True when it cannot tell)."""
    check = getattr(logger, "is_enabled_for", None) or getattr(logger, "isEnabledFor", None)
    return True if check is None else bool(check(logging.DEBUG))
