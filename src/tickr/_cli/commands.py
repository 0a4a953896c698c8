"""The commands built on the `Inspector`: stats, queue, server and cron (tasks: tasks.py)."""

from __future__ import annotations

import asyncio
import sys
from argparse import Namespace
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from tickr._checks import check_name
from tickr._cli.errors import CLIError, UsageError
from tickr._cli.output import (
    Column,
    ago,
    block,
    duration,
    emit_json,
    jsonable,
    nbytes,
    out,
    plural,
    table,
    terminal_width,
    timestamp,
)
from tickr._cli.tasks import task_cancel, task_get, task_ls, task_manage
from tickr.errors import EntryNotFound, QueueNotEmpty, QueueNotFound
from tickr.inspector import Inspector
from tickr.values import QueueInfo

__all__ = ["COMMANDS", "DEFAULT_NAMESPACE"]

DEFAULT_NAMESPACE = "tickr"

_READS_AT_ONCE = 16
"""Queues whose info is read concurrently by `stats` and `queue ls`."""

InspectorCommand = Callable[[Namespace, Inspector], Awaitable[int]]


def _now() -> datetime:
    return datetime.now(UTC)


def with_inspector(command: InspectorCommand) -> Callable[[Namespace], int]:
    """Run `command(args, inspector)` in a fresh event loop with an open Inspector."""

    def run(args: Namespace) -> int:
        namespace = args.namespace or DEFAULT_NAMESPACE
        try:
            check_name(namespace, "namespace")
        except ValueError as exc:
            raise UsageError(f"invalid --namespace: {exc}") from None

        async def main() -> int:
            try:
                inspector = Inspector(args.url, namespace=namespace)
            except ValueError as exc:
                raise UsageError(f"invalid Redis URL: {exc}") from None
            async with inspector:
                return await command(args, inspector)

        return asyncio.run(main())

    run.__doc__ = command.__doc__
    return run


# ------------------------------------------------------------------ stats


STATS_COLUMNS = (
    Column("QUEUE", shrink=8),
    Column("PENDING", ">"),
    Column("ACTIVE", ">"),
    Column("SCHED", ">"),
    Column("RETRY", ">"),
    Column("ARCHIVED", ">"),
    Column("DONE", ">"),
    Column("PROC", ">"),
    Column("FAILED", ">"),
    Column("PAUSED"),
    Column("LATENCY", ">"),
)


async def _queue_infos(inspector: Inspector) -> list[QueueInfo]:
    """Every queue's info, a few read at once; queues deleted meanwhile are left out."""
    limit = asyncio.Semaphore(_READS_AT_ONCE)

    async def info(queue: str) -> QueueInfo | None:
        async with limit:
            try:
                return await inspector.queue_info(queue)
            except QueueNotFound:
                return None

    infos = await asyncio.gather(*(info(queue) for queue in await inspector.queues()))
    return [item for item in infos if item is not None]


def _stats_table(infos: list[QueueInfo]) -> str:
    rows = [
        (
            info.queue,
            info.pending,
            info.active,
            info.scheduled,
            info.retry,
            info.archived,
            info.completed,
            info.processed,
            info.failed,
            "yes" if info.paused else "no",
            duration(info.latency),
        )
        for info in infos
    ]
    return table(STATS_COLUMNS, rows, terminal_width())


async def _print_stats(args: Namespace, inspector: Inspector, *, compact: bool) -> None:
    infos = await _queue_infos(inspector)
    if args.json:
        emit_json(infos, compact=compact)
    elif infos:
        out(_stats_table(infos))
    else:
        out(f"no queues in namespace {inspector.namespace!r}")


async def stats(args: Namespace, inspector: Inspector) -> int:
    """Print one table of every queue; with --watch, refresh it until Ctrl-C."""
    if args.watch is None:
        await _print_stats(args, inspector, compact=False)
        return 0
    clear = sys.stdout.isatty() and not args.json
    while True:
        if clear:
            sys.stdout.write("\x1b[H\x1b[2J")
        if not args.json:
            out(f"every {duration(args.watch)}, {timestamp(_now())} UTC (Ctrl-C to stop)")
        await _print_stats(args, inspector, compact=True)
        if not args.json and not clear:
            out()
        sys.stdout.flush()
        await asyncio.sleep(args.watch)


# ------------------------------------------------------------------ queue


