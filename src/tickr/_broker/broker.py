"""The broker: every read and write of Tickr's state in Redis.

Each method is one atomic step: one Lua script, one pipeline of independent reads, or
one command.  Methods speak in ids, bytes, ints and milliseconds; decoding into values
is the caller's job.  Connection failures, and error replies that mean "not now"
(LOADING, BUSY, OOM, READONLY...), surface as `tickr.errors.RedisUnavailable` after a
few quick retries; any other error reply as `tickr.errors.TickrError`.

A call whose connection broke is sent again (a few times, with a short backoff), even
though it may have run already.  Every script tolerates that: an enqueue finds the
tasks it stored itself (by their fresh ids, or the call's token) and counts them done,
finish/renew/recover check the lease owner and the state, forward and unpause are
idempotent, and a dequeue is never re-sent: the fetcher finds what a dequeue with a
lost reply took with `reclaim`.  Only cancel can answer differently the second time: a
task it deleted is gone, so a re-sent cancel reports that there was nothing to cancel.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final, Self, TypeAlias

import msgpack
from redis.asyncio import Redis
from redis.exceptions import (
    ClusterDownError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tickr._broker.connection import resolve_url
from tickr._broker.events import (
    EventListener,
    EventSink,
    RedisPyTransport,
    Transport,
    WireTransport,
)
from tickr._broker.executor import Executor, RedisPyExecutor, executor_for
from tickr._broker.keys import PENDING_SEQ_WIDTH, NamespaceKeys, QueueKeys
from tickr._broker.redis_clock import RedisClock
from tickr._broker.scripts import Script, load_script
from tickr._broker.sync_renewer import SyncRenewer
from tickr._broker.wire import Wire
from tickr.errors import RedisUnavailable, TickrError
from tickr.values import TASK_STATES

__all__ = [
    "STATS_TTL_SECONDS",
    "Broker",
    "DequeuedTask",
    "EnqueueItem",
    "EnqueueOutcome",
    "FinishOp",
    "HeartbeatReport",
]

logger = logging.getLogger("tickr.broker")

EnqueueItem: TypeAlias = tuple[str, bytes, int, int, str, int, int, str]
"""(id, msg, priority, due ms or 0, unique digest or '', unique ttl ms, max retries)."""

EnqueueOutcome: TypeAlias = int | str
"""1 pending, 2 scheduled, 0 id taken; a str is the id of the live equal (unique) task."""

DequeuedTask: TypeAlias = tuple[str, bytes | None, int]
"""(id, msg or None when the task hash is missing, retries done)."""

FinishOp: TypeAlias = tuple[bytes, str, int, bytes, int]
"""(op, id, number, text, retries done): see lua/finish.lua for the four ops."""

OP_COMPLETE: Final = b"c"
OP_RETRY: Final = b"r"
OP_ARCHIVE: Final = b"a"
OP_REQUEUE: Final = b"q"

DAMAGED_RECORD: Final = b"corrupt task record: not a hash"
"""The error shown for a task whose key holds another type (until a script sets it aside)."""

STATS_TTL_SECONDS: Final = 90 * 24 * 3600
"""Daily counters are kept this long."""
RECOVER_BATCH: Final = 500
"""Most expired leases taken back per queue and heartbeat."""

CLOCK_READING_AGE: Final = 60.0
"""Seconds after which `time_ms` reads Redis' time again."""

COMMAND_TIMEOUT: Final = 10.0
"""Seconds any one call to Redis may take before it counts as a lost connection."""

_ATTEMPTS: Final = 3
_RETRY_DELAY: Final = 0.05
_CONNECTION_ERRORS: Final = (RedisConnectionError, RedisTimeoutError, OSError)
_ENQUEUE_CHUNK: Final = 500
_MEMORY_SAMPLES: Final = 5
_STATE_SETS: Final[tuple[str, ...]] = TASK_STATES

_ENQUEUE = load_script("enqueue")
_DEQUEUE = load_script("dequeue")
_FINISH = load_script("finish")
_FORWARD = load_script("forward")
_RENEW = load_script("renew")
_RECOVER = load_script("recover")
_REGISTER = load_script("register_process")
_CRON_TICK = load_script("cron_tick")
_ADMIN = load_script("admin")
_BULK = load_script("bulk")
_PURGE = load_script("purge")
_ADMIN_BATCH: Final = 1000
_INBOX_TAKE: Final = 1000
_INBOX_TTL_MS: Final = 3_600_000
_STATS_DAYS_KEPT: Final = 91
_RECLAIM = load_script("reclaim")
_CANCEL = load_script("cancel")
_WATCH = load_script("watch")
_UNPAUSE = load_script("unpause")


