"""Opening the Redis client that the broker uses."""

from __future__ import annotations

import os
from typing import Final

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["DEFAULT_URL", "URL_VARIABLE", "RedisClient", "open_redis", "resolve_url"]

RedisClient = Redis
"""The client type users may pass as ``redis=`` (a `redis.asyncio.Redis`)."""

URL_VARIABLE: Final = "TICKR_REDIS_URL"
DEFAULT_URL: Final = "redis://127.0.0.1:6379/0"


def resolve_url(url: str | None) -> str:
    """The URL to use: `url`, else $TICKR_REDIS_URL, else the local default."""
    return url or os.environ.get(URL_VARIABLE) or DEFAULT_URL


def open_redis(url: str | None) -> Redis:
    """Create a client for `url` (see `resolve_url`) with Tickr's connection settings.

    Commands that fail on a broken connection are retried a few times with a short
    exponential backoff, so that a restart of Redis or a dropped connection does not
    surface as an error unless it lasts.

    Two redis-py defaults are changed.  The connection speaks RESP2: Tickr needs nothing
    of RESP3, whose handshake costs a round trip per connection.  And there is no socket
    timeout: redis-py enforces it with `asyncio.wait_for`, which costs a task per command
    and can lose a cancellation on Python 3.11; the broker bounds every call with
    `asyncio.timeout` instead.

    Raises:
        ValueError: If the URL is not a valid redis URL.
    """
    resolved = resolve_url(url)
    tcp_options = {} if resolved.startswith("unix:") else {"socket_keepalive": True}
    return Redis.from_url(
        resolved,
        socket_connect_timeout=5.0,
        socket_timeout=None,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.02), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError, OSError],
        health_check_interval=30,
        protocol=2,
        **tcp_options,
    )
