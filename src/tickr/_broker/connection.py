"""Which Redis to use: the URL rules, and the client type users may pass."""

from __future__ import annotations

import os
from typing import Final

from redis.asyncio import Redis

__all__ = ["DEFAULT_URL", "URL_VARIABLE", "RedisClient", "resolve_url"]

RedisClient = Redis
"""The client type users may pass as ``redis=`` (a `redis.asyncio.Redis`)."""

URL_VARIABLE: Final = "TICKR_REDIS_URL"
DEFAULT_URL: Final = "redis://127.0.0.1:6379/0"


def resolve_url(url: str | None) -> str:
    """The URL to use: `url`, else $TICKR_REDIS_URL, else the local default."""
    return url or os.environ.get(URL_VARIABLE) or DEFAULT_URL
