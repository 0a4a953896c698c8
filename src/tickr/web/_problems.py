"""RFC 9457 problem documents: how every error of the HTTP API is answered."""

from __future__ import annotations

from typing import Any, Final

from starlette.responses import JSONResponse

__all__ = ["PROBLEM_TYPES", "Failure", "problem"]

PROBLEM_TYPES: Final = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    409: "conflict",
    413: "too-large",
    415: "unsupported-media-type",
    429: "too-many-requests",
    501: "not-implemented",
    500: "internal",
    503: "unavailable",
}
"""The status codes the API answers with a problem, and the last part of their type URI."""

_TITLES: Final = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    501: "Not Implemented",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem(
    status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """An ``application/problem+json`` response; `extra` members join the document."""
    body = {
        "type": f"https://tickr.dev/problems/{PROBLEM_TYPES.get(status, 'error')}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **extra,
    }
    answer_headers = dict(headers or {})
    if status == 401:
        answer_headers["WWW-Authenticate"] = 'Bearer realm="tickr"'
    return JSONResponse(body, status, headers=answer_headers, media_type="application/problem+json")


class Failure(Exception):
    """A problem to answer with, raised from inside a route (the app answers it)."""

    def __init__(self, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.response = problem(status, detail, **extra)
