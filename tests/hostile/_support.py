"""Helpers of the hostile tests."""

from __future__ import annotations

import tickr
from tests.helpers import eventually


async def only_server(url: str, namespace: str) -> tickr.ServerInfo:
    """The one server registered in the namespace.

    Waits for it a little: with the hostile tests' fast heartbeats (a record lives 0.3 s),
    a machine busy enough to delay one heartbeat drops the record until the next.
    """
    found: list[tickr.ServerInfo] = []
    async with tickr.Inspector(url, namespace=namespace) as inspector:

        async def listed() -> bool:
            found[:] = await inspector.servers()
            return len(found) == 1

        await eventually(listed, timeout=10, interval=0.05)
    return found[0]
