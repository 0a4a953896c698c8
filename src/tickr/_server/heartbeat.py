"""The heartbeat: keeps the leases of held tasks alive and reports health.

Every `interval` seconds it extends the lease of every task this server holds, per
queue in one script call.  The reply names tasks this server no longer holds (another
server recovered them after the lease ran out) and tasks whose cancellation was
requested while the pub/sub notice was missed; both are stopped.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from tickr._broker import Broker
from tickr._server.job import StopReason
from tickr._server.processor import Processor
from tickr._time import now_ms
from tickr.errors import RedisUnavailable

__all__ = ["HealthCheck", "Heartbeat"]

logger = logging.getLogger("tickr.server.heartbeat")

HealthCheck = Callable[[BaseException | None], Any]
"""``(exc | None) -> None``, sync or async: the last Redis error, or None when healthy."""


class Heartbeat:
    """Renews leases every `interval` seconds.

    Args:
        broker: Where the leases are.
        processor: Whose held jobs to renew and stop.
        owner: This server's id.
        interval: Seconds between renewals.
        lease_ms: Length of a renewed lease.
        health_check: Called after each beat with its Redis error, or None.
    """

    def __init__(
        self,
        broker: Broker,
        processor: Processor,
        *,
        owner: str,
        interval: float,
        lease_ms: int,
        health_check: HealthCheck | None,
    ) -> None:
        self._broker = broker
        self._processor = processor
        self._owner = owner
        self._interval = interval
        self._lease_ms = lease_ms
        self._health_check = health_check

    async def run(self) -> None:
        """Beat until cancelled."""
        while True:
            await asyncio.sleep(self._interval)
            error: BaseException | None = None
            try:
                await self.beat()
            except RedisUnavailable as exc:
                error = exc
                logger.warning("could not renew task leases: %s", exc)
            await self._report(error)

    async def beat(self) -> None:
        """Renew every held lease once and stop the jobs this server lost.

        With no task held it only checks that Redis answers.
        """
        by_queue: dict[str, list[str]] = {}
        for queue, task_id in list(self._processor.held):
            by_queue.setdefault(queue, []).append(task_id)
        if not by_queue:
            await self._broker.ping()
            return
        expiry = now_ms() + self._lease_ms
        for queue, task_ids in by_queue.items():
            lost, cancelled = await self._broker.renew(queue, self._owner, expiry, task_ids)
            for task_id in lost:
                if self._processor.stop(queue, task_id, StopReason.LEASE_LOST):
                    logger.warning("lost the lease of task %s in %r; stopped it", task_id, queue)
            for task_id in cancelled:
                self._processor.stop(queue, task_id, StopReason.CANCELLED)

    async def _report(self, error: BaseException | None) -> None:
        if self._health_check is None:
            return
        try:
            outcome = self._health_check(error)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            logger.exception("health_check raised")
