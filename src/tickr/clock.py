"""Clocks: where the Scheduler gets the time, so that tests can inject their own.

A clock tells the time (`time()`, Unix seconds) and waits until a moment
(`sleep_until`).  `SystemClock` is the real one; `tickr.testing.ManualClock` is moved
forward by hand, and never patches a module.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """The time, and waiting for a moment."""

    def time(self) -> float:
        """Now, in seconds since the Unix epoch."""

    async def sleep_until(self, moment: float) -> None:
        """Return once `time()` has reached `moment`."""


class SystemClock:
    """The wall clock of this machine."""

    def time(self) -> float:
        """Now, in seconds since the Unix epoch."""
        return time.time()

    async def sleep_until(self, moment: float) -> None:
        """Sleep until the wall clock reaches `moment`."""
        delay = moment - time.time()
        while delay > 0:
            await asyncio.sleep(delay)
            delay = moment - time.time()
