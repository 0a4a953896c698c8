"""The routes that read and steer queues, tasks in bulk, processes and the audit log."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

import tickr
from tickr.values import TASK_STATES, QueueInfo, TaskState
from tickr.web._context import Context
from tickr.web._problems import Failure
from tickr.web._task_routes import task_json
from tickr.web.jsonform import to_json

__all__ = [
    "act",
    "audit",
    "history",
    "limit",
    "list_tasks",
    "pause",
    "queue",
    "queue_json",
    "queues",
    "schedulers",
    "servers",
]


def record_json(record: Any) -> dict[str, Any]:
    """A dataclass record of the Inspector (DailyStats, ServerInfo, ...) as JSON."""
    shown: dict[str, Any] = {}
    for item in dataclasses.fields(record):
        value = getattr(record, item.name)
        if isinstance(value, datetime | date):
            shown[item.name] = value.isoformat()
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            shown[item.name] = record_json(value)
        else:
            shown[item.name] = to_json(value)
    return shown


def queue_json(info: QueueInfo) -> dict[str, Any]:
    """A QueueInfo as JSON (without the memory, which the API does not sample)."""
    shown = record_json(info)
    shown.pop("memory")
    return shown


async def queues(ctx: Context, request: Request) -> Response:
    """Every queue the token may touch, with its sizes and counters."""
    token = ctx.guard.authorize(request, "tasks:read")
    infos = await ctx.inspector.queue_infos()
    return JSONResponse(
        {"queues": [queue_json(info) for info in infos if token.may_touch(info.queue)]}
    )


async def queue(ctx: Context, request: Request) -> Response:
    """One queue's sizes and counters."""
    name = request.path_params["queue"]
    ctx.guard.authorize(request, "tasks:read", name)
    try:
        info = await ctx.inspector.queue_info(name, memory=False)
    except tickr.QueueNotFound:
        raise Failure(404, f"no queue {name!r}") from None
    except (TypeError, ValueError) as exc:
        raise Failure(400, str(exc)) from None
    return JSONResponse(queue_json(info))


async def list_tasks(ctx: Context, request: Request) -> Response:
    """A page of a queue's tasks in one state, with the state's total."""
    name = request.path_params["queue"]
    token = ctx.guard.authorize(request, "tasks:read", name)
    params = request.query_params
    wanted = params.get("state", "pending")
    states = [known for known in TASK_STATES if known == wanted]
    if not states:
        raise Failure(400, f"state must be one of {', '.join(TASK_STATES)}")
    state: TaskState = states[0]
    try:
        page, page_size = int(params.get("page", "1")), int(params.get("page_size", "30"))
    except ValueError:
        raise Failure(400, "page and page_size must be whole numbers") from None
    try:
        info = await ctx.inspector.queue_info(name, memory=False)
        tasks = await ctx.inspector.list_tasks(name, state, page=page, page_size=page_size)
    except tickr.QueueNotFound:
        raise Failure(404, f"no queue {name!r}") from None
    except (TypeError, ValueError) as exc:
        raise Failure(400, str(exc)) from None
    return JSONResponse(
        {
            "tasks": [task_json(task, token) for task in tasks],
            "state": state,
            "page": page,
            "page_size": page_size,
            "total": getattr(info, state),
        }
    )


