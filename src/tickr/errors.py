"""Every error Tickr raises, in one place.

The hierarchy::

    Exception
    └── TickrError
        ├── TaskIDConflict      enqueue: the task id is already used in that queue
        ├── DuplicateTask       enqueue: `unique` found a live equal task
        ├── TaskNotFound        no task with that id in that queue
        ├── TaskStateConflict   the task's state does not allow the operation
        ├── QueueNotFound       no queue with that name
        ├── QueueNotEmpty       Inspector.delete_queue: the queue still has tasks
        ├── EntryNotFound       no live scheduler runs a periodic task with that id
        ├── TaskFailed          Client.result(): the task ended archived
        ├── SkipRetry           raised by a handler: archive the task now, no retry
        └── RedisUnavailable    Redis could not be reached (also a builtin ConnectionError)

Bad arguments raise the builtin `ValueError` or `TypeError`, and waiting too long raises
the builtin `TimeoutError`.  This module imports nothing from the package.
"""

from __future__ import annotations

__all__ = [
    "DuplicateTask",
    "EntryNotFound",
    "QueueNotEmpty",
    "QueueNotFound",
    "RedisUnavailable",
    "ServerNotFound",
    "SkipRetry",
    "TaskFailed",
    "TaskIDConflict",
    "TaskNotFound",
    "TaskStateConflict",
    "TickrError",
]


class TickrError(Exception):
    """Base class of every error defined by Tickr."""


class TaskIDConflict(TickrError):
    """A task with the requested `task_id` already exists in the queue."""

    def __init__(self, task_id: str, queue: str) -> None:
        super().__init__(f"task id {task_id!r} is already used in queue {queue!r}")
        self.task_id = task_id
        self.queue = queue


class DuplicateTask(TickrError):
    """An equal task (type, payload, queue) is still live and `unique` was requested."""

    def __init__(self, task_type: str, queue: str, existing_id: str | None = None) -> None:
        detail = f" (live task {existing_id!r})" if existing_id else ""
        super().__init__(f"an equal {task_type!r} task is already live in {queue!r}{detail}")
        self.task_type = task_type
        self.queue = queue
        self.existing_id = existing_id


class TaskNotFound(TickrError):
    """No task with this id exists in this queue (it never did, or it is gone)."""

    def __init__(self, task_id: str, queue: str) -> None:
        super().__init__(f"no task {task_id!r} in queue {queue!r}")
        self.task_id = task_id
        self.queue = queue


class TaskStateConflict(TickrError):
    """The task exists, but its state does not allow the operation.

    An active task cannot be deleted or archived by hand (cancel it), a completed one
    cannot be run again, and so on.
    """

    def __init__(self, task_id: str, queue: str, state: str, operation: str) -> None:
        super().__init__(f"cannot {operation} task {task_id!r} in {queue!r}: it is {state}")
        self.task_id = task_id
        self.queue = queue
        self.state = state


class QueueNotEmpty(TickrError):
    """A queue that still has tasks was to be deleted without `force`."""

    def __init__(self, queue: str, tasks: int) -> None:
        super().__init__(f"queue {queue!r} still has {tasks} task(s)")
        self.queue = queue
        self.tasks = tasks


class ServerNotFound(TickrError, KeyError):
    """No live server has this id."""

    def __init__(self, server_id: str) -> None:
        super().__init__(f"no live server has the id {server_id!r}")
        self.server_id = server_id

    def __str__(self) -> str:
        return str(self.args[0])


class EntryNotFound(TickrError, KeyError):
    """No live scheduler runs a periodic task with this entry id."""

    def __init__(self, entry_id: str) -> None:
        super().__init__(f"no live scheduler runs an entry {entry_id!r}")
        self.entry_id = entry_id

    def __str__(self) -> str:
        return str(self.args[0])


class QueueNotFound(TickrError):
    """No queue with this name exists in the namespace."""

    def __init__(self, queue: str) -> None:
        super().__init__(f"no queue named {queue!r}")
        self.queue = queue


class TaskFailed(TickrError):
    """The task was archived: it failed for the last time, was skipped or cancelled."""

    def __init__(self, task_id: str, queue: str, last_error: str | None) -> None:
        super().__init__(f"task {task_id!r} in {queue!r} failed: {last_error or 'unknown error'}")
        self.task_id = task_id
        self.queue = queue
        self.last_error = last_error


class SkipRetry(TickrError):
    """Raise from a handler to archive the task at once instead of retrying it."""


class RedisUnavailable(TickrError, ConnectionError):
    """Redis could not be reached, or the connection broke, after Tickr's own retries."""
