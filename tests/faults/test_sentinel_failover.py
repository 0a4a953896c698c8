"""Sentinel failovers under load: with ``wait_replicas=1`` no acknowledged task is lost.

A producer enqueues (single and batched, ``wait_replicas=1``) while a server drains; in
the middle the primary is failed over: gracefully (``SENTINEL FAILOVER``: the old primary
keeps accepting writes until the sentinels reconfigure it) or by SIGKILL (then restarted,
to come back as a replica).  Every acknowledged task must run; tasks of calls that
raised may or may not; duplicates (tasks run twice after a lease was lost with the old
primary) are counted and reported.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

import tickr
from tests.helpers import eventually
from tickr.testing.topology import SentinelServers

PRODUCE_FOR = 4.0
"""Seconds of production; the failover comes after a third of it."""


@pytest.fixture
def sentinel() -> Iterator[SentinelServers]:
    with SentinelServers(replicas=1) as servers:
        yield servers


@pytest.mark.parametrize("how", ["graceful", "sigkill"])
async def test_no_acknowledged_task_is_lost_in_a_failover(
    sentinel: SentinelServers, how: str
) -> None:
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    acknowledged: list[str] = []
    unknown: set[str] = set()
    ran: Counter[str] = Counter()
    failed_calls = 0
    switch: dict[str, float] = {}

    async def handler(task: tickr.Task) -> None:
        ran[task.id] += 1

    async def produce() -> None:
        nonlocal failed_calls
        async with tickr.Client(sentinel.url, namespace=namespace, wait_replicas=1) as client:
            size = 0
            end = time.monotonic() + PRODUCE_FOR
            while time.monotonic() < end:
                size = size % 10 + 1
                ids = [uuid.uuid4().hex for _ in range(size)]
                try:
                    if size == 1:
                        results: list[object] = [await client.enqueue("t", task_id=ids[0])]
                    else:
                        results = list(
                            await client.enqueue_many([tickr.TaskSpec("t", task_id=i) for i in ids])
                        )
                except tickr.RedisUnavailable:
                    failed_calls += 1
                    unknown.update(ids)
                    switch.setdefault("first_failure", time.monotonic())
                    await asyncio.sleep(0.02)
                    continue
                if "first_failure" in switch:
                    switch.setdefault("first_success", time.monotonic())
                for result in results:
                    assert isinstance(result, tickr.TaskInfo), result
                    acknowledged.append(result.id)
                await asyncio.sleep(0.002)

    async def fail_over() -> None:
        await asyncio.sleep(PRODUCE_FOR / 3)
        if how == "graceful":
            old = await asyncio.to_thread(sentinel.failover)
        else:
            old = sentinel.primary()
            old.kill()
        await asyncio.to_thread(sentinel.wait_primary_other_than, old)
        if how == "sigkill":
            await asyncio.to_thread(old.start)  # back empty: the sentinels make it a replica

    server = tickr.Server(
        sentinel.url, namespace=namespace, concurrency=8, lease_duration=3, heartbeat_interval=0.5
    )
    serving = asyncio.create_task(server.serve(handler))
    try:
        await server.wait_ready()
        await asyncio.wait_for(asyncio.gather(produce(), fail_over()), timeout=60)
        wanted = set(acknowledged)

        async def all_ran() -> bool:
            return wanted <= set(ran)

        await eventually(all_ran, timeout=40, interval=0.1)
    finally:
        await server.shutdown()
        await serving
    duplicates = sum(count - 1 for count in ran.values())
    outage = switch.get("first_success", 0.0) - switch.get("first_failure", 0.0)
    print(
        f"\n{how}: {len(wanted)} acknowledged, {failed_calls} calls failed "
        f"(enqueue outage {max(outage, 0):.2f}s); {duplicates} duplicate runs; "
        f"{len(set(ran) & unknown)} of {len(unknown)} tasks of failed calls ran"
    )
    assert len(wanted) == len(acknowledged) > 100
    assert wanted <= set(ran), f"{len(wanted - set(ran))} acknowledged tasks were lost"
    assert set(ran) <= wanted | unknown, "only enqueued tasks ran"
