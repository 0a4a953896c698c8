"""Retry delays: how long a failed task waits before its next attempt.

A retry delay is a callable ``(retry_count, exc, task) -> seconds`` where `retry_count`
is the number of retries done before the attempt that just failed (0 after the first
failure), `exc` the exception it raised, and `task` the failed `Task`.  It may return a
float, an int or a timedelta.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

from tickr.task import Task

__all__ = ["RetryDelay", "SecondsDelay", "constant_delay", "exponential_backoff"]

RetryDelay = Callable[[int, BaseException, Task], float | timedelta]
"""``(retry_count, exc, task) -> seconds`` (a float, an int or a timedelta)."""

SecondsDelay = Callable[[int, BaseException, Task], float]
"""A `RetryDelay` that always answers in float seconds."""


def exponential_backoff(
    base: float = 1.0,
    factor: float = 2.0,
    max_delay: float = 3600.0,
    jitter: float = 0.25,
) -> SecondsDelay:
    """The default retry delay: exponential growth, capped, with random jitter.

    The n-th retry (n = retry_count, from 0) waits::

        min(max_delay, base * factor ** n) * uniform(1 - jitter, 1 + jitter)

    With the defaults: about 1 s, 2 s, 4 s, ... , 34 min, then 1 h (±25 %) per retry,
    so 25 retries span about 14 hours.

    Raises:
        ValueError: If base or max_delay is not positive, factor is below 1, or jitter
            is outside [0, 1).
    """
    if base <= 0 or max_delay <= 0:
        raise ValueError("base and max_delay must be positive")
    if factor < 1:
        raise ValueError("factor must be at least 1")
    if not 0 <= jitter < 1:
        raise ValueError("jitter must be within [0, 1)")

    def delay(retry_count: int, exc: BaseException, task: Task) -> float:
        try:
            growth = min(max_delay, base * float(factor) ** retry_count)
        except OverflowError:
            growth = max_delay
        return growth * random.uniform(1 - jitter, 1 + jitter)

    return delay


def constant_delay(seconds: float) -> SecondsDelay:
    """A retry delay that always waits `seconds`.

    Raises:
        ValueError: If `seconds` is negative.
    """
    if seconds < 0:
        raise ValueError("seconds must not be negative")

    def delay(retry_count: int, exc: BaseException, task: Task) -> float:
        return seconds

    return delay
