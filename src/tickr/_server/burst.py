"""Burst mode: stop the server once its queues have nothing left to do."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from tickr._broker import Broker
from tickr._server.context import ServerContext
from tickr._server.failures import log_failure
from tickr._server.part import Loop

__all__ = ["BurstWatcher"]

logger = logging.getLogger("tickr.server.burst")

CHECK_SECONDS: Final = 0.05


class BurstWatcher(Loop):
    """Calls `on_empty` once the queues have nothing left to do.

    That is: no pending (unpaused), active, scheduled or retry task, and none held by
    this server.  It looks at the server's own state every 50 ms and asks Redis only when that is
    idle: burst mode is for scripts, tests and batch jobs, not for serving.
    """

    kind = "burst"

    def __init__(self, ctx: ServerContext, on_empty: Callable[[], None]) -> None:
        self._broker: Broker = ctx.broker
        self._held = ctx.held
        self._queues = ctx.names
        self._on_empty = on_empty

    async def run(self) -> None:
        """Watch until the queues are empty, then call `on_empty` and return."""
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            if self._held:
                continue
            try:
                empty = await self._queues_empty()
            except Exception as exc:  # noqa: BLE001 - keep watching whatever happens
                log_failure(logger, "check whether the queues are empty", exc, CHECK_SECONDS)
                continue
            if empty and not self._held:
                self._on_empty()
                return

    async def _queues_empty(self) -> bool:
        for queue in self._queues:
            sizes = await self._broker.queue_sizes(queue)
            waiting = sizes["pending"] and not sizes["paused"]
            if waiting or sizes["active"] or sizes["scheduled"] or sizes["retry"]:
                return False
        return True
