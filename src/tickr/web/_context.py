"""What every route shares: the guard, the app's Client and Inspector, the request body."""

from __future__ import annotations

import json
from typing import Any, Final

from starlette.requests import Request

import tickr
from tickr.web._auth import Guard
from tickr.web._problems import Failure

__all__ = ["MAX_BODY_BYTES", "Context"]

MAX_BODY_BYTES: Final = 1024 * 1024
"""The largest request body accepted (413 beyond)."""


class Context:
    """The routes' shared state; the Client and Inspector exist while the app runs.

    Args:
        guard: Who may do what.
        audit_keep: About how many audit entries to keep.
    """

    def __init__(self, guard: Guard, audit_keep: int) -> None:
        self.guard = guard
        self.audit_keep = audit_keep
        self.running_client: tickr.Client | None = None
        self.running_inspector: tickr.Inspector | None = None

    @property
    def client(self) -> tickr.Client:
        """The app's Client."""
        assert self.running_client is not None, "the app's lifespan has not started"
        return self.running_client

    @property
    def inspector(self) -> tickr.Inspector:
        """The app's Inspector."""
        assert self.running_inspector is not None, "the app's lifespan has not started"
        return self.running_inspector

    async def body(self, request: Request) -> dict[str, Any]:
        """The request's JSON object.

        Raises:
            Failure: 415 without a JSON Content-Type (which also keeps other sites'
                plain forms out), 413 for a body over MAX_BODY_BYTES, 400 for one that
                is not a JSON object.
        """
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json" and not kind.endswith("+json"):
            raise Failure(415, "the body must be JSON, sent as Content-Type: application/json")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise Failure(413, f"the body is over {MAX_BODY_BYTES} bytes")
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY_BYTES:
                raise Failure(413, f"the body is over {MAX_BODY_BYTES} bytes")
        try:
            document = json.loads(raw or b"null")
        except RecursionError:
            raise Failure(400, "the body nests too deep") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise Failure(400, f"the body is not JSON: {exc}") from None
        if not isinstance(document, dict):
            raise Failure(400, "the body must be a JSON object")
        return document
