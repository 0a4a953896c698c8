"""Schedules: when a periodic task's ticks fall.

A spec is one of:

- a cron expression of 5 fields (``minute hour day-of-month month day-of-week``) or 6
  with a leading seconds field (``second minute hour ...``), read by croniter;
- a descriptor: ``@yearly`` (or ``@annually``), ``@monthly``, ``@weekly``, ``@daily``
  (or ``@midnight``), ``@hourly``;
- ``@every <duration>``, such as ``@every 30s``, ``@every 5m``, ``@every 1h30m`` (units
  ``d``, ``h``, ``m``, ``s``, ``ms``).

Cron ticks follow the wall clock of the schedule's timezone.  Across a DST change a
tick that falls in the skipped hour runs at the first instant after it, and a tick whose
minute and hour are both fixed runs once on the day the clocks go back (as classic cron
does); specs with ranges or steps in those fields tick through both repeated hours.
``@every`` ticks are multiples of the interval since the Unix epoch, whatever the
timezone, so every process computes the same ticks.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Final, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from croniter import croniter

__all__ = [
    "CronSchedule",
    "IntervalSchedule",
    "Schedule",
    "parse_duration",
    "parse_schedule",
    "zone",
]

_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_UNIT_SECONDS: Final = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_DESCRIPTORS: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class Schedule(Protocol):
    """When ticks fall; times are Unix timestamps in seconds."""

    def next_after(self, moment: float) -> float:
        """The first tick strictly after `moment`."""

    def latest_at_or_before(self, moment: float) -> float | None:
        """The last tick at or before `moment`, if there is one (within a year)."""


def zone(name: str) -> tzinfo:
    """The timezone named `name` ("UTC", "Europe/Berlin"...).

    Raises:
        ValueError: If no such timezone is known.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"invalid timezone {name!r}")
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {name!r}") from exc


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``30s``, ``5m``, ``1h30m`` or ``250ms``.

    Raises:
        ValueError: If the text is not a positive duration.
    """
    compact = text.replace(" ", "")
    parts = _DURATION_PART.findall(compact)
    if not parts or "".join(number + unit for number, unit in parts) != compact:
        raise ValueError(f"invalid duration {text!r}: use e.g. 30s, 5m, 1h30m")
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: it must be positive")
    return seconds


@dataclass(frozen=True, slots=True)
class IntervalSchedule:
    """``@every``: ticks at every multiple of `seconds` since the Unix epoch."""

    seconds: float

    def next_after(self, moment: float) -> float:
        """The first tick strictly after `moment`."""
        return (math.floor(moment / self.seconds) + 1) * self.seconds

    def latest_at_or_before(self, moment: float) -> float | None:
        """The last tick at or before `moment`."""
        return math.floor(moment / self.seconds) * self.seconds


class CronSchedule:
    """A cron expression in a timezone."""

    def __init__(self, expression: str, timezone: tzinfo) -> None:
        fields = expression.split()
        if len(fields) not in (5, 6):
            raise ValueError(
                f"invalid cron spec {expression!r}: give 5 fields, or 6 with seconds first"
            )
        self.expression = " ".join(fields)
        self.timezone = timezone
        self._with_seconds = len(fields) == 6
        minute, hour = fields[-5], fields[-4]
        self._fixed_time = _is_fixed(minute) and _is_fixed(hour)
        from croniter import croniter  # imported on first use: workers rarely need it

        try:
            croniter(self.expression, datetime.now(timezone), second_at_beginning=True)
        except (ValueError, KeyError) as exc:
            raise ValueError(f"invalid cron spec {expression!r}: {exc}") from exc
        try:
            self.next_after(datetime.now(timezone).timestamp())
        except ValueError as exc:  # croniter's CroniterBadDateError is a ValueError
            raise ValueError(f"invalid cron spec {expression!r}: it never matches") from exc

    def _iterator(self, moment: float) -> croniter:
        from croniter import croniter

        start = datetime.fromtimestamp(moment, self.timezone)
        return croniter(self.expression, start, second_at_beginning=True)

    def next_after(self, moment: float) -> float:
        """The first tick strictly after `moment`."""
        iterator = self._iterator(moment)
        while True:
            tick: datetime = iterator.get_next(datetime)
            if tick.timestamp() <= moment:
                continue
            if self._fixed_time and self._repeats_wall_clock(tick):
                continue
            return tick.timestamp()

    def _repeats_wall_clock(self, tick: datetime) -> bool:
        """Whether `tick` is the second pass of a wall-clock time as the clocks go back."""
        earlier = tick - timedelta(hours=3)
        while True:
            probe = self._iterator(earlier.timestamp()).get_next(datetime)
            if probe.timestamp() >= tick.timestamp():
                return False
            if probe.replace(tzinfo=None) == tick.replace(tzinfo=None):
                return True
            earlier = probe

    def latest_at_or_before(self, moment: float) -> float | None:
        """The last tick at or before `moment`, if there is one within a year."""
        iterator = self._iterator(moment + 0.001)
        limit = moment - 366 * 86400
        while True:
            tick: datetime = iterator.get_prev(datetime)
            stamp = tick.timestamp()
            if stamp < limit:
                return None
            if stamp > moment:
                continue
            if self._fixed_time and self._repeats_wall_clock(tick):
                continue
            return stamp

    def __repr__(self) -> str:
        return f"CronSchedule({self.expression!r}, {self.timezone})"


def _is_fixed(field: str) -> bool:
    return field.isdigit()


def parse_schedule(spec: str, timezone: tzinfo) -> Schedule:
    """The schedule of a spec (see the module docstring).

    Raises:
        TypeError: If `spec` is not a str.
        ValueError: If it is not a valid spec.
    """
    if not isinstance(spec, str):
        raise TypeError(f"a schedule spec must be a str, not {type(spec).__name__}")
    text = spec.strip()
    if text.startswith("@every"):
        return IntervalSchedule(parse_duration(text[len("@every") :].strip()))
    if text.startswith("@"):
        expression = _DESCRIPTORS.get(text.lower())
        if expression is None:
            raise ValueError(f"unknown schedule descriptor {spec!r}")
        return CronSchedule(expression, timezone)
    return CronSchedule(text, timezone)
