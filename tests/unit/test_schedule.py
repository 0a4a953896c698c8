from datetime import UTC, datetime, tzinfo

import pytest

from tickr.schedule import IntervalSchedule, parse_duration, parse_schedule, zone

BERLIN = zone("Europe/Berlin")


def ticks(spec: str, start: datetime, count: int, timezone: tzinfo = BERLIN) -> list[str]:
    schedule = parse_schedule(spec, timezone)
    moment = start.timestamp()
    out = []
    for _ in range(count):
        moment = schedule.next_after(moment)
        out.append(datetime.fromtimestamp(moment, timezone).isoformat())
    return out


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("2d", 172800), ("250ms", 0.25), ("1h 5s", 3605)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5x", "m5", "0s", "1h30", "-5s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_five_and_six_field_cron_specs() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert ticks("*/15 * * * *", start, 2, UTC) == [
        "2026-01-01T00:15:00+00:00",
        "2026-01-01T00:30:00+00:00",
    ]
    assert ticks("*/20 * * * * *", start, 2, UTC) == [
        "2026-01-01T00:00:20+00:00",
        "2026-01-01T00:00:40+00:00",
    ]


@pytest.mark.parametrize(
    ("descriptor", "first"),
    [
        ("@hourly", "2026-01-01T01:00:00+00:00"),
        ("@daily", "2026-01-02T00:00:00+00:00"),
        ("@midnight", "2026-01-02T00:00:00+00:00"),
        ("@weekly", "2026-01-04T00:00:00+00:00"),
        ("@monthly", "2026-02-01T00:00:00+00:00"),
        ("@yearly", "2027-01-01T00:00:00+00:00"),
        ("@annually", "2027-01-01T00:00:00+00:00"),
    ],
)
def test_descriptors(descriptor: str, first: str) -> None:
    assert ticks(descriptor, datetime(2026, 1, 1, tzinfo=UTC), 1, UTC) == [first]


def test_every_ticks_are_multiples_of_the_interval_whatever_the_timezone() -> None:
    schedule = parse_schedule("@every 1h30m", BERLIN)
    assert isinstance(schedule, IntervalSchedule)
    assert schedule.next_after(0) == 5400
    assert schedule.next_after(5400) == 10800
    assert schedule.latest_at_or_before(10799.9) == 5400


@pytest.mark.parametrize(
    "spec",
    ["", "* * * *", "61 * * * *", "* * 32 * *", "@every", "@every 0s", "@fortnightly", "a b c d e"],
)
def test_invalid_specs_raise_value_error(spec: str) -> None:
    with pytest.raises(ValueError, match=r"invalid|unknown"):
        parse_schedule(spec, UTC)


@pytest.mark.parametrize("spec", ["0 0 30 2 *", "0 0 31 4 *", "0 0 0 31 11 *"])
def test_specs_that_never_match_raise_value_error(spec: str) -> None:
    with pytest.raises(ValueError, match="never matches"):
        parse_schedule(spec, UTC)


def test_the_last_day_of_february_in_a_leap_year_is_a_valid_spec() -> None:
    assert parse_schedule("0 0 29 2 *", UTC).next_after(0) > 0


def test_invalid_timezones_raise_value_error() -> None:
    with pytest.raises(ValueError, match="timezone"):
        zone("Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="timezone"):
        zone("")
    assert zone("utc") is UTC


def test_a_daily_job_runs_once_on_the_day_the_clocks_go_back() -> None:
    assert ticks("30 2 * * *", datetime(2026, 10, 24, 12, tzinfo=BERLIN), 3) == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
        "2026-10-27T02:30:00+01:00",
    ]


def test_a_daily_job_in_the_skipped_hour_runs_right_after_it() -> None:
    assert ticks("30 2 * * *", datetime(2026, 3, 28, 12, tzinfo=BERLIN), 2) == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]


def test_stepped_jobs_tick_through_both_repeated_hours() -> None:
    assert ticks("*/30 * * * *", datetime(2026, 10, 25, 1, 50, tzinfo=BERLIN), 5) == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]


def test_latest_tick_at_or_before() -> None:
    schedule = parse_schedule("0 9 * * *", BERLIN)
    moment = datetime(2026, 6, 10, 8, 59, tzinfo=BERLIN).timestamp()
    latest = schedule.latest_at_or_before(moment)
    assert latest is not None
    assert datetime.fromtimestamp(latest, BERLIN).isoformat() == "2026-06-09T09:00:00+02:00"
    exact = datetime(2026, 6, 10, 9, 0, tzinfo=BERLIN).timestamp()
    assert schedule.latest_at_or_before(exact) == exact
