"""Queues set aside after a failed call, each for its own backoff.

On a Redis Cluster the queues of one server may live on several nodes; when one node
fails, only its queues' calls fail.  The loops that call Redis per queue (the fetcher,
the finisher) set those queues aside here and keep serving the others, retrying each
sick queue when its own backoff has passed.
"""

from __future__ import annotations

import time

from tickr._aio import Backoff

__all__ = ["Quarantine"]


class Quarantine:
    """The queues whose latest call failed, and when each may be tried again."""

    __slots__ = ("_backoffs", "_until")

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._backoffs: dict[str, Backoff] = {}

    def __bool__(self) -> bool:
        return bool(self._until)

    def failed(self, queue: str) -> float:
        """A call of `queue` failed: set it aside; returns for how many seconds."""
        backoff = self._backoffs.get(queue)
        if backoff is None:
            backoff = self._backoffs[queue] = Backoff()
        delay = backoff.next()
        self._until[queue] = time.monotonic() + delay
        return delay

    def recovered(self, queue: str) -> None:
        """A call of `queue` succeeded: it is healthy again."""
        if queue in self._until:
            del self._until[queue]
            del self._backoffs[queue]

    def ready(self, queue: str) -> bool:
        """Whether `queue` may be called now (healthy, or its pause has passed)."""
        until = self._until.get(queue)
        return until is None or until <= time.monotonic()

    def next_ready_in(self) -> float | None:
        """Seconds until the next sick queue may be tried; None when none is sick."""
        if not self._until:
            return None
        return max(0.0, min(self._until.values()) - time.monotonic())
