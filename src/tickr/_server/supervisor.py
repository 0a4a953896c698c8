"""The supervisor: keeps the server's loops and workers running.

Every loop of a server (listener, finisher, heartbeat, forwarder, inbox, fetcher, burst
watcher) and every worker coroutine runs under `Supervisor.run`.  One that ends while
the server is not stopping (it raised, even a `SystemExit`, returned, or met a
cancellation the server did not order) is logged at ERROR with its traceback and started
again after a short backoff.  A part that keeps ending (more than `max_restarts` times
within `window` seconds) is not restarted: the supervisor asks the server to shut down
and says why.  Each restart is counted for the registry record and reported once to
`health_check`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

from tickr._aio import Backoff, forget_cancellation
from tickr.errors import TickrError

__all__ = ["RETIRED", "Supervisor"]

RETIRED: Final = object()
"""What a part returns to end for good (a worker the server no longer needs)."""

logger = logging.getLogger("tickr.server.supervisor")


class Supervisor:
    """Restarts the parts of a server that end unexpectedly.

    Args:
        give_up: Called once with an error describing a part that kept failing; the
            server then shuts down.
        stopping: Whether the server is stopping: then parts may end or be cancelled.
        max_restarts: Most restarts of one part within `window` seconds.
        window: Seconds over which restarts are counted.
    """

    def __init__(
        self,
        give_up: Callable[[TickrError], None],
        stopping: Callable[[], bool],
        *,
        max_restarts: int = 10,
        window: float = 60.0,
    ) -> None:
        self._give_up = give_up
        self._max_restarts = max_restarts
        self._window = window
        self._recent: dict[str, deque[float]] = {}
        self._stopping = stopping
        self.restarts: dict[str, int] = {}
        """Kind of part ("fetcher", "worker"...) -> restarts since the server started."""
        self.alive: dict[str, int] = {}
        """Kind of part -> how many of that kind are running now."""
        self.failure: TickrError | None = None
        """The latest restart or give-up not yet reported to `health_check`."""
        self.gave_up: TickrError | None = None
        """Why the supervisor stopped the server, if it did."""

    def take_failure(self) -> TickrError | None:
        """Return the latest unreported failure and forget it."""
        failure, self.failure = self.failure, None
        return failure

    def spawn(
        self, kind: str, run: Callable[[], Awaitable[object]], *, name: str | None = None
    ) -> asyncio.Task[None]:
        """Start `run()` in a task of its own, supervised as a part of kind `kind`."""
        return asyncio.create_task(self.run(kind, run), name=name or f"tickr-{kind}")

    async def run(self, kind: str, run: Callable[[], Awaitable[object]]) -> None:
        """Run `run()` until the server stops, restarting it whenever it ends early.

        A part that returns `RETIRED` ends for good, and is not restarted.

        Raises:
            asyncio.CancelledError: When cancelled while the server is stopping.
        """
        backoff = Backoff()
        while True:
            started = time.monotonic()
            retired, error = await self._once(kind, run)
            if retired or self._stopping():
                return
            if time.monotonic() - started > self._window:
                backoff.reset()
            delay = backoff.next()
            if not self._restart(kind, error, delay):
                return
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                if self._stopping():
                    raise
                forget_cancellation()
            if self._stopping():
                return

    async def _once(
        self, kind: str, run: Callable[[], Awaitable[object]]
    ) -> tuple[bool, BaseException | None]:
        """Run the part once: whether it retired, and the error it ended with, if any."""
        self.alive[kind] = self.alive.get(kind, 0) + 1
        try:
            return await run() is RETIRED, None
        except asyncio.CancelledError as exc:
            if self._stopping():
                raise
            # Not ordered by the server (a hook or handler cancelled this task, or
            # raised CancelledError itself): the part ended; forget it and restart.
            forget_cancellation()
            return False, exc
        except BaseException as exc:  # noqa: BLE001 - even SystemExit must not kill a server
            return False, exc
        finally:
            self.alive[kind] -= 1

    def _restart(self, kind: str, error: BaseException | None, backoff: float) -> bool:
        """Log and count an unexpected end; returns whether to start the part again."""
        how = "returned" if error is None else f"failed ({type(error).__name__})"
        now = time.monotonic()
        recent = self._recent.setdefault(kind, deque())
        recent.append(now)
        while recent and recent[0] < now - self._window:
            recent.popleft()
        if len(recent) > self._max_restarts:
            failure = TickrError(
                f"server {kind} {how} {len(recent)} times within {self._window:g}s; "
                "shutting the server down"
            )
            failure.__cause__ = error
            logger.error("%s", failure, exc_info=error)
            self.failure = self.gave_up = failure
            self._give_up(failure)
            return False
        failure = TickrError(f"server {kind} {how} unexpectedly; restarted")
        failure.__cause__ = error
        logger.error(
            "server %s %s unexpectedly; restarting it in %.2fs", kind, how, backoff, exc_info=error
        )
        self.restarts[kind] = self.restarts.get(kind, 0) + 1
        self.failure = failure
        return True
