"""`create_app`: Tickr's HTTP API as an ASGI application (Starlette).

The route table below is the one list of endpoints: the Starlette routes and the OpenAPI
document are both built from it.  Every route checks its bearer token and scope before
it does anything; errors are RFC 9457 problem documents; every change is written to the
audit log with who asked and what came of it.  The app opens its Client and Inspector at
start-up (the ASGI lifespan) and closes them at shutdown, so it can be run by uvicorn
(``tickr web``) or mounted in another Starlette or FastAPI app.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

import tickr
from tickr._broker import RedisClient
from tickr.inspector import AUDIT_KEEP
from tickr.values import TASK_STATES
from tickr.web import _audit as audit
from tickr.web import _queue_routes as queue_routes
from tickr.web import _service_routes as service_routes
from tickr.web import _task_routes as task_routes
from tickr.web._auth import FailedAuthLimiter, Guard
from tickr.web._context import Context
from tickr.web._dashboard.session import SessionKeys
from tickr.web._openapi import Endpoint, Parameter, document
from tickr.web._problems import Failure, problem
from tickr.web.tokens import Token, TokenStore

__all__ = ["create_app"]

_logger = logging.getLogger("tickr.web")

Route_ = Callable[[Context, Request], Awaitable[Response]]

_TASKS: Final = "/api/v1/queues/{queue}/tasks"
_TASK: Final = _TASKS + "/{task_id}"
_QUEUE: Final = "/api/v1/queues/{queue}"

_OK: Final = (200, "Done.")
_NOT_FOUND: Final = (404, "No such queue or task.")
_BAD: Final = (400, "An invalid parameter.")


def _answers(
    *pairs: tuple[int, str], schema: str | None = None
) -> dict[int, tuple[str, str | None]]:
    return {code: (text, schema if code < 300 else None) for code, text in pairs}


def _endpoints(ctx: Context, readings: service_routes.QueueReadings) -> list[Endpoint]:
    """The app's endpoints, bound to `ctx` (the route table)."""

    def bind(route: Route_) -> Callable[[Request], Awaitable[Response]]:
        return functools.partial(route, ctx)

    _metrics = functools.partial(service_routes.metrics, ctx, readings=readings)

    manage = "tasks:manage"
    task_actions = [
        Endpoint(
            "POST",
            f"{_TASK}/{action}",
            bind(queue_routes.act),
            summary,
            manage,
            _answers(
                _OK, _NOT_FOUND, (409, "The task is in a state that forbids it."), schema="Done"
            ),
            audit=f"task.{action}",
        )
        for action, summary in (
            ("cancel", "Cancel a task: a pending one is removed, a running one told to stop."),
            ("run", "Run a scheduled, retrying or archived task now."),
            ("archive", "Archive a pending, scheduled or retrying task."),
        )
    ]
    return [
        Endpoint(
            "GET",
            "/healthz",
            bind(service_routes.healthz),
            "Alive.",
            None,
            _answers((200, "The process answers."), schema="Status"),
        ),
        Endpoint(
            "GET",
            "/readyz",
            bind(service_routes.readyz),
            "Ready: Redis answers and holds Tickr's scripts (within 250 ms).",
            None,
            _answers((200, "Ready."), (503, "Not ready."), schema="Status"),
        ),
        Endpoint(
            "GET",
            "/metrics",
            _metrics,
            "Prometheus metrics of this process and the queues.",
            "tasks:read",
            {200: ("Prometheus' text format.", None), 501: ("No 'metrics' extra.", None)},
            media_type="text/plain",
        ),
        Endpoint(
            "GET",
            "/api/v1/queues",
            bind(queue_routes.queues),
            "Every queue the token may touch, with sizes and today's counters.",
            "tasks:read",
            _answers((200, "The queues."), schema="Queues"),
        ),
        Endpoint(
            "GET",
            _QUEUE,
            bind(queue_routes.queue),
            "One queue's sizes and counters.",
            "tasks:read",
            _answers((200, "The queue."), _NOT_FOUND, _BAD, schema="Queue"),
        ),
        Endpoint(
            "POST",
            _QUEUE + "/pause",
            bind(queue_routes.pause),
            "Pause a queue: servers take none of its tasks (running ones go on).",
            "queues:manage",
            _answers(_OK, _BAD, schema="Done"),
            audit="queue.pause",
        ),
        Endpoint(
            "POST",
            _QUEUE + "/unpause",
            bind(queue_routes.pause),
            "Unpause a queue.",
            "queues:manage",
            _answers(_OK, _BAD, schema="Done"),
            audit="queue.unpause",
        ),
        *(
            Endpoint(
                method,
                _QUEUE + path,
                bind(queue_routes.limit),
                summary,
                "queues:manage",
                _answers(_OK, _BAD, schema="Queue"),
                body=body if method == "PUT" else None,
                audit=action,
            )
            for method, path, summary, body, action in (
                (
                    "PUT",
                    "/rate-limit",
                    "Set the queue's rate limit, for every server.",
                    "RateLimitBody",
                    "queue.set_rate_limit",
                ),
                (
                    "DELETE",
                    "/rate-limit",
                    "Remove the queue's rate limit.",
                    None,
                    "queue.clear_rate_limit",
                ),
                (
                    "PUT",
                    "/concurrency-limit",
                    "Set how many of its tasks may be active at once.",
                    "ConcurrencyLimitBody",
                    "queue.set_concurrency_limit",
                ),
                (
                    "DELETE",
                    "/concurrency-limit",
                    "Remove the queue's concurrency limit.",
                    None,
                    "queue.clear_concurrency_limit",
                ),
            )
        ),
        Endpoint(
            "GET",
            _QUEUE + "/history",
            bind(queue_routes.history),
            "Processed and failed counts per day.",
            "tasks:read",
            _answers(
                (200, "One record per day, newest first."), _NOT_FOUND, _BAD, schema="Records"
            ),
            query=(
                Parameter(
                    "days", {"type": "integer", "minimum": 1, "default": 7}, "How many days."
                ),
            ),
        ),
        Endpoint(
            "GET",
            "/api/v1/servers",
            bind(queue_routes.servers),
            "The live servers.",
            "tasks:read",
            _answers((200, "The servers."), schema="Records"),
        ),
        Endpoint(
            "GET",
            "/api/v1/schedulers",
            bind(queue_routes.schedulers),
            "The live schedulers' entries (payloads only with payload:read).",
            "tasks:read",
            _answers((200, "The entries."), schema="Records"),
        ),
        Endpoint(
            "GET",
            "/api/v1/audit",
            bind(queue_routes.audit),
            "The audit log of changes made through the app, newest first.",
            "admin",
            _answers((200, "A page of entries."), _BAD, schema="AuditPage"),
            query=(
                Parameter(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                    "Entries per page.",
                ),
                Parameter(
                    "before",
                    {"type": "string"},
                    "An entry id: only older entries (the `next` of a page).",
                ),
            ),
        ),
        Endpoint(
            "POST",
            _TASKS,
            bind(task_routes.submit),
            "Submit a task.",
            "tasks:submit",
            _answers(
                (201, "Enqueued."),
                (200, "A replay of an idempotent submission."),
                _BAD,
                (409, "The task id is taken, or an equal unique task is live."),
                (413, "The body is over 1 MiB."),
                schema="Task",
            ),
            body="Submission",
            audit="task.submit",
            headers=(
                Parameter(
                    "Idempotency-Key",
                    {"type": "string"},
                    "Names the task: a retry with the same body gets it back.",
                ),
            ),
        ),
        Endpoint(
            "GET",
            _TASKS,
            bind(queue_routes.list_tasks),
            "A page of a queue's tasks in one state, with the state's total.",
            "tasks:read",
            _answers((200, "The page."), _NOT_FOUND, _BAD, schema="TaskPage"),
            query=(
                Parameter("state", {"enum": list(TASK_STATES), "default": "pending"}, "The state."),
                Parameter(
                    "page", {"type": "integer", "minimum": 1, "default": 1}, "The page, from 1."
                ),
                Parameter(
                    "page_size",
                    {"type": "integer", "minimum": 1, "maximum": 10000, "default": 30},
                    "Tasks per page.",
                ),
            ),
        ),
        Endpoint(
            "GET",
            _TASK,
            bind(task_routes.get_task),
            "A task (its payload only with payload:read).",
            "tasks:read",
            _answers((200, "The task."), _NOT_FOUND, _BAD, schema="Task"),
        ),
        Endpoint(
            "DELETE",
            _TASK,
            bind(queue_routes.act),
            "Delete a task that is not running.",
            manage,
            _answers(_OK, _NOT_FOUND, (409, "The task is running."), schema="Done"),
            audit="task.delete",
        ),
        Endpoint(
            "GET",
            _TASK + "/result",
            bind(task_routes.result),
            "A task's result, waiting for it up to `wait` seconds.",
            "tasks:read",
            _answers(
                (200, "Completed: the result (null without payload:read)."),
                (202, "Not done yet: its state."),
                (409, "It failed for good."),
                _NOT_FOUND,
                _BAD,
                schema="Result",
            ),
            query=(
                Parameter(
                    "wait",
                    {"type": "number", "minimum": 0, "maximum": 60, "default": 0},
                    "Seconds to wait.",
                ),
            ),
        ),
        *task_actions,
    ]


