"""Tasks held by a server that stopped renewing its lease are taken back exactly once."""

import asyncio
import logging
from datetime import UTC, datetime

import pytest
import redis.asyncio as aredis

import tickr
from tests.conftest import ServerFactory
from tests.helpers import eventually
from tickr._broker import Broker
from tickr._broker.keys import QueueKeys
from tickr._time import now_ms
from tickr.testing import drain

LEASE = 0.6
FAST = {"lease_duration": LEASE, "heartbeat_interval": 0.1}


async def take_as_ghost(raw_redis: aredis.Redis, namespace: str, count: int) -> list[str]:
    """Dequeue tasks under a lease held by a server that will never renew it."""
    async with Broker.connect(None, raw_redis, namespace) as broker:
        taken = await broker.dequeue("default", count, now_ms() + int(LEASE * 1000), "ghost")
    return [task.id for task in taken]


async def test_a_dead_servers_tasks_are_retried_with_worker_lost(
    client: tickr.Client, raw_redis: aredis.Redis, namespace: str, running_server: ServerFactory
) -> None:
    info = await client.enqueue("t", "orphan", retention=60)
    assert await take_as_ghost(raw_redis, namespace, 1) == [info.id]
    runs: list[int] = []

    async def handler(task: tickr.Task) -> str:
        runs.append(task.retry_count)
        return "recovered"

    async with running_server(handler, **FAST):
        assert await client.result(info.id, timeout=10) == "recovered"
    assert runs == [1], "the lost attempt counts as a retry"
    stored = await client.get_task(info.id)
    assert (stored.retried, stored.last_error) == (1, "worker lost")


@pytest.mark.parametrize(
    "payload",
    [b"\x00binary", {"at": datetime(2026, 1, 1, tzinfo=UTC)}, "text"],
    ids=["bytes", "datetime", "str"],
)
async def test_recovery_honours_retries_whatever_the_payload(
    client: tickr.Client,
    raw_redis: aredis.Redis,
    namespace: str,
    running_server: ServerFactory,
    payload: object,
) -> None:
    info = await client.enqueue("t", payload, max_retry=3, retention=60)
    await take_as_ghost(raw_redis, namespace, 1)

    async def echo(task: tickr.Task) -> object:
        return task.payload

    async with running_server(echo, **FAST):
        assert await client.result(info.id, timeout=10) == payload


async def test_a_dead_servers_task_without_retries_left_is_archived(
    client: tickr.Client, raw_redis: aredis.Redis, namespace: str, running_server: ServerFactory
) -> None:
    info = await client.enqueue("t", max_retry=0, retention=60)
    await take_as_ghost(raw_redis, namespace, 1)

    async def handler(task: tickr.Task) -> None:
        raise AssertionError("must not run again")

    async with running_server(handler, **FAST):
        with pytest.raises(tickr.TaskFailed, match="worker lost"):
            await client.result(info.id, timeout=10)


async def test_many_servers_racing_recover_each_task_once(
    client: tickr.Client,
    raw_redis: aredis.Redis,
    namespace: str,
    running_server: ServerFactory,
    url: str,
) -> None:
    await client.enqueue_many([tickr.TaskSpec("t", n) for n in range(300)])
    orphans = await take_as_ghost(raw_redis, namespace, 300)
    assert len(orphans) == 300
    runs: dict[str, int] = {}

    async def handler(task: tickr.Task) -> None:
        runs[task.id] = runs.get(task.id, 0) + 1

    async with (
        running_server(handler, **FAST),
        running_server(handler, **FAST),
        running_server(handler, **FAST),
    ):
        await eventually(lambda: _count(runs, 300), timeout=20)
        await asyncio.sleep(0.5)
    assert set(runs) == set(orphans)
    assert set(runs.values()) == {1}
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        info = await inspector.queue_info("default")
    assert (info.processed, info.failed) == (600, 300), "each lost attempt counted once"


async def _count(runs: dict[str, int], size: int) -> bool:
    return len(runs) >= size


async def test_a_server_that_lost_its_lease_stops_the_handler_and_reports_nothing(
    client: tickr.Client, raw_redis: aredis.Redis, namespace: str, running_server: ServerFactory
) -> None:
    """Simulates a server frozen past its lease: another server recovers the task."""
    started = asyncio.Event()
    stopped = asyncio.Event()

    async def slow(task: tickr.Task) -> str:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            stopped.set()
            raise
        return "late"

    info = await client.enqueue("t", retention=60)
    async with running_server(slow, lease_duration=30, heartbeat_interval=0.1):
        await asyncio.wait_for(started.wait(), 10)
        # Another server took the task over (as if the lease had run out meanwhile).
        key = f"{namespace}:{{{namespace}:default}}:t:{info.id}"
        await raw_redis.hset(key, "owner", "someone-else")
        await asyncio.wait_for(stopped.wait(), 10)
        await asyncio.sleep(0.3)
    stored = await client.get_task(info.id)
    assert stored.state == "active", "the stale server must not complete or retry it"


