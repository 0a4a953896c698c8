"""The dashboard's route table: its pages, its POST actions and its static files."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

import tickr
from tickr.web._context import Context
from tickr.web._dashboard import actions, pages
from tickr.web._dashboard.access import Dashboard, Shown
from tickr.web._dashboard.session import SessionKeys

__all__ = ["routes"]

View = Callable[[Dashboard, Request], Awaitable[Response]]


def _view(dash: Dashboard, view: View) -> Callable[[Request], Awaitable[Response]]:
    async def answer(request: Request) -> Response:
        try:
            return await view(dash, request)
        except Shown as shown:
            return shown.response
        except tickr.RedisUnavailable as exc:
            return dash.render(request, None, "error.html", 503, message=f"Redis: {exc}")
        except (tickr.QueueNotFound, tickr.TaskNotFound, tickr.EntryNotFound) as exc:
            return dash.render(request, None, "error.html", 404, message=f"{exc}.")
        except (TypeError, ValueError) as exc:
            return dash.render(request, None, "error.html", 400, message=f"Not done: {exc}.")

    return answer


def routes(ctx: Context, keys: SessionKeys) -> list[BaseRoute]:
    """The dashboard's routes, bound to the app's context."""
    dash = Dashboard(ctx, keys)
    bind = functools.partial(_view, dash)
    task = "/queues/{queue}/tasks/{task_id}"
    static = StaticFiles(directory=str(resources.files("tickr.web._dashboard") / "static"))
    return [
        Route("/", bind(pages.overview), methods=["GET"], name="dashboard"),
        Route("/login", bind(pages.login_form), methods=["GET"], name="login"),
        Route("/login", bind(actions.log_in), methods=["POST"]),
        Route("/logout", bind(actions.log_out), methods=["POST"], name="logout"),
        Route("/queues/{queue}", bind(pages.queue), methods=["GET"], name="queue_page"),
        Route("/queues/{queue}/pause", bind(actions.pause), methods=["POST"]),
        Route("/queues/{queue}/unpause", bind(actions.pause), methods=["POST"]),
        Route("/queues/{queue}/bulk", bind(actions.bulk), methods=["POST"]),
        Route("/queues/{queue}/limits", bind(actions.limits), methods=["POST"]),
        Route(task, bind(pages.task), methods=["GET"], name="task_page"),
        Route(task + "/{action}", bind(actions.task_action), methods=["POST"]),
        Route("/servers", bind(pages.servers), methods=["GET"], name="servers_page"),
        Route("/cron", bind(pages.cron), methods=["GET"], name="cron_page"),
        Route("/cron/{entry}/run", bind(actions.run_entry), methods=["POST"]),
        Route("/audit", bind(pages.audit), methods=["GET"], name="audit_page"),
        Route("/search", bind(pages.search), methods=["GET"], name="search"),
        Mount("/static", app=static, name="static"),
    ]
