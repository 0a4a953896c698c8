"""Time helpers: Tickr stores every instant as integer milliseconds since the epoch (UTC).

Every stored instant is one that `datetime` can hold (years 1-9999 in UTC, `MIN_MS` to
`MAX_MS`); the checks of instants and durations given by callers are in `tickr._checks`.
This module imports nothing from the package.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = ["EPOCH", "MAX_MS", "MIN_MS", "datetime_from_ms", "now_ms", "utc_day"]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MIN_MS: Final = (datetime.min.replace(tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1)
"""The first instant a datetime holds (year 1, UTC), in ms since the epoch."""
MAX_MS: Final = (datetime.max.replace(tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1)
"""The last instant a datetime holds (year 9999, UTC), in ms since the epoch."""


def now_ms() -> int:
    """The current wall-clock time in milliseconds since the epoch."""
    return int(time.time() * 1000)


def datetime_from_ms(ms: int) -> datetime:
    """An aware UTC datetime for a millisecond timestamp.

    A timestamp outside years 1-9999 (only corrupt or old data holds one) gives the
    first or last instant that datetime can hold, so that reading it never fails.
    """
    if MIN_MS <= ms <= MAX_MS:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    return EPOCH + timedelta(milliseconds=MIN_MS if ms < MIN_MS else MAX_MS)


def utc_day(ms: int) -> str:
    """The ISO date (UTC) of a millisecond timestamp, e.g. ``2026-11-22``."""
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000))
