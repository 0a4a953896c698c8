"""Tickr's HTTP API (extra ``web``: ``pip install 'tickr-queue[web]'``).

`create_app` returns an ASGI application (Starlette) that mounts in an existing
Starlette or FastAPI app; `Token` and `load_token_file` say who may call it.  See
docs/http-api.md.
"""

from __future__ import annotations

try:
    import starlette  # noqa: F401 - checked here, so that the error names the extra
except ImportError as exc:  # pragma: no cover - the extra is installed in the suite
    raise ImportError("tickr.web needs the 'web' extra: pip install 'tickr-queue[web]'") from exc

from tickr.web._auth import FailedAuthLimiter
from tickr.web._context import MAX_BODY_BYTES
from tickr.web._task_routes import MAX_RESULT_WAIT
from tickr.web.app import create_app
from tickr.web.tokens import SCOPES, Token, TokenStore, load_token_file

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_RESULT_WAIT",
    "SCOPES",
    "FailedAuthLimiter",
    "Token",
    "TokenStore",
    "create_app",
    "load_token_file",
]
