"""`RedisClock`: Redis' own time, kept on this process' monotonic clock.

Leases, due times and registrations are written by one process and compared by others,
often on other machines.  Their wall clocks disagree, and they jump: an NTP step, a
virtual machine resumed, an operator's `date -s`.  Redis' clock is the one every process
shares, so Tickr stamps and compares instants on it.  A clock is set from Redis' `TIME`
(corrected by half the round trip) and then advances with `time.monotonic()`, which no
wall-clock jump moves.  Until its first reading it starts from this machine's wall clock.
"""

from __future__ import annotations

import time
from typing import Final

__all__ = ["RedisClock"]

MAX_READING_RTT: Final = 0.5
"""Seconds: a TIME reading slower than this is too uncertain to set the clock by."""


class RedisClock:
    """Redis' time in milliseconds since the epoch, read without asking Redis each time.

    Safe to read from any thread (the lease keeper's included).
    """

    def __init__(self) -> None:
        self._offset = time.time() - time.monotonic()
        self._read_at: float | None = None

    def now_ms(self) -> int:
        """Redis' time now, in milliseconds since the epoch (this machine's before a reading)."""
        return int((time.monotonic() + self._offset) * 1000)

    def age(self) -> float:
        """Seconds since the last reading of Redis' time (infinite before the first)."""
        if self._read_at is None:
            return float("inf")
        return time.monotonic() - self._read_at

    def set(self, redis_seconds: float, sent: float, received: float) -> bool:
        """Take a reading: Redis said `redis_seconds` between the monotonic `sent` and `received`.

        Returns whether it was taken (a reading slower than `MAX_READING_RTT` is not).
        """
        if received - sent > MAX_READING_RTT:
            return False
        self._offset = redis_seconds - (sent + received) / 2
        self._read_at = received
        return True

    def skip_reading(self) -> None:
        """Count the last try as a reading, so that one that cannot work is not retried at once."""
        self._read_at = time.monotonic()
