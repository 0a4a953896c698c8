"""FailedAuthLimiter: a window of unknown tokens per address, on an injected clock."""

from __future__ import annotations

import pytest

from tickr.web import FailedAuthLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_is_refused_until_its_oldest_failure_leaves_the_window() -> None:
    clock = Clock()
    limiter = FailedAuthLimiter(3, 60, clock=clock)
    for _ in range(2):
        limiter.failed("10.0.0.1")
        clock.now += 10
    assert limiter.blocked_for("10.0.0.1") == 0
    limiter.failed("10.0.0.1")  # third failure at 1020; the first was at 1000
    assert limiter.blocked_for("10.0.0.1") == pytest.approx(40)
    assert limiter.blocked_for("10.0.0.2") == 0, "other addresses are not touched"
    clock.now += 40
    assert limiter.blocked_for("10.0.0.1") == 0
    limiter.failed("10.0.0.1")  # failures at 1010, 1020, 1060: refused until 1070
    assert limiter.blocked_for("10.0.0.1") == pytest.approx(10)


def test_failures_spread_out_never_block() -> None:
    clock = Clock()
    limiter = FailedAuthLimiter(3, 60, clock=clock)
    for _ in range(100):
        limiter.failed("10.0.0.1")
        clock.now += 30.001
    assert limiter.blocked_for("10.0.0.1") == 0


def test_memory_is_bounded_by_forgetting_the_least_recent_addresses() -> None:
    clock = Clock()
    limiter = FailedAuthLimiter(1, 60, addresses=2, clock=clock)
    for address in ("a", "b", "c"):
        limiter.failed(address)
    assert limiter.blocked_for("a") == 0, "forgotten"
    assert limiter.blocked_for("b") > 0 and limiter.blocked_for("c") > 0


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="positive"):
        FailedAuthLimiter(0, 60)
