"""`Inspector`: read and steer queues and tasks (what the CLI is built on)."""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, Final

from tickr._aio import ClosedOnExit
from tickr._broker import Broker, QueueOverview, RedisClient, enqueued
from tickr._checks import (
    check_bool,
    check_int,
    check_name,
    check_positive_seconds,
    check_state,
    check_task,
    check_url,
)
from tickr._options import DEFAULT_QUEUE, MAX_CONCURRENCY
from tickr._records import read_task, task_info
from tickr._serialization import MessageDecodeError, decode_value
from tickr._time import datetime_from_ms, utc_day
from tickr.errors import (
    EntryNotFound,
    QueueNotEmpty,
    QueueNotFound,
    RedisUnavailable,
    ServerNotFound,
    TaskNotFound,
    TaskStateConflict,
)
from tickr.values import (
    TASK_STATES,
    AuditEntry,
    DailyStats,
    MinuteStats,
    QueueInfo,
    RateLimit,
    SchedulerEntry,
    SchedulerEvent,
    ServerInfo,
    TaskInfo,
    TaskSearch,
    TaskState,
)

__all__ = [
    "AUDIT_KEEP",
    "BULK_STATES",
    "MAX_PAGE",
    "MAX_PAGE_SIZE",
    "SEARCH_SCAN",
    "Inspector",
]

SEARCH_SCAN: Final = 10_000
"""How many tasks one `Inspector.find_tasks` call looks at, by default."""
_SEARCH_STEP: Final = 500  # tasks read per round trip while searching

AUDIT_KEEP: Final = 100_000
"""About how many entries the audit log keeps by default (older ones are trimmed)."""

_STREAM_ID: Final = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")

MAX_PAGE: Final = 2**31 - 1
"""The highest page number `Inspector.list_tasks` accepts."""

MAX_PAGE_SIZE: Final = 10_000
"""The most tasks per page `Inspector.list_tasks` accepts."""

BULK_STATES: Final[dict[str, tuple[TaskState, ...]]] = {
    "delete": tuple(state for state in TASK_STATES if state != "active"),
    "run": ("scheduled", "retry", "archived"),
    "archive": ("pending", "scheduled", "retry"),
}
"""The states whose tasks `delete_all`, `run_all` and `archive_all` take."""