async def test_a_cancel_whose_notice_was_missed_takes_effect_at_the_next_renewal(
    client: tickr.Client, raw_redis: aredis.Redis, namespace: str, running_server: ServerFactory
) -> None:
    """As if the cancel was published while the server's subscription was reconnecting."""
    started = asyncio.Event()

    async def slow(task: tickr.Task) -> None:
        started.set()
        await asyncio.sleep(30)

    info = await client.enqueue("t", max_retry=5, retention=60)
    async with running_server(slow, lease_duration=2.0, heartbeat_interval=0.2):
        await asyncio.wait_for(started.wait(), 10)
        key = f"{namespace}:{{{namespace}:default}}:t:{info.id}"
        await raw_redis.hset(key, "cancel", "1")  # the flag cancel() sets, without the notice
        with pytest.raises(tickr.TaskFailed, match="cancelled"):
            await client.result(info.id, timeout=10)


async def test_reclaim_finds_exactly_what_one_dequeue_call_took(
    client: tickr.Client, raw_redis: aredis.Redis, namespace: str
) -> None:
    await client.enqueue_many([tickr.TaskSpec("t", n) for n in range(5)])
    async with Broker.connect(None, raw_redis, namespace) as broker:
        expiry = now_ms() + 60_000
        first = await broker.dequeue("default", 3, expiry, "me")
        second = await broker.dequeue("default", 1, expiry + 1, "me")
        assert sorted(await broker.reclaim("default", "me", expiry)) == sorted(first)
        assert await broker.reclaim("default", "me", expiry + 1) == second
        assert await broker.reclaim("default", "someone-else", expiry) == []
        assert await broker.reclaim("default", "me", expiry + 2) == []


async def test_reclaim_ignores_tasks_that_a_hand_off_or_a_renewal_put_under_the_same_expiry(
    client: tickr.Client, raw_redis: aredis.Redis, namespace: str
) -> None:
    """Expiries are unique among one server's dequeue calls only: a task handed to the
    server, or renewed, in the same millisecond gets the same one, and must not be
    taken for the lost call's (it would run twice)."""
    async with Broker.connect(None, raw_redis, namespace) as broker:
        await broker.join_waiters(["default"], Broker.waiter_name("me", 60_000), now_ms() + 60_000)
        handed = await client.enqueue("t", "handed")
        active = QueueKeys(namespace, "default").active
        expiry = int(await raw_redis.zscore(active, handed.id) or 0)
        assert expiry > 0, "the task was handed to 'me'"
        assert await broker.reclaim("default", "me", expiry) == []

        await client.enqueue("t", "dequeued")
        taken = await broker.dequeue("default", 1, expiry + 5, "me")
        assert len(taken) == 1
        renewed = expiry + 7  # as a renewal in the millisecond of a later dequeue would
        await raw_redis.zadd(active, {handed.id: renewed, taken[0][0]: renewed}, xx=True)
        assert await broker.reclaim("default", "me", renewed) == []
        assert await broker.reclaim("default", "me", expiry + 5) == [], "its expiry moved on"


@pytest.mark.single_redis
async def test_a_dequeue_whose_reply_was_lost_is_reclaimed_and_runs_once(
    client: tickr.Client, running_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    from tickr._broker import wire
    from tickr._broker.scripts import load_script

    dequeue_sha = load_script("dequeue").sha
    original = wire.Wire.execute
    lost: list[bool] = []

    async def lose_first_dequeue_reply(self: wire.Wire, *args: object) -> object:
        reply = await original(self, *args)
        if args[:2] == ("EVALSHA", dequeue_sha) and reply and not lost:
            lost.append(True)
            raise RedisConnectionError("connection lost after the dequeue ran")
        return reply

    monkeypatch.setattr(wire.Wire, "execute", lose_first_dequeue_reply)
    runs: list[int] = []

    async def handler(task: tickr.Task) -> str:
        runs.append(task.retry_count)
        return "ran"

    info = await client.enqueue("t", max_retry=0, retention=60)
    async with running_server(handler, lease_duration=30):
        assert await client.result(info.id, timeout=10) == "ran"
    assert lost == [True]
    assert runs == [0], "reclaimed, not recovered: no attempt counted, no retry needed"


async def test_renewals_racing_with_recorded_outcomes_stop_nothing_and_log_nothing(
    client: tickr.Client, url: str, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A renewal that finds a task already completed in Redis, before this server has
    read the reply of that completion, must not treat the lease as lost.

    (Before this was fixed, each such task logged "lost the lease" and the stop raised
    "Cannot change state of finished Timeout" in an event-loop callback.)
    """
    total = 6000
    await client.enqueue_many([tickr.TaskSpec("t", n) for n in range(total)])
    ran: list[int] = []

    async def handler(task: tickr.Task) -> None:
        ran.append(task.payload)

    with caplog.at_level(logging.WARNING):
        await drain(
            handler,
            url=url,
            namespace=namespace,
            concurrency=100,
            lease_duration=0.5,
            heartbeat_interval=0.005,
            timeout=60,
        )
    assert sorted(ran) == list(range(total))
    complaints = [
        record.getMessage()
        for record in caplog.records
        if "lease" in record.getMessage() or record.levelno >= logging.ERROR
    ]
    assert complaints == []
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        info = await inspector.queue_info("default", memory=False)
    assert (info.processed, info.failed, info.size) == (total, 0, 0), "each ran once, none lost"
