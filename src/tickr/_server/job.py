"""`Job`: one task held by this server, from the fetch until Redis records its outcome."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Mapping

from tickr._log_fields import task_fields
from tickr._observe import NO_PROCESS, ProcessScope

__all__ = ["Job", "StopReason"]


class StopReason(enum.Enum):
    """Why the server stopped a running handler itself."""

    CANCELLED = "cancelled"
    """Somebody called cancel() on the task."""
    LEASE_LOST = "lease lost"
    """Another server recovered the task; this server must not report on it."""
    SHUTDOWN = "shutdown"
    """The server is shutting down and requeued the task."""


class Job:
    """A task held by this server, with what the processor needs to stop it."""

    __slots__ = (
        "done",
        "escaped",
        "id",
        "msg",
        "queue",
        "ran_seconds",
        "ready_ms",
        "retried",
        "scope",
        "stop_reason",
        "trace",
        "type",
    )

    def __init__(
        self, queue: str, task_id: str, msg: bytes | None, retried: int, ready_ms: int = 0
    ) -> None:
        self.queue = queue
        self.id = task_id
        self.msg = msg
        self.retried = retried
        self.ready_ms = ready_ms
        """When the task became runnable (its due time), 0 when that was its enqueue."""
        self.ran_seconds: float | None = None
        """How long its handler ran; None until it ran."""
        self.trace: ProcessScope = NO_PROCESS
        """The attempt's tracing scope, once decoded."""
        self.type = ""
        self.scope: asyncio.Timeout | None = None
        self.stop_reason: StopReason | None = None
        self.escaped: BaseException | None = None
        """A SystemExit or KeyboardInterrupt raised by a task the handler started."""
        self.done = False
        """The outcome is decided and on its way to Redis: there is nothing left to stop."""

    @property
    def log_fields(self) -> Mapping[str, str]:
        """The `extra` of a log record about this task (see tickr._log_fields)."""
        return task_fields(self.id, self.queue, self.type)

    def stop(self, reason: StopReason) -> None:
        """Stop the handler at its next await, for `reason` (the first reason wins).

        Does nothing once the job is `done`.
        """
        if self.done:
            return
        if self.stop_reason is None:
            self.stop_reason = reason
        if self.scope is not None and not self.scope.expired():
            self.scope.reschedule(asyncio.get_running_loop().time())
