"""Writing the audit entry of a change asked through the app (API or dashboard)."""

from __future__ import annotations

import logging

from starlette.requests import Request

import tickr
from tickr.web._auth import client_address
from tickr.web._context import Context
from tickr.web.tokens import Token

__all__ = ["record"]

_logger = logging.getLogger("tickr.web")


async def record(
    ctx: Context,
    request: Request,
    token: Token,
    action: str,
    *,
    queue: str | None,
    task_id: str | None,
    status: int,
    detail: str = "",
) -> None:
    """Append the entry; a failure to write it is logged, never raised to the asker."""
    try:
        await ctx.inspector.record_audit(
            action,
            actor=token.name,
            address=client_address(request),
            queue=queue,
            task_id=task_id,
            status=status,
            detail=detail,
            keep=ctx.audit_keep,
        )
    except tickr.TickrError as exc:
        _logger.warning("could not write the audit entry of %s by %s: %s", action, token.name, exc)
