"""Helpers shared by tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import tickr

FAST_RETRY = tickr.constant_delay(0.05)
"""A retry delay that keeps tests of retries short."""


async def eventually(
    condition: Callable[[], Awaitable[bool]], timeout: float = 10.0, interval: float = 0.01
) -> None:
    """Wait until `condition()` is true; fail the test after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not await condition():  # noqa: ASYNC110 - polls a condition, not an event
            await asyncio.sleep(interval)


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
