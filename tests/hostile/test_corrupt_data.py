"""Damaged records in Redis harm only their own task: the rest of the batch runs once."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable

import msgpack
import pytest
import redis.asyncio as aredis

import tickr
from tests.conftest import ServerFactory
from tests.helpers import eventually
from tests.helpers.redis_clients import config_get, config_set, pending_record
from tickr._broker.keys import QueueKeys

BATCH = 8


def task_key(namespace: str, task_id: str) -> str:
    return QueueKeys(namespace, "default").task(task_id)


async def in_state(client: tickr.Client, task_id: str, state: str) -> bool:
    try:
        return (await client.get_task(task_id)).state == state
    except tickr.TaskNotFound:
        return False


def echo_counting(
    runs: collections.Counter[int],
) -> Callable[[tickr.Task], Awaitable[object]]:
    """A handler that counts each run of a task by its payload and returns the payload."""

    async def handler(task: tickr.Task) -> object:
        runs[task.payload] += 1
        return task.payload

    return handler


async def enqueue_batch(client: tickr.Client) -> list[str]:
    return [(await client.enqueue("t", n, retention=60)).id for n in range(BATCH)]


async def assert_healthy_ran_once(
    client: tickr.Client, ids: list[str], bad: str, runs: collections.Counter[int]
) -> None:
    """Every task but `bad` completed with its result, its handler run exactly once."""
    healthy = [n for n, task_id in enumerate(ids) if task_id != bad]
    assert [await client.result(ids[n], timeout=10) for n in healthy] == healthy
    assert {n: runs[n] for n in healthy} == dict.fromkeys(healthy, 1)
    assert runs[ids.index(bad)] <= 1


@pytest.mark.parametrize(
    "record", [b"\xc1 not msgpack", msgpack.packb({"a": "map"}), msgpack.packb([1, 2])]
)
async def test_a_damaged_pending_record_is_archived_alone(
    client: tickr.Client,
    inspector: tickr.Inspector,
    raw_redis: aredis.Redis,
    namespace: str,
    running_server: ServerFactory,
    record: bytes,
) -> None:
    runs: collections.Counter[int] = collections.Counter()
    handler = echo_counting(runs)

    ids = await enqueue_batch(client)
    bad = ids[3]
    bucket, stored = await pending_record(raw_redis, QueueKeys(namespace, "default"), bad)
    assert stored is not None
    await raw_redis.hset(bucket, bad, record)
    async with running_server(handler, concurrency=BATCH):
        await assert_healthy_ran_once(client, ids, bad, runs)
        await eventually(lambda: in_state(client, bad, "archived"))
    info = await client.get_task(bad)
    assert info.last_error is not None
    assert info.last_error.startswith("corrupt pending record: ")
    sizes = await inspector.queue_info("default", memory=False)
    assert (sizes.pending, sizes.active, sizes.archived, sizes.completed) == (0, 0, 1, BATCH - 1)
    assert [task.id for task in await inspector.list_tasks("default", "archived")] == [bad]


@pytest.mark.parametrize("damage", ["string", "list"])
async def test_a_stray_key_on_a_pending_tasks_name_does_not_stop_it(
    client: tickr.Client,
    inspector: tickr.Inspector,
    raw_redis: aredis.Redis,
    namespace: str,
    running_server: ServerFactory,
    damage: str,
) -> None:
    """A pending task has no hash; a key of another type where its hash will go is replaced."""
    runs: collections.Counter[int] = collections.Counter()
    ids = await enqueue_batch(client)
    if damage == "string":
        await raw_redis.set(task_key(namespace, ids[3]), "overwritten")
    else:
        await raw_redis.rpush(task_key(namespace, ids[3]), "overwritten")
    async with running_server(echo_counting(runs), concurrency=BATCH):
        assert [await client.result(task_id, timeout=10) for task_id in ids] == list(range(BATCH))
    assert runs == collections.Counter(range(BATCH))


async def test_a_due_task_with_a_damaged_record_is_archived_alone(
    client: tickr.Client,
    inspector: tickr.Inspector,
    raw_redis: aredis.Redis,
    namespace: str,
    running_server: ServerFactory,
) -> None:
    """The forwarder moves the healthy due tasks of the queue; the damaged one is set aside."""
    runs: collections.Counter[int] = collections.Counter()
    handler = echo_counting(runs)

    ids = [(await client.enqueue("t", n, delay=0.3, retention=60)).id for n in range(BATCH)]
    bad, gone = ids[2], ids[5]
    await raw_redis.delete(task_key(namespace, bad), task_key(namespace, gone))
    await raw_redis.set(task_key(namespace, bad), "overwritten")
    async with running_server(handler, concurrency=BATCH):
        healthy = [n for n, task_id in enumerate(ids) if task_id not in (bad, gone)]
        assert [await client.result(ids[n], timeout=10) for n in healthy] == healthy
        await eventually(lambda: in_state(client, bad, "archived"))
        await eventually(lambda: in_state(client, gone, "archived"))
    assert {n: runs[n] for n in healthy} == dict.fromkeys(healthy, 1)
    assert sum(runs.values()) == len(healthy)
    assert (await client.get_task(bad)).last_error == "corrupt task record: a string, not a hash"
    assert (await client.get_task(gone)).last_error == "task data is missing"
    sizes = await inspector.queue_info("default", memory=False)
    assert (sizes.scheduled, sizes.pending, sizes.archived) == (0, 0, 2)
    assert sizes.completed == len(healthy)


async def test_a_pending_task_with_a_corrupt_retry_count_is_archived_alone(
    client: tickr.Client,
    inspector: tickr.Inspector,
    raw_redis: aredis.Redis,
    namespace: str,
    running_server: ServerFactory,
) -> None:
    runs: collections.Counter[int] = collections.Counter()
    handler = echo_counting(runs)

    ids = await enqueue_batch(client)
    bad = ids[5]
    await raw_redis.hset(task_key(namespace, bad), "retried", "abc")
    async with running_server(handler, concurrency=BATCH):
        await assert_healthy_ran_once(client, ids, bad, runs)
        await eventually(lambda: in_state(client, bad, "archived"))
    info = await client.get_task(bad)
    assert info.last_error == "corrupt task record: retried is not a count: abc"
    sizes = await inspector.queue_info("default", memory=False)
    assert (sizes.pending, sizes.active, sizes.archived, sizes.completed) == (0, 0, 1, BATCH - 1)


class Gate:
    """Holds every handler of a batch until released, so that their outcomes go together."""

    def __init__(self) -> None:
        self.runs: collections.Counter[int] = collections.Counter()
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.stopped: list[int] = []

    async def handler(self, task: tickr.Task) -> object:
        self.runs[task.payload] += 1
        if len(self.runs) == BATCH:
            self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.stopped.append(task.payload)
            raise
        return task.payload


FAST = {"concurrency": BATCH, "lease_duration": 1.0, "heartbeat_interval": 0.1}


@pytest.mark.parametrize(
    ("damage", "error"),
    [
        ("string", "corrupt task record: a string, not a hash"),
        ("retried", "corrupt task record: retried is not a count: abc"),
    ],
)
async def test_an_active_record_damaged_before_its_outcome_is_archived_alone(
    client: tickr.Client,
    inspector: tickr.Inspector,
    raw_redis: aredis.Redis,
    namespace: str,
    running_server: ServerFactory,
    damage: str,
    error: str,
) -> None:
    gate = Gate()
    ids = await enqueue_batch(client)
    bad = ids[2]
    async with running_server(gate.handler, **FAST):
        await gate.started.wait()
        if damage == "string":
            await raw_redis.delete(task_key(namespace, bad))
            await raw_redis.set(task_key(namespace, bad), "overwritten")
        else:
            await raw_redis.hset(task_key(namespace, bad), "retried", "abc")
        gate.release.set()
        await eventually(lambda: in_state(client, bad, "archived"))
        await assert_healthy_ran_once(client, ids, bad, gate.runs)
    assert (await client.get_task(bad)).last_error == error
    sizes = await inspector.queue_info("default", memory=False)
    assert (sizes.pending, sizes.active, sizes.archived, sizes.completed) == (0, 0, 1, BATCH - 1)


async def test_a_running_task_whose_record_is_replaced_is_stopped_and_the_others_keep_their_leases(
    client: tickr.Client,
    inspector: tickr.Inspector,
    raw_redis: aredis.Redis,
    namespace: str,
    running_server: ServerFactory,
) -> None:
    gate = Gate()
    ids = await enqueue_batch(client)
    bad = ids[6]
    async with running_server(gate.handler, **FAST):
        await gate.started.wait()
        await raw_redis.delete(task_key(namespace, bad))
        await raw_redis.lpush(task_key(namespace, bad), "overwritten")
        await eventually(lambda: _true(gate.stopped == [6]))
        await eventually(lambda: in_state(client, bad, "archived"))
        gate.release.set()
        await assert_healthy_ran_once(client, ids, bad, gate.runs)
    assert (await client.get_task(bad)).last_error == "corrupt task record: a list, not a hash"
    sizes = await inspector.queue_info("default", memory=False)
    assert (sizes.pending, sizes.active, sizes.archived, sizes.completed) == (0, 0, 1, BATCH - 1)


async def _true(value: bool) -> bool:
    return value


async def test_a_huge_error_message_is_stored_cut_with_a_marker(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    message = "é" * 51_200  # 100 KiB of UTF-8

    async def handler(task: tickr.Task) -> object:
        raise RuntimeError(message)

    info = await client.enqueue("t", max_retry=0)
    async with running_server(handler):
        await eventually(lambda: in_state(client, info.id, "archived"))
    error = (await client.get_task(info.id)).last_error
    assert error is not None
    full = f"RuntimeError: {message}".encode()
    kept, marker = error.split("... ")
    assert marker == f"[truncated, {len(full)} bytes]"
    assert full.startswith(kept.encode()) and 4000 < len(kept.encode()) <= 4096


async def test_a_result_redis_refuses_archives_its_task_alone(
    client: tickr.Client,
    inspector: tickr.Inspector,
    raw_redis: aredis.Redis,
    running_server: ServerFactory,
) -> None:
    gate = Gate()
    huge = "x" * 1_200_000
    ids = await enqueue_batch(client)
    bad = ids[4]

    async def handler(task: tickr.Task) -> object:
        result = await gate.handler(task)
        return huge if task.id == bad else result

    original = await config_get(raw_redis, "proto-max-bulk-len")
    await config_set(raw_redis, "proto-max-bulk-len", 1024 * 1024)
    try:
        async with running_server(handler, max_result_bytes=4 * 1024 * 1024, **FAST):
            await gate.started.wait()
            gate.release.set()
            await eventually(lambda: in_state(client, bad, "archived"))
            await assert_healthy_ran_once(client, ids, bad, gate.runs)
    finally:
        await config_set(raw_redis, "proto-max-bulk-len", original)
    error = (await client.get_task(bad)).last_error
    assert error is not None and error.startswith("result cannot be stored: Redis refused it: ")
    assert "bulk length" in error
    sizes = await inspector.queue_info("default", memory=False)
    assert (sizes.pending, sizes.active, sizes.archived, sizes.completed) == (0, 0, 1, BATCH - 1)


async def test_a_result_over_max_result_bytes_archives_its_task(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    async def handler(task: tickr.Task) -> object:
        return "y" * task.payload

    big = await client.enqueue("t", 2000, retention=60)
    small = await client.enqueue("t", 10, retention=60)
    async with running_server(handler, max_result_bytes=1000):
        assert await client.result(small.id, timeout=10) == "y" * 10
        await eventually(lambda: in_state(client, big.id, "archived"))
    info = await client.get_task(big.id)
    assert info.last_error is not None
    assert info.last_error.startswith("result cannot be stored: it is 20")
    assert info.last_error.endswith("bytes encoded, more than max_result_bytes (1000)")
    assert info.result is None


async def test_expired_completed_tasks_leave_the_count_without_new_completions(
    client: tickr.Client,
    inspector: tickr.Inspector,
    raw_redis: aredis.Redis,
    namespace: str,
    running_server: ServerFactory,
) -> None:
    async def handler(task: tickr.Task) -> object:
        return task.payload

    info = await client.enqueue("t", "brief", retention=0.3)
    async with running_server(handler, **FAST):
        assert await client.result(info.id, timeout=10) == "brief"
        assert (await inspector.queue_info("default", memory=False)).completed == 1

        async def expired() -> bool:
            return not await raw_redis.exists(task_key(namespace, info.id))

        await eventually(expired)
        await eventually(lambda: _completed_is(inspector, 0))
    assert (await inspector.queue_info("default", memory=False)).processed == 1


async def _completed_is(inspector: tickr.Inspector, count: int) -> bool:
    return (await inspector.queue_info("default", memory=False)).completed == count


async def test_reading_and_managing_a_queue_with_a_damaged_record(
    client: tickr.Client, inspector: tickr.Inspector, raw_redis: aredis.Redis, namespace: str
) -> None:
    """Pages list the others, bulk actions go through, and the damaged task can be deleted."""
    ids = [(await client.enqueue("t", n, delay=600 + n)).id for n in range(BATCH)]
    bad = ids[4]
    await raw_redis.delete(task_key(namespace, bad))
    await raw_redis.set(task_key(namespace, bad), "overwritten")
    seen = await inspector.get_task(bad)
    assert (seen.type, seen.last_error) == ("", "corrupt task record: not a hash")
    page = await inspector.list_tasks("default", "scheduled", page_size=BATCH)
    assert [task.id for task in page] == ids
    damaged = page[4]
    assert (damaged.state, damaged.last_error) == ("scheduled", "corrupt task record: not a hash")
    assert [task.payload for task in page if task.id != bad] == [0, 1, 2, 3, 5, 6, 7]
    assert await inspector.archive_all("default", "scheduled") == BATCH
    archived = {task.id: task for task in await inspector.list_tasks("default", "archived")}
    assert set(archived) == set(ids)
    assert archived[bad].last_error == "corrupt task record: a string, not a hash"
    await inspector.delete_task(bad)
    with pytest.raises(tickr.TaskNotFound):
        await inspector.get_task(bad)
    assert await raw_redis.exists(task_key(namespace, bad)) == 0
    sizes = await inspector.queue_info("default", memory=False)
    assert (sizes.scheduled, sizes.archived) == (0, BATCH - 1)


@pytest.mark.parametrize("damage", ["minutes", "daily"])
async def test_damaged_counters_lose_counts_not_outcomes(
    client: tickr.Client,
    inspector: tickr.Inspector,
    raw_redis: aredis.Redis,
    namespace: str,
    running_server: ServerFactory,
    damage: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    keys = QueueKeys(namespace, "default")
    seconds, _ = await raw_redis.time()
    hour = seconds // 3600
    await client.enqueue("t", -1)  # the queue exists
    if damage == "minutes":
        for back in range(2):
            await raw_redis.set(keys.minutes(hour - back), "not a hash")
            await raw_redis.set(keys.minutes(hour + 1 + back), "not a hash")
    else:
        await raw_redis.set(keys.processed, "not a count")
        await raw_redis.set(keys.failed, "not a count")
    runs: collections.Counter[int] = collections.Counter()
    ids = await enqueue_batch(client)
    async with running_server(echo_counting(runs)):
        assert [await client.result(task_id, timeout=10) for task_id in ids] == list(range(BATCH))
    assert {n: runs[n] for n in range(BATCH)} == dict.fromkeys(range(BATCH), 1)
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    minutes = await inspector.throughput("default", minutes=5)
    assert len(minutes) == 5
