"""Hooks (error_handler, retry_delay, health_check) that raise anything, and loops that die."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

import tickr
from tests.conftest import ServerFactory
from tests.helpers import FAST_RETRY, eventually, wait_state
from tests.hostile._support import only_server
from tickr._server.forwarder import Forwarder

FAST_BEATS: dict[str, Any] = {"lease_duration": 2.0, "heartbeat_interval": 0.1}


async def _flaky(task: tickr.Task) -> str:
    if task.retry_count == 0:
        raise ValueError("first attempt fails")
    return "ok"


@pytest.mark.parametrize("exit_kind", [SystemExit, KeyboardInterrupt])
async def test_an_error_handler_that_exits_is_logged_and_ignored(
    client: tickr.Client,
    running_server: ServerFactory,
    exit_kind: type[BaseException],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def error_handler(task: tickr.Task, exc: BaseException) -> None:
        raise exit_kind

    infos = [await client.enqueue("t", retention=60) for _ in range(3)]
    async with running_server(
        _flaky, concurrency=1, retry_delay=FAST_RETRY, error_handler=error_handler
    ):
        for info in infos:
            assert await client.result(info.id, timeout=10) == "ok"
    assert "error_handler raised" in caplog.text


async def test_an_async_error_handler_that_cancels_itself_is_ignored(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    async def error_handler(task: tickr.Task, exc: BaseException) -> None:
        raise asyncio.CancelledError

    infos = [await client.enqueue("t", retention=60) for _ in range(3)]
    async with running_server(
        _flaky, concurrency=1, retry_delay=FAST_RETRY, error_handler=error_handler
    ):
        for info in infos:
            assert await client.result(info.id, timeout=10) == "ok"


async def test_a_retry_delay_that_exits_falls_back_to_the_default(
    client: tickr.Client, running_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def retry_delay(retry_count: int, exc: BaseException, task: tickr.Task) -> float:
        raise SystemExit(1)

    info = await client.enqueue("t", max_retry=3)
    normal = await client.enqueue("normal", retention=60)

    async def handler(task: tickr.Task) -> str:
        if task.type == "t":
            raise ValueError("fails")
        return "ok"

    async with running_server(handler, concurrency=1, retry_delay=retry_delay):
        stored = await wait_state(client, info.id, "retry")
        assert stored.last_error == "ValueError: fails"
        assert await client.result(normal.id, timeout=10) == "ok"
    assert "retry_delay raised" in caplog.text


async def test_a_health_check_that_exits_leaves_the_heartbeat_beating(
    client: tickr.Client, running_server: ServerFactory, url: str, namespace: str
) -> None:
    calls: list[BaseException | None] = []

    def health_check(exc: BaseException | None) -> None:
        calls.append(exc)
        raise SystemExit(2)

    async def enough_beats() -> bool:
        return len(calls) >= 5

    async def echo(task: tickr.Task) -> Any:
        return task.payload

    async with running_server(echo, health_check=health_check, **FAST_BEATS):
        await eventually(enough_beats)
        info = await client.enqueue("t", "still serving", retention=60)
        assert await client.result(info.id, timeout=10) == "still serving"
        assert (await only_server(url, namespace)).restarts == {}
    assert calls[:5] == [None] * 5


async def test_a_loop_that_dies_is_logged_restarted_and_reported(
    client: tickr.Client,
    running_server: ServerFactory,
    url: str,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    original = Forwarder.run
    runs: list[int] = []

    async def dies_once(self: Forwarder) -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("a bug in the forwarder")
        await original(self)

    monkeypatch.setattr(Forwarder, "run", dies_once)
    reports: list[BaseException | None] = []

    async def restart_reported() -> bool:
        return any(isinstance(exc, tickr.TickrError) for exc in reports)

    async def echo(task: tickr.Task) -> Any:
        return task.payload

    async with running_server(echo, health_check=reports.append, **FAST_BEATS):
        info = await client.enqueue("t", "forwarded", delay=0.2, retention=60)
        assert await client.result(info.id, timeout=10) == "forwarded"
        await eventually(restart_reported)
        server = await only_server(url, namespace)
        assert server.restarts == {"forwarder": 1}
        assert server.workers_alive == server.concurrency
    [report] = [exc for exc in reports if exc is not None]
    assert "forwarder" in str(report)
    assert isinstance(report.__cause__, RuntimeError)
    [record] = [r for r in caplog.records if "restarting" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and "a bug in the forwarder" in str(record.exc_info[1])


async def test_a_loop_that_keeps_dying_shuts_the_server_down_and_says_why(
    client: tickr.Client, url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def always_dies(self: Forwarder) -> None:
        raise SystemExit("a forwarder that cannot run")

    from tickr._aio import Backoff

    monkeypatch.setattr(Forwarder, "run", always_dies)
    monkeypatch.setattr(Backoff, "START", 0.001)
    monkeypatch.setattr(Backoff, "CAP", 0.001)

    async def echo(task: tickr.Task) -> Any:
        return task.payload

    server = tickr.Server(url, namespace=namespace)
    with pytest.raises(tickr.TickrError, match="forwarder failed"):
        await asyncio.wait_for(server.serve(echo), 30)
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        assert await inspector.servers() == [], "it left the registry"
