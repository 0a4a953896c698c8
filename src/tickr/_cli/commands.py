"""The commands built on the `Inspector`: stats, queue, task, server and cron."""

from __future__ import annotations

import asyncio
import sys
from argparse import Namespace
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

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
    pretty,
    short,
    table,
    terminal_width,
    timestamp,
)
from tickr.errors import QueueNotEmpty, QueueNotFound, TaskStateConflict
from tickr.inspector import Inspector
from tickr.options import check_name
from tickr.values import QueueInfo, TaskInfo, TaskState

__all__ = ["COMMANDS", "DEFAULT_NAMESPACE"]

DEFAULT_NAMESPACE = "tickr"

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
    """Every queue's info, read concurrently; queues deleted meanwhile are left out."""

    async def info(queue: str) -> QueueInfo | None:
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
                ("size", f"{info.size} tasks"),
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
            ]
        )
    )
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
    info = await inspector.queue_info(args.queue)
    if info.paused:
        out(f"queue {args.queue!r} was already paused")
        return 0
    await inspector.pause(args.queue)
    out(f"paused queue {args.queue!r}")
    return 0


async def queue_unpause(args: Namespace, inspector: Inspector) -> int:
    """Unpause a queue: servers take its tasks again."""
    info = await inspector.queue_info(args.queue)
    if not info.paused:
        out(f"queue {args.queue!r} was not paused")
        return 0
    await inspector.unpause(args.queue)
    out(f"unpaused queue {args.queue!r}")
    return 0


async def queue_rm(args: Namespace, inspector: Inspector) -> int:
    """Delete a queue (and with --force, every task in it)."""
    info = await inspector.queue_info(args.queue)
    try:
        await inspector.delete_queue(args.queue, force=args.force)
    except QueueNotEmpty as exc:
        raise CLIError(
            f"queue {args.queue!r} still has {exc.tasks} task(s): add --force to delete "
            "them with it"
        ) from None
    detail = f" and its {info.size} task(s)" if info.size else ""
    out(f"deleted queue {args.queue!r}{detail}")
    return 0


# ------------------------------------------------------------------ task


def _retried(task: TaskInfo) -> str:
    return f"{task.retried}/{task.max_retry}"


_DELETABLE = ("pending", "scheduled", "retry", "archived", "completed")

Row = Callable[[TaskInfo], tuple[object, ...]]


def _task_columns(state: TaskState, now: datetime) -> tuple[list[Column], Row]:
    """Columns of `task ls` for a state, and the function that makes a row."""
    ident = [Column("ID"), Column("TYPE", shrink=8)]
    if state == "pending":
        extra = [Column("PRI", ">"), Column("ENQUEUED", ">"), Column("PAYLOAD", shrink=10)]
        return [*ident, *extra], lambda t: (
            t.id, t.type, t.priority, ago(t.enqueued_at, now), short(t.payload)
        )  # fmt: skip
    if state == "active":
        extra = [Column("RETRIED", ">"), Column("ENQUEUED", ">"), Column("PAYLOAD", shrink=10)]
        return [*ident, *extra], lambda t: (
            t.id, t.type, _retried(t), ago(t.enqueued_at, now), short(t.payload)
        )  # fmt: skip
    if state == "scheduled":
        extra = [Column("DUE", ">"), Column("PAYLOAD", shrink=10)]
        return [*ident, *extra], lambda t: (
            t.id, t.type, ago(t.next_process_at, now), short(t.payload)
        )  # fmt: skip
    if state == "retry":
        extra = [Column("DUE", ">"), Column("RETRIED", ">"), Column("LAST ERROR", shrink=10)]
        return [*ident, *extra], lambda t: (
            t.id, t.type, ago(t.next_process_at, now), _retried(t), t.last_error or "-"
        )  # fmt: skip
    if state == "archived":
        extra = [Column("RETRIED", ">"), Column("LAST ERROR", shrink=10)]
        return [*ident, *extra], lambda t: (t.id, t.type, _retried(t), t.last_error or "-")
    extra = [Column("COMPLETED", ">"), Column("RESULT", shrink=10)]
    return [*ident, *extra], lambda t: (t.id, t.type, ago(t.completed_at, now), short(t.result))


