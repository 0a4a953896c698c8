"""The routes of one task: submit (idempotent), read, and wait for its result."""

from __future__ import annotations

import contextlib
import hashlib
import json
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

import tickr
from tickr.values import TaskInfo
from tickr.web._context import Context
from tickr.web._problems import Failure, problem
from tickr.web.jsonform import from_json, to_json
from tickr.web.tokens import Token

__all__ = ["IDEMPOTENCY_HEADER", "MAX_RESULT_WAIT", "get_task", "result", "submit", "task_json"]

MAX_RESULT_WAIT: Final = 60.0
"""The longest `wait` a result request may ask for, in seconds."""
IDEMPOTENCY_HEADER: Final = "tickr-idempotency"
"""The task header holding the digest of the request that an Idempotency-Key made."""

ENQUEUE_OPTIONS: Final = frozenset(
    {
        "priority",
        "delay",
        "max_retry",
        "timeout",
        "task_id",
        "unique",
        "retention",
        "headers",
        "lane",
    }
)
"""The enqueue options a submission may give as they are, besides type and payload."""
TIME_OPTIONS: Final = frozenset({"at", "deadline"})
"""The enqueue options given as ISO 8601 strings with an offset."""


def _moment(name: str, value: Any) -> datetime:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is not None:
                return moment
    raise Failure(400, f"{name} must be an ISO 8601 time with an offset, got {value!r}")


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def task_json(info: TaskInfo, token: Token) -> dict[str, Any]:
    """A TaskInfo as JSON; the payload only for a token with ``payload:read``."""
    shown = token.allows("payload:read", info.queue)
    return {
        "id": info.id,
        "type": info.type,
        "queue": info.queue,
        "state": info.state,
        "priority": info.priority,
        "max_retry": info.max_retry,
        "retried": info.retried,
        "last_error": info.last_error,
        "timeout": info.timeout,
        "deadline": _iso(info.deadline),
        "next_process_at": _iso(info.next_process_at),
        "completed_at": _iso(info.completed_at),
        "enqueued_at": _iso(info.enqueued_at),
        "last_failed_at": _iso(info.last_failed_at),
        "retention": info.retention,
        "headers": dict(info.headers),
        "lane": info.lane,
        **({"payload": to_json(info.payload)} if shown else {}),
    }


def _path_task(request: Request) -> tuple[str, str]:
    return request.path_params["queue"], request.path_params["task_id"]


def _submission(body: dict[str, Any]) -> tuple[str, Any, dict[str, Any]]:
    """The type, payload and enqueue options of a submission's body."""
    task_type = body.get("type")
    if not isinstance(task_type, str):
        raise Failure(400, "type is required: a task type, a string")
    unknown = sorted(set(body) - ENQUEUE_OPTIONS - TIME_OPTIONS - {"type", "payload"})
    if unknown:
        raise Failure(400, f"unknown field(s): {', '.join(unknown)}")
    try:
        payload = from_json(body.get("payload"))
    except ValueError as exc:
        raise Failure(400, f"payload: {exc}") from None
    options = {name: body[name] for name in ENQUEUE_OPTIONS & set(body)}
    options.update({name: _moment(name, body[name]) for name in TIME_OPTIONS & set(body)})
    return task_type, payload, options


def _idempotent(options: dict[str, Any], key: str, body: dict[str, Any]) -> str:
    """Name the task after the Idempotency-Key; returns the digest of the body."""
    if "task_id" in options:
        raise Failure(400, "give Idempotency-Key or task_id, not both")
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    options["task_id"] = key
    given = options.get("headers") or {}
    if not isinstance(given, dict):
        raise Failure(400, "headers must be an object of strings")
    options["headers"] = {**given, IDEMPOTENCY_HEADER: digest}
    return digest


async def submit(ctx: Context, request: Request) -> Response:
    """Enqueue a task; an Idempotency-Key header names it, so a replay finds it."""
    queue = request.path_params["queue"]
    token = ctx.guard.authorize(request, "tasks:submit", queue)
    ctx.guard.writable()
    body = await ctx.body(request)
    task_type, payload, options = _submission(body)
    key = request.headers.get("idempotency-key")
    digest = None if key is None else _idempotent(options, key, body)
    client = ctx.client
    try:
        info = await client.enqueue(task_type, payload, queue=queue, **options)
    except tickr.TaskIDConflict:
        if key is None:
            raise Failure(409, f"task id {options['task_id']!r} is taken") from None
        try:
            existing = await client.get_task(key, queue)
        except tickr.TaskNotFound:
            raise Failure(409, "the idempotency key is in use; retry") from None
        if existing.headers.get(IDEMPOTENCY_HEADER) != digest:
            raise Failure(409, "the idempotency key was used with a different body") from None
        return JSONResponse(task_json(existing, token), 200)
    except tickr.DuplicateTask as exc:
        raise Failure(409, str(exc), live_task_id=exc.existing_id) from None
    except (TypeError, ValueError) as exc:
        raise Failure(400, str(exc)) from None
    return JSONResponse(
        task_json(info, token),
        201,
        headers={"Location": f"{request.url.path.rstrip('/')}/{quote(info.id, safe='')}"},
    )


async def get_task(ctx: Context, request: Request) -> Response:
    """A task's state (and payload, with ``payload:read``)."""
    queue, task_id = _path_task(request)
    token = ctx.guard.authorize(request, "tasks:read", queue)
    try:
        info = await ctx.client.get_task(task_id, queue)
    except tickr.TaskNotFound:
        raise Failure(404, f"no task {task_id!r} in {queue!r}") from None
    except (TypeError, ValueError) as exc:
        raise Failure(400, str(exc)) from None
    return JSONResponse(task_json(info, token))


async def result(ctx: Context, request: Request) -> Response:
    """A task's result, waiting up to ``wait`` seconds on the completion channel."""
    queue, task_id = _path_task(request)
    token = ctx.guard.authorize(request, "tasks:read", queue)
    try:
        wait = float(request.query_params.get("wait", "0"))
    except ValueError:
        raise Failure(400, "wait must be a number of seconds") from None
    if not 0 <= wait <= MAX_RESULT_WAIT:
        raise Failure(400, f"wait must be 0 to {MAX_RESULT_WAIT:g} seconds")
    client = ctx.client
    try:
        info = await client.get_task(task_id, queue)
        if info.state not in ("completed", "archived") and wait > 0:
            with contextlib.suppress(TimeoutError, tickr.TaskFailed):
                await client.result(task_id, queue, timeout=wait)
            info = await client.get_task(task_id, queue)
    except tickr.TaskNotFound:
        raise Failure(404, f"no task {task_id!r} in {queue!r}") from None
    except (TypeError, ValueError) as exc:
        raise Failure(400, str(exc)) from None
    if info.state == "archived":
        return problem(409, f"task {task_id!r} failed", last_error=info.last_error)
    if info.state != "completed":
        return JSONResponse({"state": info.state}, 202)
    shown = token.allows("payload:read", queue)
    return JSONResponse({"result": to_json(info.result) if shown else None})
