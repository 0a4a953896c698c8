"""Sentinel: the primary that the sentinels name, followed through failovers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redis.asyncio.sentinel import Sentinel

from tickr._broker.connection import SentinelTarget

if TYPE_CHECKING:
    from tickr._broker.executor import RedisPyExecutor

__all__ = ["sentinel_executor"]


def sentinel_executor(target: SentinelTarget) -> RedisPyExecutor:
    """The executor for a ``redis+sentinel://`` URL's target."""
    from tickr._broker.executor import RedisPyExecutor

    sentinel_options: dict[str, Any] = {"protocol": 2}
    if target.sentinel_password is not None:
        sentinel_options["password"] = target.sentinel_password
    if target.sentinel_username is not None:
        sentinel_options["username"] = target.sentinel_username
    manager = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_options)
    options: dict[str, Any] = {"db": target.db, "protocol": 2}
    if target.username is not None:
        options["username"] = target.username
    if target.password is not None:
        options["password"] = target.password
    if target.tls:
        options["ssl"] = True
        options.update(target.ssl_options)
    return RedisPyExecutor(manager.master_for(target.service, **options))
