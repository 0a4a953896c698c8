"""Tickr's connections killed over and over (CLIENT KILL) while a worker drains a queue.

Tickr connects as an ACL user of its own, and only that user's connections are killed
(``CLIENT KILL TYPE normal|pubsub USER tickr``): the handlers count executions on the
default user's connection, so the test's bookkeeping never suffers a lost reply and
every extra execution it sees is Tickr's doing.
"""

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis.asyncio as aredis

import tickr
from tests.faults._support import FaultWorker, attempts, done, ids_of, queue_info, runs
from tests.helpers import eventually
from tickr.testing import RedisServer

TOTAL = 3000


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@dataclass
class Outcome:
    ids: list[str]
    started: dict[str, int]
    finished: dict[str, int]
    info: tickr.QueueInfo
    processed: int
    failed: int


async def _drain_under_fire(redis_server: RedisServer, namespace: str, max_retry: int) -> Outcome:
    """Drain TOTAL quick tasks while Tickr's connections keep being killed."""
    counter_url = redis_server.url
    admin = aredis.Redis.from_url(counter_url)
    await admin.execute_command("ACL", "SETUSER", "tickr", "on", ">secret", "~*", "&*", "+@all")
    tickr_url = counter_url.replace("redis://", "redis://tickr:secret@")
    async with tickr.Client(counter_url, namespace=namespace) as client:
        specs = [tickr.TaskSpec("count", max_retry=max_retry) for _ in range(TOTAL)]
        ids = ids_of(await client.enqueue_many(specs))
    worker = FaultWorker(
        tickr_url,
        namespace,
        "--counter-url", counter_url,
        "--concurrency", "20",
        "--sleep", "0.003",
        "--lease-duration", "2",
        "--heartbeat-interval", "0.5",
    )  # fmt: skip
    killed = {"normal": 0, "pubsub": 0}
    stop_killing = asyncio.Event()

    async def kill_connections() -> None:
        rng = random.Random(1234)
        while not stop_killing.is_set():
            kinds = rng.choice((("normal",), ("pubsub",), ("normal", "pubsub")))
            for kind in kinds:
                killed[kind] += await admin.execute_command(
                    "CLIENT", "KILL", "TYPE", kind, "USER", "tickr"
                )
            await asyncio.sleep(rng.uniform(0.01, 0.06))

    try:
        worker.wait_ready()
        begin = time.monotonic()
        killer = asyncio.create_task(kill_connections())

        async def settled() -> bool:
            # Every task ended (completed or archived), and the tasks whose dequeue reply
            # was lost, active until their lease ran out, were taken back and ended too.
            info = await queue_info(counter_url, namespace)
            return info.size == info.archived

        try:
            await eventually(settled, timeout=60, interval=0.1)
        finally:
            stop_killing.set()
            await killer
        drained = time.monotonic() - begin
        assert worker.process.poll() is None
    finally:
        worker.signal()
        worker.wait()
        worker.stop()
    started = await runs(admin, namespace)
    finished = await done(admin, namespace)
    await admin.aclose()
    info = await queue_info(counter_url, namespace)
    processed, failed = await attempts(counter_url, namespace)
    print(
        f"\nkilled {killed['normal']} command and {killed['pubsub']} pub/sub connections; "
        f"settled after {drained:.1f}s; {sum(started.values()) - TOTAL} extra executions; "
        f"{failed} failed attempts; {info.archived} archived; "
        f"{worker.count_lines('ignored')} late outcomes ignored"
    )
    # (pub/sub kills may be few: a listener cut before it resubscribed stays away for
    # 30 s, see test_subscription_cut.py)
    assert killed["normal"] >= 10 and killed["pubsub"] >= 1, "the kills hit Tickr"
    return Outcome(ids, started, finished, info, processed, failed)


async def test_nothing_is_lost_when_connections_are_killed_during_fetch_and_ack(
    private_redis: RedisServer, namespace: str
) -> None:
    outcome = await _drain_under_fire(private_redis, namespace, max_retry=25)
    assert set(outcome.finished) == set(outcome.ids), "every task ran to its end"
    info = outcome.info
    assert (info.pending, info.active, info.retry, info.archived) == (0, 0, 0, 0)
    assert outcome.processed - outcome.failed == TOTAL, "each task completed once in Redis"
    # At-least-once, never more than that: a task runs again only after its lease ran out
    # (each such recovery is counted as a failed attempt); a lost reply alone never
    # makes a task run twice.
    assert sum(outcome.started.values()) - TOTAL <= outcome.failed


async def test_tasks_without_retries_still_run_once_when_connections_are_killed(
    private_redis: RedisServer, namespace: str
) -> None:
    """A dequeue whose reply is lost must not cost its tasks an attempt.

    (Up to 6878fa5 such tasks stayed active until their lease ran out, then counted a
    failed attempt "worker lost"; with max_retry=0 they were archived without running.)
    """
    outcome = await _drain_under_fire(private_redis, namespace, max_retry=0)
    unrun = set(outcome.ids) - set(outcome.started)
    print(f"tasks archived without ever running: {len(unrun)}")
    assert not unrun, "a task was archived without ever running"
    assert outcome.info.archived == 0
