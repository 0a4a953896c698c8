"""A worker killed with SIGKILL loses nothing: another worker runs its tasks again."""

import signal
import time

import redis.asyncio as aredis

import tickr
from tests.helpers import eventually
from tests.helpers.processes import WorkerProcess


async def test_sigkill_mid_task_with_a_hundred_tasks_in_flight(
    client: tickr.Client, raw_redis: aredis.Redis, url: str, namespace: str
) -> None:
    results = await client.enqueue_many([tickr.TaskSpec("count", 30) for _ in range(100)])
    ids = {result.id for result in results if isinstance(result, tickr.TaskInfo)}
    victim = WorkerProcess(url, namespace, "--concurrency", "100")
    try:
        victim.wait_ready()

        async def all_started() -> bool:
            return await raw_redis.hlen(f"{namespace}:runs") == 100

        await eventually(all_started, timeout=20)
        victim.signal(signal.SIGKILL)
        victim.wait()
        killed_at = time.monotonic()
    finally:
        victim.stop()

    survivor = WorkerProcess(url, namespace, "--concurrency", "100")
    try:
        survivor.wait_ready()

        async def all_done() -> bool:
            return await raw_redis.hlen(f"{namespace}:runs:done") == 100

        await eventually(all_done, timeout=30)
        recovery = time.monotonic() - killed_at
    finally:
        survivor.signal(signal.SIGTERM)
        survivor.wait()
        survivor.stop()
    print(f"\nrecovered 100 tasks of a SIGKILLed worker in {recovery:.2f}s")
    done = await raw_redis.hgetall(f"{namespace}:runs:done")
    assert {key.decode() if isinstance(key, bytes) else key for key in done} == ids
    assert {int(value) for value in done.values()} == {1}
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        info = await inspector.queue_info("default")
    assert (info.pending, info.active, info.retry) == (0, 0, 0)
    assert (info.processed, info.failed) == (200, 100), "each lost attempt counted once"
