"""Several scheduler processes, one killed and restarted: every tick enqueued once."""

import asyncio
import signal
import time

import msgpack
import redis.asyncio as aredis

from tests.helpers.processes import SchedulerProcess
from tickr._broker.keys import QueueKeys

ENTRY = "every-second"


async def test_three_schedulers_one_killed_midway_enqueue_each_tick_exactly_once(
    raw_redis: aredis.Redis, url: str, namespace: str
) -> None:
    schedulers = [SchedulerProcess(url, namespace, "@every 1s", ENTRY) for _ in range(3)]
    restarted: SchedulerProcess | None = None
    try:
        for scheduler in schedulers:
            scheduler.wait_ready()
        started = time.time()
        await asyncio.sleep(4)
        schedulers[0].signal(signal.SIGKILL)
        schedulers[0].wait()
        await asyncio.sleep(1.5)
        restarted = SchedulerProcess(url, namespace, "@every 1s", ENTRY)
        restarted.wait_ready()
        await asyncio.sleep(4.5)
        for scheduler in [*schedulers[1:], restarted]:
            scheduler.signal(signal.SIGTERM)
        for scheduler in [*schedulers[1:], restarted]:
            assert scheduler.wait() == 0
        stopped = time.time()
    finally:
        for scheduler in [*schedulers, *([restarted] if restarted else [])]:
            scheduler.stop()

    keys = QueueKeys(namespace, "ticks")
    events = [
        msgpack.unpackb(raw) for raw in await raw_redis.lrange(keys.cron_history(ENTRY), 0, -1)
    ]
    ticks = sorted(int(event[0]) // 1000 for event in events)
    print(f"\n{len(ticks)} ticks enqueued in {stopped - started:.1f}s of scheduling")
    assert len(ticks) == len(set(ticks)), "a tick was enqueued twice"
    assert ticks == list(range(ticks[0], ticks[-1] + 1)), "a tick is missing"
    assert ticks[0] <= int(started) + 2 and ticks[-1] >= int(stopped) - 2
    assert int(await raw_redis.hget(keys.pending, "n") or 0) == len(ticks), "one task per tick"
