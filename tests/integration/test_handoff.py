"""Hand-off: a task enqueued to an idle server goes straight to it, and is never lost."""

import asyncio
import logging

import pytest
import redis.asyncio as aredis

import tickr
from tests.conftest import ServerFactory
from tests.helpers import eventually
from tests.helpers.redis_clients import command_calls, reset_command_stats
from tickr._broker.keys import QueueKeys
from tickr._broker.scripts import load_script
from tickr._time import now_ms


async def waiters(raw_redis: aredis.Redis, namespace: str, queue: str = "default") -> list[bytes]:
    members = await raw_redis.zrange(QueueKeys(namespace, queue).waiters, 0, -1)
    return [member for member in members if isinstance(member, bytes)]


async def test_an_idle_server_is_handed_new_tasks_without_a_dequeue(
    client: tickr.Client, raw_redis: aredis.Redis, namespace: str, running_server: ServerFactory
) -> None:
    ran: list[object] = []

    async def handler(task: tickr.Task) -> None:
        ran.append(task.payload)

    async with running_server(handler) as server:
        await eventually(lambda: _has_waiter(raw_redis, namespace, server.id))
        await reset_command_stats(raw_redis)
        for n in range(5):
            await client.enqueue("t", n)
            await eventually(lambda n=n: _ran(ran, n))  # type: ignore[misc]
        calls = await command_calls(raw_redis)
    assert ran == [0, 1, 2, 3, 4]
    assert "blpop" in calls
    assert await waiters(raw_redis, namespace) == [], "a server leaves the waiters on shutdown"
    inbox = QueueKeys(namespace, "default").inbox(server.id)
    assert await raw_redis.llen(inbox) == 0


async def _has_waiter(
    raw_redis: aredis.Redis, namespace: str, server_id: str, queue: str = "default"
) -> bool:
    members = await waiters(raw_redis, namespace, queue)
    return any(server_id in member.decode() for member in members)


async def _ran(ran: list[object], payload: object) -> bool:
    return payload in ran


async def test_a_server_registers_in_no_more_queues_than_it_has_free_workers(
    raw_redis: aredis.Redis, namespace: str, running_server: ServerFactory
) -> None:
    async def handler(task: tickr.Task) -> None:
        return None

    queues = {"a": 3, "b": 2, "c": 1}
    async with running_server(handler, queues=queues, concurrency=2) as server:
        await eventually(lambda: _has_waiter(raw_redis, namespace, server.id, "a"))
        await asyncio.sleep(0.1)
        registered = [q for q in queues if await waiters(raw_redis, namespace, q)]
    assert registered == ["a", "b"], "the two heaviest queues, one per free worker"


async def test_a_task_handed_to_a_dead_server_runs_elsewhere_without_counting_an_attempt(
    client: tickr.Client, raw_redis: aredis.Redis, namespace: str, running_server: ServerFactory
) -> None:
    keys = QueueKeys(namespace, "default")
    # A server registered as a waiter, then died before taking anything off its inbox.
    await raw_redis.zadd(keys.waiters, {"500 ghost": now_ms() + 60_000})
    info = await client.enqueue("t", "handed", max_retry=0, retention=60)
    assert (await client.get_task(info.id)).state == "active"
    assert await raw_redis.llen(keys.inbox("ghost")) == 1
    await asyncio.sleep(0.6)  # the ghost's 500 ms lease runs out
    runs: list[int] = []

    async def handler(task: tickr.Task) -> str:
        runs.append(task.retry_count)
        return "ran once"

    async with running_server(handler, heartbeat_interval=0.1):
        assert await client.result(info.id, timeout=10) == "ran once"
    assert runs == [0]
    stored = await client.get_task(info.id)
    assert (stored.retried, stored.last_error) == (0, None), "it never started: no attempt"
    assert await raw_redis.llen(keys.inbox("ghost")) == 0


async def test_handoff_respects_priority_order_and_pauses(
    client: tickr.Client, raw_redis: aredis.Redis, url: str, namespace: str
) -> None:
    keys = QueueKeys(namespace, "default")
    await raw_redis.zadd(keys.waiters, {"60000 idle-server": now_ms() + 60_000})
    waiting = await client.enqueue("t", "first")  # handed: the queue had nothing pending
    assert (await client.get_task(waiting.id)).state == "active"
    await raw_redis.zadd(keys.waiters, {"60000 idle-server": now_ms() + 60_000})
    await client.enqueue("t", "queued", delay=60)
    assert (await client.get_task(waiting.id)).state == "active"
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        await inspector.pause("default")
        paused = await client.enqueue("t", "paused")
        assert (await client.get_task(paused.id)).state == "pending", "a paused queue hands nothing"
        await inspector.unpause("default")
    behind = await client.enqueue("t", "behind")
    assert (await client.get_task(behind.id)).state == "pending", "others were pending first"
    assert load_script("enqueue").sha


async def test_hand_offs_during_the_end_of_registrations_are_neither_errors_nor_retries(
    client: tickr.Client,
    url: str,
    namespace: str,
    running_server: ServerFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Tasks handed over while the fetcher ends its registrations all run once.

    Pairs of tasks reach an idle server at once: one is handed over, the other waits in
    pending and wakes the fetcher, which ends its registration while the first is on its
    way.  (Up to this test the fetcher passed its live list of registrations to that
    call, and the hand-off arriving meanwhile shrank it: "could not fetch tasks".)
    """
    ran: list[int] = []

    async def handler(task: tickr.Task) -> None:
        ran.append(task.payload)
        await asyncio.sleep(0.02)

    pairs = 30
    with caplog.at_level(logging.WARNING, logger="tickr"):
        async with (
            tickr.Client(url, namespace=namespace) as other,
            running_server(handler, concurrency=1),
        ):
            await asyncio.sleep(0.2)
            for n in range(0, 2 * pairs, 2):
                await asyncio.gather(client.enqueue("t", n), other.enqueue("t", n + 1))
                await asyncio.sleep(0.08)
            await eventually(lambda: _count(ran, 2 * pairs), timeout=30)
    assert sorted(ran) == list(range(2 * pairs))
    complaints = [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith(("tickr.server.fetcher", "tickr.server.inbox"))
        or record.levelno >= logging.ERROR
    ]
    assert complaints == []
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        info = await inspector.queue_info("default", memory=False)
    assert (info.processed, info.failed) == (2 * pairs, 0)


async def _count(items: list[int], wanted: int) -> bool:
    return len(items) >= wanted
