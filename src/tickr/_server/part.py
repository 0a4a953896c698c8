"""The protocol every part of a server follows: `start(supervisor)`, then `stop()`.

The server starts its parts in one order and stops them in another (server.py's module
docstring says why).  A part that was never started stops at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import ClassVar, Protocol

from tickr._aio import cancel_and_wait
from tickr._server.supervisor import Supervisor

__all__ = ["Loop", "Part"]

logger = logging.getLogger("tickr.server")


class Part(Protocol):
    """A piece of a server with a lifecycle."""

    def start(self, supervisor: Supervisor) -> None:
        """Start running (supervised: restarted if it ends while the server serves)."""

    async def stop(self) -> None:
        """Stop, and return once stopped."""


class Loop:
    """A part that is one supervised coroutine, `run()`; `stop()` cancels it."""

    kind: ClassVar[str]
    """The part's name for the supervisor ("fetcher", "heartbeat"...)."""
    _task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """The loop."""
        raise NotImplementedError

    @property
    def started(self) -> bool:
        """Whether `start()` was called."""
        return self._task is not None

    def start(self, supervisor: Supervisor) -> None:
        """Run `run()` in a task of its own, under the supervisor."""
        self._task = supervisor.spawn(self.kind, self.run)

    async def stop(self) -> None:
        """Cancel the loop, wait for it to end, and log it if it had failed."""
        task = self._task
        if task is None:
            return
        await cancel_and_wait([task])
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            logger.error("a server loop had failed", exc_info=exc)

    async def _end(self, patience: float) -> None:
        """Wait up to `patience` seconds for the loop to end by itself, then stop it."""
        if self._task is not None and patience > 0:
            await asyncio.wait({self._task}, timeout=patience)
        await Loop.stop(self)
