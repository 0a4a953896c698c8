"""How the broker sends commands: the pipelined wire, or redis-py's clients.

`Wire` (wire.py) serves every one-Redis URL, and every client given to Tickr whose
settings it can reproduce: plain TCP or unix-socket connections, with a password or ACL
user and a database; Tickr then opens connections of its own with those settings.  A
Cluster (a ``redis+cluster://`` URL or a given `RedisCluster`) goes through
`ClusterExecutor` (cluster.py), Sentinel through sentinel.py.  Anything else
(TLS-configured clients, credential providers, custom connection classes) is used as
given, through redis-py, for commands and pub/sub alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Protocol

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.asyncio.sentinel import SentinelConnectionPool, SentinelManagedConnection
from redis.client import NEVER_DECODE

from tickr._broker.cluster import ClusterExecutor, cluster_client
from tickr._broker.connection import (
    ClusterTarget,
    RedisClient,
    SentinelTarget,
    parse_multi_host_url,
)
from tickr._broker.sentinel import SentinelLocator, SentinelWire, sentinel_hosts
from tickr._broker.wire import Wire, WireSettings

__all__ = ["Executor", "RedisPyExecutor", "executor_for"]

_RAW: Final = {NEVER_DECODE: True}


class Executor(Protocol):
    """Sends commands to Redis and returns raw (undecoded) replies."""

    async def execute(self, *args: Any) -> Any:
        """Send one command; error replies are raised."""

    async def execute_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send commands in one round trip; error replies are returned in place."""

    async def execute_replicated(
        self, commands: Sequence[Sequence[Any]], replicas: int, timeout_ms: int
    ) -> tuple[list[Any], int]:
        """Send commands, then ``WAIT replicas timeout_ms`` on the same connection(s).

        Returns each reply or error reply in place, and how many replicas confirmed
        them all (the fewest over the nodes written to).
        """

    def reset(self) -> None:
        """Forget the current connection (after a timeout)."""

    async def aclose(self) -> None:
        """Close what this executor opened."""

    def sibling(self) -> Executor:
        """An executor on another connection to the same Redis (for blocking commands)."""


class RedisPyExecutor:
    """Commands through a redis-py client (never closed here: its owner closes it)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def execute(self, *args: Any) -> Any:
        """Send one command; error replies are raised."""
        return await self.redis.execute_command(*args, **_RAW)

    async def execute_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send commands in one pipeline; error replies are returned in place."""
        pipe = self.redis.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command, **_RAW)
        return list(await pipe.execute(raise_on_error=False))

    async def execute_replicated(
        self, commands: Sequence[Sequence[Any]], replicas: int, timeout_ms: int
    ) -> tuple[list[Any], int]:
        """Send commands and a WAIT in one pipeline (one connection)."""
        replies = await self.execute_many([*commands, ("WAIT", replicas, timeout_ms)])
        return replies[:-1], _acknowledged(replies[-1])

    def reset(self) -> None:
        """Nothing to forget: redis-py replaces broken connections itself."""

    async def aclose(self) -> None:
        """Nothing to close."""

    def sibling(self) -> Executor:
        """The same client: its pool gives a blocking command a connection of its own."""
        return self


def _acknowledged(reply: Any) -> int:
    """WAIT's reply: the number of replicas; an error reply is raised."""
    if isinstance(reply, Exception):
        raise reply
    return int(reply)


def _settings_of(redis: Redis) -> WireSettings | None:
    pool = getattr(redis, "connection_pool", None)
    if pool is None:
        return None
    kwargs = pool.connection_kwargs
    if kwargs.get("credential_provider") is not None:
        return None
    common = {
        "db": int(kwargs.get("db") or 0),
        "username": kwargs.get("username"),
        "password": kwargs.get("password"),
    }
    if pool.connection_class is UnixDomainSocketConnection:
        return WireSettings(path=kwargs["path"], **common)
    if pool.connection_class is Connection:
        return WireSettings(
            host=kwargs.get("host") or "127.0.0.1", port=int(kwargs.get("port") or 6379), **common
        )
    return None


def _sentinel_target_of(redis: Redis) -> SentinelTarget | None:
    """The Sentinel service of a plain-TCP client made by ``Sentinel.master_for(...)``."""
    pool = redis.connection_pool
    if not isinstance(pool, SentinelConnectionPool) or not pool.is_master:
        return None
    if pool.connection_class is not SentinelManagedConnection:
        return None  # TLS or a custom class: used as given
    kwargs = pool.connection_kwargs
    if kwargs.get("credential_provider") is not None:
        return None
    manager = pool.sentinel_manager
    sentinel_kwargs = manager.sentinel_kwargs or {}
    return SentinelTarget(
        sentinels=sentinel_hosts(manager.sentinels),
        service=pool.service_name,
        db=int(kwargs.get("db") or 0),
        username=kwargs.get("username"),
        password=kwargs.get("password"),
        sentinel_username=sentinel_kwargs.get("username"),
        sentinel_password=sentinel_kwargs.get("password"),
    )


def executor_for(url: str | None, redis: RedisClient | None) -> Executor:
    """The executor for a URL (already resolved) or a given client.

    Raises:
        ValueError: If the URL is not a redis URL.
    """
    if isinstance(redis, RedisCluster):
        return ClusterExecutor(redis, owned=False)
    if redis is None:
        assert url is not None
        target = parse_multi_host_url(url)
        if isinstance(target, ClusterTarget):
            cluster_target = target
            return ClusterExecutor(
                cluster_client(target), owned=True, remake=lambda: cluster_client(cluster_target)
            )
        if isinstance(target, SentinelTarget):
            return SentinelWire(SentinelLocator(target))
        return Wire(WireSettings.from_url(url))
    sentinel = _sentinel_target_of(redis)
    if sentinel is not None:
        return SentinelWire(SentinelLocator(sentinel))
    settings = _settings_of(redis)
    return Wire(settings) if settings is not None else RedisPyExecutor(redis)
