"""The dashboard's pages (GET): overview, queue, task, servers, cron, audit, search, login."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

import tickr
from tickr.schedule import parse_schedule, zone
from tickr.values import TASK_STATES, QueueInfo, TaskInfo, TaskState
from tickr.web._dashboard.access import Dashboard, Shown, Viewer
from tickr.web._dashboard.chart import throughput_chart
from tickr.web._dashboard.session import LOGIN_COOKIE

__all__ = [
    "audit",
    "cron",
    "login_form",
    "overview",
    "queue",
    "search",
    "servers",
    "task",
]

PAGE_SIZE: Final = 25
CHART_QUEUES: Final = 20
"""The overview's chart sums the minutes of at most this many queues (the busiest)."""
NEXT_RUNS: Final = 5


def _now() -> datetime:
    return datetime.now(UTC)


def _state(request: Request) -> TaskState:
    wanted = request.query_params.get("state", "pending")
    return next((state for state in TASK_STATES if state == wanted), "pending")


def _whole(text: str, default: int, lowest: int = 1) -> int:
    return max(int(text), lowest) if text.isdigit() else default


async def overview(dash: Dashboard, request: Request) -> Response:
    """Every queue the viewer may read, and the throughput of the last hour."""
    viewer = dash.viewer(request)
    inspector = dash.ctx.inspector
    infos = [info for info in await inspector.queue_infos() if viewer.token.may_touch(info.queue)]
    busiest = sorted(infos, key=lambda info: info.processed, reverse=True)[:CHART_QUEUES]
    minutes = await asyncio.gather(*(inspector.throughput(info.queue) for info in busiest))
    totals = {state: sum(getattr(info, state) for info in infos) for state in TASK_STATES}
    return dash.render(
        request,
        viewer,
        "overview.html",
        queues=infos,
        totals=totals,
        processed=sum(info.processed for info in infos),
        failed=sum(info.failed for info in infos),
        chart=throughput_chart(minutes),
        live=True,
    )


async def _queue_info(dash: Dashboard, request: Request, viewer: Viewer, name: str) -> QueueInfo:
    try:
        return await dash.ctx.inspector.queue_info(name, memory=False)
    except tickr.QueueNotFound:
        raise dash.error(request, viewer, 404, f"There is no queue {name!r}.") from None
    except ValueError as exc:
        raise dash.error(request, viewer, 400, str(exc)) from None


