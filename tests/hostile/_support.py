"""Helpers of the hostile tests."""

from __future__ import annotations

import tickr
from tests.helpers import eventually

FAST_RETRY = tickr.constant_delay(0.05)


async def wait_state(
    client: tickr.Client, task_id: str, state: str, queue: str = "default"
) -> tickr.TaskInfo:
    """Wait until the task reaches `state`; return it then."""

    async def reached() -> bool:
        try:
            return (await client.get_task(task_id, queue)).state == state
        except tickr.TaskNotFound:
            return False

    await eventually(reached)
    return await client.get_task(task_id, queue)


async def only_server(url: str, namespace: str) -> tickr.ServerInfo:
    """The one server registered in the namespace."""
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        [server] = await inspector.servers()
    return server
