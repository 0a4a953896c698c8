"""Who looks at the dashboard: sessions, the anonymous viewer, CSRF, forms and redirects."""

from __future__ import annotations

import hmac
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from tickr.web._auth import local_request
from tickr.web._context import Context
from tickr.web._dashboard.render import page
from tickr.web._dashboard.session import LOGIN_COOKIE, SESSION_COOKIE, SessionKeys
from tickr.web.tokens import Token

__all__ = ["Dashboard", "Form", "Shown", "Viewer"]

MAX_FORM_BYTES: Final = 256 * 1024
"""The largest form accepted (a bulk selection of a page of ids fits many times)."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who asks: the token, the CSRF token of their forms, and whether they logged in."""

    token: Token
    csrf: str
    logged_in: bool

    def can(self, scope: str, queue: str | None = None) -> bool:
        """Whether the token has `scope` (on `queue`)."""
        return self.token.allows(scope, queue)


class Shown(Exception):
    """A response to answer with at once (a redirect, an error page), from inside a view."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class Form:
    """A urlencoded form: single values and repeated ones."""

    def __init__(self, fields: Mapping[str, list[str]]) -> None:
        self._fields = fields

    def get(self, name: str, default: str = "") -> str:
        """The first value of a field."""
        values = self._fields.get(name)
        return values[0] if values else default

    def all(self, name: str) -> list[str]:
        """Every value of a repeated field (checkboxes)."""
        return list(self._fields.get(name, ()))


class Dashboard:
    """The dashboard's shared state and the checks every page and action makes.

    Args:
        ctx: The app's context (guard, Client, Inspector).
        keys: The session and CSRF keys.
    """

    def __init__(self, ctx: Context, keys: SessionKeys) -> None:
        self.ctx = ctx
        self.keys = keys

    @staticmethod
    def root(request: Request) -> str:
        """The path prefix the app is served under (behind a proxy, or mounted)."""
        return str(request.scope.get("root_path", "")).rstrip("/")

    def url(self, request: Request, path: str, **query: Any) -> str:
        """A path of the dashboard with the root prefix and a query string."""
        shown = {name: value for name, value in query.items() if value not in (None, "")}
        suffix = f"?{urllib.parse.urlencode(shown)}" if shown else ""
        return f"{self.root(request)}{path}{suffix}"

    def redirect(self, request: Request, path: str, **query: Any) -> RedirectResponse:
        """A 303 to a dashboard path (after a POST, the browser GETs it)."""
        return RedirectResponse(self.url(request, path, **query), 303)

    def error(self, request: Request, viewer: Viewer | None, status: int, message: str) -> Shown:
        """An error page to raise."""
        return Shown(self.render(request, viewer, "error.html", status, message=message))

    def render(
        self,
        request: Request,
        viewer: Viewer | None,
        template: str,
        status: int = 200,
        **context: Any,
    ) -> Response:
        """A page, with what every template needs (viewer, root, read-only flag)."""
        response = page(
            template,
            status,
            viewer=viewer,
            root=self.root(request),
            read_only=self.ctx.guard.read_only,
            notice=request.query_params.get("notice", ""),
            path=request.url.path,
            **context,
        )
        cookie = getattr(request.state, "tickr_login_cookie", None)
        if cookie is not None:
            self.set_cookie(request, response, LOGIN_COOKIE, cookie, 3600)
        return response

    def set_cookie(
        self, request: Request, response: Response, name: str, value: str, max_age: float
    ) -> None:
        """Set a cookie HttpOnly, SameSite=Strict, on the app's path; Secure over HTTPS."""
        response.set_cookie(
            name,
            value,
            max_age=int(max_age),
            path=self.root(request) or "/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )

    def viewer(
        self, request: Request, scope: str = "tasks:read", queue: str | None = None
    ) -> Viewer:
        """The viewer of a page: a session's token, or the anonymous one where allowed.

        Raises:
            Shown: A redirect to the login page without a session; 403 without the scope.
        """
        session = self.keys.open_session(request.cookies.get(SESSION_COOKIE), self.ctx.guard.tokens)
        if session is not None:
            viewer = Viewer(session.token, self.keys.csrf(session.nonce), True)
        elif self.ctx.guard.anonymous is not None:
            if not local_request(request):
                raise self.error(
                    request, None, 403, "Without a token, only this machine's own pages may look."
                )
            nonce = self.keys.open_login(request.cookies.get(LOGIN_COOKIE))
            if nonce is None:  # the forms of this page need a nonce: set one with it
                cookie, nonce = self.keys.login_nonce()
                request.state.tickr_login_cookie = cookie
            viewer = Viewer(self.ctx.guard.anonymous, self.keys.csrf(nonce), False)
        else:
            next_path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise Shown(self.redirect(request, "/login", next=next_path))
        if not viewer.can(scope, queue):
            where = f" on queue {queue!r}" if queue else ""
            raise self.error(request, viewer, 403, f"Your token lacks the {scope!r} scope{where}.")
        return viewer

    async def form(self, request: Request) -> Form:
        """The POSTed form (urlencoded).

        Raises:
            Shown: 413 for a form over MAX_FORM_BYTES.
        """
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise Shown(Response("form too large", 413))
        text = body.decode("utf-8", errors="replace")
        return Form(urllib.parse.parse_qs(text, keep_blank_values=True))

    def check_csrf(self, request: Request, viewer: Viewer, form: Form) -> None:
        """Refuse a form whose CSRF token is not the viewer's (constant time).

        Raises:
            Shown: 403 for a missing or wrong token.
        """
        presented = form.get("csrf").encode()
        if not viewer.csrf or not hmac.compare_digest(presented, viewer.csrf.encode()):
            raise self.error(
                request, viewer, 403, "The form's CSRF token is missing or stale: reload the page."
            )

    async def change(
        self, request: Request, scope: str, queue: str | None = None
    ) -> tuple[Viewer, Form]:
        """The viewer and form of an action, once its CSRF token, scope and mode are checked.

        Raises:
            Shown: As `viewer`; 403 for a missing or wrong CSRF token, or in read-only mode.
        """
        viewer = self.viewer(request, scope, queue)
        form = await self.form(request)
        self.check_csrf(request, viewer, form)
        if self.ctx.guard.read_only:
            raise self.error(request, viewer, 403, "The dashboard is read-only.")
        return viewer, form
