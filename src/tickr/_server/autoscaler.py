"""The autoscaler: sizes a server's concurrency to its load, from what the server sees.

It reads nothing from Redis: every quarter second it looks at the workers (how many are
busy), the fetcher (whether its latest round left tasks waiting for a worker), the
longest wait of the tasks started since, the event loop's lag (how late its own timer
fired) and the process' CPU use, and `ScalingPolicy` decides.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from tickr._server.fetcher import Fetcher
from tickr._server.part import Loop
from tickr._server.processor import Processor
from tickr.autoscale import Autoscale

__all__ = ["Autoscaler", "Reading", "ScalingPolicy"]

logger = logging.getLogger("tickr.server.autoscale")

SAMPLE_SECONDS: Final = 0.25
LAGGING: Final = 0.05
"""Seconds of event-loop lag above which more workers would not help."""
CPU_SATURATED: Final = 0.9
"""Share of a core the process uses above which more workers would not help."""
GROW_COOLDOWN: Final = 1.0
"""Seconds after a change before the next growth (its effect shows first)."""


@dataclass(frozen=True, slots=True)
class Reading:
    """What the server looked like at one sample."""

    concurrency: int
    busy: int
    backlog: bool
    longest_wait: float
    loop_lag: float
    cpu: float


class ScalingPolicy:
    """Decides the concurrency from readings (no clock of its own: `now` is given)."""

    def __init__(self, settings: Autoscale) -> None:
        self.settings = settings
        self._saturated_since: float | None = None
        self._quiet_since: float | None = None
        self._quiet_peak = 0
        self._changed_at = -math.inf

    def decide(self, now: float, reading: Reading) -> int | None:
        """The new concurrency, or None to keep it."""
        settings = self.settings
        size = reading.concurrency
        saturated = reading.busy >= size and reading.backlog
        if saturated:
            if self._saturated_since is None:
                self._saturated_since = now
        else:
            self._saturated_since = None
        if reading.busy * 2 <= size:
            if self._quiet_since is None:
                self._quiet_since, self._quiet_peak = now, reading.busy
            self._quiet_peak = max(self._quiet_peak, reading.busy)
        else:
            self._quiet_since = None
        if saturated and self._saturated_since is not None and size < settings.max:
            waited = max(reading.longest_wait, now - self._saturated_since)
            keeping_up = reading.loop_lag < LAGGING and reading.cpu < CPU_SATURATED
            cooled = now - self._changed_at >= GROW_COOLDOWN
            if waited > settings.target_latency and keeping_up and cooled:
                return self._change(now, settings.clamp(max(size + 1, math.ceil(size * 1.5))))
        quiet_since = self._quiet_since
        if quiet_since is not None and now - quiet_since >= settings.quiet and size > settings.min:
            floor = math.ceil(self._quiet_peak * 1.25)
            smaller = settings.clamp(max(floor, math.floor(size * 0.75), 1))
            if smaller < size:
                self._quiet_since, self._quiet_peak = now, reading.busy
                return self._change(now, smaller)
        return None

    def _change(self, now: float, size: int) -> int:
        self._changed_at = now
        self._saturated_since = None
        return size


class Autoscaler(Loop):
    """Samples the server and resizes it when the policy says so.

    Args:
        settings: The bounds and targets.
        processor: The workers (busy count, longest wait, current size).
        fetcher: Whether tasks wait for a worker.
        resize: Resizes the server (and logs it).
    """

    kind = "autoscaler"

    def __init__(
        self,
        settings: Autoscale,
        processor: Processor,
        fetcher: Fetcher,
        resize: Callable[[int], None],
    ) -> None:
        self._policy = ScalingPolicy(settings)
        self._processor = processor
        self._fetcher = fetcher
        self._resize = resize

    async def run(self) -> None:
        """Sample until stopped."""
        loop = asyncio.get_running_loop()
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        while True:
            due = loop.time() + SAMPLE_SECONDS
            await asyncio.sleep(SAMPLE_SECONDS)
            lag = max(0.0, loop.time() - due)
            cpu_now, wall_now = time.process_time(), time.perf_counter()
            cpu = (cpu_now - cpu_before) / max(wall_now - wall_before, 1e-6)
            cpu_before, wall_before = cpu_now, wall_now
            processor = self._processor
            reading = Reading(
                concurrency=processor.concurrency,
                busy=len(processor.running),
                backlog=self._fetcher.backlog,
                longest_wait=processor.longest_wait,
                loop_lag=lag,
                cpu=cpu,
            )
            processor.longest_wait = 0.0
            size = self._policy.decide(loop.time(), reading)
            if size is not None and size != reading.concurrency:
                logger.info(
                    "autoscale: concurrency %d -> %d (%d busy, tasks waiting %s, longest "
                    "wait %.2fs, loop lag %.3fs, cpu %.0f%%)",
                    reading.concurrency, size, reading.busy,
                    "yes" if reading.backlog else "no", reading.longest_wait, lag, cpu * 100,
                )  # fmt: skip
                self._resize(size)
