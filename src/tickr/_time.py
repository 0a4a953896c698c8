"""Time helpers: Tickr stores every instant as integer milliseconds since the epoch (UTC).

Limits, so that every stored instant is one that `datetime` can hold (years 1-9999 in
UTC) and every millisecond count one that Redis and its Lua scripts hold exactly (below
2**53): an instant (`at`, `deadline`) must fall within years 1-9999 in UTC, and a
duration must be at most `MAX_SECONDS`, 1000 years, so that now plus any duration, or
any sum of a few of them, stays far inside both.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = [
    "MAX_SECONDS",
    "datetime_from_ms",
    "duration_ms",
    "ms_from_datetime",
    "now_ms",
    "seconds",
    "utc_day",
]

MAX_SECONDS: Final = 1000 * 365 * 86400
"""The longest duration accepted anywhere, in seconds: 1000 years (of 365 days)."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_MS: Final = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
_MAX_MS: Final = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)


def now_ms() -> int:
    """The current wall-clock time in milliseconds since the epoch."""
    return int(time.time() * 1000)


def datetime_from_ms(ms: int) -> datetime:
    """An aware UTC datetime for a millisecond timestamp.

    A timestamp outside years 1-9999 (only corrupt or old data holds one) gives the
    first or last instant that datetime can hold, so that reading it never fails.
    """
    if _MIN_MS <= ms <= _MAX_MS:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    return _EPOCH + timedelta(milliseconds=_MIN_MS if ms < _MIN_MS else _MAX_MS)


def ms_from_datetime(moment: datetime, name: str) -> int:
    """Milliseconds since the epoch of an aware datetime.

    Raises:
        TypeError: If `moment` is not a datetime.
        ValueError: If `moment` is naive, or its UTC instant is outside years 1-9999.
    """
    if not isinstance(moment, datetime):
        raise TypeError(f"{name} must be an aware datetime, not {type(moment).__name__}")
    if moment.tzinfo is None or moment.tzinfo.utcoffset(moment) is None:
        raise ValueError(f"{name} must be timezone-aware (got a naive datetime)")
    ms = (moment - _EPOCH) // timedelta(milliseconds=1)
    if not _MIN_MS <= ms <= _MAX_MS:
        raise ValueError(f"{name} must fall within years 1-9999 in UTC, not {moment!r}")
    return ms


def seconds(value: float | timedelta, name: str) -> float:
    """A duration given as seconds or a timedelta, as float seconds.

    Raises:
        TypeError: If `value` is neither a number nor a timedelta.
        ValueError: If it is negative, infinite, NaN or over `MAX_SECONDS` (1000 years).
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
    if result > MAX_SECONDS:
        raise ValueError(
            f"{name} must be at most {MAX_SECONDS} seconds (1000 years), not {value!r}"
        )
    return result


def duration_ms(value: float | timedelta, name: str) -> int:
    """A duration given as seconds or a timedelta, as whole milliseconds (see `seconds`).

    Raises:
        TypeError: If `value` is neither a number nor a timedelta.
        ValueError: If it is negative, infinite, NaN or over `MAX_SECONDS` (1000 years).
    """
    return int(seconds(value, name) * 1000)


def utc_day(ms: int) -> str:
    """The ISO date (UTC) of a millisecond timestamp, e.g. ``2026-11-22``."""
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000))