@dataclass(slots=True)
class HeartbeatReport:
    """What a heartbeat found, per queue."""

    lost: dict[str, list[str]] = field(default_factory=dict)
    """Tasks the server no longer holds: it must stop them and report nothing."""
    cancelled: dict[str, list[str]] = field(default_factory=dict)
    """Tasks whose cancellation was requested."""
    recovered: dict[str, tuple[int, int]] = field(default_factory=dict)
    """(retried, archived) tasks of other servers whose lease had run out."""
    unreceived: dict[str, int] = field(default_factory=dict)
    """Tasks handed to a server that never took them: back to pending, not counted."""
    earliest_lease_ms: int | None = None
    """The earliest lease expiry left in the queues, if any task is active."""


def _fields(reply: Any) -> dict[str, bytes] | None:
    """A HGETALL reply as a dict; None for a missing hash."""
    if not reply:
        return None
    if isinstance(reply, dict):
        return {_text(name): value for name, value in reply.items()}
    return {_text(reply[i]): reply[i + 1] for i in range(0, len(reply), 2)}


def _handed(element: bytes) -> DequeuedTask:
    """A task from an inbox: "<id> <msg>", never retried yet."""
    task_id, _, msg = bytes(element).partition(b" ")
    return task_id.decode(), msg, 0


def _dequeued(reply: Sequence[Any], queue: str) -> list[DequeuedTask]:
    """Flat (id, msg, retried) rows as tasks, each parsed alone.

    A row that cannot be parsed is left out with an error logged: its lease runs out
    and recover.lua archives the task with what is wrong with its record.
    """
    tasks: list[DequeuedTask] = []
    for i in range(0, len(reply), 3):
        row = reply[i : i + 3]
        try:
            tasks.append((_text(row[0]), row[1], int(row[2])))
        except (ValueError, TypeError, IndexError, UnicodeDecodeError) as exc:
            logger.error(
                "a task of %r cannot be read (%s): %r; leaving it to recovery", queue, exc, row[:1]
            )
    return tasks


def _pack_list(rows: Sequence[Any]) -> bytes:
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
)
# redis-py turns some of those replies into classes of their own, without the prefix.
_TRANSIENT_CLASSES: Final = (ReadOnlyError, OutOfMemoryError, TryAgainError, ClusterDownError)


def _log_set_aside(queue: str, pairs: Sequence[bytes]) -> None:
    """Log the tasks a script archived for their damaged records ({id, error, ...})."""
    for i in range(0, len(pairs), 2):
        logger.error(
            "task %s in %r archived: %s",
            _text(pairs[i]),
            queue,
            pairs[i + 1].decode(errors="replace"),
        )


def _transient(exc: ResponseError) -> bool:
    """An error reply that means 'not now' (Redis loading, busy, failing over, full)."""
    return isinstance(exc, _TRANSIENT_CLASSES) or str(exc).startswith(_TRANSIENT_REPLIES)