async def queue_ls(args: Namespace, inspector: Inspector) -> int:
    """List the queues with their size, memory and pause state."""
    infos = await _queue_infos(inspector)
    if args.json:
        emit_json(
            [
                {"queue": i.queue, "paused": i.paused, "size": i.size, "memory": i.memory}
                for i in infos
            ]
        )
    elif not infos:
        out(f"no queues in namespace {inspector.namespace!r}")
    else:
        columns = (Column("QUEUE", shrink=12), Column("PAUSED"), Column("SIZE", ">"))
        rows = [(i.queue, "yes" if i.paused else "no", i.size, nbytes(i.memory)) for i in infos]
        out(table((*columns, Column("MEMORY", ">")), rows, terminal_width()))
    return 0


async def queue_inspect(args: Namespace, inspector: Inspector) -> int:
    """Show everything about one queue."""
    info = await inspector.queue_info(args.queue)
    if args.json:
        emit_json(info)
        return 0
    out(
        block(
            [
                ("queue", info.queue),
                ("paused", "yes" if info.paused else "no"),
                ("size", plural(info.size, "task")),
                ("memory", f"{nbytes(info.memory)} (approximate)"),
                ("latency", duration(info.latency)),
                ("pending", info.pending),
                ("active", info.active),
                ("scheduled", info.scheduled),
                ("retry", info.retry),
                ("archived", info.archived),
                ("completed", info.completed),
                ("processed today", info.processed),
                ("failed today", info.failed),
                ("rate limit", _rate_text(info)),
                ("concurrency limit", _concurrency_text(info)),
            ]
        )
    )
    return 0


def _rate_text(info: QueueInfo) -> str:
    limit = info.rate_limit
    if limit is None:
        return "none"
    lane = ", per lane" if limit.per_lane else ""
    return f"{limit.limit} per {duration(limit.period)}, burst {limit.burst}{lane}"


def _concurrency_text(info: QueueInfo) -> str:
    if info.concurrency_limit is None:
        return "none"
    lane = ", per lane" if info.concurrency_per_lane else ""
    return f"{info.concurrency_limit} at once{lane}"


async def queue_limit(args: Namespace, inspector: Inspector) -> int:
    """Show, set or remove a queue's rate and concurrency limits."""
    changed = False
    if args.clear_rate:
        await inspector.clear_rate_limit(args.queue)
        changed = True
    if args.clear_concurrency:
        await inspector.clear_concurrency_limit(args.queue)
        changed = True
    if args.rate is not None:
        await inspector.set_rate_limit(
            args.queue, args.rate, args.period, burst=args.burst, per_lane=args.per_lane
        )
        changed = True
    if args.concurrency is not None:
        await inspector.set_concurrency_limit(args.queue, args.concurrency, per_lane=args.per_lane)
        changed = True
    info = await inspector.queue_info(args.queue, memory=False)
    prefix = "now: " if changed else ""
    out(f"{prefix}rate limit {_rate_text(info)}; concurrency limit {_concurrency_text(info)}")
    return 0


async def queue_history(args: Namespace, inspector: Inspector) -> int:
    """Print the processed and failed counts of the last days."""
    days = await inspector.history(args.queue, days=args.days)
    if args.json:
        emit_json(days)
        return 0
    rows = [
        (
            day.day.isoformat(),
            day.processed,
            day.failed,
            f"{100 * day.failed / day.processed:.1f}%" if day.processed else "-",
        )
        for day in days
    ]
    columns = (Column("DATE (UTC)"), Column("PROCESSED", ">"), Column("FAILED", ">"))
    out(table((*columns, Column("FAILURE RATE", ">")), rows, terminal_width()))
    return 0


async def queue_pause(args: Namespace, inspector: Inspector) -> int:
    """Pause a queue: servers stop taking its tasks."""
    return await _set_paused(args.queue, inspector, paused=True)


async def queue_unpause(args: Namespace, inspector: Inspector) -> int:
    """Unpause a queue: servers take its tasks again."""
    return await _set_paused(args.queue, inspector, paused=False)


async def _set_paused(queue: str, inspector: Inspector, *, paused: bool) -> int:
    verb = "paused" if paused else "unpaused"
    info = await inspector.queue_info(queue)
    if info.paused == paused:
        out(f"queue {queue!r} was {'already' if paused else 'not'} paused")
        return 0
    await (inspector.pause(queue) if paused else inspector.unpause(queue))
    out(f"{verb} queue {queue!r}")
    return 0


