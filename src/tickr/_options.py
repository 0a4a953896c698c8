"""`TaskSpec`, and `prepare_task`, which validates and encodes one for the broker.

Every rule of the contract is checked (with `tickr._checks`) before anything is written
to Redis, so that a bad argument raises `TypeError` or `ValueError` and never leaves a
half-made task.  `TaskSpec` is public as `tickr.TaskSpec`; the rest is internal.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Final, Literal

from tickr._broker import EnqueueItem
from tickr._checks import (
    check_duration_ms,
    check_headers,
    check_instant_ms,
    check_int,
    check_name,
    check_positive_ms,
    check_text,
)
from tickr._serialization import canonical_bytes, encode_message, encode_value
from tickr._time import datetime_from_ms
from tickr.values import TaskInfo

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "DEFAULT_MAX_RETRY",
    "DEFAULT_QUEUE",
    "DEFAULT_TIMEOUT",
    "MAX_CONCURRENCY",
    "PreparedTask",
    "TaskSpec",
    "new_task_id",
    "prepare_task",
]

MAX_CONCURRENCY: Final = 10_000
"""The most worker coroutines one Server runs; run more servers for more."""

DEFAULT_QUEUE: Final = "default"
DEFAULT_MAX_RETRY: Final = 25
DEFAULT_TIMEOUT: Final = 1800
DEFAULT_MAX_PAYLOAD_BYTES: Final = 512 * 1024
PRIORITY_LIMIT: Final = 2**31
_NO_HEADERS: Final[Mapping[str, str]] = MappingProxyType({})
_SpecHeaders = Literal["spec"]
MAX_RETRY_LIMIT: Final = 2**31


class TaskSpec:
    """A task to enqueue: its type, payload and options, as taken by `Client.enqueue`.

    Arguments are stored as given and validated when the spec is enqueued.  See
    `Client.enqueue` for the meaning of each option.
    """

    __slots__ = (
        "at",
        "deadline",
        "delay",
        "headers",
        "lane",
        "max_retry",
        "payload",
        "priority",
        "queue",
        "retention",
        "task_id",
        "timeout",
        "type",
        "unique",
    )

    def __init__(
        self,
        type: str,
        payload: Any = None,
        *,
        queue: str = DEFAULT_QUEUE,
        priority: int = 0,
        delay: float | timedelta | None = None,
        at: datetime | None = None,
        max_retry: int = DEFAULT_MAX_RETRY,
        timeout: float | timedelta | None = DEFAULT_TIMEOUT,
        deadline: datetime | None = None,
        task_id: str | None = None,
        unique: float | timedelta | None = None,
        retention: float | timedelta = 0,
        headers: Mapping[str, str] | None = None,
        lane: str | None = None,
    ) -> None:
        self.type = type
        self.payload = payload
        self.queue = queue
        self.priority = priority
        self.delay = delay
        self.at = at
        self.max_retry = max_retry
        self.timeout = timeout
        self.deadline = deadline
        self.task_id = task_id
        self.unique = unique
        self.retention = retention
        self.headers = headers
        self.lane = lane

    def __repr__(self) -> str:
        return f"TaskSpec({self.type!r}, queue={self.queue!r}, task_id={self.task_id!r})"


class PreparedTask:
    """A validated task, encoded and ready for the broker.

    Its `TaskInfo` is built on first use, so that a batch can build them while Redis
    stores the tasks.
    """

    __slots__ = (
        "_due_ms",
        "_headers",
        "_info",
        "_now",
        "_retention_ms",
        "_spec",
        "_timeout_ms",
        "item",
        "queue",
    )

    def __init__(
        self,
        queue: str,
        item: EnqueueItem,
        spec: TaskSpec,
        timeout_ms: int | None,
        due_ms: int,
        now: datetime,
        retention_ms: int,
        headers: Mapping[str, str],
    ) -> None:
        self.queue = queue
        self.item = item
        self._spec = spec
        self._timeout_ms = timeout_ms
        self._due_ms = due_ms
        self._now = now
        self._retention_ms = retention_ms
        self._headers = headers
        self._info: TaskInfo | None = None

    @property
    def info(self) -> TaskInfo:
        """The task as enqueued (state "pending" or "scheduled")."""
        if self._info is None:
            task_id, _msg, priority, due, _digest, _ttl, max_retry, _token, lane = self.item
            timeout_ms = self._timeout_ms
            self._info = TaskInfo(
                id=task_id,
                type=self._spec.type,
                payload=self._spec.payload,
                queue=self.queue,
                state="scheduled" if due else "pending",
                priority=priority,
                max_retry=max_retry,
                timeout=None if timeout_ms is None else timeout_ms / 1000,
                deadline=self._spec.deadline,
                next_process_at=datetime_from_ms(self._due_ms) if due else self._now,
                enqueued_at=self._now,
                retention=self._retention_ms / 1000,
                headers=self._headers,
                lane=lane or None,
            )
        return self._info


def _due_ms(spec: TaskSpec, now: int) -> int:
    if spec.delay is not None and spec.at is not None:
        raise ValueError("give either delay or at, not both")
    if spec.delay is not None:
        return now + check_duration_ms(spec.delay, "delay")
    if spec.at is not None:
        return check_instant_ms(spec.at, "at")
    return now


def _deadline_ms(deadline: datetime, at_ms: int | None, now_ms: int) -> int:
    ms = check_instant_ms(deadline, "deadline")
    if ms <= now_ms:
        raise ValueError("deadline is already in the past")
    if at_ms is not None and ms <= at_ms:
        raise ValueError("deadline must be later than at")
    return ms


def new_task_id() -> str:
    """A fresh random (version 4) UUID as 32 hex digits, like ``uuid.uuid4().hex``."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


