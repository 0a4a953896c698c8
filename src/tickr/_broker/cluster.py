"""Redis Cluster: commands through redis-py's cluster client, pub/sub on any node.

redis-py's `RedisCluster` keeps the slot map (discovery, MOVED and ASK, a refresh after
a failover or a resharding), and every Tickr command names keys of one queue only (one
hash tag, so one slot), so each command goes to the one node that owns it.  What Tickr
adds here:

- **Scripts on every primary.**  ``SCRIPT LOAD`` goes to all primaries; a primary
  promoted after a failover has no scripts (the script cache is not replicated), answers
  NOSCRIPT, and the broker loads them again (see calls.py).
- **One command's failure stays its own.**  A batch is sent as concurrent commands, and
  each reply or error (a node down included) comes back in place, so one failing shard
  does not fail the others' commands.
- **Pub/sub on one node.**  A classic ``PUBLISH`` reaches the subscribers of every node of
  the cluster, so the event listener subscribes on any one node, and moves to another
  when that one fails.  (Sharded pub/sub would need Redis 7 and a subscription per
  shard; the scripts publish only when a queue goes from idle to busy, so the cluster
  bus carries little.)
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from typing import Any, Final

from redis.asyncio import RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.backoff import NoBackoff
from redis.client import NEVER_DECODE
from redis.cluster import PRIMARY
from redis.cluster import ClusterNode as SyncClusterNode
from redis.cluster import RedisCluster as SyncRedisCluster
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterError,
    MovedError,
    RedisClusterException,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from tickr._broker.connection import ClusterTarget
from tickr._broker.wire import WireSettings, ssl_context_for

__all__ = ["ClusterExecutor", "cluster_client"]

_RAW: Final = {NEVER_DECODE: True}
_SOCKET_TIMEOUT: Final = 30.0
"""redis-py's socket timeout; the broker bounds every call itself (COMMAND_TIMEOUT)."""
_DEFAULT_MAX_CONNECTIONS: Final = 100
"""redis-py's default size of a node's connection pool."""
_SYNC_SOCKET_TIMEOUT: Final = 2.0
"""The lease thread's socket timeouts (as on one Redis: see sync_renewer.py)."""


def cluster_client(target: ClusterTarget) -> RedisCluster:
    """A redis-py cluster client for a ``redis+cluster://`` URL's target."""
    options: dict[str, Any] = {
        "startup_nodes": [ClusterNode(host, port) for host, port in target.seeds],
        "username": target.username,
        "password": target.password,
        "require_full_coverage": False,  # the healthy shards keep serving
        "socket_timeout": _SOCKET_TIMEOUT,
        "socket_connect_timeout": 5.0,
        "socket_keepalive": True,
        "protocol": 2,
    }
    if target.tls:
        options["ssl"] = True
        for name, value in target.ssl_options.items():
            options[name] = value
    cluster = RedisCluster(**options)
    _tolerate_a_dead_default_node(cluster)
    return cluster


def _tolerate_a_dead_default_node(cluster: RedisCluster) -> None:
    """Let discovery read the command table from any primary, not only the first.

    On every (re)discovery redis-py sends COMMAND to its default node, the first primary
    of the slot map, and fails the whole discovery when that node is down: a client
    starting while that one shard is down could reach none.  Here the other primaries
    are asked in turn, and the one that answers becomes the default node.
    """
    parser = cluster.commands_parser
    ask = parser.initialize

    async def initialize(node: ClusterNode | None = None) -> None:
        manager = cluster.nodes_manager
        primaries = manager.get_nodes_by_server_type(PRIMARY)
        candidates = [node, *(n for n in primaries if n is not node)] if node else primaries
        failure: Exception | None = None
        for candidate in candidates:
            try:
                await ask(candidate)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                failure = exc
                continue
            if candidate is not manager.default_node:
                manager.default_node = candidate
            return
        raise failure or RedisClusterException("no primary to read the command table from")

    parser.initialize = initialize  # type: ignore[method-assign]


def _first_key(command: Sequence[Any]) -> Any:
    """The first key of an EVALSHA (every key of one Tickr call shares a slot)."""
    if command[0] in ("EVALSHA", "EVAL") and int(command[2]) > 0:
        return command[3]
    raise ValueError(f"cannot route {command[0]!r} with WAIT on a cluster")


def _slot_of(command: Sequence[Any]) -> int | None:
    """The slot of a command's first key; None when it names none (or cannot be told)."""
    name = str(command[0]).upper() if command else ""
    if name in ("EVALSHA", "EVAL"):
        key = command[3] if len(command) > 3 and int(command[2]) > 0 else None
    else:
        key = command[1] if len(command) > 1 else None
    if isinstance(key, str):
        key = key.encode()
    return key_slot(key) if isinstance(key, bytes) else None


