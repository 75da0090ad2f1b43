"""Failures logged compactly, and background tasks that are noticed when they die.

Unconfigured structlog renders `exc_info` with rich, every frame's local variables included: thousands
of lines and a second or two of a blocked event loop per error. So failures are logged as plain fields
(type, message, the innermost frames without variables), and a background task that ends with an
exception says so once, instead of being dropped with nobody awaiting it.
"""

from __future__ import annotations

import asyncio
import traceback
from typing import Any, TypeVar

import structlog

#: Innermost frames of an unexpected error kept in its log event: where it was raised, not the executor's stack.
TRACEBACK_FRAMES = 8
#: Longest error message, and traceback, kept in a log event (a message may quote a client's whole input).
MESSAGE_CHARS = 500
TRACEBACK_CHARS = 4000

T = TypeVar("T")

log = structlog.get_logger("gateway.tasks")


def compact_traceback(exc: BaseException) -> str:
    """The innermost frames of `exc` and of the errors it was raised from: file, line and code, no variables."""
    text = "".join(traceback.format_exception(exc, limit=-TRACEBACK_FRAMES))
    return text if len(text) <= TRACEBACK_CHARS else "..." + text[-TRACEBACK_CHARS:]


def failure_fields(exc: BaseException) -> dict[str, Any]:
    """What a log event says of an exception."""
    return {"error_type": type(exc).__qualname__, "error": str(exc)[:MESSAGE_CHARS],
            "traceback": compact_traceback(exc)}


def watch(task: asyncio.Task[T], event: str, **fields: Any) -> asyncio.Task[T]:
    """Log `event` with the exception if `task` ends with one (cancellation is not a failure)."""

    def done(finished: asyncio.Task[T]) -> None:
        if not finished.cancelled() and (exc := finished.exception()) is not None:
            log.error(event, task=finished.get_name(), **fields, **failure_fields(exc))

    task.add_done_callback(done)
    return task
