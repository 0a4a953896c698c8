"""Call plumbing: how every broker call reaches Redis, and what its failures become.

`Calls` owns the connections (an `Executor` for commands, a sibling one for blocking
commands, the pub/sub listener's and the lease thread's) and the reading of Redis'
clock.  Every call goes through `_call`: bounded by `COMMAND_TIMEOUT`, sent again a few
times with a short backoff when the connection failed or Redis answered "not now"
(LOADING, BUSY, OOM, READONLY...), which then becomes `tickr.errors.RedisUnavailable`;
any other error reply becomes `tickr.errors.TickrError`.  Scripts go by EVALSHA and are
loaded again when Redis lost its script cache (NOSCRIPT).

This is the one place that decides where a command goes: the serving path
(serving.py) and the operator path (admin.py) only say what to send.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Final, Self

import msgpack
from redis.crc import key_slot
from redis.exceptions import (
    ClusterDownError,
    ClusterError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tickr._broker.cluster import ClusterExecutor
from tickr._broker.connection import RedisClient, resolve_url
from tickr._broker.events import (
    EventListener,
    EventSink,
    RedisPyTransport,
    Transport,
    WireTransport,
)
from tickr._broker.executor import Executor, RedisPyExecutor, executor_for
from tickr._broker.keys import NamespaceKeys, QueueKeys
from tickr._broker.redis_clock import RedisClock
from tickr._broker.scripts import Script, load_script
from tickr._broker.sentinel import SentinelWire
from tickr._broker.sync_renewer import SyncRenewer
from tickr._broker.wire import Wire, open_connection
from tickr.errors import RedisUnavailable, TickrError

__all__ = ["CLOCK_READING_AGE", "COMMAND_TIMEOUT", "Calls", "ScriptCall", "pack_list", "text"]

logger = logging.getLogger("tickr.broker")

ScriptCall = tuple[Script, Sequence[str], Sequence[Any]]
"""(script, keys, arguments): one script call of a batch sent in one round trip."""


CLOCK_READING_AGE: Final = 60.0
"""Seconds after which `time_ms` reads Redis' time again."""

COMMAND_TIMEOUT: Final = 10.0
"""Seconds any one call to Redis may take before it counts as a lost connection."""

_ATTEMPTS: Final = 3
_RETRY_DELAY: Final = 0.05
_CONNECTION_ERRORS: Final = (RedisConnectionError, RedisTimeoutError, OSError)


def pack_list(rows: Sequence[Any]) -> bytes:
    """Many script arguments as one msgpack blob, for the script's cmsgpack.unpack.

    Byte strings travel as msgpack raw strings: Redis' cmsgpack does not read the bin
    type, and a Lua string holds any bytes.
    """
    return msgpack.packb(rows, use_bin_type=False)  # type: ignore[no-any-return]


_TRANSIENT_REPLIES: Final = (
    "LOADING",
    "BUSY",
    "TRYAGAIN",
    "MASTERDOWN",
    "READONLY",
    "CLUSTERDOWN",
    "OOM",
    "MISCONF",
    "NOREPLICAS",
)
# redis-py turns some of those replies into classes of their own, without the prefix.
_TRANSIENT_CLASSES: Final = (ReadOnlyError, OutOfMemoryError, TryAgainError, ClusterDownError)


def _transient(exc: ResponseError) -> bool:
    """An error reply that means 'not now' (Redis loading, busy, failing over, full)."""
    return isinstance(exc, _TRANSIENT_CLASSES) or str(exc).startswith(_TRANSIENT_REPLIES)


def _unavailable(exc: BaseException) -> RedisUnavailable:
    if isinstance(exc, TimeoutError):
        return RedisUnavailable(f"Redis did not answer within {COMMAND_TIMEOUT:g}s")
    return RedisUnavailable(f"Redis is unavailable: {exc}")


def text(value: bytes | str) -> str:
    """A reply's bytes as text."""
    return value.decode() if isinstance(value, bytes) else value


