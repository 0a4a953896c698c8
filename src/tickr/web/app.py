"""`create_app`: Tickr's HTTP API as an ASGI application (Starlette).

Every route checks its bearer token and scope before it does anything; errors are RFC
9457 problem documents (``application/problem+json``).  The app opens its Client and
Inspector at start-up (the ASGI lifespan) and closes them at shutdown, so it can be run
by uvicorn (``tickr web``) or mounted in another Starlette or FastAPI app.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import date, datetime
from typing import Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import tickr
from tickr._broker import RedisClient
from tickr.values import TASK_STATES, QueueInfo, TaskInfo, TaskState
from tickr.web.jsonform import from_json, to_json
from tickr.web.tokens import Token, TokenStore

__all__ = ["MAX_BODY_BYTES", "MAX_RESULT_WAIT", "create_app"]

MAX_BODY_BYTES: Final = 1024 * 1024
"""The largest request body accepted (413 beyond)."""
MAX_RESULT_WAIT: Final = 60.0
"""The longest `wait` a result request may ask for, in seconds."""
IDEMPOTENCY_HEADER: Final = "tickr-idempotency"
"""The task header holding the digest of the request that an Idempotency-Key made."""

_ENQUEUE_OPTIONS: Final = frozenset(
    {"priority", "delay", "max_retry", "timeout", "task_id", "unique", "retention", "headers"}
)
_PROBLEM_TYPES: Final = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    409: "conflict",
    413: "too-large",
    503: "unavailable",
}

Handler = Callable[[Request], Awaitable[Response]]


def _problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    """An RFC 9457 problem document."""
    body = {
        "type": f"https://tickr.dev/problems/{_PROBLEM_TYPES.get(status, 'error')}",
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    headers = {"WWW-Authenticate": 'Bearer realm="tickr"'} if status == 401 else None
    return JSONResponse(body, status, headers=headers, media_type="application/problem+json")


class _Failure(Exception):
    """A problem to answer with, raised from inside a route."""

    def __init__(self, response: JSONResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


def _task_json(info: TaskInfo, token: Token) -> dict[str, Any]:
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
        "deadline": info.deadline.isoformat() if info.deadline else None,
        "next_process_at": info.next_process_at.isoformat() if info.next_process_at else None,
        "completed_at": info.completed_at.isoformat() if info.completed_at else None,
        "enqueued_at": info.enqueued_at.isoformat() if info.enqueued_at else None,
        "retention": info.retention,
        "headers": dict(info.headers),
        **({"payload": to_json(info.payload)} if shown else {}),
    }


class _Api:
    """The routes' shared state: the tokens, the Client and the Inspector."""

    def __init__(self, tokens: TokenStore, read_only: bool) -> None:
        self.tokens = tokens
        self.read_only = read_only
        self.client: tickr.Client | None = None
        self.inspector: tickr.Inspector | None = None

    def authorize(self, request: Request, scope: str, queue: str | None = None) -> Token:
        header = request.headers.get("authorization", "")
        kind, _, secret = header.partition(" ")
        if kind.lower() != "bearer" or not secret.strip():
            raise _Failure(_problem(401, "Unauthorized", "a bearer token is required"))
        token = self.tokens.find(secret.strip())
        if token is None:
            raise _Failure(_problem(401, "Unauthorized", "unknown token"))
        if not token.allows(scope, queue):
            where = f" on queue {queue!r}" if queue is not None else ""
            raise _Failure(
                _problem(403, "Forbidden", f"token {token.name!r} lacks {scope!r}{where}")
            )
        return token

    def writable(self) -> None:
        if self.read_only:
            raise _Failure(_problem(403, "Forbidden", "the API is read-only"))

    @property
    def ready_client(self) -> tickr.Client:
        assert self.client is not None, "the app's lifespan has not started"
        return self.client

    async def body(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise _Failure(
                _problem(413, "Payload Too Large", f"the body is over {MAX_BODY_BYTES} bytes")
            )
        try:
            document = json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise _Failure(_problem(400, "Bad Request", f"the body is not JSON: {exc}")) from None
        if not isinstance(document, dict):
            raise _Failure(_problem(400, "Bad Request", "the body must be a JSON object"))
        return document

    # ------------------------------------------------------------------ routes

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        inspector = self.inspector
        try:
            if inspector is None:
                raise RuntimeError("starting")
            async with asyncio.timeout(0.25):
                await inspector.queues()
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return _problem(503, "Service Unavailable", f"Redis is not ready: {exc}")
        return JSONResponse({"status": "ready"})

    async def submit(self, request: Request) -> Response:
        queue = request.path_params["queue"]
        token = self.authorize(request, "tasks:submit", queue)
        self.writable()
        body = await self.body(request)
        task_type = body.get("type")
        if not isinstance(task_type, str):
            return _problem(400, "Bad Request", "type is required: a task type, a string")
        unknown = sorted(set(body) - _ENQUEUE_OPTIONS - {"type", "payload"})
        if unknown:
            return _problem(400, "Bad Request", f"unknown field(s): {', '.join(unknown)}")
        try:
            payload = from_json(body.get("payload"))
        except ValueError as exc:
            return _problem(400, "Bad Request", f"payload: {exc}")
        options = {name: body[name] for name in _ENQUEUE_OPTIONS & set(body)}
        key = request.headers.get("idempotency-key")
        digest = None
        if key is not None:
            if "task_id" in options:
                return _problem(400, "Bad Request", "give Idempotency-Key or task_id, not both")
            digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            options["task_id"] = key
            headers = dict(options.get("headers") or {})
            headers[IDEMPOTENCY_HEADER] = digest
            options["headers"] = headers
        client = self.ready_client
        try:
            info = await client.enqueue(task_type, payload, queue=queue, **options)
        except tickr.TaskIDConflict:
            if digest is None:
                return _problem(409, "Conflict", f"task id {options['task_id']!r} is taken")
            try:
                existing = await client.get_task(key or "", queue)
            except tickr.TaskNotFound:
                return _problem(409, "Conflict", "the idempotency key is in use; retry")
            if existing.headers.get(IDEMPOTENCY_HEADER) != digest:
                return _problem(
                    409, "Conflict", "the idempotency key was used with a different body"
                )
            return JSONResponse(_task_json(existing, token), 200)
        except tickr.DuplicateTask as exc:
            return _problem(409, "Conflict", str(exc), live_task_id=exc.existing_id)
        except (TypeError, ValueError) as exc:
            return _problem(400, "Bad Request", str(exc))
        return JSONResponse(
            _task_json(info, token),
            201,
            headers={"Location": f"{request.url.path.rstrip('/')}/{info.id}"},
        )

    async def get_task(self, request: Request) -> Response:
        queue, task_id = request.path_params["queue"], request.path_params["task_id"]
        token = self.authorize(request, "tasks:read", queue)
        try:
            info = await self.ready_client.get_task(task_id, queue)
        except tickr.TaskNotFound:
            return _problem(404, "Not Found", f"no task {task_id!r} in {queue!r}")
        except (TypeError, ValueError) as exc:
            return _problem(400, "Bad Request", str(exc))
        return JSONResponse(_task_json(info, token))

    async def result(self, request: Request) -> Response:
        queue, task_id = request.path_params["queue"], request.path_params["task_id"]
        token = self.authorize(request, "tasks:read", queue)
        try:
            wait = float(request.query_params.get("wait", "0"))
        except ValueError:
            return _problem(400, "Bad Request", "wait must be a number of seconds")
        if not 0 <= wait <= MAX_RESULT_WAIT:
            return _problem(400, "Bad Request", f"wait must be 0 to {MAX_RESULT_WAIT:g} seconds")
        client = self.ready_client
        try:
            info = await client.get_task(task_id, queue)
            if info.state != "completed" and info.state != "archived" and wait > 0:
                with contextlib.suppress(TimeoutError, tickr.TaskFailed):
                    await client.result(task_id, queue, timeout=wait)
                info = await client.get_task(task_id, queue)
        except tickr.TaskNotFound:
            return _problem(404, "Not Found", f"no task {task_id!r} in {queue!r}")
        except (TypeError, ValueError) as exc:
            return _problem(400, "Bad Request", str(exc))
        if info.state == "archived":
            return _problem(409, "Conflict", f"task {task_id!r} failed", last_error=info.last_error)
        if info.state != "completed":
            return JSONResponse({"state": info.state}, 202)
        shown = token.allows("payload:read", queue)
        return JSONResponse({"result": to_json(info.result) if shown else None})


def _record_json(record: Any) -> dict[str, Any]:
    """A dataclass record of the Inspector (DailyStats, ServerInfo, ...) as JSON."""
    shown = {}
    for item in dataclasses.fields(record):
        value = getattr(record, item.name)
        if isinstance(value, datetime | date):
            shown[item.name] = value.isoformat()
        else:
            shown[item.name] = to_json(value)
    return shown


def _queue_json(info: QueueInfo) -> dict[str, Any]:
    return {
        "queue": info.queue,
        "pending": info.pending,
        "active": info.active,
        "scheduled": info.scheduled,
        "retry": info.retry,
        "archived": info.archived,
        "completed": info.completed,
        "processed": info.processed,
        "failed": info.failed,
        "paused": info.paused,
        "latency": info.latency,
        "size": info.size,
    }


class _Manage:
    """The routes that read and change queues and tasks (the Inspector's calls)."""

    def __init__(self, api: _Api) -> None:
        self.api = api

    @property
    def inspector(self) -> tickr.Inspector:
        assert self.api.inspector is not None, "the app's lifespan has not started"
        return self.api.inspector

    async def queues(self, request: Request) -> Response:
        token = self.api.authorize(request, "tasks:read")
        infos = await self.inspector.queue_infos()
        return JSONResponse(
            {"queues": [_queue_json(info) for info in infos if token.may_touch(info.queue)]}
        )

    async def queue(self, request: Request) -> Response:
        queue = request.path_params["queue"]
        self.api.authorize(request, "tasks:read", queue)
        try:
            info = await self.inspector.queue_info(queue, memory=False)
        except tickr.QueueNotFound:
            return _problem(404, "Not Found", f"no queue {queue!r}")
        except (TypeError, ValueError) as exc:
            return _problem(400, "Bad Request", str(exc))
        return JSONResponse(_queue_json(info))

    async def list_tasks(self, request: Request) -> Response:
        queue = request.path_params["queue"]
        token = self.api.authorize(request, "tasks:read", queue)
        params = request.query_params
        wanted = params.get("state", "pending")
        states = [known for known in TASK_STATES if known == wanted]
        if not states:
            return _problem(400, "Bad Request", f"state must be one of {', '.join(TASK_STATES)}")
        state: TaskState = states[0]
        try:
            page, page_size = int(params.get("page", "1")), int(params.get("page_size", "30"))
        except ValueError:
            return _problem(400, "Bad Request", "page and page_size must be whole numbers")
        try:
            info = await self.inspector.queue_info(queue, memory=False)
            tasks = await self.inspector.list_tasks(queue, state, page=page, page_size=page_size)
        except tickr.QueueNotFound:
            return _problem(404, "Not Found", f"no queue {queue!r}")
        except (TypeError, ValueError) as exc:
            return _problem(400, "Bad Request", str(exc))
        return JSONResponse(
            {
                "tasks": [_task_json(task, token) for task in tasks],
                "state": state,
                "page": page,
                "page_size": page_size,
                "total": getattr(info, state),
            }
        )

    async def act(self, request: Request) -> Response:
        queue, task_id = request.path_params["queue"], request.path_params["task_id"]
        action = request.path_params.get("action", "delete")
        self.api.authorize(request, "tasks:manage", queue)
        self.api.writable()
        inspector = self.inspector
        try:
            if action == "cancel":
                if not await inspector.cancel(task_id, queue):
                    return _problem(409, "Conflict", f"task {task_id!r} has finished already")
            elif action == "run":
                await inspector.run_task(task_id, queue)
            elif action == "archive":
                await inspector.archive_task(task_id, queue)
            elif action == "delete":
                await inspector.delete_task(task_id, queue)
            else:
                return _problem(404, "Not Found", f"no action {action!r}")
        except tickr.TaskNotFound:
            return _problem(404, "Not Found", f"no task {task_id!r} in {queue!r}")
        except tickr.TaskStateConflict as exc:
            return _problem(409, "Conflict", str(exc))
        except (TypeError, ValueError) as exc:
            return _problem(400, "Bad Request", str(exc))
        return JSONResponse({"id": task_id, "queue": queue, "done": action})

    async def history(self, request: Request) -> Response:
        queue = request.path_params["queue"]
        self.api.authorize(request, "tasks:read", queue)
        try:
            days = int(request.query_params.get("days", "7"))
            history = await self.inspector.history(queue, days)
        except tickr.QueueNotFound:
            return _problem(404, "Not Found", f"no queue {queue!r}")
        except (TypeError, ValueError) as exc:
            return _problem(400, "Bad Request", f"days: {exc}")
        return JSONResponse({"history": [_record_json(day) for day in history]})

    async def servers(self, request: Request) -> Response:
        self.api.authorize(request, "tasks:read")
        servers = await self.inspector.servers()
        return JSONResponse({"servers": [_record_json(server) for server in servers]})

    async def schedulers(self, request: Request) -> Response:
        token = self.api.authorize(request, "tasks:read")
        entries = []
        for entry in await self.inspector.scheduler_entries():
            shown = _record_json(entry)
            if not token.allows("payload:read", entry.queue):
                shown.pop("payload", None)
            entries.append(shown)
        return JSONResponse({"entries": entries})

    async def pause(self, request: Request) -> Response:
        queue = request.path_params["queue"]
        paused = request.url.path.endswith("/pause")
        self.api.authorize(request, "queues:manage", queue)
        self.api.writable()
        try:
            if paused:
                await self.inspector.pause(queue)
            else:
                await self.inspector.unpause(queue)
        except (TypeError, ValueError) as exc:
            return _problem(400, "Bad Request", str(exc))
        return JSONResponse({"queue": queue, "paused": paused})


def _guarded(handler: Handler) -> Handler:
    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except _Failure as failure:
            return failure.response
        except tickr.RedisUnavailable as exc:
            return _problem(503, "Service Unavailable", str(exc))

    return guarded


def create_app(
    url: str | None = None,
    *,
    redis: RedisClient | None = None,
    namespace: str = "tickr",
    tokens: Iterable[Token] | TokenStore = (),
    read_only: bool = False,
) -> Starlette:
    """Tickr's HTTP API as an ASGI application.

    Args:
        url: Redis URL; default $TICKR_REDIS_URL, else ``redis://127.0.0.1:6379/0``.
        redis: An existing `redis.asyncio` client to use instead.
        namespace: The namespace of the queues.
        tokens: The accepted bearer tokens (or a `TokenStore`, to replace them later).
        read_only: Refuse every change (403).

    Raises:
        TypeError, ValueError: For an invalid argument (as `Client`), or a token that is
            not a `Token`.
    """
    store = tokens if isinstance(tokens, TokenStore) else TokenStore(tokens)
    api = _Api(store, read_only)
    tickr.Client(url, redis=redis, namespace=namespace)  # checks the arguments now

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with (
            tickr.Client(url, redis=redis, namespace=namespace) as client,
            tickr.Inspector(url, redis=redis, namespace=namespace) as inspector,
        ):
            api.client, api.inspector = client, inspector
            try:
                yield
            finally:
                api.client = api.inspector = None

    manage = _Manage(api)
    prefix = "/api/v1/queues/{queue}/tasks"
    routes = [
        Route("/healthz", _guarded(api.healthz), methods=["GET"]),
        Route("/readyz", _guarded(api.readyz), methods=["GET"]),
        Route("/api/v1/queues", _guarded(manage.queues), methods=["GET"]),
        Route("/api/v1/queues/{queue}", _guarded(manage.queue), methods=["GET"]),
        Route("/api/v1/queues/{queue}/pause", _guarded(manage.pause), methods=["POST"]),
        Route("/api/v1/queues/{queue}/unpause", _guarded(manage.pause), methods=["POST"]),
        Route("/api/v1/queues/{queue}/history", _guarded(manage.history), methods=["GET"]),
        Route("/api/v1/servers", _guarded(manage.servers), methods=["GET"]),
        Route("/api/v1/schedulers", _guarded(manage.schedulers), methods=["GET"]),
        Route(prefix, _guarded(api.submit), methods=["POST"]),
        Route(prefix, _guarded(manage.list_tasks), methods=["GET"]),
        Route(prefix + "/{task_id}", _guarded(api.get_task), methods=["GET"]),
        Route(prefix + "/{task_id}", _guarded(manage.act), methods=["DELETE"]),
        Route(prefix + "/{task_id}/result", _guarded(api.result), methods=["GET"]),
        Route(
            prefix + "/{task_id}/{action:str}",
            _guarded(manage.act),
            methods=["POST"],
        ),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.tickr_tokens = store
    return app
