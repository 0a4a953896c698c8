"""The dashboard's templates, the filters they format values with, and its page headers."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from functools import cache
from typing import Any, Final

import jinja2
from starlette.responses import HTMLResponse

from tickr.web.jsonform import to_json

__all__ = ["SECURITY_HEADERS", "environment", "page"]

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
"""Sent with every page: no inline script or style, no framing, nothing cached."""


def count(value: Any) -> str:
    """A count with thousands separators: 1,234,567."""
    return f"{int(value):,}"


def seconds(value: Any) -> str:
    """A duration in the unit that reads best: 850 ms, 4.2 s, 3 min 5 s, 2 h 10 min, 3 d 4 h."""
    total = float(value)
    if not math.isfinite(total) or total <= 0:
        return "0 s"
    if total < 1:
        return f"{total * 1000:.0f} ms"
    if total < 60:
        return f"{total:.1f} s"
    minutes, rest = divmod(int(total), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def moment(value: datetime | None) -> str:
    """A time in UTC to the second, or an em dash."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(value: datetime | None, now: datetime) -> str:
    """How long before `now` (or after it) a time is."""
    if value is None:
        return ""
    delta = (now - value).total_seconds()
    return f"{seconds(delta)} ago" if delta >= 0 else f"in {seconds(-delta)}"


def percent(part: Any, whole: Any) -> str:
    """The share of `part` in `whole` in percent, one decimal (2.5 %); a dash for 0."""
    return f"{100 * float(part) / float(whole):.1f} %" if whole else "—"


def pretty_json(value: Any) -> str:
    """A payload or result as indented JSON (tagged where JSON has no type for it)."""
    return json.dumps(to_json(value), indent=2, ensure_ascii=False, sort_keys=True)


@cache
def environment() -> jinja2.Environment:
    """The templates of the package, autoescaped, with the formatting filters."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tickr.web._dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        count=count, seconds=seconds, moment=moment, pretty_json=pretty_json, percent=percent
    )
    env.globals.update(ago=ago)
    return env


def page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A rendered template with the security headers."""
    html = environment().get_template(template).render(**context)
    return HTMLResponse(html, status, headers=SECURITY_HEADERS)
