"""`Autoscale`: let a Server size its concurrency to the load (see docs/flow-control.md)."""

from __future__ import annotations

from dataclasses import dataclass

from tickr._checks import check_int, check_positive_seconds
from tickr._options import MAX_CONCURRENCY

__all__ = ["Autoscale"]


@dataclass(frozen=True, slots=True, init=False)
class Autoscale:
    """How a Server grows and shrinks its concurrency by itself.

    It grows (by half, at least one) while every worker is busy, tasks are waiting for a
    worker and they wait longer than `target_latency`, unless the event loop lags or the
    process' CPU is saturated (more workers would not help then); it shrinks (by a
    quarter, never below what was busy in the quiet time) after `quiet` seconds with at
    most half the workers busy.  Each change is logged and shown in
    `ServerInfo.concurrency`.

    Args:
        min: The least concurrency (1 or more).
        max: The most (up to 10,000).
        target_latency: Seconds a task may wait for a worker before the server grows.
        quiet: Seconds of low use before it shrinks.

    Raises:
        TypeError, ValueError: For a bound out of range, min above max, or a time that
            is not positive.
    """

    min: int
    max: int
    target_latency: float
    quiet: float

    def __init__(
        self,
        min: int = 1,
        max: int = 200,
        target_latency: float = 1.0,
        *,
        quiet: float = 30.0,
    ) -> None:
        check_int(min, "min", 1, MAX_CONCURRENCY)
        check_int(max, "max", 1, MAX_CONCURRENCY)
        if min > max:
            raise ValueError(f"min ({min}) is above max ({max})")
        object.__setattr__(self, "min", min)
        object.__setattr__(self, "max", max)
        object.__setattr__(
            self, "target_latency", check_positive_seconds(target_latency, "target_latency")
        )
        object.__setattr__(self, "quiet", check_positive_seconds(quiet, "quiet"))

    def clamp(self, concurrency: int) -> int:
        """`concurrency` within [min, max]."""
        return max(self.min, min(self.max, concurrency))
