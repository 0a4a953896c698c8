"""A handler that blocks the event loop past its lease keeps its task: no second run."""

import asyncio

import redis.asyncio as aredis

import tickr
from tests.conftest import ServerFactory
from tests.helpers import eventually
from tests.helpers.processes import WorkerProcess


async def test_a_loop_blocked_longer_than_the_lease_runs_its_task_exactly_once(
    client: tickr.Client,
    raw_redis: aredis.Redis,
    url: str,
    namespace: str,
    running_server: ServerFactory,
) -> None:
    worker = WorkerProcess(
        url, namespace, "--lease-duration", "1.0", "--heartbeat-interval", "0.25"
    )
    try:
        worker.wait_ready()
        blocker = await client.enqueue("block", 3.5)  # 3.5 lease durations

        async def never(task: tickr.Task) -> None:
            raise AssertionError("the blocked task must not be recovered and run here")

        # A second server keeps looking for expired leases all along.
        async with running_server(never, lease_duration=1.0, heartbeat_interval=0.1):

            async def done() -> bool:
                return await raw_redis.hget(f"{namespace}:runs:done", blocker.id) == b"1"

            await eventually(done, timeout=20)
            await asyncio.sleep(0.5)
        warning = worker.wait_for_line("event loop has been blocked")
    finally:
        worker.signal()
        worker.wait()
        worker.stop()
    assert await raw_redis.hget(f"{namespace}:runs", blocker.id) == b"1"
    assert blocker.id in warning and "block" in warning
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        info = await inspector.queue_info("default")
    assert (info.processed, info.failed, info.active) == (1, 0, 0)


async def test_a_task_handed_to_a_blocked_loop_is_kept_and_runs_once(
    client: tickr.Client,
    raw_redis: aredis.Redis,
    url: str,
    namespace: str,
    running_server: ServerFactory,
) -> None:
    """A task handed over while the loop is blocked waits in a reply the loop cannot
    read; the lease thread must keep its lease, or another server runs it too."""
    worker = WorkerProcess(
        url, namespace, "--lease-duration", "1.0", "--heartbeat-interval", "0.25"
    )
    try:
        worker.wait_ready()
        blocker = await client.enqueue("block", 3.5)

        async def started() -> bool:
            return await raw_redis.hget(f"{namespace}:runs", blocker.id) == b"1"

        await eventually(started, timeout=10)
        await asyncio.sleep(0.2)  # blocked now, and registered as a waiter before that
        handed = await client.enqueue("count", 0)
        ran_elsewhere: list[str] = []

        async def elsewhere(task: tickr.Task) -> None:
            ran_elsewhere.append(task.id)

        async with running_server(elsewhere, lease_duration=1.0, heartbeat_interval=0.1):

            async def both_done() -> bool:
                done = await raw_redis.hgetall(f"{namespace}:runs:done")
                return {blocker.id.encode(), handed.id.encode()} <= set(done)

            await eventually(both_done, timeout=20)
            await asyncio.sleep(0.5)
    finally:
        worker.signal()
        worker.wait()
        worker.stop()
    assert ran_elsewhere == []
    assert await raw_redis.hget(f"{namespace}:runs", handed.id) == b"1"
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        info = await inspector.queue_info("default")
    assert (info.processed, info.failed, info.active) == (2, 0, 0), "no attempt was lost"