def _id_and_token(task_id: str | None) -> tuple[str, str]:
    """The task id, and the token by which Redis tells this call from another one.

    A fresh random id is the call's own and needs no token; a caller's id gets a random
    one, so that a call re-sent after a lost reply finds its task, and any other call
    using the same id gets TaskIDConflict.
    """
    if task_id is None:
        return new_task_id(), ""
    return check_name(task_id, "task_id"), os.urandom(8).hex()


def prepare_task(
    spec: TaskSpec,
    *,
    now_ms: int,
    max_payload_bytes: int,
    now: datetime | None = None,
    headers: Mapping[str, str] | _SpecHeaders | None = "spec",
) -> PreparedTask:
    """Validate and encode a spec.

    `now` may pass `now_ms` as a datetime already made, to share it across a batch;
    `headers` replaces the spec's (the tracer adds its context so).

    Raises:
        TypeError: For an argument of the wrong type or an unencodable payload.
        ValueError: For an argument out of range, as documented on `Client.enqueue`.
    """
    task_type = check_text(spec.type, "task type")
    queue = check_name(spec.queue, "queue")
    priority = check_int(spec.priority, "priority")
    if not -PRIORITY_LIMIT <= priority < PRIORITY_LIMIT:
        raise ValueError(f"priority must be within [-2**31, 2**31), got {priority}")
    max_retry = check_int(spec.max_retry, "max_retry")
    if max_retry < 0:
        raise ValueError(f"max_retry must not be negative, got {max_retry}")
    if max_retry >= MAX_RETRY_LIMIT:
        raise ValueError(f"max_retry must be below 2**31, got {max_retry}")
    timeout = spec.timeout
    timeout_ms = None if timeout is None else check_positive_ms(timeout, "timeout")
    due_ms = now_ms if spec.delay is None and spec.at is None else _due_ms(spec, now_ms)
    at_ms = None if spec.at is None else due_ms
    deadline_ms = None if spec.deadline is None else _deadline_ms(spec.deadline, at_ms, now_ms)
    retention_ms = check_duration_ms(spec.retention, "retention")
    unique_ms = None if spec.unique is None else check_positive_ms(spec.unique, "unique")
    task_id, token = _id_and_token(spec.task_id)
    lane = "" if spec.lane is None else check_name(spec.lane, "lane")
    given = spec.headers if headers == "spec" else headers
    headers = _NO_HEADERS if given is None else MappingProxyType(check_headers(given))

    msg = encode_message(
        task_type, spec.payload, max_retry, timeout_ms, deadline_ms, retention_ms, now_ms, headers
    )
    if len(msg) > max_payload_bytes:  # the payload alone may still be small enough
        payload_size = len(encode_value(spec.payload))
        if payload_size > max_payload_bytes:
            raise ValueError(
                f"payload is {payload_size} bytes, over the limit of {max_payload_bytes}"
            )
    digest = ""
    if unique_ms is not None:
        hasher = hashlib.blake2b(digest_size=16)
        hasher.update(canonical_bytes([task_type, queue, spec.payload]))
        digest = hasher.hexdigest()

    scheduled = due_ms > now_ms
    enqueued_at = now if now is not None else datetime_from_ms(now_ms)
    due = due_ms if scheduled else 0
    item = EnqueueItem(task_id, msg, priority, due, digest, unique_ms or 0, max_retry, token, lane)
    return PreparedTask(queue, item, spec, timeout_ms, due_ms, enqueued_at, retention_ms, headers)
