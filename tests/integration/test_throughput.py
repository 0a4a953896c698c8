"""Per-minute counters: written by the scripts that record outcomes, read as throughput."""

import itertools
from datetime import UTC, timedelta

import pytest
import redis.asyncio as aredis

import tickr
from tests.conftest import ServerFactory
from tests.helpers import FAST_RETRY, eventually
from tests.integration.test_recovery import FAST, take_as_ghost
from tickr._broker.keys import QueueKeys


async def test_throughput_counts_every_attempt_by_minute(
    client: tickr.Client, inspector: tickr.Inspector, running_server: ServerFactory
) -> None:
    async def handler(task: tickr.Task) -> None:
        if task.payload == "bad" and task.retry_count == 0:
            raise ValueError("once")

    await client.enqueue_many([tickr.TaskSpec("t", n) for n in range(5)])
    await client.enqueue("t", "bad")
    async with running_server(handler, retry_delay=FAST_RETRY):

        async def done() -> bool:
            return (await inspector.queue_info("default")).processed == 7

        await eventually(done)
    minutes = await inspector.throughput("default", minutes=10)
    assert len(minutes) == 10
    assert sum(m.processed for m in minutes) == 7, "6 tasks, one of them twice"
    assert sum(m.failed for m in minutes) == 1
    starts = [m.minute for m in minutes]
    assert all(b - a == timedelta(minutes=1) for a, b in itertools.pairwise(starts))
    assert all(m.minute.tzinfo == UTC and m.minute.second == 0 for m in minutes)
    assert {m.queue for m in minutes} == {"default"}


async def test_a_recovered_attempt_counts_as_processed_and_failed(
    client: tickr.Client,
    inspector: tickr.Inspector,
    raw_redis: aredis.Redis,
    namespace: str,
    running_server: ServerFactory,
) -> None:
    info = await client.enqueue("t", retention=60)
    assert await take_as_ghost(raw_redis, namespace, 1) == [info.id]

    async def handler(task: tickr.Task) -> None:
        return None

    async with running_server(handler, **FAST):
        await client.result(info.id, timeout=10)
    minutes = await inspector.throughput("default", minutes=5)
    assert (sum(m.processed for m in minutes), sum(m.failed for m in minutes)) == (2, 1)


async def test_the_counters_of_an_hour_are_one_hash_kept_25_hours(
    client: tickr.Client,
    inspector: tickr.Inspector,
    raw_redis: aredis.Redis,
    namespace: str,
    running_server: ServerFactory,
) -> None:
    async def handler(task: tickr.Task) -> None:
        return None

    await client.enqueue("t")
    async with running_server(handler):

        async def done() -> bool:
            return (await inspector.queue_info("default")).processed == 1

        await eventually(done)
    [key] = [
        k
        async for k in raw_redis.scan_iter(
            match=QueueKeys(namespace, "default").prefix + "minutes:*"
        )
    ]
    hour = int(key.decode().rsplit(":", 1)[1])
    ttl_ms = await raw_redis.pttl(key)
    seconds, micros = await raw_redis.time()
    now_ms = seconds * 1000 + micros // 1000
    assert abs(now_ms + ttl_ms - (hour + 25) * 3_600_000) < 5_000, "25 h after the hour began"
    assert hour == now_ms // 3_600_000 or hour == now_ms // 3_600_000 - 1
    await inspector.delete_queue("default", force=True)
    assert not await raw_redis.exists(key), "deleting the queue deletes its counters"


async def test_throughput_checks_its_arguments(
    client: tickr.Client, inspector: tickr.Inspector
) -> None:
    with pytest.raises(tickr.QueueNotFound):
        await inspector.throughput("nowhere")
    await client.enqueue("t")
    for bad in (0, 1441):
        with pytest.raises(ValueError, match="minutes"):
            await inspector.throughput("default", minutes=bad)
    with pytest.raises(TypeError):
        await inspector.throughput("default", minutes=1.5)  # type: ignore[arg-type]
    quiet = await inspector.throughput("default", minutes=1440)
    assert len(quiet) == 1440 and not any(m.processed or m.failed for m in quiet)
