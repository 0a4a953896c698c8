"""`Task`: what a handler receives."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from datetime import datetime
from types import MappingProxyType
from typing import Any

from tickr._time import datetime_from_ms

__all__ = ["Task", "current_task"]


class Task:
    """One attempt of a task, as handed to its handler.

    Attributes:
        id: The task id, unique within its queue.
        type: The task type.
        payload: The decoded payload.
        queue: The queue the task came from.
        retry_count: Retries done before this attempt (0 on the first attempt).
        max_retry: Retries allowed after the first attempt.
        timeout: Seconds allowed for this attempt, or None for no limit.
        headers: The string metadata given at enqueue (``headers=``), read-only; the
            same on every attempt.  Trace context (``traceparent``) rides here.
    """

    __slots__ = (
        "_deadline_ms",
        "_enqueued_ms",
        "headers",
        "id",
        "max_retry",
        "payload",
        "queue",
        "retry_count",
        "timeout",
        "type",
    )

    def __init__(
        self,
        id: str,
        type: str,
        payload: Any,
        queue: str,
        *,
        retry_count: int = 0,
        max_retry: int = 0,
        timeout: float | None = None,
        deadline_ms: int | None = None,
        enqueued_ms: int = 0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.id = id
        self.type = type
        self.payload = payload
        self.queue = queue
        self.retry_count = retry_count
        self.max_retry = max_retry
        self.timeout = timeout
        self._deadline_ms = deadline_ms
        self._enqueued_ms = enqueued_ms
        if not isinstance(headers, MappingProxyType):
            headers = MappingProxyType(dict(headers or {}))
        self.headers: Mapping[str, str] = headers

    @property
    def deadline(self) -> datetime | None:
        """The effective deadline of this attempt.

        The earlier of the task's deadline and the attempt's start plus its timeout;
        None when neither is set.
        """
        return None if self._deadline_ms is None else datetime_from_ms(self._deadline_ms)

    @property
    def enqueued_at(self) -> datetime:
        """When the task was enqueued."""
        return datetime_from_ms(self._enqueued_ms)

    def __repr__(self) -> str:
        return f"Task(id={self.id!r}, type={self.type!r}, queue={self.queue!r})"


_RUNNING_TASK: ContextVar[Task | None] = ContextVar("tickr_running_task", default=None)
"""The task whose handler runs in this context (set by the server around each attempt)."""


def current_task() -> Task | None:
    """The task whose handler is running here (in it or in what it awaits), else None.

    Tasks the handler starts with `asyncio.create_task` inherit it, as they inherit every
    context variable.
    """
    return _RUNNING_TASK.get()
