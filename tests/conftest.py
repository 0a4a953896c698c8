"""Fixtures shared by every test: a real redis-server, namespaces, clients and servers."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aredis

import tickr
from tests.helpers.redis_clients import TOPOLOGY_SCHEMES, raw_client

pytest_plugins = ["tickr.testing.pytest_plugin"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """In CI nothing skips: what a test needs, CI installs, so a skip there is a failure."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI, where nothing may skip: {reason}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a Cluster or Sentinel, leave out the tests that need one plain Redis."""
    topology = os.environ.get("TICKR_TEST_TOPOLOGY") or os.environ.get(
        "TICKR_TEST_REDIS_URL", ""
    ).startswith(TOPOLOGY_SCHEMES)
    if not topology:
        return
    kept = [
        item
        for item in items
        if item.get_closest_marker("single_redis") is None
        and item.get_closest_marker("own_topology") is None
    ]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


@pytest.fixture
def url(tickr_redis_url: str) -> str:
    return tickr_redis_url


@pytest.fixture
def namespace(tickr_namespace: str) -> str:
    return tickr_namespace


@pytest.fixture
async def client(url: str, namespace: str) -> AsyncIterator[tickr.Client]:
    async with tickr.Client(url, namespace=namespace) as client:
        yield client


@pytest.fixture
async def inspector(url: str, namespace: str) -> AsyncIterator[tickr.Inspector]:
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        yield inspector


@pytest.fixture
async def raw_redis(url: str) -> AsyncIterator[aredis.Redis]:
    """Direct access to Redis, for tests that inspect or damage stored state."""
    connection = raw_client(url)
    yield connection
    await connection.aclose()


ServerFactory = Callable[..., contextlib.AbstractAsyncContextManager[tickr.Server]]


@pytest.fixture
def running_server(url: str, namespace: str) -> ServerFactory:
    """`async with running_server(mux, **options) as server:` serves until the block ends."""

    @contextlib.asynccontextmanager
    async def run(
        handler: tickr.ServeMux | Callable[[tickr.Task], Awaitable[Any]], **options: Any
    ) -> AsyncIterator[tickr.Server]:
        options.setdefault("namespace", namespace)
        server = tickr.Server(url, **options)
        serving = asyncio.create_task(server.serve(handler))
        ready = asyncio.create_task(server.wait_ready())
        done, _ = await asyncio.wait({serving, ready}, return_when=asyncio.FIRST_COMPLETED)
        if serving in done:
            ready.cancel()
            serving.result()
        try:
            yield server
        finally:
            await server.shutdown()
            await serving

    return run
