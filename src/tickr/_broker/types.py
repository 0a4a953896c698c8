"""The values that cross the broker's boundary: what callers send and what calls return.

A leaf module: it imports nothing else from Tickr.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, TypeAlias

__all__ = [
    "OP_ARCHIVE",
    "OP_COMPLETE",
    "OP_REQUEUE",
    "OP_RETRY",
    "DequeuedTask",
    "EnqueueItem",
    "EnqueueOutcome",
    "FinishOp",
    "HeartbeatReport",
]

EnqueueItem: TypeAlias = tuple[str, bytes, int, int, str, int, int, str]
"""(id, msg, priority, due ms or 0, unique digest or '', unique ttl ms, max retries)."""

EnqueueOutcome: TypeAlias = int | str
"""1 pending, 2 scheduled, 0 id taken; a str is the id of the live equal (unique) task."""

DequeuedTask: TypeAlias = tuple[str, bytes | None, int]
"""(id, msg or None when the task hash is missing, retries done)."""

FinishOp: TypeAlias = tuple[bytes, str, int, bytes, int]
"""(op, id, number, text, retries done): see lua/finish.lua for the four ops."""

OP_COMPLETE: Final = b"c"
OP_RETRY: Final = b"r"
OP_ARCHIVE: Final = b"a"
OP_REQUEUE: Final = b"q"


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
