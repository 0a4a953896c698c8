"""The autoscaler's policy on readings and a given clock: when it grows, shrinks or keeps."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

import tickr
from tickr._server.autoscaler import Reading, ScalingPolicy

SETTINGS = tickr.Autoscale(min=2, max=40, target_latency=1.0, quiet=30.0)


def reading(concurrency: int, busy: int, *, backlog: bool = True, wait: float = 0.0,
            lag: float = 0.0, cpu: float = 0.2) -> Reading:  # fmt: skip
    return Reading(concurrency, busy, backlog, wait, lag, cpu)


def run(policy: ScalingPolicy, size: int, busy_of: int | Callable[[int], int], seconds: float,
        **options: Any) -> tuple[int, list[tuple[float, int]]]:  # fmt: skip
    """Feed a reading every 0.25 s; returns the final size and each change (time, size)."""
    changes = []
    now = 0.0
    while now < seconds:
        busy = busy_of(size) if callable(busy_of) else busy_of
        decided = policy.decide(now, reading(size, min(busy, size), **options))
        if decided is not None:
            size = decided
            changes.append((now, size))
        now += 0.25
    return size, changes


def test_a_saturated_server_with_waiting_tasks_grows_within_two_seconds() -> None:
    policy = ScalingPolicy(SETTINGS)
    size, changes = run(policy, 4, lambda size: size, 2.0)
    assert changes and changes[0][0] <= 2.0
    assert changes[0][1] == 6, "by half"
    assert size <= SETTINGS.max


def test_growth_stops_at_max_and_waits_for_each_change_to_show() -> None:
    policy = ScalingPolicy(SETTINGS)
    size, changes = run(policy, 4, lambda size: size, 60.0)
    assert size == 40
    times = [at for at, _ in changes]
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(times))


def test_no_growth_when_the_loop_lags_the_cpu_is_full_or_nothing_waits() -> None:
    for options in ({"lag": 0.2}, {"cpu": 0.97}, {"backlog": False}):
        policy = ScalingPolicy(SETTINGS)
        size, changes = run(policy, 4, lambda size: size, 10.0, **options)
        assert changes == [] and size == 4, options


def test_a_steady_load_settles_and_never_oscillates() -> None:
    policy = ScalingPolicy(SETTINGS)
    needed = 9  # the load keeps nine workers busy, whatever the size above it

    def busy(size: int) -> int:
        return min(size, needed)

    size, changes = run(policy, 4, busy, 600.0, backlog=True)
    assert size >= needed
    settled = [at for at, _ in changes]
    assert settled and settled[-1] < 10, "it reaches a size and stays there"


def test_a_quiet_server_shrinks_after_the_quiet_time_but_not_below_its_load() -> None:
    policy = ScalingPolicy(SETTINGS)
    size, changes = run(policy, 40, 3, 300.0, backlog=False)
    assert changes[0][0] >= 30.0
    assert size == 4, "a quarter at a time, down to 1.25x what stayed busy"
    policy = ScalingPolicy(SETTINGS)
    size, _ = run(policy, 10, 0, 400.0, backlog=False)
    assert size == SETTINGS.min


@pytest.mark.parametrize(
    ("options", "error"),
    [({"min": 0}, ValueError), ({"min": 5, "max": 4}, ValueError),
     ({"target_latency": 0}, ValueError), ({"max": "9"}, TypeError)],
)  # fmt: skip
def test_settings_are_checked(options: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        tickr.Autoscale(**options)  # type: ignore[arg-type]
