"""Helpers of the hostile tests."""

from __future__ import annotations

import tickr


async def only_server(url: str, namespace: str) -> tickr.ServerInfo:
    """The one server registered in the namespace."""
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        [server] = await inspector.servers()
    return server
