"""Every check of an argument or setting, with one set of rules for all entry points.

Client, Server, Scheduler, Inspector, TaskSpec (when enqueued), the retry delays and the
CLI check what they are given with these functions, so that one kind of value is
accepted or refused in the same way everywhere:

- an int is an `int`, never a `bool` (``concurrency=True`` is a `TypeError`);
- a number is an `int` or `float`, never a `bool`, and finite;
- a bool setting is `True` or `False`, never ``1`` or ``"yes"``;
- a duration is seconds (`int` or `float`) or a `timedelta`, finite, not negative and at
  most `MAX_SECONDS` (1000 years); where zero makes no sense it must be positive;
- an instant is an aware `datetime` within years 1-9999 in UTC;
- a name (queue, namespace, task id, entry id) is a non-empty `str` of at most 256
  characters without braces, whitespace or control characters;
- a hook is callable; a handler or middleware is an async callable;
- headers are a mapping of header names (like HTTP's: ASCII letters, digits and
  ``!#$%&'*+-.^_`|~``, at most 256 characters, case kept) to `str` values without
  control characters other than tab, at most `MAX_HEADERS` of them and `MAX_HEADER_BYTES`
  in all (UTF-8).

A wrong type raises `TypeError`, a value out of range `ValueError`; each function
returns the value checked (converted where it says so).  This module imports nothing
from the package but the leaves `tickr._time` and `tickr.values`.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Final, TypeVar

from tickr._time import EPOCH, MAX_MS, MIN_MS
from tickr.values import TASK_STATES, TaskState

__all__ = [
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "MAX_SECONDS",
    "check_bool",
    "check_callable",
    "check_duration_ms",
    "check_float",
    "check_headers",
    "check_instant_ms",
    "check_int",
    "check_name",
    "check_positive_ms",
    "check_positive_seconds",
    "check_seconds",
    "check_state",
    "check_task",
    "check_text",
    "check_url",
    "is_async_callable",
]

MAX_SECONDS: Final = 1000 * 365 * 86400
"""The longest duration accepted anywhere, in seconds: 1000 years (of 365 days).

Now plus any duration, or a sum of a few, stays far inside what `datetime` holds and
what Redis and its Lua scripts hold exactly as milliseconds (below 2**53).
"""

MAX_HEADERS: Final = 64
"""The most headers one task may carry."""

MAX_HEADER_BYTES: Final = 8192
"""The most bytes (UTF-8) of header names and values one task may carry."""

_NAME_LIMIT: Final = 256
_HEADER_NAME: Final = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_BAD_HEADER_VALUE_CHARS: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_BAD_NAME_CHARS: Final = re.compile(r"[{}\s\x00-\x1f\x7f]")

_CallableT = TypeVar("_CallableT", bound=Callable[..., object])


def check_text(value: object, what: str) -> str:
    """Validate a non-empty str (a task type, a mux pattern) and return it.

    Raises:
        TypeError: If it is not a str.
        ValueError: If it is empty.
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    return value


def check_name(value: object, what: str) -> str:
    """Validate a queue name, namespace, task id or entry id and return it.

    Raises:
        TypeError: If it is not a str.
        ValueError: If it is empty, longer than 256 characters, or contains braces,
            whitespace or control characters (braces would break the key hash tags).
    """
    value = check_text(value, what)
    if len(value) > _NAME_LIMIT:
        raise ValueError(f"{what} must be at most {_NAME_LIMIT} characters")
    if _BAD_NAME_CHARS.search(value):
        raise ValueError(
            f"{what} {value!r} must not contain braces, whitespace or control characters"
        )
    return value


def check_headers(headers: object) -> dict[str, str]:
    """Validate a task's headers and return them as a new dict (empty for None).

    Raises:
        TypeError: If they are not a mapping of str to str.
        ValueError: If a name is empty, too long or has a character outside HTTP's token
            set, a value has a control character or a lone surrogate, or there are more
            than `MAX_HEADERS` or more than `MAX_HEADER_BYTES` bytes of them.
    """
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise TypeError(f"headers must be a mapping of str to str, not {type(headers).__name__}")
    if len(headers) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} headers are allowed, got {len(headers)}")
    checked: dict[str, str] = {}
    size = 0
    for name, value in headers.items():
        if not isinstance(name, str):
            raise TypeError(f"a header name must be a str, not {type(name).__name__}")
        if not isinstance(value, str):
            raise TypeError(f"header {name!r} must be a str, not {type(value).__name__}")
        if len(name) > _NAME_LIMIT or not _HEADER_NAME.fullmatch(name):
            raise ValueError(
                f"header name {name!r} must be 1 to {_NAME_LIMIT} ASCII letters, digits "
                "or !#$%&'*+-.^_`|~"
            )
        if _BAD_HEADER_VALUE_CHARS.search(value):
            raise ValueError(f"header {name!r} must not contain control characters")
        try:
            size += len(name) + len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise ValueError(f"header {name!r} is not valid Unicode text") from None
        checked[name] = value
    if size > MAX_HEADER_BYTES:
        raise ValueError(f"headers are {size} bytes, over the limit of {MAX_HEADER_BYTES}")
    return checked


