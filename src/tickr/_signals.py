"""Running a service until SIGINT or SIGTERM, the way Server.run() and Scheduler.run() do."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from tickr._aio import detach

__all__ = ["serve_until_signalled"]


async def serve_until_signalled(
    serve: Callable[[], Awaitable[None]],
    shutdown: Callable[[], Coroutine[Any, Any, None]],
    force: Callable[[], None],
    logger: logging.Logger,
) -> None:
    """Run `serve()`; the first SIGINT/SIGTERM starts `shutdown()`, the next calls `force()`.

    The signal handlers exist only while `serve()` runs.
    """
    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        name = signal.Signals(signum).name
        if signals_seen == 1:
            logger.info("received %s: shutting down gracefully", name)
            detach(shutdown())
        else:
            logger.warning("received %s again: stopping now", name)
            force()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await serve()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
