"""The `task` commands: list, show, cancel, delete, run and archive tasks."""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Callable
from datetime import UTC, datetime

from tickr._cli.errors import CLIError, UsageError
from tickr._cli.output import (
    Column,
    ago,
    block,
    duration,
    emit_json,
    out,
    plural,
    pretty,
    short,
    table,
    terminal_width,
    timestamp,
)
from tickr.errors import TaskStateConflict
from tickr.inspector import BULK_STATES, Inspector
from tickr.values import TaskInfo, TaskState

__all__ = ["task_cancel", "task_get", "task_ls", "task_manage"]


def _now() -> datetime:
    return datetime.now(UTC)


def _retried(task: TaskInfo) -> str:
    return f"{task.retried}/{task.max_retry}"


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
            what = f"{plural(total, state + ' task')}, {plural(pages, 'page')}"
            out(f"page {args.page} is past the end: {what}")
        else:
            out(f"no {state} tasks in queue {args.queue!r}")
        return 0
    columns, row = _task_columns(state, _now())
    out(table(columns, [row(task) for task in tasks], terminal_width()))
    first = (args.page - 1) * args.size + 1
    footer = f"{first}-{first + len(tasks) - 1} of {plural(total, state + ' task')}"
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
            ("headers", ", ".join(f"{k}: {v}" for k, v in task.headers.items()) or "-"),
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


_DONE: dict[str, str] = {
    "delete": "deleted {what} from queue {queue!r}",
    "run": "moved {what} of queue {queue!r} to pending",
    "archive": "archived {what} of queue {queue!r}",
}
"""Per operation: the message of success (`BULK_STATES` has the states it applies to)."""


async def task_manage(args: Namespace, inspector: Inspector) -> int:
    """Delete, run or archive one task, or with --all every task of a state."""
    operation: str = args.operation
    done, allowed = _DONE[operation], BULK_STATES[operation]
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
        out(done.format(what=plural(count, f"{args.state} task"), queue=args.queue))
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
