"""The forwarder: moves scheduled and retry tasks to pending when they fall due.

It moves whatever is due, learns the earliest due time left, and sleeps until then.  A
task enqueued (or failed) with an earlier due time, by any process, publishes a wake-up,
so the forwarder re-plans at once.  After downtime every overdue task moves at once, a
bounded batch per script call.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from tickr._aio import Backoff, wait_event
from tickr._broker import Broker
from tickr._server.context import ServerContext
from tickr._server.failures import log_failure
from tickr._server.part import Loop

__all__ = ["Forwarder"]

logger = logging.getLogger("tickr.server.forwarder")

BATCH: Final = 1000
"""Most tasks moved per set and queue in one script call."""
SAFETY_RECHECK_SECONDS: Final = 30.0


class Forwarder(Loop):
    """Moves due tasks of the server's queues to pending."""

    kind = "forwarder"

    def __init__(self, ctx: ServerContext) -> None:
        self._broker: Broker = ctx.broker
        self._queues = ctx.names
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Re-read the due times now (an earlier task was added, or events may be lost)."""
        self._wake.set()

    async def run(self) -> None:
        """Forward until cancelled."""
        backoff = Backoff()
        while True:
            self._wake.clear()
            try:
                sleep_for = await self.forward_due()
                backoff.reset()
            except Exception as exc:  # noqa: BLE001 - the forwarder must outlive any failure
                sleep_for = backoff.next()
                log_failure(logger, "move due tasks", exc, sleep_for)
            if sleep_for > 0:
                await wait_event(self._wake, sleep_for)

    async def forward_due(self) -> float:
        """Move every due task; returns the seconds until the next one falls due."""
        while True:
            now = self._broker.clock.now_ms()
            report = await self._broker.forward(self._queues, now, BATCH)
            if any(moved >= BATCH for moved, _ in report.values()):
                continue  # more may be due already
            moved_total = sum(moved for moved, _ in report.values())
            if moved_total:
                logger.debug("moved %d due tasks to pending", moved_total)
            earliest = [due for _, due in report.values() if due is not None]
            if not earliest:
                return SAFETY_RECHECK_SECONDS
            return min(SAFETY_RECHECK_SECONDS, max(0.0, (min(earliest) - now) / 1000))
