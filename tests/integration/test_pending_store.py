"""The pending store: lean records in buckets that split as the backlog grows, one list
per priority, entries left behind by removals, 0.1's layout migrated, memory per task."""

from __future__ import annotations

import asyncio
import uuid

import msgpack
import pytest
import redis.asyncio as aredis

import tickr
from tests.conftest import ServerFactory
from tests.helpers import eventually
from tests.helpers.redis_clients import pending_record
from tickr._broker.keys import QueueKeys


def recorder() -> tuple[list[object], tickr.Handler]:
    order: list[object] = []

    async def handler(task: tickr.Task) -> None:
        order.append(task.payload)

    return order, handler


async def _ran(order: list[object], count: int) -> bool:
    return len(order) >= count


async def test_records_stay_findable_and_in_order_while_the_buckets_split(
    client: tickr.Client,
    inspector: tickr.Inspector,
    raw_redis: aredis.Redis,
    namespace: str,
    running_server: ServerFactory,
) -> None:
    count = 3000
    specs = [tickr.TaskSpec("t", n, priority=n % 3) for n in range(count)]
    infos = [info for info in await client.enqueue_many(specs) if isinstance(info, tickr.TaskInfo)]
    assert len(infos) == count
    keys = QueueKeys(namespace, "default")
    meta = await raw_redis.hgetall(keys.pending)
    assert int(meta[b"n"]) == count and int(meta[b"k"]) >= 6, "the store split as it grew"
    for info in infos[::97]:
        assert (await pending_record(raw_redis, keys, info.id))[1] is not None
        assert (await client.get_task(info.id)).payload == info.payload
    assert (await inspector.queue_info("default", memory=False)).pending == count
    page = await inspector.list_tasks("default", "pending", page=1, page_size=5)
    assert [task.payload for task in page] == [2, 5, 8, 11, 14]

    order, handler = recorder()
    async with running_server(handler, concurrency=1):
        await eventually(lambda: _ran(order, count), timeout=30)
    expected = [n for priority in (2, 1, 0) for n in range(count) if n % 3 == priority]
    assert order == expected
    assert await raw_redis.exists(keys.pending, keys.pending_priorities) == 0, "nothing left"


async def test_a_task_removed_from_a_long_list_never_runs_and_its_id_can_come_back(
    client: tickr.Client,
    inspector: tickr.Inspector,
    raw_redis: aredis.Redis,
    namespace: str,
    running_server: ServerFactory,
) -> None:
    """Past 10,000 entries a removal leaves its list entry behind, to be skipped."""
    await client.enqueue_many([tickr.TaskSpec("t", n) for n in range(10_050)])
    gone = await client.enqueue("t", "deleted", task_id="gone")
    back = await client.enqueue("t", "cancelled then back", task_id="back")
    await inspector.delete_task(gone.id)
    await client.cancel(back.id)
    keys = QueueKeys(namespace, "default")
    assert await raw_redis.hgetall(keys.pending_gone) == {b"gone": b"1", b"back": b"1"}
    await client.enqueue("t", "back again", task_id="back")
    assert (await inspector.queue_info("default", memory=False)).pending == 10_051

    order, handler = recorder()
    async with running_server(handler, concurrency=50):
        await eventually(lambda: _ran(order, 10_051), timeout=60)
        await asyncio.sleep(0.2)
    assert len(order) == 10_051
    assert "deleted" not in order and order.count("back again") == 1
    assert await raw_redis.exists(keys.pending_gone) == 0, "the skipped entries are forgotten"
    with pytest.raises(tickr.TaskNotFound):
        await client.get_task(gone.id)


async def test_records_whose_list_was_lost_are_put_back_in_line(
    client: tickr.Client,
    raw_redis: aredis.Redis,
    namespace: str,
    running_server: ServerFactory,
) -> None:
    """A store whose run-order list vanished (deleted by hand) still runs every task."""
    await client.enqueue_many([tickr.TaskSpec("t", n) for n in range(40)])
    keys = QueueKeys(namespace, "default")
    assert await raw_redis.delete(keys.pending_list(0), keys.pending_priorities) == 2
    order, handler = recorder()
    async with running_server(handler, concurrency=4):
        await eventually(lambda: _ran(order, 40))
    assert sorted(order) == list(range(40))  # type: ignore[type-var]


async def test_pending_tasks_written_by_0_1_are_migrated_and_run_in_order(
    client: tickr.Client,
    inspector: tickr.Inspector,
    raw_redis: aredis.Redis,
    namespace: str,
    running_server: ServerFactory,
) -> None:
    """0.1 kept a sorted set of "<12 hex seq><id>" members and a hash per pending task."""
    keys = QueueKeys(namespace, "default")
    ids = []
    for n in range(30):
        task_id = uuid.uuid4().hex
        ids.append(task_id)
        priority = 1 if n >= 20 else 0
        member = f"{n:012x}{task_id}"
        msg = msgpack.packb([1, "t", n, 1_700_000_000_000 + n, None, None, 0, 0])
        fields = {"msg": msg, "state": "pending", "pri": priority, "mr": 3, "pm": member}
        await raw_redis.hset(keys.task(task_id), mapping=fields)  # type: ignore[arg-type]
        await raw_redis.zadd(keys.legacy_pending, {member: -priority})
    order, handler = recorder()
    async with running_server(handler, concurrency=1):
        await eventually(lambda: _ran(order, 30))
    assert order == [*range(20, 30), *range(20)]
    assert await raw_redis.exists(keys.legacy_pending) == 0
    assert (await inspector.queue_info("default", memory=False)).completed == 0


@pytest.mark.single_redis
async def test_a_pending_small_task_costs_at_most_150_bytes_of_redis(
    client: tickr.Client, raw_redis: aredis.Redis
) -> None:
    """The issue's measure: used_memory per pending task of payload {"i": n}."""
    count = 20_000
    before = (await raw_redis.info("memory"))["used_memory"]
    for start in range(0, count, 1000):
        specs = [tickr.TaskSpec("t", {"i": n}) for n in range(start, start + 1000)]
        await client.enqueue_many(specs)
    after = (await raw_redis.info("memory"))["used_memory"]
    assert (after - before) / count <= 150


async def test_a_task_is_never_missing_while_it_moves_from_pending_to_active(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    """get_task reads the hash or the pending record in one step: two reads could both
    miss a task that a dequeue moved between them."""
    infos = await client.enqueue_many([tickr.TaskSpec("t", n, retention=60) for n in range(400)])
    ids = [info.id for info in infos if isinstance(info, tickr.TaskInfo)]
    missing: list[str] = []

    async def slow(task: tickr.Task) -> None:
        await asyncio.sleep(0.001)

    async with running_server(slow, concurrency=4):
        for _ in range(20):
            for task_id in ids:
                try:
                    await client.get_task(task_id)
                except tickr.TaskNotFound:
                    missing.append(task_id)
            states = [(await client.get_task(i)).state for i in ids[-5:]]
            if set(states) == {"completed"}:
                break
    assert not missing