def _problem_detail(response: Response) -> str:
    if response.media_type != "application/problem+json":
        return ""
    with contextlib.suppress(ValueError, AttributeError):
        return str(json.loads(bytes(response.body)).get("detail", ""))
    return ""


def _answered_id(response: Response) -> str | None:
    with contextlib.suppress(ValueError, AttributeError):
        found = json.loads(bytes(response.body)).get("id")
        return found if isinstance(found, str) else None
    return None


async def _audit(ctx: Context, action: str, request: Request, response: Response) -> None:
    token = getattr(request.state, "tickr_token", None)
    if not isinstance(token, Token):
        return  # not authenticated: nothing was attempted in anyone's name
    params = request.path_params
    task_id = params.get("task_id")
    if task_id is None and response.status_code < 300:
        task_id = _answered_id(response)
    await audit.record(
        ctx,
        request,
        token,
        action,
        queue=params.get("queue"),
        task_id=task_id,
        status=response.status_code,
        detail=_problem_detail(response),
    )


def _route(ctx: Context, endpoint: Endpoint) -> Route:
    async def answer(request: Request) -> Response:
        try:
            response = await endpoint.handler(request)
        except Failure as failure:
            response = failure.response
        except tickr.RedisUnavailable as exc:
            response = problem(503, str(exc))
        except Exception:
            _logger.exception("%s %s failed", request.method, request.url.path)
            response = problem(500, "the request failed inside Tickr; see the server's log")
        if endpoint.audit is not None:
            await _audit(ctx, endpoint.audit, request, response)
        return response

    return Route(endpoint.path, answer, methods=[endpoint.method], name=endpoint.operation_id)


