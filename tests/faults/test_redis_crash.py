"""Redis killed with SIGKILL and restarted (AOF, fsync always) under load: nothing lost."""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest
import redis.asyncio as aredis
from redis.exceptions import RedisError

import tickr
from tests.faults._support import FaultWorker, done, queue_info
from tests.helpers import eventually
from tickr.testing import RedisServer

T = TypeVar("T")

TOTAL = 5000
CRASH_AFTER = (1500, 3500, TOTAL)
"""Redis is killed once this many enqueues were acknowledged (the last one while the
worker still drains the backlog)."""
DOWN_FOR = 0.5


@pytest.fixture
def crashable_redis() -> Iterator[RedisServer]:
    with RedisServer(appendonly=True) as server:
        yield server


async def _until_reachable(operation: Callable[[], Awaitable[T]]) -> T:
    """Run a read of the test's own bookkeeping; retry while Redis is down."""
    while True:
        try:
            return await operation()
        except (RedisError, OSError):
            await asyncio.sleep(0.05)


def _fresh_id() -> str:
    return uuid.uuid4().hex


async def test_every_acknowledged_enqueue_completes_across_redis_crashes(
    crashable_redis: RedisServer, namespace: str
) -> None:
    url = crashable_redis.url
    acknowledged: list[str] = []
    unknown: set[str] = set()  # ids of calls that raised: enqueued or not, nobody knows
    failures = 0
    crashes = 0

    async def produce() -> None:
        nonlocal failures
        async with tickr.Client(url, namespace=namespace) as client:
            batch_size = 0
            while len(acknowledged) < TOTAL:
                batch_size = batch_size % 20 + 1  # 1, 2, ... 20, 1, ...: single and many
                task_ids = [_fresh_id() for _ in range(batch_size)]
                try:
                    if batch_size == 1:
                        results: list[object] = [await client.enqueue("count", task_id=task_ids[0])]
                    else:
                        results = list(
                            await client.enqueue_many(
                                [tickr.TaskSpec("count", task_id=task_id) for task_id in task_ids]
                            )
                        )
                except tickr.RedisUnavailable:
                    failures += 1
                    unknown.update(task_ids)
                    await asyncio.sleep(0.02)
                    continue
                for result in results:
                    assert isinstance(result, tickr.TaskInfo), result
                    acknowledged.append(result.id)
                await asyncio.sleep(0.001)  # spread the production over the drain

    async def crash() -> None:
        nonlocal crashes
        for threshold in CRASH_AFTER:
            while len(acknowledged) < threshold:  # noqa: ASYNC110 - polls the producer's progress
                await asyncio.sleep(0.005)
            crashable_redis.kill()
            crashes += 1
            await asyncio.sleep(DOWN_FOR)
            await asyncio.to_thread(crashable_redis.start)

    worker = FaultWorker(
        url,
        namespace,
        "--concurrency", "10",
        "--sleep", "0.01",
        "--lease-duration", "3",
        "--heartbeat-interval", "0.5",
        "--retry-delay", "0.2",
    )  # fmt: skip
    counter = aredis.Redis.from_url(url)
    try:
        worker.wait_ready()
        begin = time.monotonic()
        await asyncio.wait_for(asyncio.gather(produce(), crash()), timeout=60)
        produced = time.monotonic() - begin
        wanted = set(acknowledged)
        backlog = len(wanted - set(await _until_reachable(lambda: done(counter, namespace))))

        async def all_done() -> bool:
            finished = await _until_reachable(lambda: done(counter, namespace))
            return wanted <= set(finished)

        await eventually(all_done, timeout=40, interval=0.1)
        drained = time.monotonic() - begin
        assert worker.process.poll() is None, "the worker survived the crashes"
        finished = await done(counter, namespace)
    finally:
        worker.signal()
        worker.wait()
        worker.stop()
        await counter.aclose()
    duplicates = sum(count - 1 for count in finished.values())
    print(
        f"\n{len(wanted)} acknowledged enqueues, {failures} enqueue calls failed during "
        f"{crashes} crashes ({backlog} tasks still to run at the last one); produced in "
        f"{produced:.1f}s, all done after {drained:.1f}s; {duplicates} duplicate executions; "
        f"{len(set(finished) & unknown)} of {len(unknown)} tasks of failed calls ran too"
    )
    assert len(wanted) == len(acknowledged) >= TOTAL, "no id acknowledged twice"
    assert failures > 0, "the crashes happened while enqueueing"
    assert wanted <= set(finished), "an acknowledged task was lost"
    assert set(finished) <= wanted | unknown, "only enqueued tasks ran"
    info = await queue_info(url, namespace)
    assert (info.pending, info.active, info.retry, info.scheduled) == (0, 0, 0, 0)
    assert info.archived == 0, "no task was given up"


async def test_clients_and_workers_ride_out_redis_loading_its_aof(namespace: str) -> None:
    """Redis answers LOADING for a while after a restart: a transient error, not a fault.

    The AOF gets an RDB base of 15,000 filler keys and redis-server a (hidden, test-only)
    per-key load delay, so that every restart loads for a second or more.
    """
    try:
        redis_server = RedisServer(appendonly=True, extra_args=["--key-load-delay", "100"])
        redis_server.start()
    except RuntimeError:
        pytest.skip("this redis-server has no key-load-delay setting")
    url = redis_server.url
    counter = aredis.Redis.from_url(url)
    worker: FaultWorker | None = None
    try:
        await counter.eval("for i = 1, 15000 do redis.call('SET', 'filler:' .. i, i) end", 0)
        await counter.bgrewriteaof()

        async def rewritten() -> bool:
            info = await counter.info("persistence")
            return not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]

        await asyncio.sleep(0.1)
        await eventually(rewritten)
        async with tickr.Client(url, namespace=namespace) as client:
            before = [
                info.id
                for info in await client.enqueue_many(
                    [tickr.TaskSpec("count") for _ in range(1000)]
                )
                if isinstance(info, tickr.TaskInfo)
            ]
            worker = FaultWorker(
                url, namespace, "--concurrency", "10", "--sleep", "0.01",
                "--lease-duration", "3", "--heartbeat-interval", "0.5",
            )  # fmt: skip
            worker.wait_ready()

            async def some_done() -> bool:
                return await counter.hlen(f"{namespace}:runs:done") >= 100

            await eventually(some_done, timeout=20)
            redis_server.kill()
            restarting = asyncio.create_task(asyncio.to_thread(redis_server.start))
            during: list[str] = []
            errors: dict[str, int] = {}
            begin = time.monotonic()
            while not restarting.done():
                try:
                    during.append((await client.enqueue("count")).id)
                except tickr.RedisUnavailable as exc:
                    errors[str(exc)[:60]] = errors.get(str(exc)[:60], 0) + 1
                await asyncio.sleep(0.05)
            await restarting
            print(
                f"\nRedis was back after {time.monotonic() - begin:.1f}s; "
                f"{len(during)} enqueues succeeded meanwhile; errors: {errors}"
            )
            assert await _until_reachable(lambda: counter.exists("filler:15000")), "AOF reloaded"
            after = (await client.enqueue("count")).id
        wanted = {*before, *during, after}

        async def all_done() -> bool:
            return wanted <= set(await _until_reachable(lambda: done(counter, namespace)))

        await eventually(all_done, timeout=30, interval=0.1)
        assert worker.process.poll() is None, "the worker survived"
        info = await queue_info(url, namespace)
        assert (info.pending, info.retry, info.archived) == (0, 0, 0)
    finally:
        if worker is not None:
            worker.signal()
            worker.wait()
            worker.stop()
        await counter.aclose()
        redis_server.stop()
