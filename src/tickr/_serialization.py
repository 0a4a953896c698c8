"""Encoding of payloads, results and task messages with msgpack (never pickle).

The rules for payloads are public (docs/guide.md#payloads, and `tickr.serialization`,
which re-exports `encode_value` and `decode_value`); the task message is internal.

A payload or result may be anything msgpack encodes: dict, list, tuple (decoded as a
list), str, bytes, int (64-bit), float, bool, None, and timezone-aware datetimes (decoded
as UTC datetimes).  Anything else raises `TypeError` when encoded, and so does a value
that encodes but could not be decoded again: a dict key that is a tuple (it would come
back as an unhashable list), or a datetime whose UTC instant is outside years 1-9999.

A task message is the immutable part of a task, stored once at enqueue time::

    [version, type, payload, max_retry, timeout_ms, deadline_ms, retention_ms, enqueued_ms]

It is encoded in one go, payload included.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import msgpack

__all__ = [
    "MESSAGE_VERSION",
    "MessageDecodeError",
    "TaskMessage",
    "canonical_bytes",
    "decode_message",
    "decode_value",
    "encode_message",
    "encode_value",
]

MESSAGE_VERSION: Final = 1
_MESSAGE_FIELDS: Final = 8


class MessageDecodeError(ValueError):
    """A task record in Redis cannot be decoded (corrupt, foreign or truncated)."""


class _Packers(threading.local):
    """One reusable msgpack packer per thread.

    Making a packer per call costs more than most encodings, and a packer must not be
    shared between threads.
    """

    def __init__(self) -> None:
        self.packer = msgpack.Packer(use_bin_type=True, datetime=True)


_packers: Final = _Packers()


def encode_value(value: Any) -> bytes:
    """Encode a payload or result with msgpack, checking that it decodes back.

    Raises:
        TypeError: If the value (or something inside it) cannot be encoded, including
            naive datetimes and integers outside the 64-bit range, or if the encoding
            would not decode (a tuple as a dict key, a datetime outside years 1-9999
            in UTC).
    """
    try:
        data: bytes = _packers.packer.pack(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"value cannot be encoded with msgpack: {exc}") from None
    try:
        msgpack.unpackb(data, raw=False, timestamp=3, strict_map_key=False)
    except TypeError:  # unhashable: a map key came back as a list
        raise TypeError(
            "value cannot be decoded once encoded: a dict key is a tuple or list"
        ) from None
    except (ValueError, OverflowError):  # a timestamp that datetime cannot hold
        raise TypeError(
            "value cannot be decoded once encoded: a datetime is outside years 1-9999 in UTC"
        ) from None
    return data


def decode_value(data: bytes) -> Any:
    """Decode bytes produced by `encode_value`.

    Raises:
        MessageDecodeError: If the bytes are not one valid msgpack value.
    """
    try:
        return msgpack.unpackb(data, raw=False, timestamp=3, strict_map_key=False)
    except Exception as exc:  # noqa: BLE001 - msgpack raises many unrelated types
        raise MessageDecodeError(f"undecodable value: {exc}") from None


def _sort_maps(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sort_maps(value[key]) for key in sorted(value, key=repr)}
    if isinstance(value, list | tuple):
        return [_sort_maps(item) for item in value]
    return value


def canonical_bytes(value: Any) -> bytes:
    """Encode a value so that equal values give equal bytes (maps sorted by key).

    Raises:
        TypeError: If the value cannot be encoded.
    """
    return encode_value(_sort_maps(value))


@dataclass(frozen=True, slots=True)
class TaskMessage:
    """The decoded immutable part of a task."""

    type: str
    payload: Any
    max_retry: int
    timeout_ms: int | None
    deadline_ms: int | None
    retention_ms: int
    enqueued_ms: int
    headers: Mapping[str, str] = field(default_factory=lambda: _NO_HEADERS)


_NO_HEADERS: Final[Mapping[str, str]] = MappingProxyType({})


def encode_message(
    task_type: str,
    payload: Any,
    max_retry: int,
    timeout_ms: int | None,
    deadline_ms: int | None,
    retention_ms: int,
    enqueued_ms: int,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """Encode a task message; the message is never shorter than the encoded payload.

    Headers (checked already) are a ninth field, present only when there are some, so
    that a message without them is what Tickr 0.1 wrote and reads.

    Raises:
        TypeError: If the payload (or another field) cannot be encoded.
    """
    fields = [
        MESSAGE_VERSION,
        task_type,
        payload,
        max_retry,
        timeout_ms,
        deadline_ms,
        retention_ms,
        enqueued_ms,
    ]
    if headers:
        fields.append(dict(headers))
    return encode_value(fields)


def _headers(value: Any) -> Mapping[str, str] | None:
    """The headers field of a message as a read-only mapping, or None if malformed."""
    if not isinstance(value, dict) or not all(
        isinstance(name, str) and isinstance(text, str) for name, text in value.items()
    ):
        return None
    return MappingProxyType(value)


def _optional_int(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def decode_message(data: bytes | None) -> TaskMessage:
    """Decode and validate a task message.

    Raises:
        MessageDecodeError: If the data is missing, not msgpack, or not a task message
            of a version this Tickr understands.
    """
    if not data:
        raise MessageDecodeError("task data is missing")
    try:
        fields = msgpack.unpackb(data, raw=False, timestamp=3, strict_map_key=False)
    except Exception as exc:  # noqa: BLE001 - msgpack raises many unrelated types
        raise MessageDecodeError(f"undecodable task data: {exc}") from None
    if not isinstance(fields, list) or len(fields) not in (_MESSAGE_FIELDS, _MESSAGE_FIELDS + 1):
        raise MessageDecodeError("undecodable task data: not a task message")
    version, task_type, payload, max_retry, timeout_ms, deadline_ms, retention_ms, enqueued = (
        fields[:_MESSAGE_FIELDS]
    )
    headers = _headers(fields[_MESSAGE_FIELDS]) if len(fields) > _MESSAGE_FIELDS else _NO_HEADERS
    if version != MESSAGE_VERSION:
        raise MessageDecodeError(f"undecodable task data: unknown message version {version!r}")
    if (
        not isinstance(task_type, str)
        or not isinstance(max_retry, int)
        or not _optional_int(timeout_ms)
        or not _optional_int(deadline_ms)
        or not isinstance(retention_ms, int)
        or not isinstance(enqueued, int)
        or headers is None
    ):
        raise MessageDecodeError("undecodable task data: malformed task message")
    return TaskMessage(
        task_type, payload, max_retry, timeout_ms, deadline_ms, retention_ms, enqueued, headers
    )
