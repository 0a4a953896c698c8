"""Direct redis-py clients for tests, on one Redis or a Cluster alike."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
import redis
import redis.asyncio as aredis
from redis.asyncio.cluster import ClusterNode

from tickr._broker.connection import (
    ClusterTarget,
    SentinelTarget,
    parse_multi_host_url,
)
from tickr._broker.keys import QueueKeys, pending_bucket_index
from tickr.testing.topology import find_valkey_server

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
        # The primary as the sentinels name it now: the tests' bookkeeping needs no
        # failover, and redis-py's Sentinel leaves its sentinel connections open.
        host, port = _primary_address(target)
        options.setdefault("protocol", 2)
        return aredis.Redis(host=host, port=port, db=target.db, password=target.password, **options)
    return aredis.Redis.from_url(url, **options)


def _primary_address(target: SentinelTarget) -> tuple[str, int]:
    for host, port in target.sentinels:
        with redis.Redis(host=host, port=port, socket_timeout=2, protocol=2) as sentinel:
            try:
                reply = sentinel.sentinel_get_master_addr_by_name(target.service)
            except redis.RedisError:
                continue
        if reply:
            host = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
            return host, int(reply[1])
    raise RuntimeError(f"no sentinel names a primary for {target.service!r}")


def _all_nodes(raw: Any) -> dict[str, Any]:
    return (
        {"target_nodes": aredis.RedisCluster.ALL_NODES}
        if isinstance(raw, aredis.RedisCluster)
        else {}
    )


async def reset_command_stats(raw: Any) -> None:
    """CONFIG RESETSTAT on every node."""
    await raw.config_resetstat(**_all_nodes(raw))


async def config_get(raw: Any, name: str) -> str:
    """A setting's value (on a Cluster, as the first node reports it)."""
    reply = await raw.config_get(name, **_all_nodes(raw))
    if isinstance(raw, aredis.RedisCluster):  # {node: {name: value}}
        reply = next(iter(reply.values()))
    return str(reply[name])


async def config_set(raw: Any, name: str, value: object) -> None:
    """CONFIG SET on every node."""
    await raw.config_set(name, value, **_all_nodes(raw))


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


def server_binaries() -> list[Any]:
    """Fixture params for both servers: Redis (the default binary, None) and Valkey.

    Valkey's param skips, saying how to get it, when no valkey-server is found.
    """
    try:
        valkey = find_valkey_server()
    except FileNotFoundError as missing:
        return [None, pytest.param(None, marks=pytest.mark.skip(reason=str(missing)))]
    return [None, valkey]


def pending_bucket(keys: QueueKeys, meta: Sequence[bytes | None], task_id: str) -> str:
    """The bucket key of a task's pending record, given the store's HMGET meta k s."""
    level, split = (int(value or 0) for value in meta)
    return keys.pending_bucket(pending_bucket_index(task_id, level, split))


def task_stored_sync(raw: Any, keys: QueueKeys, task_id: str) -> bool:
    """Whether a node holds a task (its hash, or its pending record), on a blocking client."""
    if raw.exists(keys.task(task_id)):
        return True
    bucket = pending_bucket(keys, raw.hmget(keys.pending, "k", "s"), task_id)
    return bool(raw.hexists(bucket, task_id))


async def task_stored(raw: Any, keys: QueueKeys, task_id: str) -> bool:
    """Whether a node holds a task (its hash, or its pending record)."""
    if await raw.exists(keys.task(task_id)):
        return True
    bucket = pending_bucket(keys, await raw.hmget(keys.pending, "k", "s"), task_id)
    return bool(await raw.hexists(bucket, task_id))


async def pending_record(raw: Any, keys: QueueKeys, task_id: str) -> tuple[str, bytes | None]:
    """The bucket key of a pending task and its raw record there (None if absent)."""
    bucket = pending_bucket(keys, await raw.hmget(keys.pending, "k", "s"), task_id)
    return bucket, await raw.hget(bucket, task_id)
