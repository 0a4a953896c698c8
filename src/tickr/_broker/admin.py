"""The operator path: what the Inspector and the CLI read and change.

Queue listings and counters, task pages and records, an operator's run, archive or
delete of tasks, pausing, purging a queue, the registered processes and the
scheduler's history.  Each method builds one call (or one round trip of calls) and
reads its reply; how it is sent is `Calls`' business.
"""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any, Final

import msgpack
from redis.exceptions import ResponseError

from tickr._broker.calls import Calls, ScriptCall, text
from tickr._broker.cluster import ClusterExecutor
from tickr._broker.keys import QueueKeys
from tickr._broker.scripts import every_script, load_script
from tickr._broker.types import DailyCounts, QueueOverview, QueueStats
from tickr.errors import RedisUnavailable, TickrError
from tickr.values import TASK_STATES

__all__ = ["DAMAGED_RECORD", "LIMIT_FIELDS", "Admin"]

DAMAGED_RECORD: Final = b"corrupt task record: not a hash"
"""The error shown for a task whose key holds another type (until a script sets it aside)."""

_ADMIN_BATCH: Final = 1000
_MEMORY_SAMPLES: Final = 5
_STATE_SETS: Final[tuple[str, ...]] = tuple(state for state in TASK_STATES if state != "pending")
_STATS_DAYS_KEPT: Final = 91
_MINUTE_HOURS_KEPT: Final = 26  # the minute counters of an hour live 25 hours

_ADMIN = load_script("admin")
_BULK = load_script("bulk")
_PURGE = load_script("purge")
_UNPAUSE = load_script("unpause")
_MIGRATE = load_script("migrate")
_READ_TASK = load_script("read_task")
_LIST_PENDING = load_script("list_pending")
_LIMITS = load_script("limits")

LIMIT_FIELDS: Final = ("rate", "period", "burst", "rate_lane", "conc", "conc_lane")
"""The fields of a queue's limits hash (see keys.py)."""


def _fields(reply: Any) -> dict[str, bytes] | None:
    """A HGETALL reply as a dict; None for a missing hash."""
    if not reply:
        return None
    if isinstance(reply, dict):
        return {text(name): value for name, value in reply.items()}
    return {text(reply[i]): reply[i + 1] for i in range(0, len(reply), 2)}


def pending_fields(raw: bytes) -> dict[str, bytes]:
    """A pending record (lua/lib/pending_store.lua) as the fields of a task hash.

    A record that cannot be read gives the error alone, as a damaged hash does.
    """
    try:
        record = msgpack.unpackb(raw, raw=True)
        message, priority, max_retry = record[0], int(record[1]), int(record[2])
        extras = record[3:]
    except (ValueError, TypeError, IndexError, msgpack.UnpackException):
        return {"err": b"corrupt pending record: not a record of %d bytes" % len(raw)}
    fields = {"msg": message, "pri": b"%d" % priority, "mr": b"%d" % max_retry}
    for i in range(0, len(extras) - 1, 2):
        value = extras[i + 1]
        fields[text(extras[i])] = value if isinstance(value, bytes) else str(value).encode()
    fields["state"] = b"pending"
    return fields


def _text_fields(reply: Any) -> dict[str, str]:
    """An INFO section or a CONFIG GET reply as text fields, raw or parsed by redis-py."""
    if isinstance(reply, bytes | str):
        fields = {}
        for line in text(reply).splitlines():
            name, _, value = line.partition(":")
            fields[name.strip()] = value.strip()
        return fields
    if isinstance(reply, list):  # CONFIG GET: name, value, ...
        return {text(reply[i]): text(reply[i + 1]) for i in range(0, len(reply) - 1, 2)}
    if isinstance(reply, dict):
        return {
            text(name): text(value) if isinstance(value, bytes) else str(value)
            for name, value in reply.items()
        }
    return {}


