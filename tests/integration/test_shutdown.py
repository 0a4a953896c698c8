"""Graceful shutdown: finish what is quick, hand back the rest at once, never lose a task."""

import asyncio
import logging
import signal
import time

import pytest
import redis.asyncio as aredis

import tickr
from tests.conftest import ServerFactory
from tests.helpers import eventually
from tests.helpers.processes import WorkerProcess


async def test_quick_tasks_finish_and_slow_ones_are_pending_again_at_once(
    client: tickr.Client, running_server: ServerFactory, url: str, namespace: str
) -> None:
    started: set[str] = set()
    finished: list[str] = []

    async def handler(task: tickr.Task) -> None:
        started.add(task.payload)
        await asyncio.sleep(0.2 if task.payload == "quick" else 30)
        finished.append(task.payload)

    quick = await client.enqueue("t", "quick", retention=60)
    slow = await client.enqueue("t", "slow", retention=60)
    async with running_server(handler, shutdown_timeout=0.5) as server:
        await eventually(lambda: _contains(started, {"quick", "slow"}))
        begin = time.monotonic()
        await server.shutdown()
        assert time.monotonic() - begin < 3
    assert finished == ["quick"]
    assert (await client.get_task(quick.id)).state == "completed"
    requeued = await client.get_task(slow.id)
    assert requeued.state == "pending"
    assert requeued.retried == 0 and requeued.last_error is None, "a requeue is not a failure"

    async def fast(task: tickr.Task) -> str:
        return f"{task.payload} ran again"

    async with running_server(fast):
        assert await client.result(slow.id, timeout=10) == "slow ran again"
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        info = await inspector.queue_info("default")
    assert (info.processed, info.failed) == (2, 0)


async def _contains(items: set[str], wanted: set[str]) -> bool:
    return wanted <= items


async def test_requeued_tasks_go_back_to_the_front(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    started = asyncio.Event()

    async def stuck(task: tickr.Task) -> None:
        started.set()
        await asyncio.sleep(30)

    first = await client.enqueue("t", "first")
    async with running_server(stuck, concurrency=1, shutdown_timeout=0.1):
        await started.wait()
        for n in range(3):
            await client.enqueue("t", n)
    order: list[object] = []

    async def record(task: tickr.Task) -> None:
        order.append(task.payload)

    async with running_server(record, concurrency=1):
        await eventually(lambda: _length(order, 4))
    assert order == ["first", 0, 1, 2]
    assert first.id


async def _length(items: list[object], size: int) -> bool:
    return len(items) >= size


async def test_fetched_but_unstarted_tasks_are_requeued_without_waiting(
    client: tickr.Client, running_server: ServerFactory, url: str, namespace: str
) -> None:
    release = asyncio.Event()

    async def blocked(task: tickr.Task) -> None:
        await release.wait()

    await client.enqueue_many([tickr.TaskSpec("t", n) for n in range(20)])
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        async with running_server(blocked, concurrency=5, shutdown_timeout=5) as server:
            await eventually(lambda: _active(inspector, 5))
            stopping = asyncio.create_task(server.shutdown())
            await asyncio.sleep(0.3)
            info = await inspector.queue_info("default")
            assert (info.pending, info.active) == (15, 5), "waiting tasks go back at once"
            release.set()
            await stopping
        info = await inspector.queue_info("default")
    assert (info.pending, info.active, info.processed) == (15, 0, 5)


async def _active(inspector: tickr.Inspector, count: int) -> bool:
    return (await inspector.queue_info("default")).active == count


async def test_cancelling_serve_requeues_running_tasks_and_propagates(
    client: tickr.Client, url: str, namespace: str
) -> None:
    started = asyncio.Event()

    async def stuck(task: tickr.Task) -> None:
        started.set()
        await asyncio.sleep(30)

    info = await client.enqueue("t")
    server = tickr.Server(url, namespace=namespace, shutdown_timeout=30)
    serving = asyncio.create_task(server.serve(stuck))
    await asyncio.wait_for(started.wait(), 10)
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving
    assert (await client.get_task(info.id)).state == "pending"


async def test_shutdown_while_redis_is_unreachable_returns(namespace: str) -> None:
    async def handler(task: tickr.Task) -> None:
        return None

    server = tickr.Server("redis://127.0.0.1:1/0", namespace=namespace)
    serving = asyncio.create_task(server.serve(handler))
    await asyncio.sleep(0.3)
    with pytest.raises(RuntimeError, match="before it was ready"):
        await asyncio.gather(server.wait_ready(), server.shutdown())
    await serving


async def test_sigterm_stops_run_gracefully(
    client: tickr.Client, raw_redis: aredis.Redis, url: str, namespace: str
) -> None:
    worker = WorkerProcess(url, namespace, "--shutdown-timeout", "5", "--concurrency", "2")
    try:
        worker.wait_ready()
        quick = await client.enqueue("count", 0.3)
        await eventually(lambda: _started(raw_redis, namespace, quick.id))
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
    finally:
        worker.stop()
    assert await raw_redis.hget(f"{namespace}:runs:done", quick.id) == b"1"
    assert any("shutting down gracefully" in line for line in worker.lines)


async def test_a_second_signal_requeues_running_tasks_at_once(
    client: tickr.Client, raw_redis: aredis.Redis, url: str, namespace: str
) -> None:
    worker = WorkerProcess(url, namespace, "--shutdown-timeout", "60")
    try:
        worker.wait_ready()
        slow = await client.enqueue("count", 60)
        await eventually(lambda: _started(raw_redis, namespace, slow.id))
        worker.signal(signal.SIGINT)
        worker.wait_for_line("shutting down gracefully")
        begin = time.monotonic()
        worker.signal(signal.SIGINT)
        assert worker.wait() == 0
        assert time.monotonic() - begin < 10
    finally:
        worker.stop()
    assert (await client.get_task(slow.id)).state == "pending"


async def _started(raw_redis: aredis.Redis, namespace: str, task_id: str) -> bool:
    return await raw_redis.hget(f"{namespace}:runs", task_id) is not None


async def test_a_handler_past_the_shutdown_timeout_is_stopped_with_its_task_requeued_once(
    client: tickr.Client, running_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    started = asyncio.Event()
    cancelled: list[str] = []

    async def handler(task: tickr.Task) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(task.id)
            raise

    info = await client.enqueue("t", "slow", retention=60)
    with caplog.at_level(logging.INFO, logger="tickr"):
        async with running_server(handler, shutdown_timeout=0.3) as server:
            async with asyncio.timeout(10):
                await started.wait()
            await server.shutdown()
    assert cancelled == [info.id]
    messages = [record.getMessage() for record in caplog.records]
    assert not [m for m in messages if "ignore" in m], "the handler did not ignore anything"
    assert [m for m in messages if "still running at shutdown" in m] == [
        f"task {info.id} in 'default' still running at shutdown: requeued"
    ]
    requeued = await client.get_task(info.id)
    assert (requeued.state, requeued.retried, requeued.last_error) == ("pending", 0, None)
