"""The lease keeper: renews this server's leases from a thread, and notices a blocked loop.

A handler that blocks the event loop (heavy CPU work, a synchronous call) stops every
coroutine of the server, the heartbeat included.  Were leases renewed on the loop, a
block longer than the lease would let another server take the task and run it a second
time.  So a thread with a connection of its own renews them every `interval` seconds,
whatever the loop does.

The thread also watches the loop: a callback on the loop marks the time twice a second,
and when the mark is older than `blocked_after` the thread logs a warning naming the
task whose handler is running, once per blocking episode.

Replies that concern the loop (a task was lost to another server, or its cancellation
was requested) are handed to it with `call_soon_threadsafe`; they take effect when the
loop runs again.  While the loop is stuck, tasks handed to the server wait unread in a
BLPOP reply; the thread then also renews the leases of recent hand-offs.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Final

from tickr._broker import HANDED_WINDOW_LEASES, SyncRenewer
from tickr._server.context import ServerContext
from tickr._server.job import StopReason
from tickr._server.processor import Processor
from tickr._server.supervisor import Supervisor
from tickr.errors import RedisUnavailable

__all__ = ["LeaseKeeper"]

logger = logging.getLogger("tickr.server.leases")

TICK_SECONDS: Final = 0.5
_LOOP_LATE: Final = 1.5 * TICK_SECONDS
LAG_WINDOW: Final = 15.0
"""Seconds for which `LeaseKeeper.loop_lag` remembers the loop's worst lateness, so that
a scrape every 15 s sees every block."""
"""A loop whose tick is this late is stuck: handed tasks may wait unread."""


class LeaseKeeper:
    """Renews held leases from a daemon thread.

    It renews every `ctx.interval` seconds, and counts the loop as blocked after
    `max(1 s, ctx.interval)` without a tick.

    Args:
        ctx: The server's context: whose held jobs to renew (read from the thread: only
            snapshots of the dicts are taken, which CPython makes atomic).
        renewer: The thread's own Redis connection.
        processor: Stops jobs (on the loop); names the task blocking it.
    """

    def __init__(self, ctx: ServerContext, renewer: SyncRenewer, processor: Processor) -> None:
        self._renewer = renewer
        self._processor = processor
        self._held = ctx.held
        self._owner = ctx.owner
        self._queues = ctx.names
        self._lease_ms = ctx.lease_ms
        self._interval = ctx.interval
        self._blocked_after = max(1.0, ctx.interval)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tick = time.monotonic()
        self._peak_lag = 0.0
        self._peak_at = 0.0
        self._tick_handle: asyncio.TimerHandle | None = None
        self._blocked_since: float | None = None
        self.failure: BaseException | None = None
        """The error of the latest renewal, or None when it succeeded."""

    def start(self, supervisor: Supervisor) -> None:
        """Start ticking on the running loop and renewing from the thread.

        The thread is not supervised: a failed renewal is retried at the next interval,
        and reported to `health_check` (`failure`).
        """
        self._loop = asyncio.get_running_loop()
        self._mark()
        self._thread = threading.Thread(target=self._run, name="tickr-leases", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop the thread, wait for it to end (within one interval), close its connection."""
        self._stop.set()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        thread = self._thread
        if thread is not None:
            await asyncio.to_thread(thread.join)
        self._renewer.close()

    def _mark(self) -> None:
        assert self._loop is not None
        now = time.monotonic()
        lag = max(0.0, now - self._tick - TICK_SECONDS)
        if lag >= self._peak_lag or now - self._peak_at > LAG_WINDOW:
            self._peak_lag, self._peak_at = lag, now
        self._tick = now
        self._tick_handle = self._loop.call_later(TICK_SECONDS, self._mark)

    def loop_lag(self) -> float:
        """Seconds the event loop ran late lately (read from any thread).

        The most its timer ran late, or its silence seen by the lease thread, in the last
        `LAG_WINDOW` seconds; or how long it has been blocked now, if longer.  A block
        shows at least its length less `TICK_SECONDS`.
        """
        now = time.monotonic()
        recent = self._peak_lag if now - self._peak_at <= LAG_WINDOW else 0.0
        return max(recent, now - self._tick - TICK_SECONDS)

    # In the thread ----------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._watch_loop()
            try:
                self._renew()
                if time.monotonic() - self._tick > _LOOP_LATE:
                    self._renew_handed()
                self.failure = None
            except RedisUnavailable as exc:
                self.failure = exc
                logger.warning("could not renew task leases: %s", exc)
            except Exception as exc:
                self.failure = exc
                logger.exception("renewing task leases failed")

    def _renew(self) -> None:
        held: dict[str, list[str]] = {}
        for queue, task_id in tuple(self._held):
            held.setdefault(queue, []).append(task_id)
        if not held:
            return
        report = self._renewer.renew(
            self._owner, self._renewer.clock.now_ms() + self._lease_ms, held
        )
        for queue, problem in self._renewer.failed.items():
            logger.warning("could not renew the leases of %r: %s", queue, problem)
        loop = self._loop
        assert loop is not None
        for queue, (lost, cancelled) in report.items():
            for task_id in lost:
                loop.call_soon_threadsafe(self._lost, queue, task_id)
            for task_id in cancelled:
                loop.call_soon_threadsafe(
                    self._processor.stop_job, queue, task_id, StopReason.CANCELLED
                )

    def _renew_handed(self) -> None:
        """Keep the leases of tasks handed over while the loop is stuck.

        They wait in a reply the loop cannot read yet, so the server does not hold them:
        without this a block longer than the lease would let another server run them
        too.
        """
        now = self._renewer.clock.now_ms()
        since = now - HANDED_WINDOW_LEASES * self._lease_ms
        renewed = self._renewer.renew_handed(self._owner, now + self._lease_ms, self._queues, since)
        if renewed:
            logger.info("renewed %d lease(s) of handed tasks the blocked loop holds", renewed)

    def _lost(self, queue: str, task_id: str) -> None:
        if self._processor.stop_job(queue, task_id, StopReason.LEASE_LOST):
            logger.warning(
                "lost the lease of task %s in %r; stopped it",
                task_id,
                queue,
                extra=self._processor.log_fields(queue, task_id),
            )

    def _watch_loop(self) -> None:
        now = time.monotonic()
        silent = now - self._tick
        if silent - TICK_SECONDS > self._peak_lag:  # a block seen while it lasts
            self._peak_lag, self._peak_at = silent - TICK_SECONDS, now
        if silent < self._blocked_after:
            if self._blocked_since is not None:
                logger.warning(
                    "the event loop is responsive again after being blocked for %.1fs",
                    time.monotonic() - self._blocked_since,
                )
                self._blocked_since = None
            return
        if self._blocked_since is None:
            self._blocked_since = self._tick
            logger.warning(
                "the event loop has been blocked for %.1fs by %s; leases are kept alive "
                "from a thread, but nothing else runs: use asyncio.to_thread() for "
                "blocking work",
                silent,
                self._describe_blocker(),
            )

    def _describe_blocker(self) -> str:
        loop = self._loop
        # asyncio keeps the task each loop is running in a private mapping; read it if there.
        running_tasks: dict[object, asyncio.Task[object]] = getattr(
            asyncio.tasks, "_current_tasks", {}
        )
        current = running_tasks.get(loop) if loop is not None else None
        job = self._processor.job_of(current) if current is not None else None
        if job is not None:
            return f"task {job.id} ({job.type or 'unknown type'}) in {job.queue!r}"
        running = tuple(self._processor.running.values())
        if running:
            return "one of the running tasks: " + ", ".join(
                f"{job.id} ({job.type or 'unknown type'}) in {job.queue!r}" for job in running[:5]
            )
        return "code outside any task handler"
