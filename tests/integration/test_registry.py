"""Running servers record themselves; Redis settings that endanger tasks are warned about."""

import asyncio
import logging
import os
import socket

import pytest
import redis.asyncio as aredis
from redis.asyncio.connection import Connection, ConnectionPool

import tickr
from tests.conftest import ServerFactory
from tests.helpers import eventually
from tickr.testing import RedisServer


async def test_a_running_server_is_listed_with_its_active_tasks(
    client: tickr.Client, url: str, namespace: str, running_server: ServerFactory
) -> None:
    release = asyncio.Event()

    async def slow(task: tickr.Task) -> None:
        await release.wait()

    info = await client.enqueue("t", queue="critical")
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        options = {"queues": {"critical": 6, "default": 1}, "concurrency": 7}
        async with running_server(slow, heartbeat_interval=0.1, **options) as server:

            async def listed_with_task() -> bool:
                servers = await inspector.servers()
                return len(servers) == 1 and bool(servers[0].active_tasks)

            await eventually(listed_with_task)
            [listed] = await inspector.servers()
            release.set()
        assert (listed.id, listed.host, listed.pid) == (
            server.id,
            socket.gethostname(),
            os.getpid(),
        )
        assert (listed.queues, listed.concurrency, listed.strict_priority) == (
            {"critical": 6, "default": 1},
            7,
            False,
        )
        assert listed.active_tasks == [("critical", info.id)]
        assert await inspector.servers() == [], "a server removes itself on shutdown"


async def test_a_dead_server_drops_out_of_the_registry(url: str, namespace: str) -> None:
    async def handler(task: tickr.Task) -> None:
        return None

    server = tickr.Server(url, namespace=namespace, lease_duration=1, heartbeat_interval=0.1)
    serving = asyncio.create_task(server.serve(handler))
    await server.wait_ready()
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        await eventually(lambda: _count(inspector, 1))
        # Kill the server's loops without a graceful shutdown, as a crash would.
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        await eventually(lambda: _count(inspector, 0), timeout=5)


async def _count(inspector: tickr.Inspector, count: int) -> bool:
    return len(await inspector.servers()) == count


async def test_risky_redis_settings_are_warned_about_at_start(
    namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(task: tickr.Task) -> None:
        return None

    risky = RedisServer(extra_args=["--maxmemory-policy", "allkeys-lru"])
    with risky as redis_server, caplog.at_level(logging.WARNING, logger="tickr"):
        server = tickr.Server(redis_server.url, namespace=namespace)
        serving = asyncio.create_task(server.serve(handler))
        await server.wait_ready()
        await server.shutdown()
        await serving
    messages = [record.getMessage() for record in caplog.records]
    assert any("maxmemory-policy is allkeys-lru" in message for message in messages)
    assert any("persistence is off" in message for message in messages)


async def test_a_safe_redis_gets_no_warning(
    namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(task: tickr.Task) -> None:
        return None

    safe = RedisServer(appendonly=True)
    with safe as redis_server, caplog.at_level(logging.WARNING, logger="tickr"):
        server = tickr.Server(redis_server.url, namespace=namespace)
        serving = asyncio.create_task(server.serve(handler))
        await server.wait_ready()
        await server.shutdown()
        await serving
    assert not [record for record in caplog.records if "Redis" in record.getMessage()]


class _OwnConnection(Connection):
    """A connection class Tickr cannot reproduce: the client is used as given."""


async def test_risky_settings_are_warned_about_through_a_client_used_as_given(
    namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """redis-py parses INFO into a dict: the checks read that too, not only raw text."""

    async def handler(task: tickr.Task) -> None:
        return None

    risky = RedisServer(extra_args=["--maxmemory-policy", "allkeys-lru"])
    with risky as redis_server, caplog.at_level(logging.INFO, logger="tickr"):
        pool = ConnectionPool(connection_class=_OwnConnection, port=redis_server.port)
        given = aredis.Redis(connection_pool=pool)
        try:
            server = tickr.Server(redis=given, namespace=namespace)
            serving = asyncio.create_task(server.serve(handler))
            await server.wait_ready()
            await server.shutdown()
            await serving
        finally:
            await given.aclose()
            await pool.disconnect()
    messages = [record.getMessage() for record in caplog.records]
    assert not any("could not read Redis' settings" in message for message in messages)
    assert any("maxmemory-policy is allkeys-lru" in message for message in messages)
    assert any("persistence is off" in message for message in messages)
