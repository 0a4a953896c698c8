"""Event-driven serving: no polling, prompt starts, due tasks moved on time, reconnects."""

import asyncio
import contextlib
import functools
import time

import pytest
import redis.asyncio as aredis

import tickr
from tests.conftest import ServerFactory
from tests.helpers import eventually
from tickr.testing import RedisServer

# An idle server's only periodic safety net looks again every 30 s; every timing below
# is far shorter, so a pass proves that the server was woken, not that it polled.
PROMPT = 2.0


def timing_handler() -> tuple[dict[object, float], tickr.Handler]:
    started: dict[object, float] = {}

    async def handler(task: tickr.Task) -> None:
        started[task.payload] = time.monotonic()

    return started, handler


async def test_a_task_enqueued_to_an_idle_server_starts_at_once(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    started, handler = timing_handler()
    async with running_server(handler):
        await asyncio.sleep(0.2)  # let the fetcher find the queue empty and go idle
        for n in range(5):
            enqueued = time.monotonic()
            await client.enqueue("t", n)
            await eventually(functools.partial(_has, started, n), timeout=PROMPT)
            assert started[n] - enqueued < PROMPT
            await asyncio.sleep(0.05)


async def _has(mapping: dict[object, float], key: object) -> bool:
    return key in mapping


async def test_delayed_tasks_run_when_due(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    started, handler = timing_handler()
    async with running_server(handler):
        await asyncio.sleep(0.1)
        enqueued = time.monotonic()
        await client.enqueue("t", "late", delay=0.4)
        await client.enqueue("t", "later", delay=0.8)
        await eventually(lambda: _has(started, "later"), timeout=PROMPT + 1)
    assert 0.35 <= started["late"] - enqueued < PROMPT
    assert 0.75 <= started["later"] - enqueued < PROMPT + 0.5


async def test_an_earlier_task_wakes_a_forwarder_sleeping_on_a_later_one(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    started, handler = timing_handler()
    async with running_server(handler):
        await client.enqueue("t", "far", delay=20)
        await asyncio.sleep(0.2)  # the forwarder now sleeps until the far task
        enqueued = time.monotonic()
        await client.enqueue("t", "near", delay=0.2)
        await eventually(lambda: _has(started, "near"), timeout=PROMPT)
    assert started["near"] - enqueued < PROMPT
    assert "far" not in started


async def test_retries_are_moved_when_due(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    attempts: list[float] = []

    async def flaky(task: tickr.Task) -> None:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")

    await client.enqueue("t", max_retry=1)
    async with running_server(flaky, retry_delay=tickr.constant_delay(0.3)):
        await eventually(lambda: _size(attempts, 2), timeout=PROMPT + 1)
    assert 0.25 <= attempts[1] - attempts[0] < PROMPT


async def _size(items: list[float], size: int) -> bool:
    return len(items) >= size


async def test_every_overdue_task_runs_at_once_after_downtime(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    started, handler = timing_handler()
    await client.enqueue_many([tickr.TaskSpec("t", n, delay=0.05) for n in range(2500)])
    await asyncio.sleep(0.2)  # all are overdue now, and no server ran meanwhile
    begin = time.monotonic()
    async with running_server(handler, concurrency=50):
        await eventually(lambda: _count(started, 2500), timeout=30)
    assert max(started.values()) - begin < 30


async def _count(mapping: dict[object, float], size: int) -> bool:
    return len(mapping) >= size


@pytest.mark.single_redis
async def test_an_idle_server_sends_redis_almost_nothing(
    url: str, raw_redis: aredis.Redis, running_server: ServerFactory
) -> None:
    async def handler(task: tickr.Task) -> None:
        return None

    async with running_server(handler, queues={"a": 1, "b": 2}):
        await asyncio.sleep(0.5)
        sent = await commands_sent_by_clients(raw_redis, seconds=3.0)
    # With default settings there is only the heartbeat (a recovery check per queue) and,
    # every 5 s, the renewed BLPOP that waits for handed tasks.
    assert len(sent) / 3.0 <= 3, sent


async def commands_sent_by_clients(raw_redis: aredis.Redis, seconds: float) -> list[str]:
    """Commands clients send to Redis meanwhile (not those run inside scripts)."""
    sent: list[str] = []

    async def watch() -> None:
        async with raw_redis.monitor() as monitor:
            async for event in monitor.listen():
                if event.get("client_type") != "lua":
                    sent.append(str(event.get("command")))

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(seconds)
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    return sent


@pytest.mark.single_redis
async def test_killed_connections_are_reestablished(
    client: tickr.Client, raw_redis: aredis.Redis, running_server: ServerFactory
) -> None:
    started, handler = timing_handler()
    async with running_server(handler):
        await asyncio.sleep(0.2)
        await raw_redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        await raw_redis.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        await asyncio.sleep(0.3)
        await client.enqueue("t", "after-kill")
        await eventually(lambda: _has(started, "after-kill"), timeout=5)


async def test_the_server_survives_a_redis_restart(namespace: str) -> None:
    started, handler = timing_handler()
    with RedisServer() as redis_server:
        server = tickr.Server(redis_server.url, namespace=namespace)
        serving = asyncio.create_task(server.serve(handler))
        await server.wait_ready()
        redis_server.kill()
        await asyncio.sleep(1.0)  # the server retries with backoff meanwhile
        redis_server.start()
        async with tickr.Client(redis_server.url, namespace=namespace) as client:
            await client.enqueue("t", "after-restart")
            await eventually(lambda: _has(started, "after-restart"), timeout=10)
        await server.shutdown()
        await serving


async def test_health_check_reports_errors_and_recovery(namespace: str) -> None:
    reports: list[BaseException | None] = []

    async def handler(task: tickr.Task) -> None:
        return None

    with RedisServer() as redis_server:
        server = tickr.Server(
            redis_server.url,
            namespace=namespace,
            health_check=reports.append,
            lease_duration=1.0,
            heartbeat_interval=0.2,
        )
        serving = asyncio.create_task(server.serve(handler))
        await server.wait_ready()
        async with tickr.Client(redis_server.url, namespace=namespace) as client:
            await client.enqueue("t", delay=60)  # a scheduled task keeps the forwarder busy
        await eventually(lambda: _reported(reports, None))
        redis_server.kill()
        await eventually(lambda: _reported(reports, tickr.RedisUnavailable), timeout=10)
        redis_server.start()
        reports.clear()
        await eventually(lambda: _reported(reports, None), timeout=10)
        await server.shutdown()
        await serving


async def _reported(reports: list[BaseException | None], kind: type[BaseException] | None) -> bool:
    if kind is None:
        return None in reports
    return any(isinstance(report, kind) for report in reports)


@pytest.mark.parametrize("unix_socket", [True])
async def test_unix_socket_urls_work(unix_socket: bool, namespace: str) -> None:
    started, handler = timing_handler()
    with RedisServer(unix_socket=unix_socket) as redis_server:
        assert redis_server.url.startswith("unix://")
        server = tickr.Server(redis_server.url, namespace=namespace)
        serving = asyncio.create_task(server.serve(handler))
        await server.wait_ready()
        async with tickr.Client(redis_server.url, namespace=namespace) as client:
            await client.enqueue("t", "over-unix")
            await eventually(lambda: _has(started, "over-unix"))
        await server.shutdown()
        await serving
