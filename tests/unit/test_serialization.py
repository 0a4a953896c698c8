from datetime import UTC, datetime, timedelta, timezone

import msgpack
import pytest

from tickr._serialization import (
    MessageDecodeError,
    canonical_bytes,
    decode_message,
    decode_value,
    encode_message,
    encode_value,
)


@pytest.mark.parametrize(
    "value",
    [None, True, 0, -(2**63), 2**64 - 1, 1.5, "text", b"\x00\xff", [1, "a"], {"k": {"n": [1]}}],
)
def test_values_round_trip(value: object) -> None:
    assert decode_value(encode_value(value)) == value


def test_tuples_come_back_as_lists_and_int_keys_survive() -> None:
    assert decode_value(encode_value((1, 2))) == [1, 2]
    assert decode_value(encode_value({1: "one"})) == {1: "one"}


def test_aware_datetimes_round_trip_as_utc() -> None:
    moment = datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    decoded = decode_value(encode_value({"at": moment}))["at"]
    assert decoded == moment
    assert decoded.tzinfo == UTC


@pytest.mark.parametrize("value", [datetime(2026, 1, 1), object(), {1, 2}, 2**70])
def test_unencodable_values_raise_type_error(value: object) -> None:
    with pytest.raises(TypeError, match="cannot be encoded"):
        encode_value(value)


@pytest.mark.parametrize("data", [b"\xc1", b"\x92\x01", b"\x01\x02"])
def test_garbage_raises_message_decode_error(data: bytes) -> None:
    with pytest.raises(MessageDecodeError):
        decode_value(data)


def test_canonical_bytes_ignore_map_order() -> None:
    assert canonical_bytes({"a": 1, "b": [{"y": 2, "x": 1}]}) == canonical_bytes(
        {"b": [{"x": 1, "y": 2}], "a": 1}
    )
    assert canonical_bytes({"a": 1}) != canonical_bytes({"a": 2})


def test_message_round_trip() -> None:
    msg = encode_message("email:send", {"to": "x"}, 3, 1000, None, 60_000, 123)
    decoded = decode_message(msg)
    assert decoded.type == "email:send"
    assert decoded.payload == {"to": "x"}
    assert (decoded.max_retry, decoded.timeout_ms, decoded.deadline_ms) == (3, 1000, None)
    assert (decoded.retention_ms, decoded.enqueued_ms) == (60_000, 123)
    assert decoded.headers == {}


def test_headers_are_a_ninth_field_only_when_given() -> None:
    plain = encode_message("t", None, 0, None, None, 0, 1)
    assert plain == encode_message("t", None, 0, None, None, 0, 1, {}), "as 0.1 wrote it"
    assert len(msgpack.unpackb(plain)) == 8
    with_headers = encode_message("t", None, 0, None, None, 0, 1, {"a": "b"})
    assert msgpack.unpackb(with_headers)[8] == {"a": "b"}
    decoded = decode_message(with_headers)
    assert decoded.headers == {"a": "b"}
    with pytest.raises(TypeError):
        decoded.headers["a"] = "c"  # type: ignore[index]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "missing"),
        (b"", "missing"),
        (b"\xc1garbage", "undecodable"),
        (msgpack.packb({"not": "a message"}), "not a task message"),
        (msgpack.packb([2, "t", None, 0, None, None, 0, 0]), "unknown message version"),
        (msgpack.packb([1, 5, None, 0, None, None, 0, 0]), "malformed"),
        (msgpack.packb([1, "t", None, "x", None, None, 0, 0]), "malformed"),
        (msgpack.packb([1, "t", None, 0, None, None, 0, 0, ["h"]]), "malformed"),
        (msgpack.packb([1, "t", None, 0, None, None, 0, 0, {"h": 1}]), "malformed"),
        (msgpack.packb([1, "t", None, 0, None, None, 0, 0, {}, 0]), "not a task message"),
    ],
)
def test_bad_messages_are_rejected_with_a_reason(data: bytes | None, reason: str) -> None:
    with pytest.raises(MessageDecodeError, match=reason):
        decode_message(data)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({(1, 2): "pair"}, "a dict key is a tuple or list"),
        ({"outer": [{(1,): 2}]}, "a dict key is a tuple or list"),
        (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))), "outside years 1-9999"),
        (datetime(9999, 12, 31, 23, tzinfo=timezone(-timedelta(hours=5))), "outside years"),
    ],
)
def test_values_that_would_not_decode_are_refused_when_encoded(value: object, reason: str) -> None:
    with pytest.raises(TypeError, match=reason):
        encode_value(value)
    with pytest.raises(TypeError, match=reason):
        encode_message("t", value, 0, None, None, 0, 0)


def test_the_extremes_of_datetime_still_round_trip() -> None:
    for moment in (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)):
        assert decode_value(encode_value(moment)) == moment
