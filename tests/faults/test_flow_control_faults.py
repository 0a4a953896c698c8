"""A concurrency limit across processes: a SIGKILLed server's slots free with its leases."""

from __future__ import annotations

import asyncio
import signal
import time

import redis.asyncio as aredis

import tickr
from tests.conftest import ServerFactory
from tests.faults._support import FaultWorker, runs
from tests.helpers import eventually

LEASE = 2.0


async def test_a_dead_servers_slots_free_when_its_leases_expire(
    client: tickr.Client, inspector: tickr.Inspector, raw_redis: aredis.Redis,
    running_server: ServerFactory, url: str, namespace: str,
) -> None:  # fmt: skip
    await inspector.set_concurrency_limit("default", 2)
    await client.enqueue_many([tickr.TaskSpec("count", 60) for _ in range(2)])
    victim = FaultWorker(
        url, namespace, "--concurrency", "8", "--lease-duration", str(LEASE),
        "--heartbeat-interval", "0.5",
    )  # fmt: skip
    try:
        victim.wait_ready()

        async def two_started() -> bool:
            return len(await runs(raw_redis, namespace)) == 2

        await eventually(two_started, timeout=20)
        victim.signal(signal.SIGKILL)
        victim.wait()
        killed_at = time.monotonic()
    finally:
        victim.stop()
    await client.enqueue_many([tickr.TaskSpec("quick", n) for n in range(6)])
    started: list[float] = []
    running = 0
    most = 0

    async def handler(task: tickr.Task) -> None:
        nonlocal running, most
        started.append(time.monotonic() - killed_at)
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.05)
        running -= 1

    async def drained() -> bool:
        info = await inspector.queue_info("default", memory=False)
        return info.pending == 0 and info.active == 0

    async with running_server(handler, concurrency=8, lease_duration=LEASE):
        await eventually(drained, timeout=30)
    assert most <= 2, "the limit held while the dead server's tasks came back"
    assert min(started) < LEASE + 3, "the slots freed when the leases ran out"
    assert len(started) == 8, "the two tasks of the dead server ran again, and the six new"