async def act(ctx: Context, request: Request) -> Response:
    """Cancel, run, archive or delete one task."""
    name, task_id = request.path_params["queue"], request.path_params["task_id"]
    action = request.url.path.rpartition("/")[2] if request.method == "POST" else "delete"
    ctx.guard.authorize(request, "tasks:manage", name)
    ctx.guard.writable()
    inspector = ctx.inspector
    try:
        if action == "cancel":
            if not await inspector.cancel(task_id, name):
                raise Failure(409, f"task {task_id!r} has finished already")
        elif action == "run":
            await inspector.run_task(task_id, name)
        elif action == "archive":
            await inspector.archive_task(task_id, name)
        else:
            await inspector.delete_task(task_id, name)
    except tickr.TaskNotFound:
        raise Failure(404, f"no task {task_id!r} in {name!r}") from None
    except tickr.TaskStateConflict as exc:
        raise Failure(409, str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise Failure(400, str(exc)) from None
    return JSONResponse({"id": task_id, "queue": name, "done": action})


async def history(ctx: Context, request: Request) -> Response:
    """A queue's processed and failed counts of the last days."""
    name = request.path_params["queue"]
    ctx.guard.authorize(request, "tasks:read", name)
    try:
        days = int(request.query_params.get("days", "7"))
        stats = await ctx.inspector.history(name, days)
    except tickr.QueueNotFound:
        raise Failure(404, f"no queue {name!r}") from None
    except (TypeError, ValueError) as exc:
        raise Failure(400, f"days: {exc}") from None
    return JSONResponse({"history": [record_json(day) for day in stats]})


async def servers(ctx: Context, request: Request) -> Response:
    """The live servers."""
    ctx.guard.authorize(request, "tasks:read")
    found = await ctx.inspector.servers()
    return JSONResponse({"servers": [record_json(server) for server in found]})


async def schedulers(ctx: Context, request: Request) -> Response:
    """The live schedulers' entries (payloads only with ``payload:read``)."""
    token = ctx.guard.authorize(request, "tasks:read")
    entries = []
    for entry in await ctx.inspector.scheduler_entries():
        if not token.may_touch(entry.queue):
            continue
        shown = record_json(entry)
        if not token.allows("payload:read", entry.queue):
            shown.pop("payload", None)
        entries.append(shown)
    return JSONResponse({"entries": entries})


async def pause(ctx: Context, request: Request) -> Response:
    """Pause or unpause a queue (the path's last part says which)."""
    name = request.path_params["queue"]
    paused = request.url.path.endswith("/pause")
    ctx.guard.authorize(request, "queues:manage", name)
    ctx.guard.writable()
    try:
        if paused:
            await ctx.inspector.pause(name)
        else:
            await ctx.inspector.unpause(name)
    except (TypeError, ValueError) as exc:
        raise Failure(400, str(exc)) from None
    return JSONResponse({"queue": name, "paused": paused})


def _field(body: dict[str, Any], name: str, kinds: tuple[type, ...], default: Any) -> Any:
    value = body.get(name, default)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise Failure(400, f"{name} must be {' or '.join(k.__name__ for k in kinds)}")
    return value


async def limit(ctx: Context, request: Request) -> Response:
    """Set (PUT) or remove (DELETE) a queue's rate or concurrency limit."""
    name = request.path_params["queue"]
    rate = request.url.path.endswith("/rate-limit")
    ctx.guard.authorize(request, "queues:manage", name)
    ctx.guard.writable()
    inspector = ctx.inspector
    try:
        if request.method == "DELETE":
            if rate:
                await inspector.clear_rate_limit(name)
            else:
                await inspector.clear_concurrency_limit(name)
        else:
            body = await ctx.body(request)
            unknown = sorted(set(body) - ({"limit", "period", "burst", "per_lane"} if rate
                                          else {"limit", "per_lane"}))  # fmt: skip
            if unknown:
                raise Failure(400, f"unknown field(s): {', '.join(unknown)}")
            if "limit" not in body:
                raise Failure(400, "limit is required")
            count = _field(body, "limit", (int,), None)
            per_lane = _field(body, "per_lane", (bool,), False)
            if rate:
                period = _field(body, "period", (int, float), 1.0)
                burst = _field(body, "burst", (int,), 1)
                await inspector.set_rate_limit(
                    name, count, float(period), burst=burst, per_lane=per_lane
                )
            else:
                await inspector.set_concurrency_limit(name, count, per_lane=per_lane)
        info = await inspector.queue_info(name, memory=False)
    except tickr.QueueNotFound:
        raise Failure(404, f"no queue {name!r}") from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise Failure(400, str(exc)) from None
    return JSONResponse(queue_json(info))


async def audit(ctx: Context, request: Request) -> Response:
    """The newest audit entries, a page at a time (``before`` is the next page's cursor)."""
    ctx.guard.authorize(request, "admin")
    params = request.query_params
    try:
        limit = int(params.get("limit", "100"))
        entries = await ctx.inspector.audit_log(limit=limit, before=params.get("before"))
    except (TypeError, ValueError) as exc:
        raise Failure(400, str(exc)) from None
    shown = [record_json(entry) for entry in entries]
    return JSONResponse(
        {"entries": shown, "next": entries[-1].id if len(entries) == limit else None}
    )
