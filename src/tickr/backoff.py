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

from tickr._checks import check_float, check_positive_seconds, check_seconds
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
        TypeError: If a setting is not a number.
        ValueError: If base or max_delay is not positive or is over 1000 years, factor
            is below 1 or not finite, or jitter is outside [0, 1).
    """
    base = check_positive_seconds(base, "base")
    max_delay = check_positive_seconds(max_delay, "max_delay")
    if check_float(factor, "factor") < 1:
        raise ValueError(f"factor must be at least 1, got {factor!r}")
    if not 0 <= check_float(jitter, "jitter") < 1:
        raise ValueError(f"jitter must be within [0, 1), got {jitter!r}")

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
        TypeError: If `seconds` is not a number.
        ValueError: If `seconds` is negative, infinite, NaN or over 1000 years.
    """
    seconds = check_seconds(seconds, "seconds")

    def delay(retry_count: int, exc: BaseException, task: Task) -> float:
        return seconds

    return delay
