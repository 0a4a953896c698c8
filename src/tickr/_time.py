"""Time helpers: Tickr stores every instant as integer milliseconds since the epoch (UTC)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

__all__ = ["datetime_from_ms", "ms_from_datetime", "now_ms", "seconds", "utc_day"]


def now_ms() -> int:
    """The current wall-clock time in milliseconds since the epoch."""
    return int(time.time() * 1000)


def datetime_from_ms(ms: int) -> datetime:
    """An aware UTC datetime for a millisecond timestamp."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def ms_from_datetime(moment: datetime, name: str) -> int:
    """Milliseconds since the epoch of an aware datetime.

    Raises:
        TypeError: If `moment` is not a datetime.
        ValueError: If `moment` is naive.
    """
    if not isinstance(moment, datetime):
        raise TypeError(f"{name} must be an aware datetime, not {type(moment).__name__}")
    if moment.tzinfo is None or moment.tzinfo.utcoffset(moment) is None:
        raise ValueError(f"{name} must be timezone-aware (got a naive datetime)")
    return int(moment.timestamp() * 1000)


def seconds(value: float | timedelta, name: str) -> float:
    """A duration given as seconds or a timedelta, as float seconds.

    Raises:
        TypeError: If `value` is neither a number nor a timedelta.
        ValueError: If it is negative, infinite or NaN.
    """
    if isinstance(value, timedelta):
        result = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        result = float(value)
    else:
        raise TypeError(f"{name} must be seconds (int or float) or a timedelta, not {value!r}")
    if result != result or result in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be a finite duration, not {value!r}")
    if result < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")
    return result


def utc_day(ms: int) -> str:
    """The ISO date (UTC) of a millisecond timestamp, e.g. ``2026-11-22``."""
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000))