class Calls:
    """The connections to one Redis, and the sending of calls over them.

    Args:
        namespace: Prefix of every key.
        executor: How commands reach Redis (see executor.py).
    """

    def __init__(self, namespace: str, executor: Executor) -> None:
        self._executor = executor
        self._blocking: Executor | None = None
        self.namespace = namespace
        self.namespace_keys = NamespaceKeys(namespace)
        self._queue_keys: dict[str, QueueKeys] = {}
        self.clock = RedisClock()
        """Redis' time, on which every instant Tickr stores is stamped and compared."""

    @classmethod
    def connect(cls, url: str | None, redis: RedisClient | None, namespace: str) -> Self:
        """A broker on `redis` if given, else on connections Tickr opens for `url`.

        Raises:
            ValueError: If the URL is invalid.
        """
        if redis is not None:
            return cls(namespace, executor_for(None, redis))
        return cls(namespace, executor_for(resolve_url(url), None))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close what this broker opened (a given client stays open)."""
        await self._executor.aclose()
        if self._blocking is not None:
            await self._blocking.aclose()

    def keys(self, queue: str) -> QueueKeys:
        """The (cached) key names of a queue."""
        keys = self._queue_keys.get(queue)
        if keys is None:
            keys = self._queue_keys[queue] = QueueKeys(self.namespace, queue)
        return keys

    def slot_groups(self, queues: Sequence[str]) -> list[list[str]]:
        """The queues grouped so that one multi-key command may span each group.

        On one Redis that is all of them; on a Cluster, the queues of one slot.
        """
        if not isinstance(self._executor, ClusterExecutor):
            return [list(queues)]
        groups: dict[int, list[str]] = {}
        for queue in queues:
            groups.setdefault(key_slot(self.keys(queue).pending.encode()), []).append(queue)
        return list(groups.values())

    def _registry(self, kind: str, process_id: str) -> tuple[str, str]:
        """The record key of a "server" or "scheduler", and the registry of its kind."""
        keys = self.namespace_keys
        if kind == "server":
            return keys.server(process_id), keys.servers
        return keys.scheduler(process_id), keys.schedulers

    def sync_renewer(self) -> SyncRenewer | None:
        """A blocking lease renewer for a thread of its own.

        None when the broker's connection settings cannot be reproduced; leases are then
        renewed on the event loop.
        """
        executor = self._executor
        if isinstance(executor, ClusterExecutor):
            return SyncRenewer(None, self.keys, self.clock, cluster=executor.sync_client)
        if isinstance(executor, SentinelWire):
            return SyncRenewer(executor.locator.settings, self.keys, self.clock)
        if isinstance(executor, Wire):
            settings = executor.settings
            return SyncRenewer(lambda: settings, self.keys, self.clock)
        return None

    def listener(self, sink: EventSink) -> EventListener:
        """A pub/sub listener delivering the events of chosen queues to `sink`.

        It subscribes on a connection of its own, over the same lean protocol as the
        commands when they use it.
        """
        executor = self._executor
        transport: Transport
        if isinstance(executor, RedisPyExecutor):
            transport = RedisPyTransport(executor.redis)
        elif isinstance(executor, ClusterExecutor):
            cluster = executor
            transport = WireTransport(lambda: open_connection(cluster.pubsub_settings()))
        elif isinstance(executor, SentinelWire):
            transport = WireTransport(executor.locator.connect)
        else:
            assert isinstance(executor, Wire)
            settings = executor.settings
            transport = WireTransport(lambda: open_connection(settings))
        return EventListener(transport, sink, self.keys)

    # ------------------------------------------------------------------ sending

    # Every call is bounded by COMMAND_TIMEOUT, and retried a few times when the connection
    # failed: every script tolerates being sent twice (see broker.py).  What still fails
    # becomes RedisUnavailable.

    async def _call(self, send: Callable[[], Awaitable[Any]], *, attempts: int = _ATTEMPTS) -> Any:
        delay = _RETRY_DELAY
        for attempt in range(attempts):
            try:
                async with asyncio.timeout(COMMAND_TIMEOUT):
                    return await send()
            except TimeoutError as exc:
                self._executor.reset()
                raise _unavailable(exc) from exc
            except RedisUnavailable:
                raise
            except (*_CONNECTION_ERRORS, RedisError, RedisClusterException) as exc:
                failure = self._failure(exc)
                if not isinstance(failure, RedisUnavailable) or attempt + 1 == attempts:
                    raise failure from exc
            await asyncio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def _failure(self, exc: Exception) -> TickrError:
        """What a failed attempt becomes: RedisUnavailable if another try may succeed."""
        if isinstance(exc, _CONNECTION_ERRORS):
            return _unavailable(exc)
        if isinstance(exc, ResponseError):
            if not _transient(exc):
                return TickrError(f"Redis refused a command: {exc}")
            if str(exc).startswith("READONLY"):
                self._executor.reset()  # connected to a demoted primary: reconnect
            return RedisUnavailable(f"Redis cannot serve now: {exc}")
        if isinstance(exc, ClusterError | SlotNotCoveredError):  # the slot map is changing
            return RedisUnavailable(f"Redis Cluster cannot serve now: {exc}")
        return TickrError(f"the Redis client failed: {exc}")

    async def _command(self, *args: Any) -> Any:
        return await self._call(lambda: self._executor.execute(*args))

    async def _eval(
        self, script: Script, keys: Sequence[str], args: Iterable[Any], *, attempts: int = _ATTEMPTS
    ) -> Any:
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        execute = self._executor.execute

        async def send() -> Any:
            try:
                return await execute(*command)
            except NoScriptError:
                await execute("SCRIPT", "LOAD", script.source)
                return await execute(*command)

        return await self._call(send, attempts=attempts)

    async def _eval_many(self, calls: Sequence[ScriptCall], *, partial: bool = False) -> list[Any]:
        """Run several script calls in one round trip (not a transaction).

        Calls that failed because Redis did not know the script did not run; they are
        run again once the script is loaded.  Other errors are raised, or with `partial`
        returned in place (on a Cluster, a node that cannot be reached fails only its
        own calls); a lone call's error is raised either way.
        """
        if len(calls) == 1:
            script, keys, args = calls[0]
            return [await self._eval(script, keys, args)]
        return list(await self._call(lambda: self._run_scripts(calls, partial)))

    async def _eval_replicated(
        self, calls: Sequence[ScriptCall], replicas: int, timeout_ms: int
    ) -> list[Any]:
        """Run script calls and return once `replicas` replicas have their writes.

        Raises:
            RedisUnavailable: If fewer replicas confirm within `timeout_ms` (the writes
                may still exist), or Redis cannot be reached.
        """
        acknowledged: list[int] = []

        async def send(commands: list[tuple[Any, ...]]) -> list[Any]:
            replies, count = await self._executor.execute_replicated(commands, replicas, timeout_ms)
            acknowledged.append(count)
            return replies

        results = await self._call(lambda: self._run_scripts(calls, send=send))
        if min(acknowledged) < replicas:
            raise RedisUnavailable(
                f"only {min(acknowledged)} of {replicas} replicas confirmed the write within "
                f"{timeout_ms / 1000:g}s; it may still have been stored: retry with the same "
                "task_id"
            )
        return list(results)

    async def _run_scripts(
        self,
        calls: Sequence[ScriptCall],
        partial: bool = False,
        send: Callable[[list[tuple[Any, ...]]], Awaitable[list[Any]]] | None = None,
    ) -> list[Any]:
        results: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        execute_many = send or self._executor.execute_many
        for _attempt in range(2):
            replies = await execute_many(
                [
                    ("EVALSHA", calls[i][0].sha, len(calls[i][1]), *calls[i][1], *calls[i][2])
                    for i in todo
                ]
            )
            missing: list[int] = []
            for index, reply in zip(todo, replies, strict=True):
                if isinstance(reply, NoScriptError):
                    missing.append(index)
                elif isinstance(reply, Exception) and not partial:
                    raise reply
                else:
                    results[index] = self._failure(reply) if isinstance(reply, Exception) else reply
            if not missing:
                return results
            for name in {calls[index][0].name for index in missing}:
                await self._executor.execute("SCRIPT", "LOAD", load_script(name).source)
            todo = missing
        raise RedisUnavailable("Redis keeps losing its script cache")

    async def _pipeline(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        async def send() -> list[Any]:
            replies = await self._executor.execute_many(commands)
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            return list(replies)

        return list(await self._call(send))

    async def _pipeline_partial(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Send commands at once; each reply in place, an error reply as its exception.

        On a Cluster a node that cannot be reached fails only its own commands.

        Raises:
            RedisUnavailable: If Redis (one Redis: its connection) cannot be reached.
        """
        return list(await self._call(lambda: self._executor.execute_many(commands)))

    async def _call_blocking(self, timeout_s: float, *args: Any) -> Any:
        """Send a blocking command (BLPOP) once, on a connection of its own.

        Redis may hold it `timeout_s`; its reply then has `COMMAND_TIMEOUT` to arrive.
        """
        if self._blocking is None:
            self._blocking = self._executor.sibling()
        blocking = self._blocking
        try:
            async with asyncio.timeout(timeout_s + COMMAND_TIMEOUT):
                return await blocking.execute(*args)
        except TimeoutError as exc:
            blocking.reset()  # this connection, not the commands' one
            raise _unavailable(exc) from exc
        except _CONNECTION_ERRORS as exc:
            raise _unavailable(exc) from exc
        except ResponseError as exc:
            raise RedisUnavailable(f"Redis cannot serve now: {exc}") from exc

    # ------------------------------------------------------------------ clock

    async def ping(self) -> None:
        """Check that Redis answers.

        Raises:
            RedisUnavailable: If it does not.
        """
        await self._command("PING")

    async def read_clock(self) -> None:
        """Set `clock` from Redis' TIME.

        Where TIME is refused (an ACL without it), the clock stays on this machine's time,
        with a warning, and is not asked again before `CLOCK_READING_AGE`.

        Raises:
            RedisUnavailable: If Redis cannot be reached.
        """
        sent = time.monotonic()
        try:
            seconds, micros = await self._command("TIME")
        except RedisUnavailable:
            raise
        except TickrError as exc:
            logger.warning("cannot read Redis' time (%s); using this machine's clock", exc)
            self.clock.skip_reading()
            return
        self.clock.set(int(seconds) + int(micros) / 1e6, sent, time.monotonic())

    async def time_ms(self) -> int:
        """Redis' time now, in ms; reads it first if the last reading is a minute old.

        Raises:
            RedisUnavailable: If it must be read and Redis cannot be reached.
        """
        if self.clock.age() > CLOCK_READING_AGE:
            await self.read_clock()
        return self.clock.now_ms()
