"""Renewing leases from a thread, on a blocking connection of its own.

A handler that blocks the event loop (CPU work, a synchronous call) must not lose its
task to another server: the server renews its leases from a thread that does not need
the loop.  This is that thread's connection: synchronous redis-py, the same settings as
the broker's wire, the same renew.lua.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from tickr._broker.keys import QueueKeys
from tickr._broker.redis_clock import RedisClock
from tickr._broker.scripts import Script, load_script
from tickr._broker.wire import WireSettings
from tickr.errors import RedisUnavailable

__all__ = ["SyncRenewer"]

_RENEW = load_script("renew")
_RENEW_HANDED = load_script("renew_handed")
_SOCKET_TIMEOUT: Final = 2.0


class SyncRenewer:
    """Extends leases with blocking calls; safe to use from one thread at a time."""

    def __init__(
        self,
        settings: Callable[[], WireSettings] | None,
        keys_of: Callable[[str], QueueKeys],
        clock: RedisClock,
        *,
        cluster: Callable[[], RedisCluster] | None = None,
    ) -> None:
        self.clock = clock
        """The broker's reading of Redis' time, on which leases expire."""
        self._settings_of = settings
        self._make_cluster = cluster
        self._cluster: RedisCluster | None = None
        self._address: tuple[str, int, str | None] | None = None
        self._redis: redis.Redis | None = None
        self._keys_of = keys_of
        self.failed: dict[str, str] = {}
        """The queues whose last renewal failed (on a Cluster: on their node), and why."""

    def _client(self) -> redis.Redis:
        """The client of the current primary (Sentinel may have moved it)."""
        assert self._settings_of is not None
        try:
            settings = self._settings_of()
        except RedisConnectionError as exc:
            raise RedisUnavailable(f"Redis is unavailable: {exc}") from exc
        address = (settings.host, settings.port, settings.path)
        if self._redis is not None and address == self._address:
            return self._redis
        if self._redis is not None:
            self._redis.close()
        self._address = address
        self._redis = redis.Redis(**_options(settings))
        return self._redis

    def renew(
        self, owner: str, lease_expiry_ms: int, held: Mapping[str, Sequence[str]]
    ) -> dict[str, tuple[list[str], list[str]]]:
        """Extend `owner`'s leases; per queue (ids no longer held, ids to cancel).

        A queue whose renewal failed (on a Cluster: its node) is left out, and named
        in `failed`.

        Raises:
            RedisUnavailable: If Redis cannot be reached.
        """
        queues = [queue for queue, ids in held.items() if ids]
        if not queues:
            return {}
        calls = []
        for queue in queues:
            keys = self._keys_of(queue)
            calls.append(((keys.active,), (keys.task_prefix, owner, lease_expiry_ms, *held[queue])))
        replies = self._run(_RENEW, calls)
        self.failed = {}
        report = {}
        for queue, reply in zip(queues, replies, strict=True):
            if isinstance(reply, RedisUnavailable):
                self.failed[queue] = str(reply)
                continue
            lost, cancelled = reply
            report[queue] = ([_text(i) for i in lost], [_text(i) for i in cancelled])
        return report

    def renew_handed(
        self, owner: str, lease_expiry_ms: int, queues: Sequence[str], since_ms: int
    ) -> int:
        """Extend the leases of tasks handed to `owner` since `since_ms`; returns how many.

        Only tasks still active and its own count (see lua/renew_handed.lua), whether
        its loop has read them yet or not.

        Raises:
            RedisUnavailable: If Redis cannot be reached.
        """
        calls = []
        for queue in queues:
            keys = self._keys_of(queue)
            calls.append(
                (
                    (keys.active, keys.handed(owner)),
                    (keys.task_prefix, owner, lease_expiry_ms, since_ms),
                )
            )
        replies = self._run(_RENEW_HANDED, calls)
        return sum(int(reply) for reply in replies if not isinstance(reply, RedisUnavailable))

    def _run(
        self, script: Script, calls: Sequence[tuple[Sequence[str], Sequence[Any]]]
    ) -> list[Any]:
        """Run `script` once per (keys, args); its replies in order.

        On one Redis they go in one pipeline.  On a Cluster each call goes to its own
        node; a call that fails there comes back as its `RedisUnavailable` in place,
        and only when every call failed is that raised.

        Raises:
            RedisUnavailable: If Redis cannot be reached.
        """
        if self._make_cluster is not None:
            return self._run_on_cluster(script, calls)
        try:
            for _attempt in range(2):
                client = self._client()
                pipe = client.pipeline(transaction=False)
                for keys, args in calls:
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                replies = pipe.execute(raise_on_error=False)
                if not any(isinstance(reply, NoScriptError) for reply in replies):
                    for reply in replies:
                        if isinstance(reply, Exception):
                            raise reply
                    return list(replies)
                client.script_load(script.source)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise RedisUnavailable(f"Redis is unavailable: {exc}") from exc
        raise RedisUnavailable("Redis keeps losing its script cache")

    def _run_on_cluster(
        self, script: Script, calls: Sequence[tuple[Sequence[str], Sequence[Any]]]
    ) -> list[Any]:
        if self._cluster is None:
            assert self._make_cluster is not None
            self._cluster = self._make_cluster()
        cluster = self._cluster
        replies: list[Any] = []
        for keys, args in calls:
            try:
                try:
                    reply = cluster.evalsha(script.sha, len(keys), *keys, *args)
                except NoScriptError:  # a promoted replica: its node lacks the script
                    cluster.script_load(script.source)
                    reply = cluster.evalsha(script.sha, len(keys), *keys, *args)
            except (RedisError, OSError) as exc:
                reply = RedisUnavailable(f"Redis is unavailable: {exc}")
            replies.append(reply)
        failures = [reply for reply in replies if isinstance(reply, RedisUnavailable)]
        if failures and len(failures) == len(replies):
            raise failures[0]
        return replies

    def close(self) -> None:
        """Close the connections."""
        if self._redis is not None:
            self._redis.close()
            self._redis = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def _options(settings: WireSettings) -> dict[str, Any]:
    """redis-py's options for a connection like the wire's."""
    options: dict[str, Any] = {
        "db": settings.db,
        "username": settings.username,
        "password": settings.password,
        "socket_timeout": _SOCKET_TIMEOUT,
        "socket_connect_timeout": _SOCKET_TIMEOUT,
        "protocol": 2,
        # One quick retry at most: a renewal stuck for long is worse than a skipped
        # one, as the next comes within a heartbeat interval.
        "retry": Retry(NoBackoff(), 1),
    }
    if settings.path is not None:
        options["unix_socket_path"] = settings.path
        return options
    options["host"] = settings.host
    options["port"] = settings.port
    options["socket_keepalive"] = True
    if settings.ssl_context is not None:
        options["ssl"] = True
        options["ssl_cert_reqs"] = settings.ssl_context.verify_mode
        options["ssl_check_hostname"] = settings.ssl_context.check_hostname
        for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
            if settings.ssl_options.get(name):
                options[name] = settings.ssl_options[name]
    return options


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