async def queue(dash: Dashboard, request: Request) -> Response:
    """A queue: its counts, a tab per state, a page of tasks (filtered, or paged)."""
    name = request.path_params["queue"]
    viewer = dash.viewer(request, "tasks:read", name)
    info = await _queue_info(dash, request, viewer, name)
    state = _state(request)
    params = request.query_params
    task_type, error = params.get("type", "").strip(), params.get("error", "").strip()
    inspector = dash.ctx.inspector
    filtered = bool(task_type or error)
    page_number = _whole(params.get("page", ""), 1)
    cursor = _whole(params.get("cursor", ""), 0, 0)
    next_cursor: int | None = None
    scanned = 0
    if filtered:
        found = await inspector.find_tasks(
            name, state, type=task_type or None, error=error or None, cursor=cursor,
            limit=PAGE_SIZE,
        )  # fmt: skip
        tasks, next_cursor, scanned = found.tasks, found.next_cursor, found.scanned
    else:
        tasks = await inspector.list_tasks(name, state, page=page_number, page_size=PAGE_SIZE)
    total = getattr(info, state)
    minutes = await inspector.throughput(name)
    return dash.render(
        request,
        viewer,
        "queue.html",
        info=info,
        state=state,
        states=TASK_STATES,
        tasks=tasks,
        total=total,
        page=page_number,
        pages=max(1, -(-total // PAGE_SIZE)),
        filtered=filtered,
        task_type=task_type,
        error=error,
        cursor=cursor,
        next_cursor=next_cursor,
        scanned=scanned,
        chart=throughput_chart([minutes]),
        bulk=_bulk_actions(state),
        live=True,
    )


def _bulk_actions(state: TaskState) -> list[str]:
    from tickr.inspector import BULK_STATES

    return [action for action in ("run", "archive", "delete") if state in BULK_STATES[action]]


def _timeline(info: TaskInfo) -> list[tuple[datetime | None, str]]:
    events: list[tuple[datetime | None, str]] = [(info.enqueued_at, "enqueued")]
    if info.retried:
        plural = "s" if info.retried != 1 else ""
        events.append((None, f"{info.retried} attempt{plural} failed and retried"))
    if info.last_failed_at is not None:
        events.append((info.last_failed_at, f"attempt failed: {info.last_error or ''}"))
    if info.state in ("scheduled", "retry") and info.next_process_at is not None:
        events.append((info.next_process_at, "next attempt due"))
    if info.state == "active":
        events.append((None, "running now"))
    if info.state == "archived":
        events.append((info.last_failed_at, "archived: no attempt left"))
    if info.completed_at is not None:
        events.append((info.completed_at, "completed"))
    return events


async def task(dash: Dashboard, request: Request) -> Response:
    """One task: its fields, payload and result (with payload:read), error, headers."""
    name, task_id = request.path_params["queue"], request.path_params["task_id"]
    viewer = dash.viewer(request, "tasks:read", name)
    try:
        info = await dash.ctx.inspector.get_task(task_id, name)
    except tickr.TaskNotFound:
        raise dash.error(
            request, viewer, 404, f"There is no task {task_id!r} in {name!r}."
        ) from None
    except ValueError as exc:
        raise dash.error(request, viewer, 400, str(exc)) from None
    actions = {
        "pending": ["archive", "delete", "cancel"],
        "active": ["cancel"],
        "scheduled": ["run", "archive", "delete"],
        "retry": ["run", "archive", "delete"],
        "archived": ["run", "delete"],
        "completed": ["delete"],
    }[info.state]
    return dash.render(
        request,
        viewer,
        "task.html",
        task=info,
        actions=actions,
        timeline=_timeline(info),
        show_payload=viewer.can("payload:read", name),
        now=_now(),
    )


async def servers(dash: Dashboard, request: Request) -> Response:
    """The live servers."""
    viewer = dash.viewer(request)
    found = await dash.ctx.inspector.servers()
    return dash.render(request, viewer, "servers.html", servers=found, now=_now(), live=True)


def _next_runs(spec: str, timezone: str) -> list[datetime]:
    try:
        schedule = parse_schedule(spec, zone(timezone))
    except (ValueError, KeyError):
        return []
    runs, moment = [], time.time()
    for _ in range(NEXT_RUNS):
        moment = schedule.next_after(moment)
        runs.append(datetime.fromtimestamp(moment, UTC))
    return runs


async def cron(dash: Dashboard, request: Request) -> Response:
    """The periodic tasks of the live schedulers, their next runs, and one's history."""
    viewer = dash.viewer(request)
    inspector = dash.ctx.inspector
    entries = [e for e in await inspector.scheduler_entries() if viewer.token.may_touch(e.queue)]
    chosen = request.query_params.get("entry", "")
    history: list[Any] = []
    if chosen and any(entry.id == chosen for entry in entries):
        history = await inspector.scheduler_history(chosen, limit=20)
    return dash.render(
        request,
        viewer,
        "cron.html",
        entries=entries,
        next_runs={entry.id: _next_runs(entry.spec, entry.timezone) for entry in entries},
        chosen=chosen,
        history=history,
        now=_now(),
    )


async def audit(dash: Dashboard, request: Request) -> Response:
    """The audit log, newest first, a page at a time."""
    viewer = dash.viewer(request, "admin")
    before = request.query_params.get("before") or None
    try:
        entries = await dash.ctx.inspector.audit_log(limit=50, before=before)
    except ValueError as exc:
        raise dash.error(request, viewer, 400, str(exc)) from None
    older = entries[-1].id if len(entries) == 50 else None
    return dash.render(request, viewer, "audit.html", entries=entries, older=older)


async def search(dash: Dashboard, request: Request) -> Response:
    """Find a task by id in every queue the viewer may read; one match opens it."""
    viewer = dash.viewer(request)
    task_id = request.query_params.get("id", "").strip()
    matches: list[TaskInfo] = []
    if task_id:
        inspector = dash.ctx.inspector
        names = [name for name in await inspector.queues() if viewer.token.may_touch(name)]

        async def look(name: str) -> TaskInfo | None:
            try:
                return await inspector.get_task(task_id, name)
            except (tickr.TaskNotFound, ValueError):
                return None

        matches = [found for found in await asyncio.gather(*map(look, names)) if found]
    if len(matches) == 1:
        found = matches[0]
        path = f"/queues/{quote(found.queue, safe='')}/tasks/{quote(found.id, safe='')}"
        raise Shown(dash.redirect(request, path))
    return dash.render(request, viewer, "search.html", task_id=task_id, matches=matches)


async def login_form(
    dash: Dashboard, request: Request, message: str = "", status: int = 200
) -> Response:
    """The login form, with a fresh CSRF nonce in its own cookie."""
    if dash.ctx.guard.anonymous is not None and not dash.ctx.guard.tokens:
        raise Shown(dash.redirect(request, "/"))
    cookie, nonce = dash.keys.login_nonce()
    next_path = request.query_params.get("next", "")
    response = dash.render(
        request,
        None,
        "login.html",
        status,
        csrf=dash.keys.csrf(nonce),
        next_path=next_path,
        message=message,
    )
    dash.set_cookie(request, response, LOGIN_COOKIE, cookie, 3600)
    return response
