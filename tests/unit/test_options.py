from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tickr._checks import MAX_SECONDS, check_name
from tickr._options import TaskSpec, prepare_task
from tickr._serialization import decode_message
from tickr._time import datetime_from_ms

NOW = 1_800_000_000_000


def prepare(task_type: Any = "t", payload: Any = None, **options: Any) -> Any:
    return prepare_task(TaskSpec(task_type, payload, **options), now_ms=NOW, max_payload_bytes=1024)


def test_defaults() -> None:
    prepared = prepare("email:send", {"to": "a"})
    info = prepared.info
    assert info.state == "pending"
    assert (info.queue, info.priority, info.max_retry, info.timeout) == ("default", 0, 25, 1800.0)
    assert len(info.id) == 32
    task_id, msg, priority, due, digest, unique_ttl, max_retry, token, lane = prepared.item
    assert (task_id, priority, due, digest, unique_ttl, max_retry) == (info.id, 0, 0, "", 0, 25)
    assert token == "", "a fresh id needs no token: it is the call's own"
    assert lane == "", "no lane"
    chosen = prepare(task_id="order-1").item[7]
    assert len(chosen) == 16 and chosen != prepare(task_id="order-1").item[7]
    assert decode_message(msg).payload == {"to": "a"}


def test_delay_and_at_make_a_scheduled_task() -> None:
    delayed = prepare(delay=timedelta(seconds=30))
    assert delayed.info.state == "scheduled"
    assert delayed.item[3] == NOW + 30_000
    at = datetime.fromtimestamp(NOW / 1000 + 60, tz=UTC)
    assert prepare(at=at).item[3] == NOW + 60_000
    assert prepare(delay=0).info.state == "pending"
    assert prepare(at=datetime.fromtimestamp(NOW / 1000 - 5, tz=UTC)).info.state == "pending"


def test_unique_digest_depends_on_type_queue_and_payload_not_on_map_order() -> None:
    first = prepare("t", {"a": 1, "b": 2}, unique=60).item[4]
    assert first == prepare("t", {"b": 2, "a": 1}, unique=60).item[4]
    assert first != prepare("t", {"a": 1, "b": 3}, unique=60).item[4]
    assert first != prepare("u", {"a": 1, "b": 2}, unique=60).item[4]
    assert first != prepare("t", {"a": 1, "b": 2}, unique=60, queue="other").item[4]
    assert prepare(unique=timedelta(minutes=1)).item[5] == 60_000


@pytest.mark.parametrize(
    ("task_type", "options", "error", "match"),
    [
        ("", {}, ValueError, "type must not be empty"),
        (7, {}, TypeError, "type must be a str"),
        ("t", {"delay": -1}, ValueError, "negative"),
        ("t", {"delay": "soon"}, TypeError, "seconds"),
        ("t", {"delay": 1, "at": datetime.now(UTC)}, ValueError, "either delay or at"),
        ("t", {"at": datetime(2030, 1, 1)}, ValueError, "timezone-aware"),
        ("t", {"at": "tomorrow"}, TypeError, "aware datetime"),
        ("t", {"deadline": datetime(2030, 1, 1)}, ValueError, "timezone-aware"),
        ("t", {"deadline": datetime(2000, 1, 1, tzinfo=UTC)}, ValueError, "in the past"),
        ("t", {"priority": 1.5}, TypeError, "priority must be an int"),
        ("t", {"priority": True}, TypeError, "priority must be an int"),
        ("t", {"priority": 2**31}, ValueError, "priority must be within"),
        ("t", {"max_retry": -1}, ValueError, "max_retry must not be negative"),
        ("t", {"max_retry": 2**64}, ValueError, "max_retry must be below 2\\*\\*31"),
        ("t", {"max_retry": "3"}, TypeError, "max_retry must be an int"),
        ("t", {"timeout": 0}, ValueError, "timeout must be positive"),
        ("t", {"timeout": float("nan")}, ValueError, "finite"),
        ("t", {"unique": 0}, ValueError, "unique must be positive"),
        ("t", {"retention": -1}, ValueError, "retention must not be negative"),
        ("t", {"task_id": ""}, ValueError, "task_id must not be empty"),
        ("t", {"task_id": 5}, TypeError, "task_id must be a str"),
        ("t", {"queue": ""}, ValueError, "queue must not be empty"),
        ("t", {"queue": "a{b}"}, ValueError, "braces"),
        ("t", {"queue": "has space"}, ValueError, "whitespace"),
    ],
)
def test_bad_arguments_raise(
    task_type: Any, options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        prepare(task_type, None, **options)


def test_unencodable_payload_raises_type_error() -> None:
    with pytest.raises(TypeError, match="cannot be encoded"):
        prepare("t", {"when": datetime(2030, 1, 1)})
    with pytest.raises(TypeError, match="cannot be encoded"):
        prepare("t", object())


def test_payload_over_the_limit_raises_value_error() -> None:
    prepare("t", b"x" * 1000)
    with pytest.raises(ValueError, match="over the limit of 1024"):
        prepare("t", b"x" * 1025)


def test_timeout_none_means_no_limit() -> None:
    prepared = prepare(timeout=None)
    assert prepared.info.timeout is None
    assert decode_message(prepared.item[1]).timeout_ms is None


def test_check_name_accepts_ordinary_names() -> None:
    assert check_name("critical:emails-1.v2", "queue") == "critical:emails-1.v2"
    with pytest.raises(ValueError, match="at most"):
        check_name("q" * 257, "queue")


LATE_UTC = datetime(9999, 12, 31, 23, tzinfo=timezone(-timedelta(hours=5)))
EARLY_UTC = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))


@pytest.mark.parametrize("option", ["delay", "timeout", "unique", "retention"])
@pytest.mark.parametrize("value", [1e12, 1e16, 1e300, timedelta.max, MAX_SECONDS + 1])
def test_durations_over_a_thousand_years_raise_value_error(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"{option} must be at most {MAX_SECONDS} seconds"):
        prepare(**{option: value})


def test_a_thousand_years_is_still_accepted() -> None:
    longest = prepare(delay=MAX_SECONDS, timeout=MAX_SECONDS, unique=MAX_SECONDS)
    assert longest.item[3] == NOW + MAX_SECONDS * 1000
    assert longest.info.next_process_at == datetime_from_ms(NOW + MAX_SECONDS * 1000)
    assert prepare(retention=timedelta(seconds=MAX_SECONDS)).info.retention == MAX_SECONDS


@pytest.mark.parametrize("option", ["at", "deadline"])
@pytest.mark.parametrize("moment", [LATE_UTC, EARLY_UTC])
def test_instants_outside_years_1_to_9999_in_utc_raise_value_error(
    option: str, moment: datetime
) -> None:
    with pytest.raises(ValueError, match=f"{option} must fall within years 1-9999 in UTC"):
        prepare(**{option: moment})


def test_a_deadline_not_later_than_at_raises_value_error() -> None:
    at = datetime_from_ms(NOW + 60_000)
    for options in ({"at": at, "deadline": at - timedelta(seconds=1)}, {"at": at, "deadline": at}):
        with pytest.raises(ValueError, match="deadline must be later than at"):
            prepare(**options)
    assert prepare(at=at, deadline=at + timedelta(seconds=1)).info.deadline == at + timedelta(
        seconds=1
    )
