"""Plain value objects returned by the public API.

This module imports nothing from the package; every class here is an immutable record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Any, Final, Literal, get_args

__all__ = [
    "TASK_STATES",
    "AuditEntry",
    "DailyStats",
    "MinuteStats",
    "QueueInfo",
    "RateLimit",
    "SchedulerEntry",
    "SchedulerEvent",
    "ServerInfo",
    "TaskInfo",
    "TaskSearch",
    "TaskState",
]

TaskState = Literal["pending", "active", "scheduled", "retry", "archived", "completed"]
"""The states a task moves through; see docs/architecture.md for the transitions."""

TASK_STATES: Final[tuple[TaskState, ...]] = get_args(TaskState)
"""Every task state, in the order of `TaskState`: the one list that all of Tickr uses."""


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """A snapshot of one task, as stored in Redis when it was read.

    Attributes:
        id: The task id, unique within its queue.
        type: The task type that selects the handler.
        payload: The decoded payload.
        queue: The queue the task belongs to.
        state: One of `TASK_STATES`.
        priority: Higher runs first within the queue.
        max_retry: Retries allowed after the first attempt.
        retried: Retries done so far.
        last_error: The error of the latest failed attempt, if any.
        timeout: Seconds allowed per attempt, or None for no limit.
        deadline: The absolute deadline, or None.
        next_process_at: When the task becomes (or became) runnable; None once it is
            active, completed or archived.
        completed_at: When the task completed, for completed tasks.
        result: The handler's return value, for completed tasks kept with a retention.
        enqueued_at: When the task was enqueued.
        retention: Seconds a completed task and its result are kept.
        headers: The string metadata given at enqueue, read-only (empty when none).
        last_failed_at: When the latest failed attempt ended (or an operator archived
            the task), if one did.
        lane: Its lane within the queue, if it was given one.
    """

    id: str
    type: str
    payload: Any
    queue: str
    state: TaskState
    priority: int = 0
    max_retry: int = 25
    retried: int = 0
    last_error: str | None = None
    timeout: float | None = None
    deadline: datetime | None = None
    next_process_at: datetime | None = None
    completed_at: datetime | None = None
    result: Any = None
    enqueued_at: datetime | None = None
    retention: float = 0.0
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    last_failed_at: datetime | None = None
    lane: str | None = None


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A queue's rate limit: at most `burst` + `limit` * t / `period` starts in any t seconds.

    Attributes:
        limit: Starts allowed per period, across every server.
        period: The period, in seconds.
        burst: Starts allowed at once after a quiet time (1: evenly spaced).
        per_lane: Whether the limit applies to each lane of the queue separately.
    """

    limit: int
    period: float = 1.0
    burst: int = 1
    per_lane: bool = False


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """Sizes and counters of one queue.

    Attributes:
        queue: The queue name.
        pending, active, scheduled, retry, archived, completed: Tasks in each state.
        processed: Attempts finished today (UTC), successful or not.
        failed: Attempts failed today (UTC).
        paused: Whether servers skip this queue.
        latency: Seconds since the task that runs next was enqueued (0 when nothing is
            pending).
        size: Tasks in all states together.
        memory: Approximate bytes used by the queue: its sets, plus a few sampled task
            records scaled to the number of tasks.
        rate_limit: Its rate limit, if it has one (`Inspector.set_rate_limit`).
        concurrency_limit: How many of its tasks may be active at once across every
            server, if it is limited (`Inspector.set_concurrency_limit`).
        concurrency_per_lane: Whether that limit applies to each lane separately.
        lanes: How many lanes have pending tasks (the tasks without a lane not counted).
    """

    queue: str
    pending: int = 0
    active: int = 0
    scheduled: int = 0
    retry: int = 0
    archived: int = 0
    completed: int = 0
    processed: int = 0
    failed: int = 0
    paused: bool = False
    latency: float = 0.0
    size: int = 0
    memory: int = 0
    rate_limit: RateLimit | None = None
    concurrency_limit: int | None = None
    concurrency_per_lane: bool = False
    lanes: int = 0