async def queue_rm(args: Namespace, inspector: Inspector) -> int:
    """Delete a queue (and with --force, every task in it)."""
    info = await inspector.queue_info(args.queue)
    try:
        await inspector.delete_queue(args.queue, force=args.force)
    except QueueNotEmpty as exc:
        raise CLIError(
            f"queue {args.queue!r} still has {plural(exc.tasks, 'task')}: add --force to "
            "delete them with it"
        ) from None
    detail = f" and its {plural(info.size, 'task')}" if info.size else ""
    out(f"deleted queue {args.queue!r}{detail}")
    serving = [server.id for server in await inspector.servers() if args.queue in server.queues]
    if len(serving) == 1:
        out(f"note: server {serving[0]} still serves it and will list it again")
    elif serving:
        out(f"note: servers {', '.join(serving)} still serve it and will list it again")
    return 0


# ------------------------------------------------------------------ server and cron


async def server_ls(args: Namespace, inspector: Inspector) -> int:
    """List the running servers."""
    servers = await inspector.servers()
    if args.json:
        emit_json(
            [
                {
                    **jsonable(server),
                    "active_tasks": [
                        {"queue": queue, "task_id": task_id}
                        for queue, task_id in server.active_tasks
                    ],
                }
                for server in servers
            ]
        )
        return 0
    if not servers:
        out(f"no servers running in namespace {inspector.namespace!r}")
        return 0
    now = _now()
    rows = [
        (
            server.id,
            ", ".join(f"{queue}={weight}" for queue, weight in server.queues.items())
            + (" (strict)" if server.strict_priority else ""),
            f"{len(server.active_tasks)}/{server.concurrency}",
            duration((now - server.started_at).total_seconds()),
        )
        for server in servers
    ]
    columns = (Column("ID", shrink=16), Column("QUEUES", shrink=12), Column("ACTIVE", ">"))
    out(table((*columns, Column("UPTIME", ">")), rows, terminal_width()))
    return 0


def _next_run(moment: datetime | None, now: datetime) -> str:
    """The next tick, as of the scheduler's last heartbeat: it may have just passed."""
    return "due" if moment is not None and moment <= now else ago(moment, now)


async def cron_ls(args: Namespace, inspector: Inspector) -> int:
    """List the periodic tasks of the running schedulers."""
    entries = await inspector.scheduler_entries()
    if args.json:
        emit_json(entries)
        return 0
    if not entries:
        out(f"no periodic tasks: no scheduler is running in namespace {inspector.namespace!r}")
        return 0
    now = _now()
    rows = [
        (e.id, e.spec, e.type, e.queue, _next_run(e.next_run_at, now), ago(e.prev_run_at, now))
        for e in entries
    ]
    columns = [Column("ID", shrink=10), Column("SPEC", shrink=10), Column("TYPE", shrink=8)]
    columns += [Column("QUEUE", shrink=8), Column("NEXT", ">"), Column("LAST", ">")]
    out(table(columns, rows, terminal_width()))
    return 0


async def cron_history(args: Namespace, inspector: Inspector) -> int:
    """Show the latest ticks of a periodic task, newest first."""
    try:
        events = await inspector.scheduler_history(args.entry_id, limit=args.limit)
    except EntryNotFound:
        raise CLIError(f"no running scheduler has a periodic task {args.entry_id!r}") from None
    if args.json:
        emit_json(events)
        return 0
    if not events:
        out(f"no ticks recorded yet for {args.entry_id!r}")
        return 0
    rows = [
        (
            timestamp(e.tick_at),
            duration((e.enqueued_at - e.tick_at).total_seconds()),
            e.task_id,
            e.outcome,
        )
        for e in events
    ]
    columns = (Column("TICK (UTC)"), Column("DELAY", ">"), Column("TASK ID", shrink=12))
    out(table((*columns, Column("OUTCOME")), rows, terminal_width()))
    return 0


COMMANDS: dict[str, Callable[[Namespace], int]] = {
    name: with_inspector(command)
    for name, command in {
        "stats": stats,
        "queue ls": queue_ls,
        "queue inspect": queue_inspect,
        "queue history": queue_history,
        "queue pause": queue_pause,
        "queue unpause": queue_unpause,
        "queue rm": queue_rm,
        "queue limit": queue_limit,
        "task ls": task_ls,
        "task get": task_get,
        "task cancel": task_cancel,
        "task manage": task_manage,
        "server ls": server_ls,
        "cron ls": cron_ls,
        "cron history": cron_history,
    }.items()
}
"""Each Inspector command by name, ready to run with the parsed arguments."""
