"""The dashboard's actions (POST forms): log in and out, steer tasks, queues and cron entries.

Each checks the form's CSRF token, the scope and the read-only mode (`Dashboard.change`),
is written to the audit log like the API's changes, and answers with a redirect to the
page it came from, which shows what was done.
"""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import Response

import tickr
from tickr.inspector import BULK_STATES
from tickr.values import TASK_STATES, TaskState
from tickr.web import _audit as audit
from tickr.web._auth import client_address, limiter_key
from tickr.web._dashboard import pages
from tickr.web._dashboard.access import Dashboard, Viewer
from tickr.web._dashboard.session import LOGIN_COOKIE, SESSION_COOKIE

__all__ = ["bulk", "limits", "log_in", "log_out", "pause", "run_entry", "task_action"]

MATCH_SCAN_LIMIT: Final = 100_000
"""The most tasks "all matching" looks through; a larger state needs a narrower filter."""


def _safe_next(path: str) -> str:
    """A local path to go to after login (never another site)."""
    if path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/"


async def log_in(dash: Dashboard, request: Request) -> Response:
    """Check the token of the login form and start a session."""
    form = await dash.form(request)
    nonce = dash.keys.open_login(request.cookies.get(LOGIN_COOKIE))
    if nonce is None or not dash.keys.csrf_valid(nonce, form.get("csrf")):
        return await pages.login_form(dash, request, "The form expired: try again.", 403)
    guard = dash.ctx.guard
    address = limiter_key(client_address(request))
    wait = guard.limiter.blocked_for(address)
    if wait > 0:
        return await pages.login_form(
            dash, request, f"Too many wrong tokens: try again in {int(wait) + 1} s.", 429
        )
    token = guard.tokens.find(form.get("token").strip())
    if token is None:
        guard.limiter.failed(address)
        return await pages.login_form(dash, request, "Unknown token.", 401)
    cookie, _session = dash.keys.new_session(token)
    response = dash.redirect(request, _safe_next(form.get("next")))
    dash.set_cookie(request, response, SESSION_COOKIE, cookie, dash.keys.max_age)
    response.delete_cookie(LOGIN_COOKIE, path=dash.root(request) or "/")
    await audit.record(
        dash.ctx, request, token, "session.login", queue=None, task_id=None, status=200
    )
    return response


async def log_out(dash: Dashboard, request: Request) -> Response:
    """End the session (the form's CSRF token keeps other sites from doing it)."""
    viewer = dash.viewer(request)
    dash.check_csrf(request, viewer, await dash.form(request))
    response = dash.redirect(request, "/login")
    response.delete_cookie(SESSION_COOKIE, path=dash.root(request) or "/")
    return response


async def _done(
    dash: Dashboard,
    request: Request,
    viewer: Viewer,
    action: str,
    back: str,
    *,
    queue: str | None,
    task_id: str | None = None,
    status: int = 200,
    notice: str,
) -> Response:
    await audit.record(
        dash.ctx, request, viewer.token, action, queue=queue, task_id=task_id, status=status,
        detail=notice,
    )  # fmt: skip
    return dash.redirect(request, back, notice=notice)


async def pause(dash: Dashboard, request: Request) -> Response:
    """Pause or unpause a queue."""
    name = request.path_params["queue"]
    paused = request.url.path.endswith("/pause")
    viewer, _form = await dash.change(request, "queues:manage", name)
    inspector = dash.ctx.inspector
    await (inspector.pause(name) if paused else inspector.unpause(name))
    verb = "paused" if paused else "unpaused"
    return await _done(
        dash, request, viewer, f"queue.{verb[:-1]}", f"/queues/{name}", queue=name,
        notice=f"Queue {name} {verb}.",
    )  # fmt: skip


async def task_action(dash: Dashboard, request: Request) -> Response:
    """Run, archive, delete or cancel one task."""
    name, task_id = request.path_params["queue"], request.path_params["task_id"]
    action = request.path_params["action"]
    viewer, form = await dash.change(request, "tasks:manage", name)
    inspector = dash.ctx.inspector
    back = form.get("back") if form.get("back").startswith("/queues/") else f"/queues/{name}"
    try:
        if action == "run":
            await inspector.run_task(task_id, name)
        elif action == "archive":
            await inspector.archive_task(task_id, name)
        elif action == "delete":
            await inspector.delete_task(task_id, name)
            back = f"/queues/{name}" if back.endswith(f"/tasks/{task_id}") else back
        elif action == "cancel":
            if not await inspector.cancel(task_id, name):
                raise tickr.TaskStateConflict(task_id, name, "finished", "cancel")
        else:
            raise dash.error(request, viewer, 404, f"There is no action {action!r}.")
    except tickr.TaskNotFound:
        return await _done(
            dash, request, viewer, f"task.{action}", back, queue=name, task_id=task_id,
            status=404, notice=f"There is no task {task_id} any more.",
        )  # fmt: skip
    except tickr.TaskStateConflict as exc:
        return await _done(
            dash, request, viewer, f"task.{action}", back, queue=name, task_id=task_id,
            status=409, notice=f"Not done: {exc}.",
        )  # fmt: skip
    past = {
        "run": "is pending now",
        "archive": "archived",
        "delete": "deleted",
        "cancel": "cancelled",
    }
    return await _done(
        dash, request, viewer, f"task.{action}", back, queue=name, task_id=task_id,
        notice=f"Task {task_id} {past[action]}.",
    )  # fmt: skip


def _whole_number(text: str, name: str) -> int:
    if not text.strip().isdigit():
        raise ValueError(f"{name} must be a whole number, not {text!r}")
    return int(text)


