"""`TaskSpec` and the validation of enqueue options.

Every rule of the contract is checked here, before anything is written to Redis, so that
a bad argument raises `TypeError` or `ValueError` and never leaves a half-made task.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from datetime import datetime, timedelta
from typing import Any, Final

from tickr._broker import EnqueueItem
from tickr._time import datetime_from_ms, duration_ms, ms_from_datetime
from tickr.serialization import canonical_bytes, encode_message, encode_value
from tickr.values import TaskInfo

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "DEFAULT_MAX_RETRY",
    "DEFAULT_QUEUE",
    "DEFAULT_TIMEOUT",
    "PreparedTask",
    "TaskSpec",
    "check_bool",
    "check_float",
    "check_int",
    "check_name",
    "check_task",
    "check_url",
    "new_task_id",
    "prepare_task",
]

DEFAULT_QUEUE: Final = "default"
DEFAULT_MAX_RETRY: Final = 25
DEFAULT_TIMEOUT: Final = 1800
DEFAULT_MAX_PAYLOAD_BYTES: Final = 512 * 1024
PRIORITY_LIMIT: Final = 2**31
MAX_RETRY_LIMIT: Final = 2**31
_NAME_LIMIT: Final = 256
_BAD_NAME_CHARS: Final = re.compile(r"[{}\s\x00-\x1f\x7f]")


def check_name(value: object, what: str) -> str:
    """Validate a queue name, namespace or task id and return it.

    Raises:
        TypeError: If it is not a str.
        ValueError: If it is empty, longer than 256 characters, or contains braces,
            whitespace or control characters (braces would break the key hash tags).
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) > _NAME_LIMIT:
        raise ValueError(f"{what} must be at most {_NAME_LIMIT} characters")
    if _BAD_NAME_CHARS.search(value):
        raise ValueError(
            f"{what} {value!r} must not contain braces, whitespace or control characters"
        )
    return value


def check_task(task_id: object, queue: object) -> None:
    """Validate the task id and queue name of a call about one task (see `check_name`).

    Raises:
        TypeError: If either is not a str.
        ValueError: If either is not a valid name.
    """
    check_name(task_id, "task_id")
    check_name(queue, "queue")


def check_int(
    value: object, name: str, minimum: int | None = None, maximum: int | None = None
) -> int:
    """Validate an int setting or argument, within [minimum, maximum] if given, and return it.

    Raises:
        TypeError: If it is not an int (a bool is refused).
        ValueError: If it is out of range.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if maximum is None:
            raise ValueError(f"{name} must be at least {minimum}, got {value}")
        raise ValueError(f"{name} must be from {minimum} to {maximum}, got {value}")
    return value


def check_float(value: object, name: str) -> float:
    """Validate a finite number (int or float, not a bool) and return it as a float.

    Raises:
        TypeError: If it is not an int or float.
        ValueError: If it is infinite or NaN.
    """
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, not {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, not {value!r}")
    return float(value)


def check_bool(value: object, name: str) -> bool:
    """Validate a bool setting and return it.

    Raises:
        TypeError: If it is not a bool (1, "yes" and the like are refused).
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {value!r}")
    return value


def check_url(url: object) -> str | None:
    """Validate the `url` setting (a str or None) and return it.

    Raises:
        TypeError: If it is neither a str nor None.
        ValueError: If it is the empty string (None means the default).
    """
    if url is None:
        return None
    if not isinstance(url, str):
        raise TypeError(f"url must be a str or None, not {type(url).__name__}")
    if not url:
        raise ValueError("url must not be empty (give None for the default)")
    return url


class TaskSpec:
    """A task to enqueue: its type, payload and options, as taken by `Client.enqueue`.

    Arguments are stored as given and validated when the spec is enqueued.  See
    `Client.enqueue` for the meaning of each option.
    """

    __slots__ = (
        "at",
        "deadline",
        "delay",
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

    def __repr__(self) -> str:
        return f"TaskSpec({self.type!r}, queue={self.queue!r}, task_id={self.task_id!r})"


class PreparedTask:
    """A validated task, encoded and ready for the broker.

    Its `TaskInfo` is built on first use, so that a batch can build them while Redis
    stores the tasks.
    """

    __slots__ = (
        "_due_ms",
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
    ) -> None:
        self.queue = queue
        self.item = item
        self._spec = spec
        self._timeout_ms = timeout_ms
        self._due_ms = due_ms
        self._now = now
        self._retention_ms = retention_ms
        self._info: TaskInfo | None = None

    @property
    def info(self) -> TaskInfo:
        """The task as enqueued (state "pending" or "scheduled")."""
        if self._info is None:
            task_id, _msg, priority, due, _digest, _ttl, max_retry, _token = self.item
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
            )
        return self._info


def _due_ms(spec: TaskSpec, now: int) -> int:
    if spec.delay is not None and spec.at is not None:
        raise ValueError("give either delay or at, not both")
    if spec.delay is not None:
        return now + duration_ms(spec.delay, "delay")
    if spec.at is not None:
        return ms_from_datetime(spec.at, "at")
    return now


def _deadline_ms(deadline: datetime, at_ms: int | None, now_ms: int) -> int:
    ms = ms_from_datetime(deadline, "deadline")
    if ms <= now_ms:
        raise ValueError("deadline is already in the past")
    if at_ms is not None and ms <= at_ms:
        raise ValueError("deadline must be later than at")
    return ms


def _positive_ms(value: float | timedelta, name: str) -> int:
    ms = duration_ms(value, name)
    if ms <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
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
    spec: TaskSpec, *, now_ms: int, max_payload_bytes: int, now: datetime | None = None
) -> PreparedTask:
    """Validate and encode a spec.

    `now` may pass `now_ms` as a datetime already made, to share it across a batch.

    Raises:
        TypeError: For an argument of the wrong type or an unencodable payload.
        ValueError: For an argument out of range, as documented on `Client.enqueue`.
    """
    task_type = spec.type
    if not isinstance(task_type, str):
        raise TypeError(f"task type must be a str, not {type(task_type).__name__}")
    if not task_type:
        raise ValueError("task type must not be empty")
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
    if timeout == DEFAULT_TIMEOUT and type(timeout) is int:  # the default, fast
        timeout_ms: int | None = 1_800_000
    else:
        timeout_ms = None if timeout is None else _positive_ms(timeout, "timeout")
    due_ms = now_ms if spec.delay is None and spec.at is None else _due_ms(spec, now_ms)
    at_ms = None if spec.at is None else due_ms
    deadline_ms = None if spec.deadline is None else _deadline_ms(spec.deadline, at_ms, now_ms)
    retention = spec.retention
    if retention == 0 and type(retention) is int:
        retention_ms = 0
    else:
        retention_ms = duration_ms(retention, "retention")
    unique_ms = None if spec.unique is None else _positive_ms(spec.unique, "unique")
    task_id, token = _id_and_token(spec.task_id)

    msg = encode_message(
        task_type, spec.payload, max_retry, timeout_ms, deadline_ms, retention_ms, now_ms
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
    item = EnqueueItem(task_id, msg, priority, due, digest, unique_ms or 0, max_retry, token)
    return PreparedTask(queue, item, spec, timeout_ms, due_ms, enqueued_at, retention_ms)