async def task_ls(args: Namespace, inspector: Inspector) -> int:
    """List one page of the tasks of a queue in one state."""
    state: TaskState = args.state
    tasks = await inspector.list_tasks(args.queue, state, page=args.page, page_size=args.size)
    if args.json:
        emit_json(tasks)
        return 0
    info = await inspector.queue_info(args.queue)
    total: int = getattr(info, state)
    pages = max(1, -(-total // args.size))
    if not tasks:
        if total:
            out(f"page {args.page} is past the end: {total} {state} task(s), {pages} page(s)")
        else:
            out(f"no {state} tasks in queue {args.queue!r}")
        return 0
    columns, row = _task_columns(state, _now())
    out(table(columns, [row(task) for task in tasks], terminal_width()))
    first = (args.page - 1) * args.size + 1
    footer = f"{first}-{first + len(tasks) - 1} of {total} {state} task(s)"
    if args.page < pages:
        footer += f"; next page: --page {args.page + 1}"
    out(footer)
    return 0


def _task_block(task: TaskInfo, now: datetime) -> str:
    def moment(value: datetime | None) -> str:
        return "-" if value is None else f"{timestamp(value)} UTC ({ago(value, now)})"

    value_width = terminal_width() - 14
    next_run = "now" if task.state == "pending" else moment(task.next_process_at)
    return block(
        [
            ("id", task.id),
            ("type", task.type),
            ("queue", task.queue),
            ("state", task.state),
            ("priority", task.priority),
            ("retried", f"{task.retried} of {task.max_retry}"),
            ("enqueued", moment(task.enqueued_at)),
            ("next run", next_run),
            ("completed", moment(task.completed_at)),
            ("timeout", "none" if task.timeout is None else duration(task.timeout)),
            ("deadline", moment(task.deadline)),
            ("retention", duration(task.retention)),
            ("last error", task.last_error or "-"),
            ("payload", pretty(task.payload, value_width)),
            ("result", pretty(task.result, value_width)),
        ]
    )


async def task_get(args: Namespace, inspector: Inspector) -> int:
    """Show one task."""
    task = await inspector.get_task(args.task_id, queue=args.queue)
    if args.json:
        emit_json(task)
    else:
        out(_task_block(task, _now()))
    return 0


async def task_cancel(args: Namespace, inspector: Inspector) -> int:
    """Cancel a task: delete it while it waits, stop its handler while it runs."""
    before = await inspector.get_task(args.task_id, queue=args.queue)
    where = f"task {args.task_id!r} in {args.queue!r}"
    if not await inspector.cancel(args.task_id, queue=args.queue):
        state = before.state if before.state in ("archived", "completed") else "finished"
        raise CLIError(f"cannot cancel {where}: it is {state}")
    if before.state == "active":
        out(f"requested the cancellation of active {where}")
    else:
        out(f"cancelled {before.state} {where} (deleted)")
    return 0


_MANAGE: dict[str, tuple[str, tuple[str, ...]]] = {
    "delete": ("deleted {what} from queue {queue!r}", _DELETABLE),
    "run": ("moved {what} of queue {queue!r} to pending", ("scheduled", "retry", "archived")),
    "archive": ("archived {what} of queue {queue!r}", ("pending", "scheduled", "retry")),
}
"""Per operation: the message of success, and the states it applies to."""


async def task_manage(args: Namespace, inspector: Inspector) -> int:
    """Delete, run or archive one task, or with --all every task of a state."""
    operation: str = args.operation
    done, allowed = _MANAGE[operation]
    if args.all:
        if args.task_id is not None:
            raise UsageError("give either a task ID or --all, not both")
        if args.state is None:
            raise UsageError(f"--all needs --state (one of {', '.join(allowed)})")
        if args.state not in allowed:
            raise UsageError(
                f"cannot {operation} {args.state} tasks: only {', '.join(allowed)} ones"
            )
        method = getattr(inspector, f"{operation}_all")
        count: int = await method(args.queue, args.state)
        out(done.format(what=f"{count} {args.state} task(s)", queue=args.queue))
        return 0
    if args.task_id is None:
        raise UsageError("give a task ID, or --all with --state")
    if args.state is not None:
        raise UsageError("--state goes with --all")
    try:
        await getattr(inspector, f"{operation}_task")(args.task_id, queue=args.queue)
    except TaskStateConflict as exc:
        hint = " (cancel it with `tickr task cancel`)" if exc.state == "active" else ""
        raise CLIError(f"{exc}{hint}") from None
    out(done.format(what=f"task {args.task_id!r}", queue=args.queue))
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
        (e.id, e.spec, e.type, e.queue, ago(e.next_run_at, now), ago(e.prev_run_at, now))
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
    except KeyError:
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
