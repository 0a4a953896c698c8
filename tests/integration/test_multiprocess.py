"""Several server processes share queues: every task runs exactly once."""

import redis.asyncio as aredis

import tickr
from tests.helpers.processes import WorkerProcess


async def test_three_processes_drain_five_thousand_tasks_each_exactly_once(
    client: tickr.Client, raw_redis: aredis.Redis, url: str, namespace: str
) -> None:
    results = await client.enqueue_many([tickr.TaskSpec("count", None) for _ in range(5000)])
    ids = {result.id for result in results if isinstance(result, tickr.TaskInfo)}
    assert len(ids) == 5000
    workers = [WorkerProcess(url, namespace, "--burst", "--concurrency", "20") for _ in range(3)]
    try:
        codes = [worker.wait(timeout=120) for worker in workers]
    finally:
        for worker in workers:
            worker.stop()
    assert codes == [0, 0, 0], [worker.lines[-5:] for worker in workers]
    stored = await raw_redis.hgetall(f"{namespace}:runs")
    runs = {
        key.decode() if isinstance(key, bytes) else key: int(value) for key, value in stored.items()
    }
    assert set(runs) == ids
    assert set(runs.values()) == {1}, "a task ran more than once"
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        info = await inspector.queue_info("default")
    assert (info.pending, info.active, info.processed, info.failed) == (0, 0, 5000, 0)