class ClusterExecutor:
    """Sends commands to a Redis Cluster (see the module's docstring).

    Args:
        cluster: The redis-py cluster client.
        owned: Whether Tickr made it (and so closes it).
        remake: Makes a new client like it; an owned client is remade when used from
            another event loop (its connections belong to the loop that opened them).
    """

    def __init__(
        self,
        cluster: RedisCluster,
        *,
        owned: bool,
        remake: Callable[[], RedisCluster] | None = None,
    ) -> None:
        self.cluster = cluster
        self._owned = owned
        self._remake = remake
        self._loop: asyncio.AbstractEventLoop | None = None
        self._node_turn = itertools.count()
        self._discovered = False
        self._discovering = asyncio.Lock()
        self._in_flight = asyncio.Semaphore(self._connection_limit())

    def _connection_limit(self) -> int:
        """redis-py's connections per node: more commands at once fail, they do not wait."""
        kwargs = getattr(self.cluster, "connection_kwargs", None) or {}
        return int(kwargs.get("max_connections") or _DEFAULT_MAX_CONNECTIONS)

    def _follow_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None and self._owned and self._remake is not None:
                self.cluster = self._remake()  # the old one's connections die with their loop
                self._discovered = False
                self._discovering = asyncio.Lock()
            self._in_flight = asyncio.Semaphore(self._connection_limit())
            self._loop = loop

    async def _discover(self) -> None:
        # redis-py's RedisCluster must discover the cluster before concurrent use:
        # commands racing its first discovery fail on a half-made connection.
        async with self._discovering:
            if not self._discovered:
                await self.cluster.initialize()
                self._discovered = True

    async def _load_script(self, source: bytes | str) -> Any:
        """Load a script on every primary that answers (a dead one gets it on its return)."""
        replies = await asyncio.gather(
            *(
                self.cluster.execute_command("SCRIPT LOAD", source, target_nodes=node)
                for node in self.cluster.get_primaries()
            ),
            return_exceptions=True,
        )
        loaded = [reply for reply in replies if not isinstance(reply, BaseException)]
        if not loaded:
            failure = next((r for r in replies if isinstance(r, BaseException)), None)
            raise failure or RedisClusterException("no primary to load a script on")
        return loaded[0]

    async def execute(self, *args: Any) -> Any:
        """Send one command to the node that owns its keys; error replies are raised."""
        if self._loop is not asyncio.get_running_loop():
            self._follow_loop()
        if not self._discovered:
            await self._discover()
        if len(args) == 3 and args[0] == "SCRIPT" and args[1] == "LOAD":
            return await self._load_script(args[2])
        async with self._in_flight:  # beyond the pool's size, commands wait their turn
            return await self.cluster.execute_command(*args, **_RAW)

    async def execute_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send commands at once, each to its node; every reply or error comes back in place.

        Commands of one slot run one after another, in the order given (a large batch
        of one queue keeps its FIFO order); different slots run at the same time.  A
        failed node's commands get its connection error; the other nodes' commands are
        unaffected.
        """
        if len(commands) == 1:
            return [await self._one(commands[0])]
        by_slot: dict[int | None, list[int]] = {}
        for index, command in enumerate(commands):
            by_slot.setdefault(_slot_of(command), []).append(index)
        replies: list[Any] = [None] * len(commands)

        async def run_in_order(indexes: list[int]) -> None:
            for index in indexes:
                replies[index] = await self._one(commands[index])

        await asyncio.gather(*(run_in_order(indexes) for indexes in by_slot.values()))
        return replies

    async def _one(self, command: Sequence[Any]) -> Any:
        try:
            return await self.execute(*command)
        except (RedisError, RedisClusterException, OSError) as exc:
            return exc

    async def on_every_primary(self, *args: Any) -> dict[str, Any]:
        """Send one command to every primary; each reply (or error) by node name."""
        if self._loop is not asyncio.get_running_loop():
            self._follow_loop()
        if not self._discovered:
            await self._discover()
        primaries = self.cluster.get_primaries()
        replies = await asyncio.gather(
            *(self.cluster.execute_command(*args, target_nodes=node) for node in primaries),
            return_exceptions=True,
        )
        for reply in replies:
            if isinstance(reply, BaseException) and not isinstance(reply, Exception):
                raise reply
        return {node.name: reply for node, reply in zip(primaries, replies, strict=True)}

    async def execute_replicated(
        self, commands: Sequence[Sequence[Any]], replicas: int, timeout_ms: int
    ) -> tuple[list[Any], int]:
        """Send each node's commands and a WAIT on one connection to that node.

        WAIT counts the replicas that have a connection's writes, so the writes and the
        WAIT share a connection; redis-py's cluster client would spread them.  A command
        whose slot moved meanwhile comes back as a `ClusterError` (the slot map is
        refreshed first), which the broker retries.
        """
        if self._loop is not asyncio.get_running_loop():
            self._follow_loop()
        if not self._discovered:
            await self._discover()
        by_node: dict[str, tuple[ClusterNode, list[int]]] = {}
        replies: list[Any] = [None] * len(commands)
        acknowledged = replicas
        for index, command in enumerate(commands):
            node = self.cluster.get_node_from_key(_first_key(command))
            if node is None:
                replies[index] = ClusterError("no node serves the slot now")
                acknowledged = 0
                continue
            by_node.setdefault(node.name, (node, []))[1].append(index)
        outcomes = await asyncio.gather(
            *(
                self._on_node(node, [commands[i] for i in indexes], replicas, timeout_ms)
                for node, indexes in by_node.values()
            ),
            return_exceptions=True,
        )
        for (_node, indexes), outcome in zip(by_node.values(), outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception):
                    raise outcome
                for index in indexes:
                    replies[index] = outcome
                acknowledged = 0
                continue
            node_replies, node_acknowledged = outcome
            for index, reply in zip(indexes, node_replies, strict=True):
                replies[index] = reply
            acknowledged = min(acknowledged, node_acknowledged)
        if any(isinstance(reply, MovedError | AskError) for reply in replies):
            await self.cluster.nodes_manager.initialize()
            replies = [
                ClusterError(f"the slot moved: {reply}")
                if isinstance(reply, MovedError | AskError)
                else reply
                for reply in replies
            ]
        return replies, acknowledged

    async def _on_node(
        self, node: ClusterNode, commands: Sequence[Sequence[Any]], replicas: int, timeout_ms: int
    ) -> tuple[list[Any], int]:
        async with self._in_flight:
            return await self._on_connection(node, commands, replicas, timeout_ms)

    async def _on_connection(
        self, node: ClusterNode, commands: Sequence[Sequence[Any]], replicas: int, timeout_ms: int
    ) -> tuple[list[Any], int]:
        connection = node.acquire_connection()
        try:
            await connection.send_packed_command(
                connection.pack_commands([*commands, ("WAIT", replicas, timeout_ms)])
            )
            replies: list[Any] = []
            for _ in range(len(commands) + 1):
                try:
                    replies.append(await connection.read_response(disable_decoding=True))
                except ResponseError as exc:
                    replies.append(exc)
        except BaseException:
            await connection.disconnect()
            raise
        finally:
            node.release(connection)
        acknowledged = replies.pop()
        if isinstance(acknowledged, Exception):
            raise acknowledged
        return replies, int(acknowledged)

    def reset(self) -> None:
        """Nothing to forget: redis-py replaces broken connections itself."""

    async def aclose(self) -> None:
        """Close the client if Tickr made it.

        Connections of another event loop (one `asyncio.run` may have closed) cannot be
        closed from this one: they are let go.
        """
        if not self._owned:
            return
        if self._loop is None or self._loop is asyncio.get_running_loop():
            await self.cluster.aclose()

    def sibling(self) -> ClusterExecutor:
        """The same client: each node's pool gives a blocking command its own connection."""
        return self

    def sync_client(self) -> SyncRedisCluster:
        """A blocking cluster client like this one, for the lease thread.

        It starts from the nodes this client knows, with its credentials and TLS
        settings, short timeouts and one quick retry: a renewal stuck for long is worse
        than a skipped one.
        """
        nodes = self.cluster.get_nodes() or list(self.cluster.startup_nodes)
        kwargs = nodes[0].connection_kwargs
        options: dict[str, Any] = {
            "startup_nodes": [SyncClusterNode(node.host, int(node.port)) for node in nodes],
            "username": kwargs.get("username"),
            "password": kwargs.get("password"),
            "require_full_coverage": False,
            "socket_timeout": _SYNC_SOCKET_TIMEOUT,
            "socket_connect_timeout": _SYNC_SOCKET_TIMEOUT,
            "socket_keepalive": True,
            "protocol": 2,
            "retry": Retry(NoBackoff(), 1),
        }
        if nodes[0].connection_class.__name__ == "SSLConnection":
            options["ssl"] = True
            for name, value in kwargs.items():
                if name.startswith("ssl_") and name != "ssl_context" and value is not None:
                    options[name] = value
        return SyncRedisCluster(**options)

    def pubsub_settings(self) -> WireSettings:
        """Where to subscribe next: the cluster's nodes in turn, primaries first."""
        nodes = self.cluster.get_primaries() + self.cluster.get_replicas()
        if not nodes:
            nodes = list(self.cluster.startup_nodes)
        node = nodes[next(self._node_turn) % len(nodes)]
        kwargs = node.connection_kwargs
        ssl_options = {
            name: value
            for name, value in kwargs.items()
            if name.startswith("ssl_") and name not in ("ssl_context",) and value is not None
        }
        tls = node.connection_class.__name__ == "SSLConnection"
        return WireSettings(
            host=node.host,
            port=int(node.port),
            username=kwargs.get("username"),
            password=kwargs.get("password"),
            ssl_context=ssl_context_for(ssl_options) if tls else None,
            ssl_options=ssl_options if tls else None,
        )
