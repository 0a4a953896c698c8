"""Task payloads and results as JSON, both ways.

JSON has no bytes and no datetimes, which msgpack payloads may hold; they travel tagged:
``{"$bytes": "<base64>"}`` and ``{"$datetime": "<ISO 8601 with offset>"}``.  A mapping
whose keys are not all str (msgpack allows int keys) travels as ``{"$map": [[k, v],
...]}``.  Everything else is plain JSON.  Tagged objects are recognised on the way in, so
a client can send bytes and aware datetimes too.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

__all__ = ["from_json", "to_json"]


def to_json(value: Any) -> Any:
    """`value` (a decoded payload or result) in JSON types, tagged where it must be."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, Mapping):
        if all(isinstance(key, str) for key in value):
            return {key: to_json(item) for key, item in value.items()}
        return {"$map": [[to_json(key), to_json(item)] for key, item in value.items()]}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    return repr(value)


def from_json(value: Any) -> Any:
    """A payload from JSON, with the tagged objects turned back into their values.

    Raises:
        ValueError: For a tagged object that is malformed (bad base64, a naive or
            unreadable datetime, a $map that is no list of pairs).
    """
    if isinstance(value, list):
        return [from_json(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((tag, inner),) = value.items()
        if tag == "$bytes":
            try:
                return base64.b64decode(str(inner), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("$bytes must be base64") from None
        if tag == "$datetime":
            try:
                moment = datetime.fromisoformat(str(inner))
            except ValueError:
                raise ValueError(f"$datetime is not an ISO 8601 datetime: {inner!r}") from None
            if moment.tzinfo is None:
                raise ValueError("$datetime must have a UTC offset")
            return moment
        if tag == "$map":
            if not isinstance(inner, list) or not all(
                isinstance(pair, list) and len(pair) == 2 for pair in inner
            ):
                raise ValueError("$map must be a list of [key, value] pairs")
            return {_key(from_json(k)): from_json(v) for k, v in inner}
    return {key: from_json(item) for key, item in value.items()}


def _key(key: Any) -> Any:
    if isinstance(key, list | dict):
        raise ValueError("a $map key must be a scalar")
    return key