def check_task(task_id: object, queue: object) -> None:
    """Validate the task id and queue name of a call about one task (see `check_name`).

    Raises:
        TypeError: If either is not a str.
        ValueError: If either is not a valid name.
    """
    check_name(task_id, "task_id")
    check_name(queue, "queue")


def check_state(state: object) -> TaskState:
    """Validate a task state (one of `TASK_STATES`) and return it.

    Raises:
        ValueError: If it is not a task state.
    """
    for known in TASK_STATES:
        if known == state:
            return known
    raise ValueError(f"unknown task state {state!r}: one of {', '.join(TASK_STATES)}")


def check_int(
    value: object, name: str, minimum: int | None = None, maximum: int | None = None
) -> int:
    """Validate an int, within [minimum, maximum] if given, and return it.

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


def check_callable(value: _CallableT | None, name: str) -> _CallableT | None:
    """Validate an optional hook (None or a callable) and return it.

    Raises:
        TypeError: If it is neither None nor callable.
    """
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable")
    return value


def is_async_callable(obj: object) -> bool:
    """Whether calling `obj` returns a coroutine (an async function or object)."""
    return inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(
        getattr(obj, "__call__", None)  # noqa: B004 - async callable objects are fine
    )


def check_seconds(value: float | timedelta, name: str) -> float:
    """A duration given as seconds or a timedelta, as float seconds.

    Raises:
        TypeError: If `value` is neither a number nor a timedelta (a bool is refused).
        ValueError: If it is negative, infinite, NaN or over `MAX_SECONDS` (1000 years).
    """
    kind = type(value)
    if kind is float or kind is int:  # the common case first: a bool's type is bool
        result = float(value)  # type: ignore[arg-type]
    elif isinstance(value, timedelta):
        result = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        result = float(value)
    else:
        raise TypeError(f"{name} must be seconds (int or float) or a timedelta, not {value!r}")
    if 0 <= result <= MAX_SECONDS:  # false for NaN and infinities too
        return result
    if not math.isfinite(result):
        raise ValueError(f"{name} must be a finite duration, not {value!r}")
    if result < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")
    if result > MAX_SECONDS:
        raise ValueError(
            f"{name} must be at most {MAX_SECONDS} seconds (1000 years), not {value!r}"
        )
    return result


def check_positive_seconds(value: float | timedelta, name: str) -> float:
    """A positive duration (see `check_seconds`), as float seconds.

    Raises:
        TypeError: If `value` is neither a number nor a timedelta.
        ValueError: If it is zero, negative, infinite, NaN or over 1000 years.
    """
    result = check_seconds(value, name)
    if result == 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return result


def check_duration_ms(value: float | timedelta, name: str) -> int:
    """A duration (see `check_seconds`) as whole milliseconds.

    Raises:
        TypeError: If `value` is neither a number nor a timedelta.
        ValueError: If it is negative, infinite, NaN or over `MAX_SECONDS` (1000 years).
    """
    if type(value) is int and 0 <= value <= MAX_SECONDS:  # whole seconds: nothing to convert
        return value * 1000
    return int(check_seconds(value, name) * 1000)


def check_positive_ms(value: float | timedelta, name: str) -> int:
    """A duration of at least one millisecond (see `check_seconds`), as milliseconds.

    Raises:
        TypeError: If `value` is neither a number nor a timedelta.
        ValueError: If it is under 1 ms, negative, infinite, NaN or over 1000 years.
    """
    if type(value) is int and 0 < value <= MAX_SECONDS:
        return value * 1000
    ms = int(check_seconds(value, name) * 1000)
    if ms <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return ms


def check_instant_ms(moment: datetime, name: str) -> int:
    """Milliseconds since the epoch of an aware datetime.

    Raises:
        TypeError: If `moment` is not a datetime.
        ValueError: If `moment` is naive, or its UTC instant is outside years 1-9999.
    """
    if not isinstance(moment, datetime):
        raise TypeError(f"{name} must be an aware datetime, not {type(moment).__name__}")
    if moment.tzinfo is None or moment.tzinfo.utcoffset(moment) is None:
        raise ValueError(f"{name} must be timezone-aware (got a naive datetime)")
    ms = (moment - EPOCH) // timedelta(milliseconds=1)
    if not MIN_MS <= ms <= MAX_MS:
        raise ValueError(f"{name} must fall within years 1-9999 in UTC, not {moment!r}")
    return ms
