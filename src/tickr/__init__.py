"""Tickr: an embeddable asyncio task queue on Redis.

The public surface, all importable from ``tickr``::

    Client, TaskSpec                 enqueue, read back, wait for and cancel tasks
    ServeMux, Task                   route task types to async handlers (with middleware)
    Server                           run handlers: retries, timeouts, graceful shutdown
    Inspector                        read and steer queues and tasks
    Scheduler, PeriodicTask          enqueue tasks on cron and @every schedules
    exponential_backoff, constant_delay     retry delays
    TaskInfo, QueueInfo, DailyStats, ServerInfo, SchedulerEntry    values
    TickrError and its subclasses    errors (see tickr.errors)
"""

from tickr import logs as logs
from tickr._options import TaskSpec
from tickr.autoscale import Autoscale
from tickr.backoff import RetryDelay, constant_delay, exponential_backoff
from tickr.client import Client
from tickr.errors import (
    DuplicateTask,
    EntryNotFound,
    QueueNotEmpty,
    QueueNotFound,
    RedisUnavailable,
    ServerNotFound,
    SkipRetry,
    TaskFailed,
    TaskIDConflict,
    TaskNotFound,
    TaskStateConflict,
    TickrError,
)
from tickr.inspector import Inspector
from tickr.mux import CallNext, Handler, Middleware, ServeMux
from tickr.scheduler import PeriodicTask, Scheduler
from tickr.server import Server
from tickr.sync_client import SyncClient
from tickr.task import Task
from tickr.values import (
    AuditEntry,
    DailyStats,
    MinuteStats,
    QueueInfo,
    RateLimit,
    SchedulerEntry,
    SchedulerEvent,
    ServerInfo,
    TaskInfo,
    TaskSearch,
    TaskState,
)

__version__ = "0.1.0"

__all__ = [
    "AuditEntry",
    "Autoscale",
    "CallNext",
    "Client",
    "DailyStats",
    "DuplicateTask",
    "EntryNotFound",
    "Handler",
    "Inspector",
    "Middleware",
    "MinuteStats",
    "PeriodicTask",
    "QueueInfo",
    "QueueNotEmpty",
    "QueueNotFound",
    "RateLimit",
    "RedisUnavailable",
    "RetryDelay",
    "Scheduler",
    "SchedulerEntry",
    "SchedulerEvent",
    "ServeMux",
    "Server",
    "ServerInfo",
    "ServerNotFound",
    "SkipRetry",
    "SyncClient",
    "Task",
    "TaskFailed",
    "TaskIDConflict",
    "TaskInfo",
    "TaskNotFound",
    "TaskSearch",
    "TaskSpec",
    "TaskState",
    "TaskStateConflict",
    "TickrError",
    "__version__",
    "constant_delay",
    "exponential_backoff",
]
