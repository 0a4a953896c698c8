"""The settings of Client, Server, Scheduler, Inspector and the retry delays are checked
alike, when the object is made (nothing connects to Redis here)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import tickr
from tickr._options import MAX_CONCURRENCY

ENTRY_POINTS: list[Callable[..., Any]] = [
    tickr.Client,
    tickr.Server,
    tickr.Scheduler,
    tickr.Inspector,
]


@pytest.mark.parametrize("make", ENTRY_POINTS)
@pytest.mark.parametrize(
    ("url", "error", "match"),
    [
        (5, TypeError, "url must be a str or None, not int"),
        ("", ValueError, "url must not be empty"),
    ],
)
def test_every_entry_point_checks_its_url(
    make: Callable[..., Any], url: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        make(url)


@pytest.mark.parametrize(
    ("make", "settings", "error", "match"),
    [
        (tickr.Client, {"max_payload_bytes": True}, TypeError, "max_payload_bytes must be an int"),
        (
            tickr.Client,
            {"max_payload_bytes": 0},
            ValueError,
            "max_payload_bytes must be at least 1",
        ),
        (
            tickr.Scheduler,
            {"max_payload_bytes": True},
            TypeError,
            "max_payload_bytes must be an int",
        ),
        (
            tickr.Server,
            {"strict_priority": "yes"},
            TypeError,
            "strict_priority must be True or False",
        ),
        (tickr.Server, {"strict_priority": 1}, TypeError, "strict_priority must be True or False"),
        (tickr.Server, {"concurrency": True}, TypeError, "concurrency must be an int"),
        (tickr.Server, {"concurrency": 0}, ValueError, "concurrency must be from 1 to 10000"),
        (tickr.Server, {"concurrency": MAX_CONCURRENCY + 1}, ValueError, "from 1 to 10000"),
        (
            tickr.Server,
            {"queues": {"q": True}},
            TypeError,
            "the weight of queue 'q' must be an int",
        ),
        (tickr.Server, {"archive_max_size": 1.5}, TypeError, "archive_max_size must be an int"),
        (tickr.Server, {"shutdown_timeout": 1e300}, ValueError, "shutdown_timeout must be at most"),
        (tickr.Server, {"archive_max_age": float("inf")}, ValueError, "must be a finite"),
        (tickr.Scheduler, {"config_interval": float("nan")}, ValueError, "must be a finite"),
        (tickr.Scheduler, {"misfire_grace": True}, TypeError, "misfire_grace must be seconds"),
        (tickr.Scheduler, {"heartbeat_interval": 1e300}, ValueError, "at most"),
        (tickr.Scheduler, {"history": 2.0}, TypeError, "history must be an int"),
    ],
)
def test_settings_of_the_wrong_type_or_range_are_refused(
    make: Callable[..., Any], settings: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        make(**settings)


def test_the_largest_concurrency_is_accepted() -> None:
    assert tickr.Server(concurrency=MAX_CONCURRENCY).concurrency == 10_000


@pytest.mark.parametrize(
    ("settings", "error", "match"),
    [
        ({"factor": float("nan")}, ValueError, "factor must be finite"),
        ({"factor": float("inf")}, ValueError, "factor must be finite"),
        ({"factor": "2"}, TypeError, "factor must be a number"),
        ({"jitter": float("nan")}, ValueError, "jitter must be finite"),
        ({"base": float("nan")}, ValueError, "base must be a finite"),
        ({"max_delay": float("inf")}, ValueError, "max_delay must be a finite"),
        ({"base": 0}, ValueError, "base must be positive"),
    ],
)
def test_exponential_backoff_refuses_non_finite_settings(
    settings: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        tickr.exponential_backoff(**settings)


@pytest.mark.parametrize(
    ("value", "error"), [(float("nan"), ValueError), (float("inf"), ValueError), ("1", TypeError)]
)
def test_constant_delay_refuses_what_is_not_a_duration(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="seconds"):
        tickr.constant_delay(value)


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (tickr.Server, "shutdown_timeout"),
        (tickr.Server, "archive_max_age"),
        (tickr.Scheduler, "config_interval"),
        (tickr.Scheduler, "misfire_grace"),
        (tickr.Scheduler, "heartbeat_interval"),
    ],
)
def test_every_duration_setting_takes_seconds_or_a_timedelta(
    make: Callable[..., Any], name: str
) -> None:
    make(**{name: 30})
    make(**{name: 30.5})
    make(**{name: timedelta(seconds=30)})
    for value in (True, "30"):
        with pytest.raises(TypeError, match=f"{name} must be seconds"):
            make(**{name: value})
    with pytest.raises(ValueError, match=f"{name} must not be negative"):
        make(**{name: timedelta(seconds=-1)})


@pytest.mark.parametrize("name", ["config_interval", "misfire_grace", "heartbeat_interval"])
def test_a_zero_scheduler_interval_is_refused(name: str) -> None:
    settings: dict[str, Any] = {name: timedelta(0)}
    with pytest.raises(ValueError, match=f"{name} must be positive"):
        tickr.Scheduler(**settings)


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (tickr.Server, "retry_delay"),
        (tickr.Server, "error_handler"),
        (tickr.Server, "health_check"),
        (tickr.Scheduler, "error_handler"),
        (tickr.Scheduler, "config_provider"),
    ],
)
def test_every_hook_must_be_callable(make: Callable[..., Any], name: str) -> None:
    with pytest.raises(TypeError, match=f"{name} must be callable"):
        make(**{name: 5})


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (tickr.Client, "max_payload_bytes"),
        (tickr.Server, "concurrency"),
        (tickr.Server, "archive_max_size"),
        (tickr.Server, "max_result_bytes"),
        (tickr.Scheduler, "max_catch_up"),
        (tickr.Scheduler, "history"),
        (tickr.Scheduler, "max_payload_bytes"),
    ],
)
def test_a_bool_is_never_taken_for_an_int(make: Callable[..., Any], name: str) -> None:
    with pytest.raises(TypeError, match=f"{name} must be an int"):
        make(**{name: True})