@dataclass(frozen=True, slots=True)
class DailyStats:
    """Processed and failed attempts of one queue on one UTC day."""

    queue: str
    day: date
    processed: int
    failed: int


@dataclass(frozen=True, slots=True)
class MinuteStats:
    """Processed and failed attempts of one queue in one minute.

    Attributes:
        queue: The queue.
        minute: The minute's start, an aware UTC datetime.
        processed: Attempts that ended in that minute (completed, failed, retried,
            archived, or taken back from a dead server).
        failed: Those of them that did not complete.
    """

    queue: str
    minute: datetime
    processed: int
    failed: int


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """A running Server as it registered itself in Redis."""

    id: str
    host: str
    pid: int
    queues: dict[str, int]
    concurrency: int
    strict_priority: bool
    started_at: datetime
    active_tasks: list[tuple[str, str]] = field(default_factory=list)
    """(queue, task id) of every task the server held (running, or fetched and about to
    run) at its last heartbeat."""
    workers_alive: int | None = None
    """Worker coroutines running at its last heartbeat (`concurrency` when healthy; one
    that failed is restarted); None for a server of a version that did not say."""
    restarts: dict[str, int] = field(default_factory=dict)
    """Kind of part ("worker", "fetcher", "heartbeat"...) -> times it ended unexpectedly
    and was restarted since the server started."""
    last_heartbeat_at: datetime | None = None
    """When it last wrote this record, by its own clock; None for a server of a version
    that did not say."""


@dataclass(frozen=True, slots=True)
class SchedulerEntry:
    """A periodic task run by the live schedulers.

    Attributes:
        id: The entry id.
        spec: The cron expression, descriptor or ``@every`` duration.
        type: The task type enqueued on each tick.
        payload: The task payload.
        queue: The queue the tasks go to.
        next_run_at: The next tick.
        prev_run_at: The latest tick enqueued (by any scheduler); None until one was.
        timezone: The timezone of the spec.
        schedulers: Ids of the schedulers that run this entry.
    """

    id: str
    spec: str
    type: str
    payload: Any
    queue: str
    next_run_at: datetime | None
    prev_run_at: datetime | None
    timezone: str = "UTC"
    schedulers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SchedulerEvent:
    """One tick of a periodic task, as recorded when it was enqueued.

    Attributes:
        entry_id: The entry.
        tick_at: The tick.
        enqueued_at: When a scheduler enqueued it.
        task_id: The id of the task enqueued.
        outcome: "pending", "scheduled", "duplicate" (an equal unique task was live) or
            "conflict" (the task id was taken).
    """

    entry_id: str
    tick_at: datetime
    enqueued_at: datetime
    task_id: str
    outcome: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change made through the HTTP app (or recorded with `Inspector.record_audit`).

    Attributes:
        id: The entry's id in the audit stream ("<ms>-<n>"), a cursor for older entries.
        time: When Redis recorded it.
        actor: The name of the token that asked.
        address: The client's address.
        action: What was asked ("task.submit", "task.cancel", "queue.pause"...).
        queue: The queue it touched, if any.
        task_id: The task it touched, if any.
        status: The HTTP status answered (2xx done, 4xx refused).
        detail: Why it was refused, or what was done; may be empty.
    """

    id: str
    time: datetime
    actor: str
    address: str
    action: str
    queue: str | None = None
    task_id: str | None = None
    status: int = 200
    detail: str = ""


@dataclass(frozen=True, slots=True)
class TaskSearch:
    """A bounded step of `Inspector.find_tasks`: the matches and where to go on.

    Attributes:
        tasks: The tasks that matched, in the state's list order.
        scanned: How many tasks this step looked at.
        next_cursor: The cursor of the next step; None when the state has no more tasks.
    """

    tasks: list[TaskInfo]
    scanned: int
    next_cursor: int | None
