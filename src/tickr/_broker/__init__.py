"""The Redis layer: the only part of Tickr that talks to Redis.

`Broker` performs every state change of a task as one Lua script (kept in ``lua/``),
`keys` names every key, and `events` turns pub/sub notifications into events.
"""

from tickr._broker.broker import Broker
from tickr._broker.connection import RedisClient, resolve_url
from tickr._broker.events import Event, EventKind, EventListener, EventSink
from tickr._broker.keys import HANDED_WINDOW_LEASES
from tickr._broker.sync_renewer import SyncRenewer
from tickr._broker.types import (
    OP_ARCHIVE,
    OP_COMPLETE,
    OP_REQUEUE,
    OP_RETRY,
    CronTick,
    DailyCounts,
    Dequeued,
    DequeuedTask,
    Enqueued,
    EnqueueItem,
    EnqueueOutcome,
    FinishOp,
    HandedTask,
    HeartbeatReport,
    LeftWaiters,
    QueueOverview,
    QueueStats,
    WatchedTask,
    enqueued,
)

__all__ = [
    "HANDED_WINDOW_LEASES",
    "OP_ARCHIVE",
    "OP_COMPLETE",
    "OP_REQUEUE",
    "OP_RETRY",
    "Broker",
    "CronTick",
    "DailyCounts",
    "Dequeued",
    "DequeuedTask",
    "EnqueueItem",
    "EnqueueOutcome",
    "Enqueued",
    "Event",
    "EventKind",
    "EventListener",
    "EventSink",
    "FinishOp",
    "HandedTask",
    "HeartbeatReport",
    "LeftWaiters",
    "QueueOverview",
    "QueueStats",
    "RedisClient",
    "SyncRenewer",
    "WatchedTask",
    "enqueued",
    "resolve_url",
]
