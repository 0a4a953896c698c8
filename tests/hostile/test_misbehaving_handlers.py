"""Handlers that cancel themselves, swallow cancellations, block the loop or exit."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import tickr
from tests.conftest import ServerFactory
from tests.helpers import FAST_RETRY, wait_state
from tests.hostile._support import only_server


async def test_a_handler_that_cancels_itself_fails_and_every_worker_survives(
    client: tickr.Client, running_server: ServerFactory, url: str, namespace: str
) -> None:
    async def handler(task: tickr.Task) -> str:
        if task.type == "self-cancel":
            current = asyncio.current_task()
            assert current is not None
            current.cancel()
            await asyncio.sleep(30)
        return "ok"

    cancelling = [await client.enqueue("self-cancel", max_retry=1) for _ in range(5)]
    normal = [await client.enqueue("normal", retention=60) for _ in range(10)]
    async with running_server(handler, concurrency=2, retry_delay=FAST_RETRY):
        for info in normal:
            assert await client.result(info.id, timeout=10) == "ok"
        for info in cancelling:
            stored = await wait_state(client, info.id, "archived")
            assert (stored.retried, stored.last_error) == (1, "CancelledError")
        server = await only_server(url, namespace)
        assert server.workers_alive == 2
        assert server.restarts == {}


async def test_a_handler_that_returns_after_cancelling_itself_completes(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    async def handler(task: tickr.Task) -> str:
        if task.type == "cancel-and-return":
            current = asyncio.current_task()
            assert current is not None
            current.cancel()  # never awaited afterwards: the worker must not inherit it
        return "ok"

    first = await client.enqueue("cancel-and-return", retention=60)
    after = [await client.enqueue("normal", retention=60) for _ in range(3)]
    async with running_server(handler, concurrency=1):
        assert await client.result(first.id, timeout=10) == "ok"
        for info in after:
            assert await client.result(info.id, timeout=10) == "ok"


async def test_a_handler_that_swallowed_a_cancellation_then_overruns_its_timeout(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    async def handler(task: tickr.Task) -> str:
        if task.type == "stubborn":
            # A hand-rolled timeout that cancels the task and never uncancels it.
            current = asyncio.current_task()
            assert current is not None
            asyncio.get_running_loop().call_later(0.01, current.cancel)
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(30)
            await asyncio.sleep(30)  # now past the task's own timeout
        return "ok"

    stubborn = await client.enqueue("stubborn", timeout=0.3, max_retry=0)
    after = [await client.enqueue("normal", retention=60) for _ in range(3)]
    async with running_server(handler, concurrency=1):
        stored = await wait_state(client, stubborn.id, "archived")
        assert stored.last_error == "TimeoutError: timed out after 0.3s"
        for info in after:
            assert await client.result(info.id, timeout=10) == "ok"


async def test_exits_from_tasks_a_handler_started_fail_the_attempt(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    async def exits() -> None:
        raise SystemExit(3)

    async def interrupts() -> None:
        raise KeyboardInterrupt

    async def handler(task: tickr.Task) -> str:
        if task.type == "awaited-exit":
            await asyncio.create_task(exits())
        elif task.type == "forgotten-interrupt":
            asyncio.create_task(interrupts())  # noqa: RUF006 - deliberately never awaited
            await asyncio.sleep(0.1)
        return "ok"

    awaited = await client.enqueue("awaited-exit", max_retry=0)
    forgotten = await client.enqueue("forgotten-interrupt", max_retry=0)
    normal = await client.enqueue("normal", retention=60)
    async with running_server(handler, concurrency=1):
        assert (await wait_state(client, awaited.id, "archived")).last_error == "SystemExit: 3"
        assert (
            await wait_state(client, forgotten.id, "archived")
        ).last_error == "KeyboardInterrupt"
        assert await client.result(normal.id, timeout=10) == "ok"


async def test_a_handler_that_blocks_the_loop_past_its_timeout_failed_that_attempt(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    attempts: list[int] = []

    async def handler(task: tickr.Task) -> str:
        attempts.append(task.retry_count)
        if task.retry_count == 0:
            time.sleep(0.5)  # noqa: ASYNC251 - blocks the event loop on purpose
        return "ok"

    info = await client.enqueue("t", timeout=0.2, max_retry=1, retention=60)
    async with running_server(handler, retry_delay=FAST_RETRY):
        assert await client.result(info.id, timeout=10) == "ok"
    assert attempts == [0, 1]
    stored = await client.get_task(info.id)
    assert (stored.retried, stored.last_error) == (1, "TimeoutError: timed out after 0.2s")


async def test_a_handler_that_blocks_the_loop_past_its_deadline_is_archived(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    ran: list[str] = []

    async def handler(task: tickr.Task) -> Any:
        ran.append(task.id)
        time.sleep(0.5)  # noqa: ASYNC251 - blocks the event loop on purpose
        return "ok"

    async with running_server(handler, retry_delay=FAST_RETRY):
        deadline = datetime.now(UTC) + timedelta(seconds=0.3)
        info = await client.enqueue("t", deadline=deadline, max_retry=5)
        stored = await wait_state(client, info.id, "archived")
    assert ran == [info.id], "it ran once, and was not refused at its start"
    assert (stored.retried, stored.last_error) == (0, "TimeoutError: deadline exceeded")
