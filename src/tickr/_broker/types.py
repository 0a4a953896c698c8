"""The values that cross the broker's boundary: what callers send and what calls return.

A leaf module: it imports nothing else from Tickr but its errors.  The tuples sent to a
script keep the order of the script's fields (msgpack packs a NamedTuple as an array), so positional
construction and unpacking keep working.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from tickr.errors import TickrError

__all__ = [
    "OP_ARCHIVE",
    "OP_COMPLETE",
    "OP_REQUEUE",
    "OP_RETRY",
    "CronTick",
    "DailyCounts",
    "Dequeued",
    "DequeuedTask",
    "EnqueueItem",
    "EnqueueOutcome",
    "Enqueued",
    "FinishOp",
    "HandedTask",
    "HeartbeatReport",
    "LeftWaiters",
    "QueueStats",
    "WatchedTask",
    "enqueued",
]


class EnqueueItem(NamedTuple):
    """One task for enqueue.lua and cron_tick.lua (see lua/lib/enqueue_task.lua)."""

    id: str
    msg: bytes
    priority: int
    due_ms: int
    """When it may run; 0 for now."""
    unique_digest: str
    """The digest of its unique lock; '' for none."""
    unique_ttl_ms: int
    max_retry: int
    token: str
    """The token of the call that chose the id; '' for a fresh random id."""
    lane: str = ""
    """Its lane; '' for none."""


class EnqueueOutcome(enum.Enum):
    """What became of a task sent to be enqueued; the value is how the Inspector names it."""

    PENDING = "pending"
    SCHEDULED = "scheduled"
    ID_TAKEN = "conflict"
    """Its id is taken by a different task."""
    DUPLICATE = "duplicate"
    """An equal unique task is live."""


class Enqueued(NamedTuple):
    """An enqueue's outcome for one task."""

    outcome: EnqueueOutcome
    live_id: str | None = None
    """For DUPLICATE: the id of the live equal task (None when unknown)."""


_BY_CODE: Final = {
    1: Enqueued(EnqueueOutcome.PENDING),
    2: Enqueued(EnqueueOutcome.SCHEDULED),
    0: Enqueued(EnqueueOutcome.ID_TAKEN),
}


def enqueued(reply: object) -> Enqueued:
    """Decode the outcome code of lua/lib/enqueue_task.lua (a reply, or a history event).

    1 pending, 2 scheduled, 0 id taken; anything else is the id of the live equal task.
    """
    try:
        return _BY_CODE[reply]  # type: ignore[index]
    except (KeyError, TypeError):
        pass
    live_id = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    return Enqueued(EnqueueOutcome.DUPLICATE, live_id or None)


class CronTick(NamedTuple):
    """What `cron_tick` did."""

    claimed: bool
    """Whether this call claimed the tick (else another scheduler had)."""
    outcome: Enqueued | None
    """The enqueue's outcome when claimed, else None."""
    last_tick_ms: int
    """The entry's last claimed tick."""


class DequeuedTask(NamedTuple):
    """A task taken to run."""

    id: str
    msg: bytes | None
    """None when the task's record is missing."""
    retried: int
    """Retries done before this attempt."""
    ready_ms: int = 0
    """When the task became runnable (its due time), 0 when that was its enqueue."""


class Dequeued(list[DequeuedTask]):
    """The tasks one dequeue took, and whether a flow-control limit held more back.

    Attributes:
        hold_ms: 0 when no limit held tasks back; > 0 the ms until the queue's rate
            limit allows the next start; < 0 its concurrency limit is full, and -hold_ms
            is the ms until its earliest live lease expires (a finished task wakes a
            waiting server sooner).
    """

    def __init__(self, tasks: Iterable[DequeuedTask] = (), hold_ms: int = 0) -> None:
        super().__init__(tasks)
        self.hold_ms = hold_ms


class HandedTask(NamedTuple):
    """A task handed to an idle server, and its queue."""

    queue: str
    task: DequeuedTask


class LeftWaiters(NamedTuple):
    """What `leave_waiters` found."""

    handed: list[HandedTask]
    """The tasks taken from the inboxes."""
    used: list[str]
    """Queues whose registration was gone (used by a hand-off, or lapsed) while their
    inbox had nothing left."""
    failed: list[str]
    """Queues whose node could not be reached (on a Cluster): their registration may
    remain until it lapses, and what is handed there comes through the inbox."""


OP_COMPLETE: Final = b"c"
OP_RETRY: Final = b"r"
OP_ARCHIVE: Final = b"a"
OP_REQUEUE: Final = b"q"


class FinishOp(NamedTuple):
    """One outcome for finish.lua (see lua/finish.lua for the four ops)."""

    op: bytes
    """OP_COMPLETE, OP_RETRY, OP_ARCHIVE or OP_REQUEUE."""
    id: str
    number: int
    """Retention ms (complete), due time ms (retry), else 0."""
    text: bytes
    """The result (complete), the error (retry, archive), else empty."""
    retried: int
    """Retries done when the attempt started: the op applies only to that attempt."""


@dataclass(slots=True)
class HeartbeatReport:
    """What a heartbeat found, per queue."""

    lost: dict[str, list[str]] = field(default_factory=dict)
    """Tasks the server no longer holds: it must stop them and report nothing."""
    cancelled: dict[str, list[str]] = field(default_factory=dict)
    """Tasks whose cancellation was requested."""
    recovered: dict[str, tuple[int, int]] = field(default_factory=dict)
    """(retried, archived) tasks of other servers whose lease had run out."""
    unreceived: dict[str, int] = field(default_factory=dict)
    """Tasks handed to a server that never took them: back to pending, not counted."""
    earliest_lease_ms: int | None = None
    """The earliest lease expiry left in the queues, if any task is active."""
    failed: dict[str, TickrError] = field(default_factory=dict)
    """Queues whose calls failed (on a Cluster: their node cannot serve), and why."""


class DailyCounts(NamedTuple):
    """A queue's counters of one day."""

    processed: int
    failed: int


class QueueStats(NamedTuple):
    """What `queue_stats` read in one round trip."""

    sizes: dict[str, int]
    """As `queue_sizes`: tasks per state, and "paused" (0/1)."""
    daily: list[DailyCounts]
    """One per day asked for, in order."""
    next_id: bytes | None
    """The id of the task that runs next; None when nothing is pending."""


class QueueOverview(NamedTuple):
    """What `queue_overview` read of one queue."""

    sizes: dict[str, int]
    """As `queue_sizes`: tasks per state, and "paused" (0/1)."""
    today: DailyCounts
    """Today's processed and failed."""
    next_task: dict[str, bytes] | None
    """The fields of the task that runs next (its msg among them); None when none."""
    limits: dict[str, str]
    """The fields of its limits hash that are set (see keys.py)."""


class WatchedTask(NamedTuple):
    """A task's state and outcome, as `watch_result` reads it."""

    state: str
    result: bytes | None
    error: bytes | None
