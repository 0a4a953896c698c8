"""What the CLI prints: aligned tables, key/value blocks, durations, and JSON.

Tables fit the terminal (80 columns when the output is not a terminal, or $COLUMNS):
columns marked shrinkable are cut with an ellipsis, widest first, and the gap between
columns narrows from two spaces to one before anything is cut below its minimum.

JSON output converts values so that any payload survives: datetimes and dates become
ISO 8601 strings, bytes become ``{"$base64": "..."}``, tuples and sets become lists,
non-finite floats become the strings "nan", "inf" and "-inf", dict keys that are not
strings become their JSON text (numbers, true/false/null) or their Python repr, and
anything else becomes its Python repr.
"""

from __future__ import annotations

import base64
import json
import math
import pprint
import shutil
import sys
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

__all__ = [
    "Column",
    "ago",
    "block",
    "duration",
    "emit_json",
    "jsonable",
    "masked_url",
    "nbytes",
    "out",
    "plural",
    "short",
    "table",
    "terminal_width",
    "timestamp",
]

_GAPS = (2, 1)


def out(text: str = "") -> None:
    """Print a line (or lines) to the current stdout."""
    print(text, file=sys.stdout)


def terminal_width() -> int:
    """Columns to fit: $COLUMNS, else the terminal's width, else 80."""
    return max(20, shutil.get_terminal_size((80, 24)).columns)


# ------------------------------------------------------------------ text widths


def _ellipsis() -> str:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "…".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "~"
    return "…"


def _char_width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def width(text: str) -> int:
    """Columns that `text` takes on a terminal."""
    if text.isascii():
        return len(text)
    return sum(_char_width(char) for char in text)


def truncate(text: str, limit: int) -> str:
    """`text` cut to `limit` columns, ending with an ellipsis when it was cut."""
    if width(text) <= limit:
        return text
    mark = _ellipsis()
    room = max(0, limit - width(mark))
    kept: list[str] = []
    used = 0
    for char in text:
        used += _char_width(char)
        if used > room:
            break
        kept.append(char)
    return "".join(kept) + mark


def _pad(text: str, size: int, align: str) -> str:
    fill = " " * max(0, size - width(text))
    return text + fill if align == "<" else fill + text


def _clean(value: object) -> str:
    """One line: whitespace runs and control characters become one space."""
    text = str(value)
    if text.isascii() and text.isprintable():
        return text
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


# ------------------------------------------------------------------ tables


@dataclass(frozen=True, slots=True)
class Column:
    """A table column.

    Attributes:
        header: The title, in capitals by convention.
        align: "<" for text, ">" for numbers.
        shrink: The width this column may be cut down to, or None to never cut it.
    """

    header: str
    align: Literal["<", ">"] = "<"
    shrink: int | None = None


def table(columns: Sequence[Column], rows: Iterable[Sequence[object]], max_width: int) -> str:
    """An aligned table, header first, fitted to `max_width` columns when possible."""
    cells = [[_clean(cell) for cell in row] for row in rows]
    natural = [
        max([width(column.header), *(width(row[i]) for row in cells)])
        for i, column in enumerate(columns)
    ]
    gap, sizes = _GAPS[0], natural
    for gap in _GAPS:
        sizes = _fit(columns, natural, max_width - gap * (len(columns) - 1))
        if sum(sizes) + gap * (len(columns) - 1) <= max_width:
            break
    lines = []
    for row in [[column.header for column in columns], *cells]:
        parts = [
            _pad(truncate(cell, size), size, column.align)
            for cell, size, column in zip(row, sizes, columns, strict=True)
        ]
        lines.append((" " * gap).join(parts).rstrip())
    return "\n".join(lines)


def _fit(columns: Sequence[Column], natural: list[int], room: int) -> list[int]:
    """Cut shrinkable columns, widest first, until they fit `room` or reach their minimum."""
    sizes = list(natural)
    floors = [
        size if column.shrink is None else min(size, max(column.shrink, 1))
        for column, size in zip(columns, natural, strict=True)
    ]
    excess = sum(sizes) - room
    while excess > 0:
        candidates = [i for i, size in enumerate(sizes) if size > floors[i]]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: sizes[i])
        sizes[widest] -= 1
        excess -= 1
    return sizes


def block(pairs: Sequence[tuple[str, object]]) -> str:
    """A key/value block; values of several lines are indented under the first."""
    label = max(width(key) for key, _ in pairs) + 2
    lines = []
    for key, value in pairs:
        first, *rest = str(value).splitlines() or [""]
        lines.append(f"{key + ':':<{label}}{first}".rstrip())
        lines.extend(" " * label + line for line in rest)
    return "\n".join(lines)


# ------------------------------------------------------------------ values


def plural(count: int, noun: str) -> str:
    """The count and the noun, plural unless the count is 1."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def masked_url(url: str) -> str:
    """The URL with its password, if any, replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    credentials, at, location = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{location}"


def duration(seconds: float) -> str:
    """A short human duration: 0s, 1.5s, 42s, 3m12s, 30m, 2h05m, 3d04h."""
    seconds = max(0.0, seconds)
    if seconds < 10:
        text = f"{seconds:.1f}".rstrip("0").rstrip(".")
        return f"{text}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        big, unit, rest, small = whole // 60, "m", whole % 60, "s"
    elif whole < 86400:
        big, unit, rest, small = whole // 3600, "h", whole % 3600 // 60, "m"
    else:
        big, unit, rest, small = whole // 86400, "d", whole % 86400 // 3600, "h"
    return f"{big}{unit}{rest:02d}{small}" if rest else f"{big}{unit}"


def ago(moment: datetime | None, now: datetime) -> str:
    """The time from `now`: "3m12s ago" or "in 42s"; "-" for None."""
    if moment is None:
        return "-"
    delta = (moment - now).total_seconds()
    return f"in {duration(delta)}" if delta > 0 else f"{duration(-delta)} ago"


def timestamp(moment: datetime | None) -> str:
    """An instant in UTC to the second, "YYYY-MM-DD HH:MM:SS"; "-" for None."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def nbytes(count: int) -> str:
    """A byte count: 512 B, 1.5 KiB, 3.2 MiB."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def short(value: Any) -> str:
    """A payload or result on one line, as Python writes it ("-" for None)."""
    return "-" if value is None else repr(value)


def pretty(value: Any, max_width: int) -> str:
    """A payload or result in full, as Python writes it, wrapped to `max_width`."""
    return (
        "-" if value is None else pprint.pformat(value, width=max(20, max_width), sort_dicts=False)
    )


# ------------------------------------------------------------------ JSON


def jsonable(value: Any) -> Any:
    """`value` as plain JSON types (see the module docstring for the conversions)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Mapping):
        return {_json_key(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    if is_dataclass(value) and not isinstance(value, type):
        return {field.name: jsonable(getattr(value, field.name)) for field in fields(value)}
    return repr(value)


def _json_key(key: object) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)
    return repr(key)


def emit_json(value: Any, *, compact: bool = False) -> None:
    """Print `value` as JSON: indented, or on one line with `compact`."""
    converted = jsonable(value)
    if compact:
        out(json.dumps(converted, ensure_ascii=False, separators=(",", ":")))
    else:
        out(json.dumps(converted, ensure_ascii=False, indent=2))
