"""Direct redis-py clients for tests, on one Redis or a Cluster alike."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aredis
from redis.asyncio.cluster import ClusterNode

from tickr._broker.connection import (
    ClusterTarget,
    SentinelTarget,
    parse_multi_host_url,
)

__all__ = [
    "TOPOLOGY_SCHEMES",
    "LazyClient",
    "command_calls",
    "raw_client",
    "reset_command_stats",
]

TOPOLOGY_SCHEMES = (
    "redis+cluster://",
    "rediss+cluster://",
    "redis+sentinel://",
    "rediss+sentinel://",
)


def raw_client(url: str, **options: Any) -> Any:
    """A redis-py client for any Tickr URL: `Redis`, `RedisCluster`, or Sentinel's primary."""
    target = parse_multi_host_url(url)
    if isinstance(target, ClusterTarget):
        nodes = [ClusterNode(host, port) for host, port in target.seeds]
        # RESP2, as Tickr speaks: redis-py 8's RESP3 cluster connections try to enable
        # maintenance notifications on every connect, fail on Redis < 8, and reconnect.
        options.setdefault("protocol", 2)
        return aredis.RedisCluster(startup_nodes=nodes, password=target.password, **options)
    if isinstance(target, SentinelTarget):
        from redis.asyncio.sentinel import Sentinel

        sentinel = Sentinel(list(target.sentinels))
        return sentinel.master_for(target.service, db=target.db, **options)
    return aredis.Redis.from_url(url, **options)


def _all_nodes(raw: Any) -> dict[str, Any]:
    return (
        {"target_nodes": aredis.RedisCluster.ALL_NODES}
        if isinstance(raw, aredis.RedisCluster)
        else {}
    )


async def reset_command_stats(raw: Any) -> None:
    """CONFIG RESETSTAT on every node."""
    await raw.config_resetstat(**_all_nodes(raw))


async def command_calls(raw: Any) -> dict[str, int]:
    """Calls per command since the last reset, summed over every node."""
    stats = await raw.info("commandstats", **_all_nodes(raw))
    per_node = stats.values() if isinstance(raw, aredis.RedisCluster) else [stats]
    calls: dict[str, int] = {}
    for node_stats in per_node:
        for name, entry in node_stats.items():
            command = name.removeprefix("cmdstat_")
            calls[command] = calls.get(command, 0) + int(entry["calls"])
    return calls


class LazyClient:
    """A `raw_client` made on first use and initialized once, for concurrent handlers.

    redis-py's RedisCluster must be initialized before concurrent use: commands racing
    its first discovery fail (AttributeError on a connection's writer).
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self._client: Any = None
        self._lock = asyncio.Lock()

    async def get(self) -> Any:
        """The client, initialized."""
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    client = raw_client(self._url)
                    await client.initialize()
                    self._client = client
        return self._client
