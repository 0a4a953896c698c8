"""The heartbeat: takes back expired leases, and renews this server's when no thread does.

Every `interval` seconds, in one round trip, it takes back in each of its queues the
tasks whose lease ran out (their server died, froze or lost its network): they return to
retry with the error "worker lost", or go to the archive when out of retries.  A task is
therefore back in play at most `lease + interval` after its server stopped renewing.
Leases are normally renewed by the LeaseKeeper thread (lease_keeper.py); when the
connection cannot be reproduced for a thread, this loop renews them too.

The renewal reply names tasks this server no longer holds (another server recovered
them) and tasks whose cancellation was requested while the pub/sub notice was missed;
both are stopped.  `health_check` hears the outcome of each beat.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final

from tickr import _observe as observe
from tickr._aio import call_hook
from tickr._broker import Broker, HeartbeatReport
from tickr._server.context import ServerContext
from tickr._server.failures import log_failure
from tickr._server.job import StopReason
from tickr._server.part import Loop
from tickr._server.processor import Processor
from tickr._time import utc_day

__all__ = ["HealthCheck", "Heartbeat"]

logger = logging.getLogger("tickr.server.heartbeat")

CLOCK_READING_EVERY: Final = 10.0
"""Seconds between readings of Redis' time (it follows Redis if Redis' clock is set)."""

HealthCheck = Callable[[BaseException | None], Any]
"""``(exc | None) -> None``, sync or async: the beat's Redis error, or None when healthy."""


class Heartbeat(Loop):
    """Renews and recovers leases every `ctx.interval` seconds.

    Args:
        ctx: The server's context: its queues are searched for expired leases, its
            held jobs renewed, its waiter registrations extended (see handoff.py).
        processor: Stops the jobs this server lost.
        health_check: Called after each beat with its Redis error, or None.
        renew: Also renew this server's leases (when no LeaseKeeper thread does).
        record: Builds this server's registry record, refreshed every beat with an
            expiry of three intervals (so a dead server drops out of the registry).
        other_failure: The current failure of another part (a restarted loop, the lease
            thread), reported to `health_check` when the beat itself succeeded.
    """

    kind = "heartbeat"

    def __init__(
        self,
        ctx: ServerContext,
        processor: Processor,
        *,
        health_check: HealthCheck | None,
        renew: bool,
        record: Callable[[], bytes],
        other_failure: Callable[[], BaseException | None],
    ) -> None:
        self._broker: Broker = ctx.broker
        self._processor = processor
        self._held = ctx.held
        self._owner = ctx.owner
        self._queues = ctx.names
        self._interval = ctx.interval
        self._lease_ms = ctx.lease_ms
        self._archive_max_size = ctx.archive_max_size
        self._archive_max_age_ms = ctx.archive_max_age_ms
        self._health_check = health_check
        self._renew = renew
        self._record = record
        self._other_failure = other_failure
        self._waiter = ctx.waiter
        self._waiter_ttl_ms = ctx.waiter_ttl_ms

    async def run(self) -> None:
        """Beat until cancelled."""
        while True:
            error: BaseException | None = None
            try:
                await self.beat()
            except Exception as exc:  # noqa: BLE001 - the heartbeat must outlive any failure
                error = exc
                log_failure(logger, "beat", exc, self._interval)
            if error is None:
                error = self._other_failure()
            await self._report(error)
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        """Stop beating, and leave the registry of servers."""
        await super().stop()
        try:
            await self._broker.unregister("server", self._owner)
        except Exception as exc:  # noqa: BLE001 - the record expires by itself anyway
            logger.info("could not remove this server from the registry (%s)", exc)

    async def beat(self) -> None:
        """Renew every held lease, stop the jobs this server lost, recover expired ones."""
        held: dict[str, list[str]] = {}
        if self._renew:
            for queue, task_id in list(self._held):
                held.setdefault(queue, []).append(task_id)
        if self._broker.clock.age() > CLOCK_READING_EVERY:
            await self._broker.read_clock()
        now = self._broker.clock.now_ms()
        report = await self._broker.heartbeat(
            self._owner,
            now + self._lease_ms,
            held,
            self._queues,
            now_ms=now,
            day=utc_day(now),
            archive_max_size=self._archive_max_size,
            archive_max_age_ms=self._archive_max_age_ms,
            waiter=self._waiter,
            wait_until_ms=now + self._waiter_ttl_ms,
        )
        ttl_ms = int(self._interval * 3000)
        await self._broker.register(
            "server", self._owner, self._record(), now, ttl_ms, self._queues
        )
        self._act_on(report)
        if report.failed:
            queue, failure = next(iter(report.failed.items()))
            raise type(failure)(
                f"the heartbeat failed in {sorted(report.failed)} (the other queues are "
                f"served): {queue!r}: {failure}"
            )

    def _act_on(self, report: HeartbeatReport) -> None:
        for queue, task_ids in report.lost.items():
            for task_id in task_ids:
                if self._processor.stop_job(queue, task_id, StopReason.LEASE_LOST):
                    logger.warning(
                        "lost the lease of task %s in %r; stopped it",
                        task_id,
                        queue,
                        extra=self._processor.log_fields(queue, task_id),
                    )
        for queue, task_ids in report.cancelled.items():
            for task_id in task_ids:
                self._processor.stop_job(queue, task_id, StopReason.CANCELLED)
        for queue, count in report.unreceived.items():
            if count:
                logger.info(
                    "%d task(s) of %r handed to a server that never took them: pending again",
                    count,
                    queue,
                )
        for queue, (retried, archived) in report.recovered.items():
            if retried or archived:
                logger.info(
                    "recovered %d task(s) of %r whose server stopped renewing its lease "
                    "(%d to retry, %d archived)",
                    retried + archived,
                    queue,
                    retried,
                    archived,
                )
                for _ in range(retried + archived):  # as Redis counts them: here
                    observe.attempt_ended(queue, "", "lost", None)

    async def _report(self, error: BaseException | None) -> None:
        await call_hook(self._health_check, (error,), logger, "health_check raised")