def _unavailable(exc: BaseException) -> RedisUnavailable:
    if isinstance(exc, TimeoutError):
        return RedisUnavailable(f"Redis did not answer within {COMMAND_TIMEOUT:g}s")
    return RedisUnavailable(f"Redis is unavailable: {exc}")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Broker:
    """Tickr's state in one Redis namespace.

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
    def connect(cls, url: str | None, redis: Redis | None, namespace: str) -> Broker:
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

    def sync_renewer(self) -> SyncRenewer | None:
        """A blocking lease renewer for a thread of its own.

        None when the broker's connection settings cannot be reproduced; leases are then
        renewed on the event loop.
        """
        if isinstance(self._executor, Wire):
            return SyncRenewer(self._executor.settings, self.keys, self.clock)
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
        else:
            assert isinstance(executor, Wire)
            transport = WireTransport(executor.settings)
        return EventListener(transport, sink, self.keys)

    # ------------------------------------------------------------------ plumbing

    # Every call is bounded by COMMAND_TIMEOUT, and retried a few times when the connection
    # failed: every script tolerates being sent twice (see the module docstring).  What
    # still fails becomes RedisUnavailable.

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
            except _CONNECTION_ERRORS as exc:
                if attempt + 1 == attempts:
                    raise _unavailable(exc) from exc
            except ResponseError as exc:
                if not _transient(exc):
                    raise TickrError(f"Redis refused a command: {exc}") from exc
                if str(exc).startswith("READONLY"):
                    self._executor.reset()  # connected to a demoted primary: reconnect
                if attempt + 1 == attempts:
                    raise RedisUnavailable(f"Redis cannot serve now: {exc}") from exc
            await asyncio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

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

    async def _eval_many(
        self, calls: Sequence[tuple[Script, Sequence[str], Sequence[Any]]]
    ) -> list[Any]:
        """Run several script calls in one round trip (not a transaction).

        Calls that failed because Redis did not know the script did not run; they are
        run again once the script is loaded.  Other errors are raised.
        """
        if len(calls) == 1:
            script, keys, args = calls[0]
            return [await self._eval(script, keys, args)]
        return list(await self._call(lambda: self._run_scripts(calls)))

    async def _run_scripts(
        self, calls: Sequence[tuple[Script, Sequence[str], Sequence[Any]]]
    ) -> list[Any]:
        results: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for _attempt in range(2):
            replies = await self._executor.execute_many(
                [
                    ("EVALSHA", calls[i][0].sha, len(calls[i][1]), *calls[i][1], *calls[i][2])
                    for i in todo
                ]
            )
            missing: list[int] = []
            for index, reply in zip(todo, replies, strict=True):
                if isinstance(reply, NoScriptError):
                    missing.append(index)
                elif isinstance(reply, Exception):
                    raise reply
                else:
                    results[index] = reply
            if not missing:
                return results
            for name in {calls[index][0].name for index in missing}:
                await self._executor.execute("SCRIPT", "LOAD", load_script(name).source)
            todo = missing
        raise RedisUnavailable("Redis keeps losing its script cache")

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

    async def redis_settings(self) -> dict[str, str]:
        """What Redis says of its eviction policy and persistence.

        Keys: redis_version, maxmemory_policy, aof_enabled ("0"/"1"), and save (the
        RDB snapshot points, or "unknown" when CONFIG is not allowed, as on many managed
        services).
        """
        server, memory, persistence = await self._pipeline(
            [("INFO", "server"), ("INFO", "memory"), ("INFO", "persistence")]
        )
        fields: dict[str, str] = {}
        for section in (server, memory, persistence):
            for line in _text(section).splitlines():
                name, _, value = line.partition(":")
                fields[name.strip()] = value.strip()
        settings = {
            "redis_version": fields.get("redis_version", "unknown"),
            "maxmemory_policy": fields.get("maxmemory_policy", "unknown"),
            "aof_enabled": fields.get("aof_enabled", "unknown"),
            "save": "unknown",
        }
        try:
            reply = await self._command("CONFIG", "GET", "save")
            if isinstance(reply, list) and len(reply) == 2:
                settings["save"] = _text(reply[1])
        except TickrError:
            pass  # CONFIG is disabled or renamed
        return settings

    # ------------------------------------------------------------------ servers

    def _registry(self, kind: str, process_id: str) -> tuple[str, str]:
        keys = self.namespace_keys
        if kind == "server":
            return keys.server(process_id), keys.servers
        return keys.scheduler(process_id), keys.schedulers

    async def register(
        self,
        kind: str,
        process_id: str,
        record: bytes,
        now_ms: int,
        ttl_ms: int,
        queues: Iterable[str] = (),
    ) -> None:
        """Record a running "server" or "scheduler" for `ttl_ms`, and its queues.

        See lua/register_process.lua.
        """
        record_key, registry = self._registry(kind, process_id)
        await self._eval(
            _REGISTER,
            (record_key, registry, self.namespace_keys.queues),
            (process_id, record, now_ms, ttl_ms, *queues),
        )

    async def unregister(self, kind: str, process_id: str) -> None:
        """Remove a "server" or "scheduler" record at once."""
        record_key, registry = self._registry(kind, process_id)
        await self._pipeline([("DEL", record_key), ("ZREM", registry, process_id)])

    async def registered(self, kind: str, now_ms: int) -> list[bytes]:
        """The records of every "server" or "scheduler" registered and not expired."""
        _, registry = self._registry(kind, "")
        ids = await self._command("ZRANGEBYSCORE", registry, now_ms, "+inf")
        if not ids:
            return []
        records = await self._command("MGET", *(self._registry(kind, _text(i))[0] for i in ids))
        return [record for record in records if record]

    # ------------------------------------------------------------------ periodic tasks

    async def cron_tick(
        self,
        queue: str,
        entry_id: str,
        tick_ms: int,
        item: EnqueueItem,
        *,
        now_ms: int,
        history: int,
        state_ttl_ms: int,
    ) -> tuple[bool, EnqueueOutcome, int]:
        """Enqueue one tick unless a scheduler did (see lua/cron_tick.lua).

        Returns (whether this call claimed the tick, the enqueue outcome, last tick).
        """
        keys = self.keys(queue)
        claimed, outcome, last = await self._eval(
            _CRON_TICK,
            (
                keys.pending,
                keys.scheduled,
                keys.seq,
                keys.idle,
                keys.cron_last(entry_id),
                keys.cron_history(entry_id),
                keys.waiters,
                keys.active,
                keys.paused,
            ),
            (
                keys.task_prefix,
                keys.unique_prefix,
                keys.events_channel,
                tick_ms,
                now_ms,
                history,
                state_ttl_ms,
                _pack_list(item),
                keys.inbox_prefix,
                self.clock.now_ms(),  # leases run on Redis' time, whatever the scheduler's clock
            ),
        )
        return bool(claimed), self._outcome(outcome), int(last)

    async def cron_last_ticks(self, entries: Sequence[tuple[str, str]]) -> list[int | None]:
        """The last enqueued tick (ms) of each (queue, entry id), None for a new entry."""
        if not entries:
            return []
        replies = await self._pipeline(
            [("GET", self.keys(queue).cron_last(entry_id)) for queue, entry_id in entries]
        )
        return [None if reply is None else int(reply) for reply in replies]

    async def cron_start(self, queue: str, entry_id: str, tick_ms: int, state_ttl_ms: int) -> None:
        """Mark `tick_ms` as the last tick of a new entry (nothing before it will run)."""
        key = self.keys(queue).cron_last(entry_id)
        await self._command("SET", key, tick_ms, "NX", "PX", state_ttl_ms)

    async def cron_latest_events(self, entries: Sequence[tuple[str, str]]) -> list[bytes | None]:
        """The newest tick event of each (queue, entry id), None when it never ran."""
        if not entries:
            return []
        return await self._pipeline(
            [("LINDEX", self.keys(queue).cron_history(entry_id), 0) for queue, entry_id in entries]
        )

    async def cron_history(self, queue: str, entry_id: str, limit: int) -> list[bytes]:
        """The most recent tick events of an entry, newest first (msgpack each)."""
        return list(
            await self._command("LRANGE", self.keys(queue).cron_history(entry_id), 0, limit - 1)
        )

    # ------------------------------------------------------------------ queues

    async def register_queues(self, queues: Iterable[str]) -> None:
        """Record queue names in the namespace's queue registry."""
        names = list(queues)
        if names:
            await self._command("SADD", self.namespace_keys.queues, *names)

    async def has_queue(self, queue: str) -> bool:
        """Whether the namespace's queue registry has `queue`."""
        return bool(await self._command("SISMEMBER", self.namespace_keys.queues, queue))

    async def queues(self) -> list[str]:
        """Every queue name recorded in the namespace, sorted."""
        members = await self._command("SMEMBERS", self.namespace_keys.queues)
        return sorted(_text(member) for member in members)

    async def pause(self, queue: str) -> None:
        """Stop servers from taking tasks of `queue`."""
        await self._command("SET", self.keys(queue).paused, b"1")

    async def unpause(self, queue: str) -> bool:
        """Let servers take tasks of `queue` again; returns whether it was paused."""
        keys = self.keys(queue)
        return bool(await self._eval(_UNPAUSE, (keys.paused, keys.idle), (keys.events_channel,)))

    async def queue_sizes(self, queue: str) -> dict[str, int]:
        """The number of tasks in each state, and whether the queue is paused (0/1)."""
        keys = self.keys(queue)
        replies = await self._pipeline(
            [("ZCARD", getattr(keys, state)) for state in _STATE_SETS] + [("EXISTS", keys.paused)]
        )
        sizes = dict(zip(_STATE_SETS, (int(reply) for reply in replies), strict=False))
        sizes["paused"] = int(replies[-1])
        return sizes

    async def queue_stats(
        self, queue: str, days: Sequence[str]
    ) -> tuple[dict[str, int], list[tuple[int, int]], bytes | None]:
        """Sizes, daily counters and the next task, in one round trip.

        Returns the sizes (as `queue_sizes`), (processed, failed) per day of `days`, and
        the id of the task that runs next (None when nothing is pending).
        """
        keys = self.keys(queue)
        commands: list[tuple[Any, ...]] = [("ZCARD", getattr(keys, s)) for s in _STATE_SETS]
        commands.append(("EXISTS", keys.paused))
        commands.append(("ZRANGE", keys.pending, 0, 0))
        for day in days:
            commands.append(("MGET", keys.processed_on(day), keys.failed_on(day)))
        replies = await self._pipeline(commands)
        count = len(_STATE_SETS)
        sizes = dict(zip(_STATE_SETS, (int(reply) for reply in replies[:count]), strict=True))
        sizes["paused"] = int(replies[count])
        head = replies[count + 1]
        next_id = head[0][PENDING_SEQ_WIDTH:] if head else None
        daily = [
            (int(processed or 0), int(failed or 0)) for processed, failed in replies[count + 2 :]
        ]
        return sizes, daily, next_id

    async def queue_memory(self, queue: str, tasks: int) -> int:
        """Approximate bytes used by a queue.

        Its sets, plus a few sampled task records scaled to `tasks`: two round trips,
        however large the queue.
        """
        keys = self.keys(queue)
        sets = [getattr(keys, state) for state in _STATE_SETS]
        replies = await self._pipeline(
            [("MEMORY", "USAGE", key, "SAMPLES", 5) for key in sets]
            + [("ZRANDMEMBER", key, _MEMORY_SAMPLES) for key in sets]
        )
        total = sum(int(reply or 0) for reply in replies[: len(sets)])
        sampled: list[str] = []
        for state, members in zip(_STATE_SETS, replies[len(sets) :], strict=True):
            for member in members or ():
                task_id = _text(member)
                sampled.append(task_id[PENDING_SEQ_WIDTH:] if state == "pending" else task_id)
        if sampled and tasks:
            sizes = await self._pipeline(
                [("MEMORY", "USAGE", keys.task(task_id)) for task_id in sampled[:_MEMORY_SAMPLES]]
            )
            measured = [int(size) for size in sizes if size is not None]
            if measured:
                total += sum(measured) * tasks // len(measured)
        return total

    async def _pipeline(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        async def send() -> list[Any]:
            replies = await self._executor.execute_many(commands)
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            return list(replies)

        return list(await self._call(send))

    # ------------------------------------------------------------------ enqueue

    def _enqueue_call(
        self, queue: str, items: Sequence[EnqueueItem]
    ) -> tuple[Script, Sequence[str], list[Any]]:
        keys = self.keys(queue)
        args = [
            keys.task_prefix,
            keys.unique_prefix,
            keys.events_channel,
            _pack_list(items),
            keys.inbox_prefix,
            self.clock.now_ms(),
        ]
        key_names = (
            keys.pending,
            keys.scheduled,
            keys.seq,
            keys.idle,
            keys.waiters,
            keys.active,
            keys.paused,
        )
        return _ENQUEUE, key_names, args

    @staticmethod
    def _outcome(reply: int | bytes) -> EnqueueOutcome:
        return reply if isinstance(reply, int) else reply.decode()

    async def enqueue(self, queue: str, item: EnqueueItem) -> EnqueueOutcome:
        """Add one task to `queue` (see lua/enqueue.lua for the outcome)."""
        script, keys, args = self._enqueue_call(queue, (item,))
        replies = await self._eval(script, keys, args)
        return self._outcome(replies[0])

    async def enqueue_many(
        self, batches: Sequence[tuple[str, Sequence[EnqueueItem]]]
    ) -> list[list[EnqueueOutcome]]:
        """Add batches of tasks, each batch to one queue, in one round trip.

        Returns the outcomes per batch, in order.
        """
        calls = []
        shape: list[tuple[int, int]] = []  # (batch index, items in this call)
        for batch_index, (queue, items) in enumerate(batches):
            for start in range(0, len(items), _ENQUEUE_CHUNK):
                chunk = items[start : start + _ENQUEUE_CHUNK]
                calls.append(self._enqueue_call(queue, chunk))
                shape.append((batch_index, len(chunk)))
        outcomes: list[list[EnqueueOutcome]] = [[] for _ in batches]
        for (batch_index, _size), replies in zip(shape, await self._eval_many(calls), strict=True):
            outcomes[batch_index].extend(self._outcome(reply) for reply in replies)
        return outcomes

    # ------------------------------------------------------------------ serving

    async def dequeue(
        self, queue: str, count: int, lease_expiry_ms: int, owner: str
    ) -> list[DequeuedTask]:
        """Take up to `count` pending tasks of `queue` under a lease held by `owner`.

        Sent once, never re-sent: when the connection fails, whether the call ran is
        unknown, and `reclaim` with the same `lease_expiry_ms` finds what it took.

        Raises:
            RedisUnavailable: If the call failed (it may have run: see `reclaim`).
        """
        keys = self.keys(queue)
        taken, rejected = await self._eval(
            _DEQUEUE,
            (keys.pending, keys.active, keys.paused, keys.idle, keys.archived),
            (keys.task_prefix, count, lease_expiry_ms, owner, self.clock.now_ms()),
            attempts=1,
        )
        _log_set_aside(queue, rejected)
        return _dequeued(taken, queue)

    @staticmethod
    def waiter_name(owner: str, lease_ms: int) -> str:
        """How a server is registered as a waiter: its lease length and its id."""
        return f"{lease_ms} {owner}"

    async def join_waiters(self, queues: Sequence[str], waiter: str, until_ms: int) -> None:
        """Register an idle server as a waiter in each queue, until `until_ms`.

        Heartbeats extend the registration.  The next task enqueued to an empty queue is
        handed to the server directly (see lua/lib/enqueue_task.lua).
        """
        await self._pipeline(
            [("ZADD", self.keys(queue).waiters, until_ms, waiter) for queue in queues]
        )

    async def leave_waiters(
        self, queues: Sequence[str], waiter: str, owner: str
    ) -> tuple[list[tuple[str, DequeuedTask]], list[str]]:
        """End a server's registrations, and take what was handed to it meanwhile.

        Returns the tasks taken from the inboxes, and the queues whose registration was
        gone (used by a hand-off, or lapsed) while their inbox had nothing left.
        """
        commands: list[tuple[Any, ...]] = [("ZREM", self.keys(q).waiters, waiter) for q in queues]
        commands += [("LPOP", self.keys(q).inbox(owner), _INBOX_TAKE) for q in queues]
        replies = await self._pipeline(commands)
        handed: list[tuple[str, DequeuedTask]] = []
        used: list[str] = []
        for queue, removed, elements in zip(
            queues, replies[: len(queues)], replies[len(queues) :], strict=True
        ):
            taken = [element for element in elements or () if element]
            handed.extend((queue, _handed(element)) for element in taken)
            if not removed and not taken:
                used.append(queue)
        return handed, used

    async def take_handed(
        self, queues: Sequence[str], owner: str, timeout_s: float
    ) -> tuple[str, DequeuedTask] | None:
        """Wait up to `timeout_s` for a task handed to `owner`; (queue, task) or None.

        Blocks on a connection of its own (BLPOP), never on the commands' connection.
        """
        inboxes = {self.keys(queue).inbox(owner): queue for queue in queues}
        if self._blocking is None:
            self._blocking = self._executor.sibling()
        blocking = self._blocking
        try:
            async with asyncio.timeout(timeout_s + COMMAND_TIMEOUT):
                reply = await blocking.execute("BLPOP", *inboxes, timeout_s)
        except TimeoutError as exc:
            blocking.reset()  # this connection, not the commands' one
            raise _unavailable(exc) from exc
        except _CONNECTION_ERRORS as exc:
            raise _unavailable(exc) from exc
        except ResponseError as exc:
            raise RedisUnavailable(f"Redis cannot serve now: {exc}") from exc
        if reply is None or not reply[1]:
            return None  # timed out, or woken by `wake_inbox`
        return inboxes[_text(reply[0])], _handed(reply[1])

    async def wake_inbox(self, queue: str, owner: str) -> None:
        """Make a `take_handed` of `owner` waiting now return at once (with nothing)."""
        inbox = self.keys(queue).inbox(owner)
        await self._pipeline([("RPUSH", inbox, b""), ("PEXPIRE", inbox, _INBOX_TTL_MS)])

    async def reclaim(self, queue: str, owner: str, lease_expiry_ms: int) -> list[DequeuedTask]:
        """The tasks a `dequeue` call with this lease expiry gave `owner` (see reclaim.lua)."""
        keys = self.keys(queue)
        reply = await self._eval(
            _RECLAIM, (keys.active,), (keys.task_prefix, owner, lease_expiry_ms)
        )
        return _dequeued(reply, queue)

    async def finish(
        self,
        queue: str,
        ops: Sequence[FinishOp],
        *,
        now_ms: int,
        owner: str,
        day: str,
        archive_max_size: int,
        archive_max_age_ms: int,
    ) -> list[int]:
        """Record outcomes of tasks held by `owner` (see lua/finish.lua).

        Returns per op 1 applied, 0 ignored because the lease was lost, or 2 when the
        task's record was damaged and the task archived with that error instead.
        """
        keys = self.keys(queue)
        args: list[Any] = [
            keys.task_prefix,
            keys.unique_prefix,
            keys.events_channel,
            keys.done_channel,
            now_ms,
            owner,
            STATS_TTL_SECONDS,
            archive_max_size,
            archive_max_age_ms,
            _pack_list(ops),
        ]
        reply = await self._eval(
            _FINISH,
            (
                keys.active,
                keys.pending,
                keys.retry,
                keys.archived,
                keys.completed,
                keys.processed,
                keys.failed,
                keys.processed_on(day),
                keys.failed_on(day),
                keys.idle,
                keys.seq,
            ),
            args,
        )
        return [int(applied) for applied in reply]

    async def forward(
        self, queues: Sequence[str], now_ms: int, limit: int
    ) -> dict[str, tuple[int, int | None]]:
        """Move due scheduled and retry tasks of each queue to pending.

        Returns per queue (tasks moved, earliest due time left in ms or None).
        """
        calls = []
        for queue in queues:
            keys = self.keys(queue)
            calls.append(
                (
                    _FORWARD,
                    (
                        keys.scheduled,
                        keys.retry,
                        keys.pending,
                        keys.seq,
                        keys.idle,
                        keys.archived,
                    ),
                    (keys.task_prefix, now_ms, limit, keys.events_channel),
                )
            )
        replies = await self._eval_many(calls)
        report = {}
        for queue, (moved, earliest, set_aside) in zip(queues, replies, strict=True):
            _log_set_aside(queue, set_aside)
            report[queue] = (int(moved), None if earliest < 0 else int(earliest))
        return report

    async def heartbeat(
        self,
        owner: str,
        lease_expiry_ms: int,
        held: Mapping[str, Sequence[str]],
        queues: Sequence[str],
        *,
        now_ms: int,
        day: str,
        archive_max_size: int,
        archive_max_age_ms: int,
        waiter: str = "",
        wait_until_ms: int = 0,
    ) -> HeartbeatReport:
        """Renew `owner`'s leases and take back expired ones, in one round trip.

        `held` maps queue -> ids of tasks `owner` holds (see lua/renew.lua); every queue
        of `queues` is searched for expired leases (see lua/recover.lua).
        """
        calls: list[tuple[Script, Sequence[str], Sequence[Any]]] = []
        renewed = [queue for queue, ids in held.items() if ids]
        for queue in renewed:
            keys = self.keys(queue)
            args = (keys.task_prefix, owner, lease_expiry_ms, *held[queue])
            calls.append((_RENEW, (keys.active,), args))
        for queue in queues:
            keys = self.keys(queue)
            calls.append(
                (
                    _RECOVER,
                    (
                        keys.active,
                        keys.retry,
                        keys.archived,
                        keys.processed,
                        keys.failed,
                        keys.processed_on(day),
                        keys.failed_on(day),
                        keys.pending,
                        keys.waiters,
                        keys.idle,
                        keys.completed,
                    ),
                    (
                        keys.task_prefix,
                        keys.unique_prefix,
                        keys.events_channel,
                        keys.done_channel,
                        now_ms,
                        STATS_TTL_SECONDS,
                        archive_max_size,
                        archive_max_age_ms,
                        RECOVER_BATCH,
                        keys.inbox_prefix,
                        waiter,
                        wait_until_ms,
                    ),
                )
            )
        replies = await self._eval_many(calls)
        report = HeartbeatReport()
        for queue, (lost, cancelled) in zip(renewed, replies, strict=False):
            report.lost[queue] = [_text(task_id) for task_id in lost]
            report.cancelled[queue] = [_text(task_id) for task_id in cancelled]
        for queue, (retried, archived, earliest, unreceived) in zip(
            queues, replies[len(renewed) :], strict=True
        ):
            report.recovered[queue] = (int(retried), int(archived))
            report.unreceived[queue] = int(unreceived)
            if earliest >= 0 and (
                report.earliest_lease_ms is None or earliest < report.earliest_lease_ms
            ):
                report.earliest_lease_ms = int(earliest)
        return report

    # ------------------------------------------------------------------ operators

    def _admin_call(self, queue: str, now_ms: int) -> tuple[list[str], list[Any]]:
        keys = self.keys(queue)
        return (
            [
                keys.pending,
                keys.scheduled,
                keys.retry,
                keys.archived,
                keys.completed,
                keys.seq,
                keys.idle,
            ],
            [keys.task_prefix, keys.unique_prefix, keys.events_channel, keys.done_channel, now_ms],
        )

    async def manage(self, queue: str, op: str, task_id: str, now_ms: int) -> tuple[int, str]:
        """Delete, run or archive one task (see lua/lib/manage_task.lua).

        Returns (1 done, 0 not possible in its state, -1 no such task; its state).
        """
        keys, args = self._admin_call(queue, now_ms)
        code, state = await self._eval(_ADMIN, keys, [*args, op, task_id])
        return int(code), _text(state)

    async def manage_all(self, queue: str, op: str, state: str, now_ms: int) -> int:
        """Apply `op` to every task in `state`, a batch per call; returns how many."""
        keys, args = self._admin_call(queue, now_ms)
        total = 0
        while True:
            done, left = await self._eval(_BULK, keys, [*args, op, state, _ADMIN_BATCH])
            total += int(done)
            if not int(done) or not int(left):
                return total

    async def purge_queue(self, queue: str, today: date) -> None:
        """Delete a queue: every task in every state, its counters and its name."""
        keys = self.keys(queue)
        sets = (keys.pending, keys.active, keys.scheduled, keys.retry, keys.archived)
        while await self._eval(
            _PURGE,
            (*sets, keys.completed),
            (keys.task_prefix, keys.unique_prefix, _ADMIN_BATCH),
        ):
            pass
        days = [(today - timedelta(days=offset)).isoformat() for offset in range(_STATS_DAYS_KEPT)]
        await self._pipeline(
            [
                ("DEL", keys.seq, keys.paused, keys.idle, keys.waiters),
                ("DEL", keys.processed, keys.failed),
                ("DEL", *(keys.processed_on(day) for day in days)),
                ("DEL", *(keys.failed_on(day) for day in days)),
                ("SREM", self.namespace_keys.queues, queue),
            ]
        )

    async def list_tasks(
        self, queue: str, state: str, offset: int, count: int
    ) -> list[tuple[str, dict[str, bytes] | None]]:
        """A page of a state's tasks with their fields, in the state's listing order.

        Pending in run order, active by lease, scheduled and retry by due time, archived
        and completed newest first.  O(log N + count), however large the queue.
        """
        keys = self.keys(queue)
        command = "ZREVRANGE" if state in ("archived", "completed") else "ZRANGE"
        members = await self._command(command, getattr(keys, state), offset, offset + count - 1)
        ids = [
            _text(member)[PENDING_SEQ_WIDTH:] if state == "pending" else _text(member)
            for member in members
        ]
        if not ids:
            return []
        records = await self._records([keys.task(task_id) for task_id in ids])
        for record in records:
            if record is not None and "msg" not in record and "err" in record:
                record.setdefault("state", state.encode())
        return list(zip(ids, records, strict=True))

    async def _records(self, keys: Sequence[str]) -> list[dict[str, bytes] | None]:
        """The fields of task hashes; a key of another type reads as a record of its damage."""

        async def send() -> list[dict[str, bytes] | None]:
            replies = await self._executor.execute_many([("HGETALL", key) for key in keys])
            records: list[dict[str, bytes] | None] = []
            for reply in replies:
                if isinstance(reply, ResponseError) and str(reply).startswith("WRONGTYPE"):
                    records.append({"err": DAMAGED_RECORD})
                elif isinstance(reply, Exception):
                    raise reply
                else:
                    records.append(_fields(reply))
            return records

        return list(await self._call(send))

    # ------------------------------------------------------------------ single tasks

    async def cancel(self, queue: str, task_id: str) -> bool:
        """Cancel a task; whether it was deleted or its cancellation requested.

        See lua/cancel.lua; its other codes mean there was nothing to cancel.
        """
        keys = self.keys(queue)
        code = await self._eval(
            _CANCEL,
            (keys.task(task_id), keys.pending, keys.scheduled, keys.retry),
            (task_id, keys.unique_prefix, keys.events_channel, keys.done_channel),
        )
        return int(code) > 0

    async def get_task(self, queue: str, task_id: str) -> dict[str, bytes] | None:
        """Every field of a task's hash, or None when there is no such task.

        A key of another type reads as ``{"err": DAMAGED_RECORD}``, without a state.
        """
        return (await self._records([self.keys(queue).task(task_id)]))[0]

    async def watch_result(
        self, queue: str, task_id: str
    ) -> tuple[str, bytes | None, bytes | None] | None:
        """Mark a waiter on the task and read (state, result, error); None if missing."""
        reply = await self._eval(_WATCH, (self.keys(queue).task(task_id),), ())
        if reply is None:
            return None
        state, result, error = reply
        return _text(state or b""), result, error
