"""Damaged records in Redis harm only their own task: the rest of the batch runs once."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aredis

import tickr
from tests.conftest import ServerFactory
from tests.helpers import eventually
from tickr._broker.keys import QueueKeys

BATCH = 8


@pytest.fixture
async def inspector(url: str, namespace: str) -> AsyncIterator[tickr.Inspector]:
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        yield inspector


def task_key(namespace: str, task_id: str) -> str:
    return QueueKeys(namespace, "default").task(task_id)


async def in_state(client: tickr.Client, task_id: str, state: str) -> bool:
    try:
        return (await client.get_task(task_id)).state == state
    except tickr.TaskNotFound:
        return False


async def enqueue_batch(client: tickr.Client) -> list[str]:
    return [(await client.enqueue("t", n, retention=60)).id for n in range(BATCH)]


async def assert_ran_once_but(
    client: tickr.Client, ids: list[str], bad: str, runs: collections.Counter[int]
) -> None:
    for task_id in ids:
        if task_id != bad:
            assert await client.result(task_id, timeout=10) is not None
    assert sorted(runs) == [n for n, task_id in enumerate(ids) if task_id != bad]
    assert set(runs.values()) == {1}


@pytest.mark.parametrize("damage", ["string", "list"])
async def test_a_pending_record_of_another_type_is_archived_alone(
    client: tickr.Client,
    inspector: tickr.Inspector,
    raw_redis: aredis.Redis,
    namespace: str,
    running_server: ServerFactory,
    damage: str,
) -> None:
    runs: collections.Counter[int] = collections.Counter()

    async def handler(task: tickr.Task) -> object:
        runs[task.payload] += 1
        return task.payload

    ids = await enqueue_batch(client)
    bad = ids[3]
    await raw_redis.delete(task_key(namespace, bad))
    if damage == "string":
        await raw_redis.set(task_key(namespace, bad), "overwritten")
    else:
        await raw_redis.rpush(task_key(namespace, bad), "overwritten")
    async with running_server(handler, concurrency=BATCH):
        await assert_ran_once_but(client, ids, bad, runs)
        await eventually(lambda: in_state(client, bad, "archived"))
    info = await client.get_task(bad)
    assert info.last_error == f"corrupt task record: a {damage}, not a hash"
    sizes = await inspector.queue_info("default", memory=False)
    assert (sizes.pending, sizes.active, sizes.archived, sizes.completed) == (0, 0, 1, BATCH - 1)
    assert [task.id for task in await inspector.list_tasks("default", "archived")] == [bad]


async def test_a_pending_task_with_a_corrupt_retry_count_is_archived_alone(
    client: tickr.Client,
    inspector: tickr.Inspector,
    raw_redis: aredis.Redis,
    namespace: str,
    running_server: ServerFactory,
) -> None:
    runs: collections.Counter[int] = collections.Counter()

    async def handler(task: tickr.Task) -> object:
        runs[task.payload] += 1
        return task.payload

    ids = await enqueue_batch(client)
    bad = ids[5]
    await raw_redis.hset(task_key(namespace, bad), "retried", "abc")
    async with running_server(handler, concurrency=BATCH):
        await assert_ran_once_but(client, ids, bad, runs)
        await eventually(lambda: in_state(client, bad, "archived"))
    info = await client.get_task(bad)
    assert info.last_error == "corrupt task record: retried is not a count: abc"
    sizes = await inspector.queue_info("default", memory=False)
    assert (sizes.pending, sizes.active, sizes.archived, sizes.completed) == (0, 0, 1, BATCH - 1)