class Inspector(ClosedOnExit):
    """Reads and steers the queues of one namespace.

    Args:
        url: Redis URL; default $TICKR_REDIS_URL, else ``redis://127.0.0.1:6379/0``.
        redis: An existing `redis.asyncio.Redis` to use instead (never closed by Tickr).
        namespace: Prefix of every key.

    Raises:
        TypeError, ValueError: For an invalid URL or namespace.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        redis: RedisClient | None = None,
        namespace: str = "tickr",
    ) -> None:
        check_url(url)
        check_name(namespace, "namespace")
        self.namespace = namespace
        self._broker = Broker.connect(url, redis, namespace)

    async def aclose(self) -> None:
        """Close the connection if Tickr opened it."""
        await self._broker.aclose()

    async def queues(self) -> list[str]:
        """Every queue that has ever had a task or a server in this namespace, sorted.

        Raises:
            RedisUnavailable: If Redis cannot be reached.
        """
        return await self._broker.queues()

    async def _check_queue(self, queue: str) -> None:
        check_name(queue, "queue")
        if not await self._broker.has_queue(queue):
            raise QueueNotFound(queue)

    async def queue_info(self, queue: str, *, memory: bool = True) -> QueueInfo:
        """Sizes, today's counters, pause state, latency and memory of a queue.

        Args:
            queue: The queue.
            memory: Also sample the memory used (two more round trips); without it
                `QueueInfo.memory` is 0.

        Raises:
            QueueNotFound: If the namespace has no such queue.
            TypeError, ValueError: For an invalid queue name.
            RedisUnavailable: If Redis cannot be reached.
        """
        await self._check_queue(queue)
        now = await self._broker.time_ms()
        read = (await self._broker.queue_overview([queue], utc_day(now))).get(queue)
        if read is None:
            raise RedisUnavailable(f"the Redis node of queue {queue!r} cannot be reached")
        info = _queue_info(queue, read, now)
        if not memory:
            return info
        return dataclasses.replace(info, memory=await self._broker.queue_memory(queue, read.sizes))

    async def queue_infos(self, queues: Iterable[str] | None = None) -> list[QueueInfo]:
        """The `QueueInfo` of many queues (default every queue), sorted by name, cheaply.

        As `queue_info` with ``memory=False``, in three round trips and a fixed number
        of commands per queue, whatever the backlog: what a metrics scrape or an
        overview page needs.  Queues the namespace does not have, and (on a Cluster)
        queues whose node cannot be reached, are left out.

        Raises:
            TypeError, ValueError: For an invalid queue name.
            RedisUnavailable: If Redis cannot be reached.
        """
        wanted = None if queues is None else {check_name(queue, "queue") for queue in queues}
        names = [
            queue for queue in await self._broker.queues() if wanted is None or queue in wanted
        ]
        now = await self._broker.time_ms()
        overview = await self._broker.queue_overview(names, utc_day(now)) if names else {}
        return [_queue_info(queue, overview[queue], now) for queue in names if queue in overview]

    async def history(self, queue: str, days: int = 7) -> list[DailyStats]:
        """Processed and failed counts of the last `days` UTC days, oldest first.

        Raises:
            QueueNotFound: If the namespace has no such queue.
            TypeError: If `days` is not an int.
            ValueError: If `days` is not between 1 and 90.
            RedisUnavailable: If Redis cannot be reached.
        """
        check_int(days, "days", 1, 90)
        await self._check_queue(queue)
        today = datetime_from_ms(await self._broker.time_ms()).date()
        dates = [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]
        _, daily, _ = await self._broker.queue_stats(queue, [d.isoformat() for d in dates])
        return [
            DailyStats(queue, day, processed, failed)
            for day, (processed, failed) in zip(dates, daily, strict=True)
        ]

    async def throughput(self, queue: str, minutes: int = 60) -> list[MinuteStats]:
        """Processed and failed counts of the last `minutes` minutes, oldest first.

        One entry per minute, zeros included, the last one the current (unfinished)
        minute of Redis' clock.  The counters are kept 24 hours.

        Raises:
            QueueNotFound: If the namespace has no such queue.
            TypeError: If `minutes` is not an int.
            ValueError: If `minutes` is not between 1 and 1440.
            RedisUnavailable: If Redis cannot be reached.
        """
        check_int(minutes, "minutes", 1, 1440)
        await self._check_queue(queue)
        this_minute = await self._broker.time_ms() // 60_000
        first = this_minute - minutes + 1
        counts = await self._broker.minute_counts(queue, first, this_minute)
        return [
            MinuteStats(queue, datetime_from_ms(minute * 60_000), *counts.get(minute, (0, 0)))
            for minute in range(first, this_minute + 1)
        ]

    async def servers(self) -> list[ServerInfo]:
        """Every running Server of the namespace, as of its last heartbeat.

        A server that stopped heartbeating drops out within three heartbeat intervals.

        Raises:
            RedisUnavailable: If Redis cannot be reached.
        """
        servers = []
        for record in await self._broker.registered("server", await self._broker.time_ms()):
            try:
                servers.append(_server_info(decode_value(record)))
            except (MessageDecodeError, KeyError, TypeError, ValueError):
                continue  # a record this version cannot read
        return sorted(servers, key=lambda server: server.started_at)

    async def scheduler_entries(self) -> list[SchedulerEntry]:
        """Every periodic task run by a live Scheduler, sorted by id.

        Entries run by several schedulers are listed once; `prev_run_at` is the latest
        tick enqueued by any of them.

        Raises:
            RedisUnavailable: If Redis cannot be reached.
        """
        seen: dict[str, tuple[dict[str, Any], list[str]]] = {}
        for record in await self._broker.registered("scheduler", await self._broker.time_ms()):
            try:
                scheduler = decode_value(record)
                for entry in scheduler["entries"]:
                    known = seen.setdefault(str(entry["id"]), (entry, []))
                    known[1].append(str(scheduler["id"]))
            except (MessageDecodeError, KeyError, TypeError):
                continue  # a record this version cannot read
        ids = sorted(seen)
        latest = await self._broker.cron_latest_events(
            [(str(seen[entry_id][0]["queue"]), entry_id) for entry_id in ids]
        )
        entries = []
        for entry_id, event in zip(ids, latest, strict=True):
            last = _event_tick(event)
            entry, schedulers = seen[entry_id]
            next_ms = _next_tick_ms(entry)
            entries.append(
                SchedulerEntry(
                    id=entry_id,
                    spec=str(entry["spec"]),
                    type=str(entry["type"]),
                    payload=entry.get("payload"),
                    queue=str(entry["queue"]),
                    next_run_at=datetime_from_ms(int(next_ms)) if next_ms else None,
                    prev_run_at=None if last is None else datetime_from_ms(last),
                    timezone=str(entry.get("timezone", "UTC")),
                    schedulers=tuple(sorted(schedulers)),
                )
            )
        return entries

    async def scheduler_history(self, entry_id: str, *, limit: int = 20) -> list[SchedulerEvent]:
        """The latest ticks of a periodic task, newest first.

        Raises:
            EntryNotFound: If no live scheduler runs an entry with this id.
            TypeError: If `limit` is not an int.
            ValueError: If `limit` is not positive.
            RedisUnavailable: If Redis cannot be reached.
        """
        check_int(limit, "limit", 1)
        entries = {entry.id: entry for entry in await self.scheduler_entries()}
        if entry_id not in entries:
            raise EntryNotFound(entry_id)
        events = []
        for raw in await self._broker.cron_history(entries[entry_id].queue, entry_id, limit):
            try:
                tick, enqueued, task_id, outcome = decode_value(raw)
            except (MessageDecodeError, TypeError, ValueError):
                continue
            events.append(
                SchedulerEvent(
                    entry_id=entry_id,
                    tick_at=datetime_from_ms(int(tick)),
                    enqueued_at=datetime_from_ms(int(enqueued)),
                    task_id=task_id.decode() if isinstance(task_id, bytes) else str(task_id),
                    outcome=_tick_outcome(outcome),
                )
            )
        return events

    async def get_task(self, task_id: str, queue: str = DEFAULT_QUEUE) -> TaskInfo:
        """The current state of a task.

        Raises:
            TaskNotFound: If the queue has no task with this id.
            TypeError, ValueError: For an invalid task id or queue name.
            RedisUnavailable: If Redis cannot be reached.
        """
        return await read_task(self._broker, task_id, queue)

    async def list_tasks(
        self, queue: str, state: TaskState, *, page: int = 1, page_size: int = 30
    ) -> list[TaskInfo]:
        """One page of the tasks of a queue in one state.

        Pending tasks come in run order, active ones by lease expiry, scheduled and retry
        ones by due time, archived and completed ones newest first.  Each page costs the
        same however large the queue.

        Raises:
            QueueNotFound: If the namespace has no such queue.
            TypeError: For a page or page_size that is not an int, or a queue name
                that is not a str.
            ValueError: For an unknown state or queue name, a page outside 1 to
                `MAX_PAGE` or a page_size outside 1 to `MAX_PAGE_SIZE`.
            RedisUnavailable: If Redis cannot be reached.
        """
        check_state(state)
        check_int(page, "page", 1, MAX_PAGE)
        check_int(page_size, "page_size", 1, MAX_PAGE_SIZE)
        await self._check_queue(queue)
        rows = await self._broker.list_tasks(queue, state, (page - 1) * page_size, page_size)
        return [task_info(queue, task_id, fields) for task_id, fields in rows if fields]

    async def find_tasks(
        self,
        queue: str,
        state: TaskState,
        *,
        type: str | None = None,
        error: str | None = None,
        cursor: int = 0,
        limit: int = 30,
        scan: int = SEARCH_SCAN,
    ) -> TaskSearch:
        """The tasks of a state that match filters, looking at no more than `scan` tasks.

        One call is one bounded step: give its `next_cursor` to the next call to go on
        through the state (in `list_tasks` order) until `next_cursor` is None.  Tasks
        that move meanwhile may be skipped or seen twice.

        Args:
            queue: The queue.
            state: The state to look through.
            type: A task type, or a shell pattern of types (``email:*``).
            error: Text the last error must contain (case is ignored).
            cursor: Where to start: 0, or a `next_cursor`.
            limit: Stop after this many matches (1 to `MAX_PAGE_SIZE`).
            scan: Stop after looking at this many tasks (1 to 100,000).

        Raises:
            QueueNotFound: If the namespace has no such queue.
            TypeError, ValueError: For an invalid argument.
            RedisUnavailable: If Redis cannot be reached.
        """
        check_state(state)
        check_int(cursor, "cursor", 0, 2**53)
        check_int(limit, "limit", 1, MAX_PAGE_SIZE)
        check_int(scan, "scan", 1, 100_000)
        for name, value in (("type", type), ("error", error)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a str, not {value!r}")
        await self._check_queue(queue)
        needle = error.casefold() if error else None
        found: list[TaskInfo] = []
        scanned = 0
        position = cursor
        while scanned < scan and len(found) < limit:
            step = min(_SEARCH_STEP, scan - scanned)
            rows = await self._broker.list_tasks(queue, state, position, step)
            for task_id, fields in rows:
                scanned += 1
                position += 1
                if not fields:
                    continue
                info = task_info(queue, task_id, fields)
                if type is not None and not fnmatch.fnmatchcase(info.type, type):
                    continue
                if needle is not None and needle not in (info.last_error or "").casefold():
                    continue
                found.append(info)
                if len(found) == limit:
                    break
            if len(rows) < step:
                return TaskSearch(found, scanned, None if len(found) < limit else position)
        return TaskSearch(found, scanned, position)

    async def delete_task(self, task_id: str, queue: str = DEFAULT_QUEUE) -> None:
        """Delete a task that is not active (cancel an active one).

        Raises:
            TaskNotFound: If the queue has no task with this id.
            TypeError, ValueError: For an invalid task id or queue name.
            TaskStateConflict: If the task is active.
            RedisUnavailable: If Redis cannot be reached.
        """
        await self._manage("delete", task_id, queue)

    async def run_task(self, task_id: str, queue: str = DEFAULT_QUEUE) -> None:
        """Make a scheduled, retry or archived task pending now.

        Raises:
            TaskNotFound: If the queue has no task with this id.
            TypeError, ValueError: For an invalid task id or queue name.
            TaskStateConflict: If the task is pending, active or completed.
            RedisUnavailable: If Redis cannot be reached.
        """
        await self._manage("run", task_id, queue)

    async def archive_task(self, task_id: str, queue: str = DEFAULT_QUEUE) -> None:
        """Archive a pending, scheduled or retry task (it will not run).

        Raises:
            TaskNotFound: If the queue has no task with this id.
            TypeError, ValueError: For an invalid task id or queue name.
            TaskStateConflict: If the task is active, archived or completed.
            RedisUnavailable: If Redis cannot be reached.
        """
        await self._manage("archive", task_id, queue)

    async def _manage(self, op: str, task_id: str, queue: str) -> None:
        check_task(task_id, queue)
        code, state = await self._broker.manage(queue, op, task_id, await self._broker.time_ms())
        if code == -1:
            raise TaskNotFound(task_id, queue)
        if code == 0:
            raise TaskStateConflict(task_id, queue, state, op)

    async def delete_all(self, queue: str, state: TaskState) -> int:
        """Delete every task of a queue in `state` (not "active"); returns how many.

        Raises:
            QueueNotFound: If the namespace has no such queue.
            ValueError: For an unknown state or "active".
            RedisUnavailable: If Redis cannot be reached.
        """
        return await self._manage_all("delete", queue, state)

    async def run_all(self, queue: str, state: TaskState) -> int:
        """Make every scheduled, retry or archived task of a queue pending; returns how many.

        Raises:
            QueueNotFound: If the namespace has no such queue.
            ValueError: For a state other than "scheduled", "retry" or "archived".
            RedisUnavailable: If Redis cannot be reached.
        """
        return await self._manage_all("run", queue, state)

    async def archive_all(self, queue: str, state: TaskState) -> int:
        """Archive every pending, scheduled or retry task of a queue; returns how many.

        Raises:
            QueueNotFound: If the namespace has no such queue.
            ValueError: For a state other than "pending", "scheduled" or "retry".
            RedisUnavailable: If Redis cannot be reached.
        """
        return await self._manage_all("archive", queue, state)

    async def _manage_all(self, op: str, queue: str, state: str) -> int:
        check_state(state)
        allowed = BULK_STATES[op]
        if state not in allowed:
            raise ValueError(f"cannot {op} {state} tasks: only {', '.join(allowed)}")
        await self._check_queue(queue)
        return await self._broker.manage_all(queue, op, state, await self._broker.time_ms())

    async def delete_queue(self, queue: str, *, force: bool = False) -> None:
        """Delete a queue: its name, counters and (with `force`) all its tasks.

        Servers and schedulers still using the queue list it again within a heartbeat,
        and clients when they next enqueue to it (after a minute at most).

        Raises:
            QueueNotFound: If the namespace has no such queue.
            QueueNotEmpty: If it still has tasks and `force` is False.
            RedisUnavailable: If Redis cannot be reached.
        """
        await self._check_queue(queue)
        sizes = await self._broker.queue_sizes(queue)
        tasks = sum(count for state, count in sizes.items() if state != "paused")
        if tasks and not force:
            raise QueueNotEmpty(queue, tasks)
        await self._broker.purge_queue(queue, datetime_from_ms(await self._broker.time_ms()).date())

    async def cancel(self, task_id: str, queue: str = DEFAULT_QUEUE) -> bool:
        """Cancel a task, exactly as `Client.cancel` does; returns whether it did.

        Raises:
            TypeError, ValueError: For an invalid task id or queue name.
            RedisUnavailable: If Redis cannot be reached.
        """
        check_task(task_id, queue)
        return await self._broker.cancel(queue, task_id)

    async def pause(self, queue: str) -> None:
        """Stop every server from taking tasks of `queue` (running tasks go on).

        Raises:
            ValueError: For an invalid queue name.
            RedisUnavailable: If Redis cannot be reached.
        """
        check_name(queue, "queue")
        await self._broker.register_queues([queue])
        await self._broker.pause(queue)

    async def unpause(self, queue: str) -> None:
        """Let servers take tasks of `queue` again; idle servers are woken at once.

        Raises:
            ValueError: For an invalid queue name.
            RedisUnavailable: If Redis cannot be reached.
        """
        check_name(queue, "queue")
        await self._broker.unpause(queue)

    async def set_rate_limit(
        self,
        queue: str,
        limit: int,
        period: float | timedelta = 1.0,
        *,
        burst: int = 1,
        per_lane: bool = False,
    ) -> None:
        """Let at most `burst` + `limit` * t / `period` tasks of `queue` start in any t seconds.

        Across every server, exact to the millisecond (a GCRA in the dequeue script);
        tasks held back stay pending, nothing is retried.  Servers apply a change within
        a second, without a restart.

        Args:
            queue: The queue.
            limit: Starts per period (1 to 1,000,000,000).
            period: The period, seconds or a timedelta (1 ms to 1 year).
            burst: Starts allowed at once after a quiet time (1 to 1,000,000): 1 spaces
                starts evenly.
            per_lane: Apply the limit to each lane of the queue separately (a queue
                whose tasks carry no lane is one lane).

        Raises:
            TypeError, ValueError: For an invalid argument.
            RedisUnavailable: If Redis cannot be reached.
        """
        check_name(queue, "queue")
        check_int(limit, "limit", 1, 1_000_000_000)
        seconds = check_positive_seconds(period, "period")
        if not 0.001 <= seconds <= 366 * 86400:
            raise ValueError(f"period must be from 1 ms to a year, got {seconds} s")
        check_int(burst, "burst", 1, 1_000_000)
        check_bool(per_lane, "per_lane")
        await self._broker.register_queues([queue])
        await self._broker.set_limits(
            queue,
            {
                "rate": limit,
                "period": repr(seconds * 1000),
                "burst": burst,
                "rate_lane": int(per_lane),
            },
        )

    async def clear_rate_limit(self, queue: str) -> None:
        """Remove the rate limit of `queue` (servers apply it within a second).

        Raises:
            TypeError, ValueError: For an invalid queue name.
            RedisUnavailable: If Redis cannot be reached.
        """
        check_name(queue, "queue")
        await self._broker.clear_limits(queue, "rate")

    async def set_concurrency_limit(
        self, queue: str, limit: int, *, per_lane: bool = False
    ) -> None:
        """Let at most `limit` tasks of `queue` be active at once, across every server.

        Counted from the live leases, so that a dead server's slots free when its
        leases expire; a finished task wakes one waiting server.

        Args:
            queue: The queue.
            limit: Active tasks at most (1 to 1,000,000).
            per_lane: Apply the limit to each lane separately.

        Raises:
            TypeError, ValueError: For an invalid argument.
            RedisUnavailable: If Redis cannot be reached.
        """
        check_name(queue, "queue")
        check_int(limit, "limit", 1, 1_000_000)
        check_bool(per_lane, "per_lane")
        await self._broker.register_queues([queue])
        await self._broker.set_limits(queue, {"conc": limit, "conc_lane": int(per_lane)})

    async def clear_concurrency_limit(self, queue: str) -> None:
        """Remove the concurrency limit of `queue` (servers apply it within a second).

        Raises:
            TypeError, ValueError: For an invalid queue name.
            RedisUnavailable: If Redis cannot be reached.
        """
        check_name(queue, "queue")
        await self._broker.clear_limits(queue, "conc")

    async def set_server_concurrency(self, server_id: str, concurrency: int) -> None:
        """Resize a running server, as its `Server.set_concurrency` does, from anywhere.

        The server hears it on its queues' event channels at once (within the second).

        Raises:
            ServerNotFound: If no live server has this id.
            TypeError, ValueError: For a concurrency that is not an int from 1 to
                10,000.
            RedisUnavailable: If Redis cannot be reached.
        """
        check_int(concurrency, "concurrency", 1, MAX_CONCURRENCY)
        found = [server for server in await self.servers() if server.id == server_id]
        if not found:
            raise ServerNotFound(server_id)
        await self._broker.publish_events(sorted(found[0].queues), f"n{server_id} {concurrency}")

    async def check_ready(self) -> None:
        """Check that Redis answers and holds Tickr's scripts, loading those it lacks.

        Raises:
            RedisUnavailable: If Redis (on a Cluster: any primary) cannot be reached.
            TickrError: If Redis refuses to list or load scripts (an ACL, say).
        """
        await self._broker.scripts_ready()

    async def record_audit(
        self,
        action: str,
        *,
        actor: str,
        address: str = "",
        queue: str | None = None,
        task_id: str | None = None,
        status: int = 200,
        detail: str = "",
        keep: int = AUDIT_KEEP,
    ) -> str:
        """Append an entry to the namespace's audit log; returns its id.

        The log is a Redis stream trimmed to about `keep` entries (never fewer); the
        entry's time is Redis' clock.

        Raises:
            TypeError: If a text argument is not a str, or status or keep not an int.
            ValueError: If action or actor is empty, or keep is below 1.
            RedisUnavailable: If Redis cannot be reached.
        """
        texts = {"action": action, "actor": actor, "address": address, "detail": detail}
        for name, value in [*texts.items(), ("queue", queue), ("task_id", task_id)]:
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a str, not {type(value).__name__}")
        if not action or not actor:
            raise ValueError("an audit entry needs an action and an actor")
        check_int(status, "status", 100, 599)
        check_int(keep, "keep", 1, 2**31 - 1)
        fields = {**texts, "status": str(status)}
        if queue is not None:
            fields["queue"] = queue
        if task_id is not None:
            fields["task_id"] = task_id
        return await self._broker.add_audit(fields, keep)

    async def audit_log(self, *, limit: int = 100, before: str | None = None) -> list[AuditEntry]:
        """The newest entries of the audit log, newest first.

        Args:
            limit: How many entries at most (1 to 1,000).
            before: An entry id: only entries older than it (the next page).

        Raises:
            TypeError, ValueError: For a limit out of range or an id not of the form
                "<ms>-<n>".
            RedisUnavailable: If Redis cannot be reached.
        """
        check_int(limit, "limit", 1, 1000)
        if before is not None and (not isinstance(before, str) or not _STREAM_ID.fullmatch(before)):
            raise ValueError(f"before must be an audit entry id like '1700000000000-0': {before!r}")
        entries = []
        for entry_id, fields in await self._broker.audit_entries(limit, before):
            status = fields.get("status", "0")
            entries.append(
                AuditEntry(
                    id=entry_id,
                    time=datetime_from_ms(int(entry_id.partition("-")[0])),
                    actor=fields.get("actor", ""),
                    address=fields.get("address", ""),
                    action=fields.get("action", ""),
                    queue=fields.get("queue"),
                    task_id=fields.get("task_id"),
                    status=int(status) if status.isdigit() else 0,
                    detail=fields.get("detail", ""),
                )
            )
        return entries


def _server_info(record: dict[str, Any]) -> ServerInfo:
    return ServerInfo(
        id=str(record["id"]),
        host=str(record["host"]),
        pid=int(record["pid"]),
        queues={str(queue): int(weight) for queue, weight in record["queues"].items()},
        concurrency=int(record["concurrency"]),
        strict_priority=bool(record["strict_priority"]),
        started_at=datetime_from_ms(int(record["started_ms"])),
        active_tasks=[(str(queue), str(task_id)) for queue, task_id in record["active"]],
        workers_alive=None if record.get("workers_alive") is None else int(record["workers_alive"]),
        restarts={str(kind): int(n) for kind, n in (record.get("restarts") or {}).items()},
        last_heartbeat_at=(
            datetime_from_ms(int(record["heartbeat_ms"])) if record.get("heartbeat_ms") else None
        ),
    )


def _tick_outcome(outcome: Any) -> str:
    return enqueued(outcome).outcome.value


def _event_tick(event: bytes | None) -> int | None:
    """The tick (ms) of a history event, None for none or an unreadable one."""
    if event is None:
        return None
    try:
        return int(decode_value(event)[0])
    except (MessageDecodeError, TypeError, ValueError, IndexError):
        return None


def _next_tick_ms(entry: dict[str, Any]) -> int | None:
    """The entry's next tick, as its scheduler's own clock has it.

    The scheduler rewrites its record whenever a tick moves, so the record is the truth:
    recomputing it here from this machine's clock would be wrong for a scheduler whose
    clock differs (an injected one, or another machine's).
    """
    estimate = entry.get("next_ms")
    return int(estimate) if isinstance(estimate, int) and estimate > 0 else None


def _queue_info(queue: str, read: QueueOverview, now_ms: int) -> QueueInfo:
    sizes = read.sizes
    latency = 0.0
    if read.next_task is not None:
        enqueued = task_info(queue, "", read.next_task).enqueued_at
        if enqueued is not None:
            latency = max(0.0, now_ms / 1000 - enqueued.timestamp())
    limits = read.limits
    rate_limit = None
    if "rate" in limits and "period" in limits:
        rate_limit = RateLimit(
            limit=int(float(limits["rate"])),
            period=float(limits["period"]) / 1000,
            burst=int(float(limits.get("burst", "1"))),
            per_lane=limits.get("rate_lane") == "1",
        )
    return QueueInfo(
        queue=queue,
        pending=sizes["pending"],
        active=sizes["active"],
        scheduled=sizes["scheduled"],
        retry=sizes["retry"],
        archived=sizes["archived"],
        completed=sizes["completed"],
        processed=read.today.processed,
        failed=read.today.failed,
        paused=bool(sizes["paused"]),
        latency=latency,
        size=sum(sizes[state] for state in TASK_STATES),
        memory=0,
        rate_limit=rate_limit,
        concurrency_limit=int(float(limits["conc"])) if "conc" in limits else None,
        concurrency_per_lane=limits.get("conc_lane") == "1",
        lanes=sizes.get("lanes", 0),
    )