class Admin(Calls):
    """The broker's operator path (see the module docstring)."""

    # ------------------------------------------------------------------ Redis

    async def redis_settings(self) -> list[dict[str, str]]:
        """What each Redis node says of its version, eviction policy and persistence.

        One dict per node (one for one Redis; each primary of a Cluster), with keys
        redis_version, maxmemory_policy, aof_enabled ("0"/"1"), and save (the RDB
        snapshot points, or "unknown" when CONFIG is not allowed, as on many managed
        services).  Replies parsed by redis-py's clients are read as well as raw ones.
        """
        nodes = await self._every_node(
            ("INFO", "server"), ("INFO", "memory"), ("INFO", "persistence")
        )
        saves: dict[str, dict[str, str]] = {}
        with contextlib.suppress(TickrError):  # CONFIG is disabled or renamed
            saves = await self._every_node(("CONFIG", "GET", "save"))
        settings = []
        for node, fields in nodes.items():
            save = saves.get(node, {})
            settings.append(
                {
                    "redis_version": fields.get("redis_version", "unknown"),
                    "maxmemory_policy": fields.get("maxmemory_policy", "unknown"),
                    "aof_enabled": fields.get("aof_enabled", "unknown"),
                    "save": save.get("save", "unknown"),
                }
            )
        return settings

    async def _every_node(self, *commands: tuple[Any, ...]) -> dict[str, dict[str, str]]:
        """The fields that `commands` (INFO sections, CONFIG GET) answer, by node.

        One Redis is one node (named ""); on a Cluster, every primary.

        Raises:
            TickrError: If a command is refused (on a Cluster: by every primary).
        """
        nodes: dict[str, dict[str, str]] = {}
        executor = self._executor
        if not isinstance(executor, ClusterExecutor):
            for reply in await self._pipeline(list(commands)):
                nodes.setdefault("", {}).update(_text_fields(reply))
            return nodes
        for command in commands:
            replies = await self._call(functools.partial(executor.on_every_primary, *command))
            answered = {n: r for n, r in replies.items() if not isinstance(r, Exception)}
            if not answered:
                failures = [r for r in replies.values() if isinstance(r, Exception)]
                raise (
                    self._failure(failures[0])
                    if failures
                    else RedisUnavailable("Redis Cluster has no primary to ask")
                )
            for node, reply in answered.items():
                nodes.setdefault(node, {}).update(_text_fields(reply))
        return nodes

    async def scripts_ready(self) -> None:
        """Make sure every Redis node holds every Tickr script, loading those it lacks.

        Raises:
            RedisUnavailable: If a node (on a Cluster: any primary) cannot be reached.
            TickrError: If Redis refuses SCRIPT EXISTS or SCRIPT LOAD (an ACL, say).
        """
        scripts = every_script()
        question = ("SCRIPT", "EXISTS", *(script.sha for script in scripts))
        executor = self._executor
        if isinstance(executor, ClusterExecutor):
            replies = await self._call(functools.partial(executor.on_every_primary, *question))
            answers = list(replies.values())
        else:
            answers = [await self._command(*question)]
        missing: dict[str, str] = {}
        for answer in answers:
            if isinstance(answer, Exception):
                raise self._failure(answer)
            for script, present in zip(scripts, answer, strict=True):
                if not int(present):
                    missing[script.sha] = script.source
        for source in missing.values():
            await self._command("SCRIPT", "LOAD", source)

    # ------------------------------------------------------------------ audit log

    async def add_audit(self, fields: Mapping[str, str], cap: int) -> str:
        """Append an entry to the namespace's audit stream, keeping about `cap` entries.

        Returns the entry's id ("<ms>-<n>", stamped by Redis' clock).
        """
        flat = [item for pair in fields.items() for item in pair]
        reply = await self._command(
            "XADD", self.namespace_keys.audit, "MAXLEN", "~", cap, "*", *flat
        )
        return text(reply)

    async def audit_entries(
        self, count: int, before: str | None
    ) -> list[tuple[str, dict[str, str]]]:
        """Up to `count` audit entries, newest first, older than the entry id `before`."""
        end = "+" if before is None else f"({before}"
        key = self.namespace_keys.audit
        reply = await self._command("XREVRANGE", key, end, "-", "COUNT", count)
        entries = []
        for entry_id, fields in reply:
            if isinstance(fields, dict):  # redis-py's cluster client parses the reply
                pairs = list(fields.items())
            else:
                pairs = list(zip(fields[::2], fields[1::2], strict=True))
            entries.append((text(entry_id), {text(name): text(value) for name, value in pairs}))
        return entries

    # ------------------------------------------------------------------ processes

    async def registered(self, kind: str, now_ms: int) -> list[bytes]:
        """The records of every "server" or "scheduler" registered and not expired."""
        _, registry = self._registry(kind, "")
        ids = await self._command("ZRANGEBYSCORE", registry, now_ms, "+inf")
        if not ids:
            return []
        records = await self._command("MGET", *(self._registry(kind, text(i))[0] for i in ids))
        return [record for record in records if record]

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

    async def has_queue(self, queue: str) -> bool:
        """Whether the namespace's queue registry has `queue`."""
        return bool(await self._command("SISMEMBER", self.namespace_keys.queues, queue))

    async def queues(self) -> list[str]:
        """Every queue name recorded in the namespace, sorted."""
        members = await self._command("SMEMBERS", self.namespace_keys.queues)
        return sorted(text(member) for member in members)

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
            [("ZCARD", getattr(keys, state)) for state in _STATE_SETS]
            + [("HGET", keys.pending, "n"), ("EXISTS", keys.paused)]
        )
        sizes = dict(zip(_STATE_SETS, (int(reply) for reply in replies), strict=False))
        sizes["pending"] = int(replies[-2] or 0)
        sizes["paused"] = int(replies[-1])
        return sizes

    async def queue_stats(self, queue: str, days: Sequence[str]) -> QueueStats:
        """Sizes, daily counters (per day of `days`) and the next task, in one round trip."""
        keys = self.keys(queue)
        commands: list[tuple[Any, ...]] = [("ZCARD", getattr(keys, s)) for s in _STATE_SETS]
        commands.append(("EXISTS", keys.paused))
        commands.append(("HGET", keys.pending, "n"))
        for day in days:
            commands.append(("MGET", keys.processed_on(day), keys.failed_on(day)))
        replies = await self._pipeline(commands)
        count = len(_STATE_SETS)
        sizes = dict(zip(_STATE_SETS, (int(reply) for reply in replies[:count]), strict=True))
        sizes["paused"] = int(replies[count])
        sizes["pending"] = int(replies[count + 1] or 0)
        head = await self._pending_page(keys, 0, 1) if sizes["pending"] else []
        daily = [
            DailyCounts(int(processed or 0), int(failed or 0))
            for processed, failed in replies[count + 2 :]
        ]
        return QueueStats(sizes, daily, head[0][0].encode() if head else None)

    async def queue_overview(self, queues: Sequence[str], day: str) -> dict[str, QueueOverview]:
        """Sizes, today's counters and the next task of many queues, in two round trips.

        A fixed number of commands per queue, however many tasks it holds: one pipeline
        of counts for every queue, then one list_pending.lua call per queue with tasks
        pending.  A queue whose node cannot be reached (on a Cluster) is left out.
        """
        per_queue = len(_STATE_SETS) + 6
        commands: list[tuple[Any, ...]] = []
        for queue in queues:
            keys = self.keys(queue)
            commands.extend(("ZCARD", getattr(keys, state)) for state in _STATE_SETS)
            commands.append(("HGET", keys.pending, "n"))
            commands.append(("EXISTS", keys.paused))
            commands.append(("MGET", keys.processed_on(day), keys.failed_on(day)))
            commands.append(("HMGET", keys.limits, *LIMIT_FIELDS))
            commands.append(("ZCARD", keys.pending_lanes))
            commands.append(("ZSCORE", keys.pending_lanes, ""))
        replies = await self._pipeline_partial(commands)
        read: dict[str, tuple[dict[str, int], DailyCounts, dict[str, str]]] = {}
        for index, queue in enumerate(queues):
            row = replies[index * per_queue : (index + 1) * per_queue]
            if any(isinstance(reply, Exception) for reply in row):
                continue
            sizes = {state: int(count) for state, count in zip(_STATE_SETS, row, strict=False)}
            sizes["pending"] = int(row[-6] or 0)
            sizes["paused"] = int(row[-5])
            processed, failed = row[-4]
            limits = {
                name: text(value)
                for name, value in zip(LIMIT_FIELDS, row[-3], strict=True)
                if value is not None
            }
            sizes["lanes"] = int(row[-2]) - (0 if row[-1] is None else 1)
            read[queue] = (sizes, DailyCounts(int(processed or 0), int(failed or 0)), limits)
        waiting = [queue for queue, (sizes, _, _) in read.items() if sizes["pending"]]
        calls: list[ScriptCall] = [
            (_LIST_PENDING, (self.keys(q).pending,), (self.keys(q).pending_prefix, 0, 1))
            for q in waiting
        ]
        heads = await self._eval_many(calls, partial=True) if calls else []
        next_tasks: dict[str, dict[str, bytes] | None] = {}
        for queue, head in zip(waiting, heads, strict=True):
            if isinstance(head, list) and len(head) >= 2 and head[1]:
                next_tasks[queue] = pending_fields(head[1])
        return {
            queue: QueueOverview(sizes, today, next_tasks.get(queue), limits)
            for queue, (sizes, today, limits) in read.items()
        }

    # ------------------------------------------------------------------ flow control

    async def publish_events(self, queues: Sequence[str], message: str) -> int:
        """Publish `message` on the events channel of each queue; how many servers heard it."""
        replies = await self._pipeline(
            [("PUBLISH", self.keys(queue).events_channel, message) for queue in queues]
        )
        return sum(int(reply) for reply in replies)

    async def set_limits(self, queue: str, fields: Mapping[str, str | int | float]) -> None:
        """Set some of a queue's limits (LIMIT_FIELDS), telling every server at once."""
        keys = self.keys(queue)
        flat = [str(item) for pair in fields.items() for item in pair]
        await self._eval(
            _LIMITS, (keys.limits, keys.tat, keys.capwait), (keys.events_channel, "set", *flat)
        )

    async def clear_limits(self, queue: str, kind: str) -> None:
        """Remove a queue's "rate" or "conc" limit, telling every server at once."""
        keys = self.keys(queue)
        await self._eval(
            _LIMITS, (keys.limits, keys.tat, keys.capwait), (keys.events_channel, kind)
        )

    async def minute_counts(
        self, queue: str, first_minute: int, last_minute: int
    ) -> dict[int, tuple[int, int]]:
        """Processed and failed per minute (minutes since the epoch), where not zero.

        Reads the hours that hold minutes `first_minute` to `last_minute`, one HGETALL
        each, in one round trip.  A damaged hour (not a hash, or a field that is not a
        count) reads as zeros.
        """
        keys = self.keys(queue)
        hours = range(first_minute // 60, last_minute // 60 + 1)
        replies = await self._pipeline_partial([("HGETALL", keys.minutes(hour)) for hour in hours])
        counts: dict[int, tuple[int, int]] = {}
        for hour, reply in zip(hours, replies, strict=True):
            fields = {} if isinstance(reply, Exception) else _fields(reply) or {}
            for name, value in fields.items():
                if name[:1] not in ("p", "f") or not name[1:].isdigit() or not value.isdigit():
                    continue
                minute = hour * 60 + int(name[1:])
                if not first_minute <= minute <= last_minute:
                    continue
                processed, failed = counts.get(minute, (0, 0))
                if name[0] == "p":
                    processed = int(value)
                else:
                    failed = int(value)
                counts[minute] = (processed, failed)
        return counts

    async def queue_memory(self, queue: str, sizes: Mapping[str, int]) -> int:
        """Approximate bytes used by a queue whose tasks per state are `sizes`.

        Its sets and pending lists, plus a few sampled task hashes and pending buckets
        scaled to the queue's sizes: two round trips, however large the queue.
        """
        keys = self.keys(queue)
        sets = [getattr(keys, state) for state in _STATE_SETS]
        replies = await self._pipeline(
            [("MEMORY", "USAGE", key, "SAMPLES", 5) for key in sets]
            + [("ZRANDMEMBER", key, _MEMORY_SAMPLES) for key in sets]
            + [("HMGET", keys.pending, "k", "s"), ("ZRANGE", keys.pending_priorities, 0, -1)]
        )
        total = sum(int(reply or 0) for reply in replies[: len(sets)])
        sampled = [
            text(member)
            for members in replies[len(sets) : 2 * len(sets)]
            for member in members or ()
        ][:_MEMORY_SAMPLES]
        level, split = (int(value or 0) for value in replies[-2])
        buckets = (1 << level) + split
        bucket_samples = random.sample(range(buckets), min(buckets, _MEMORY_SAMPLES))
        lists = [keys.pending_prefix + "l:" + text(name) for name in replies[-1]]
        fixed = [keys.pending, keys.pending_priorities, keys.pending_gone, *lists]
        usages = await self._pipeline(
            [("MEMORY", "USAGE", key, "SAMPLES", 5) for key in fixed]
            + [("MEMORY", "USAGE", keys.pending_bucket(index)) for index in bucket_samples]
            + [("MEMORY", "USAGE", keys.task(task_id)) for task_id in sampled]
        )
        total += sum(int(usage or 0) for usage in usages[: len(fixed)])
        if sizes.get("pending") and bucket_samples:
            measured = [
                int(usage or 0) for usage in usages[len(fixed) : len(fixed) + len(bucket_samples)]
            ]
            total += sum(measured) * buckets // len(measured)
        others = sum(sizes.get(state, 0) for state in _STATE_SETS)
        hashes = [int(u) for u in usages[len(fixed) + len(bucket_samples) :] if u is not None]
        if hashes and others:
            total += sum(hashes) * others // len(hashes)
        return total

    # ------------------------------------------------------------------ tasks

    def _admin_call(self, queue: str, now_ms: int) -> tuple[list[str], list[Any]]:
        keys = self.keys(queue)
        return (
            [
                keys.pending,
                keys.scheduled,
                keys.retry,
                keys.archived,
                keys.completed,
                keys.idle,
            ],
            [
                keys.task_prefix,
                keys.unique_prefix,
                keys.events_channel,
                keys.done_channel,
                now_ms,
                keys.pending_prefix,
            ],
        )

    async def manage(self, queue: str, op: str, task_id: str, now_ms: int) -> tuple[int, str]:
        """Delete, run or archive one task (see lua/lib/manage_task.lua).

        Returns (1 done, 0 not possible in its state, -1 no such task; its state).
        """
        keys, args = self._admin_call(queue, now_ms)
        code, state = await self._eval(_ADMIN, keys, [*args, op, task_id])
        return int(code), text(state)

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
            (keys.task_prefix, keys.unique_prefix, _ADMIN_BATCH, keys.pending_prefix),
        ):
            pass
        days = [(today - timedelta(days=offset)).isoformat() for offset in range(_STATS_DAYS_KEPT)]
        this_hour = int(self.clock.now_ms()) // 3_600_000
        await self._pipeline(
            [
                ("DEL", *(keys.minutes(this_hour - back) for back in range(_MINUTE_HOURS_KEPT))),
                ("DEL", keys.legacy_seq, keys.paused, keys.idle, keys.waiters),
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
        if state == "pending":
            return await self._pending_page(keys, offset, count)
        command = "ZREVRANGE" if state in ("archived", "completed") else "ZRANGE"
        members = await self._command(command, getattr(keys, state), offset, offset + count - 1)
        ids = [text(member) for member in members]
        if not ids:
            return []
        records = await self._records([keys.task(task_id) for task_id in ids])
        for record in records:
            if record is not None and "msg" not in record and "err" in record:
                record.setdefault("state", state.encode())
        return list(zip(ids, records, strict=True))

    async def _pending_page(
        self, keys: QueueKeys, offset: int, count: int
    ) -> list[tuple[str, dict[str, bytes] | None]]:
        """A page of pending tasks in run order (see lua/list_pending.lua)."""
        flat = await self._eval(
            _LIST_PENDING, (keys.pending,), (keys.pending_prefix, offset, count)
        )
        return [
            (text(flat[i]), pending_fields(flat[i + 1]) if flat[i + 1] else None)
            for i in range(0, len(flat), 2)
        ]

    async def migrate(self, queue: str) -> int:
        """Move the pending tasks that Tickr 0.1 wrote into today's layout (lua/migrate.lua).

        Returns how many moved; 0 at once when there is nothing to migrate.
        """
        keys = self.keys(queue)
        moved = 0
        while True:
            done, left = await self._eval(
                _MIGRATE,
                (keys.legacy_pending, keys.pending),
                (keys.task_prefix, keys.pending_prefix, _ADMIN_BATCH),
            )
            moved += int(done)
            if not int(left):
                return moved

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

    async def get_task(self, queue: str, task_id: str) -> dict[str, bytes] | None:
        """Every field of a task's hash or pending record; None when there is no such task.

        A key of another type reads as ``{"err": DAMAGED_RECORD}``, without a state.
        """
        keys = self.keys(queue)
        reply = await self._eval(
            _READ_TASK, (keys.task(task_id), keys.pending), (keys.pending_prefix, task_id)
        )
        kind = text(reply[0])
        if kind == "hash":
            return _fields(reply[1:]) or {}
        if kind == "pending":
            return pending_fields(reply[1])
        if kind == "damaged":
            return {"err": DAMAGED_RECORD}
        return None