async def limits(dash: Dashboard, request: Request) -> Response:
    """Set or remove the queue's rate or concurrency limit."""
    name = request.path_params["queue"]
    viewer, form = await dash.change(request, "queues:manage", name)
    inspector = dash.ctx.inspector
    kind, clear = form.get("kind"), form.get("op") == "clear"
    try:
        if kind == "rate" and clear:
            await inspector.clear_rate_limit(name)
            notice = "Rate limit removed."
        elif kind == "rate":
            count = _whole_number(form.get("limit"), "limit")
            period = float(form.get("period") or "1")
            burst = _whole_number(form.get("burst") or "1", "burst")
            await inspector.set_rate_limit(name, count, period, burst=burst)
            notice = f"Rate limit set: {count:,} per {period:g} s, burst {burst:,}."
        elif kind == "conc" and clear:
            await inspector.clear_concurrency_limit(name)
            notice = "Concurrency limit removed."
        elif kind == "conc":
            count = _whole_number(form.get("limit"), "limit")
            await inspector.set_concurrency_limit(name, count)
            notice = f"Concurrency limit set: {count:,} at once."
        else:
            raise ValueError(f"unknown limit {kind!r}")
    except ValueError as exc:
        return dash.redirect(request, f"/queues/{name}", notice=f"Not changed: {exc}.")
    action = (
        f"queue.{'clear' if clear else 'set'}_{'rate' if kind == 'rate' else 'concurrency'}_limit"
    )
    return await _done(dash, request, viewer, action, f"/queues/{name}", queue=name, notice=notice)


def _bulk_state(text: str) -> TaskState | None:
    return next((state for state in TASK_STATES if state == text), None)


async def bulk(dash: Dashboard, request: Request) -> Response:
    """Run, archive or delete the selected tasks, or all that match (after a confirmation)."""
    name = request.path_params["queue"]
    viewer, form = await dash.change(request, "tasks:manage", name)
    action, state = form.get("action"), _bulk_state(form.get("state"))
    if action not in BULK_STATES or state is None or state not in BULK_STATES[action]:
        raise dash.error(request, viewer, 400, f"Cannot {action or 'do that'} {state} tasks.")
    back = f"/queues/{name}?state={state}"
    inspector = dash.ctx.inspector
    if form.get("scope") != "all":
        ids = form.all("ids")
        if not ids:
            return dash.redirect(
                request, f"/queues/{name}", state=state, notice="Nothing selected."
            )
        done = await _apply(inspector, action, name, ids)
        return await _done(
            dash, request, viewer, f"task.bulk_{action}", back, queue=name,
            notice=f"{action.capitalize()}: {done} of {len(ids)} selected tasks.",
        )  # fmt: skip
    task_type, error = form.get("type").strip() or None, form.get("error").strip() or None
    if task_type is None and error is None:
        count = getattr(await inspector.queue_info(name, memory=False), state)
    else:
        matching = await _matching(dash, request, viewer, name, state, task_type, error)
        count = len(matching)
    if form.get("confirm") != str(count):
        return dash.render(
            request, viewer, "confirm.html", queue=name, state=state, action=action, count=count,
            task_type=task_type or "", error=error or "",
        )  # fmt: skip
    if task_type is None and error is None:
        operation = {"run": inspector.run_all, "archive": inspector.archive_all,
                     "delete": inspector.delete_all}[action]  # fmt: skip
        done = await operation(name, state)
    else:
        done = await _apply(inspector, action, name, matching)
    return await _done(
        dash, request, viewer, f"task.bulk_{action}", back, queue=name,
        notice=f"{action.capitalize()}: {done} {state} tasks.",
    )  # fmt: skip


async def _matching(
    dash: Dashboard,
    request: Request,
    viewer: Viewer,
    name: str,
    state: TaskState,
    task_type: str | None,
    error: str | None,
) -> list[str]:
    ids: list[str] = []
    cursor: int | None = 0
    looked = 0
    inspector = dash.ctx.inspector
    while cursor is not None:
        step = await inspector.find_tasks(
            name, state, type=task_type, error=error, cursor=cursor, limit=10_000
        )
        ids += [task.id for task in step.tasks]
        looked += step.scanned
        cursor = step.next_cursor
        if looked >= MATCH_SCAN_LIMIT and cursor is not None:
            raise dash.error(
                request, viewer, 400,
                f"More than {MATCH_SCAN_LIMIT:,} {state} tasks to look through: narrow the "
                "filter, or act on a selection.",
            )  # fmt: skip
    return ids


async def _apply(inspector: tickr.Inspector, action: str, queue: str, ids: list[str]) -> int:
    operation = {"run": inspector.run_task, "archive": inspector.archive_task,
                 "delete": inspector.delete_task}[action]  # fmt: skip
    done = 0
    for task_id in ids:
        try:
            await operation(task_id, queue)
        except (tickr.TaskNotFound, tickr.TaskStateConflict, ValueError):
            continue  # gone or moved meanwhile: the others go on
        done += 1
    return done


async def run_entry(dash: Dashboard, request: Request) -> Response:
    """Enqueue a periodic task's task now, outside its schedule."""
    entry_id = request.path_params["entry"]
    entries = {entry.id: entry for entry in await dash.ctx.inspector.scheduler_entries()}
    entry = entries.get(entry_id)
    if entry is None:
        viewer = dash.viewer(request)
        raise dash.error(request, viewer, 404, f"No live scheduler runs {entry_id!r}.")
    viewer, _form = await dash.change(request, "tasks:submit", entry.queue)
    info = await dash.ctx.client.enqueue(entry.type, entry.payload, queue=entry.queue)
    return await _done(
        dash, request, viewer, "cron.run", "/cron", queue=entry.queue, task_id=info.id,
        notice=f"{entry_id}: task {info.id} enqueued in {entry.queue}.",
    )  # fmt: skip