def create_app(
    url: str | None = None,
    *,
    redis: RedisClient | None = None,
    namespace: str = "tickr",
    tokens: Iterable[Token] | TokenStore = (),
    read_only: bool = False,
    anonymous_scopes: Iterable[str] = (),
    audit_keep: int = AUDIT_KEEP,
    auth_limiter: FailedAuthLimiter | None = None,
    dashboard: bool = True,
    session_secret: bytes | None = None,
    session_max_age: float = 8 * 3600,
) -> Starlette:
    """Tickr's HTTP API as an ASGI application.

    Args:
        url: Redis URL; default $TICKR_REDIS_URL, else ``redis://127.0.0.1:6379/0``.
        redis: An existing `redis.asyncio` client to use instead.
        namespace: The namespace of the queues.
        tokens: The accepted bearer tokens (or a `TokenStore`, to replace them later).
        read_only: Refuse every change (403).
        anonymous_scopes: The scopes of a request without a token (default: none, so
            it gets 401).  ``tickr web`` on a loopback address without tokens gives
            every scope.
        audit_keep: About how many audit entries to keep.
        auth_limiter: The brake on unknown tokens per client address (default 10 a
            minute, then 429 until the minute is over).
        dashboard: Serve the dashboard's pages at ``/`` (docs/dashboard.md).
        session_secret: The key (32 bytes or more) that signs the dashboard's session
            cookies; default a random one, so that sessions end with the process.  Give
            the same key to every process behind one address.
        session_max_age: Seconds a dashboard session lasts.

    Raises:
        TypeError, ValueError: For an invalid argument (as `Client`), a token that is
            not a `Token`, an unknown anonymous scope, or a session secret shorter
            than 32 bytes.
    """
    store = tokens if isinstance(tokens, TokenStore) else TokenStore(tokens)
    guard = Guard(
        store, anonymous_scopes=anonymous_scopes, read_only=read_only, limiter=auth_limiter
    )
    if not isinstance(audit_keep, int) or audit_keep < 1:
        raise ValueError(f"audit_keep must be a positive int, got {audit_keep!r}")
    tickr.Client(url, redis=redis, namespace=namespace)  # checks the arguments now
    ctx = Context(guard, audit_keep)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with (
            tickr.Client(url, redis=redis, namespace=namespace) as client,
            tickr.Inspector(url, redis=redis, namespace=namespace) as inspector,
        ):
            ctx.running_client, ctx.running_inspector = client, inspector
            try:
                yield
            finally:
                ctx.running_client = ctx.running_inspector = None

    table = _endpoints(ctx, service_routes.QueueReadings())

    async def openapi(request: Request) -> Response:
        root_path = str(request.scope.get("root_path", ""))
        return JSONResponse(document(table, version=tickr.__version__, root_path=root_path))

    routes: list[BaseRoute] = [_route(ctx, endpoint) for endpoint in table]
    routes.append(Route("/openapi.json", openapi, methods=["GET"], name="openapi"))
    if dashboard:
        from tickr.web import _dashboard

        keys = SessionKeys(session_secret, max_age=session_max_age)
        routes += _dashboard.routes(ctx, keys)
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.tickr_tokens = store
    return app
