"""A worker whose machine's wall clock jumps by an hour, forward or back.

Leases, due times and registrations are stamped on Redis' clock, which each process
follows on its monotonic clock: a jump of a worker's wall clock moves none of them.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
import redis.asyncio as aredis

import tickr
from tests.faults._support import FaultWorker, counts, done, ids_of, queue_info, runs
from tests.helpers import eventually

HOUR = 3600.0
LEASE = ("--lease-duration", "2", "--heartbeat-interval", "0.25")
"""Short leases, so that a wrongly expired one is taken back within the test."""
TASKS = 4
HANDLER_SECONDS = 5
"""How long each task runs: past two lease lengths."""


def jumping_worker(url: str, namespace: str, jump: float, *args: str) -> FaultWorker:
    worker = FaultWorker(url, namespace, *LEASE, "--clock-jump", str(jump), *args)
    worker.wait_ready()
    return worker


def stop(*workers: FaultWorker) -> None:
    for worker in workers:
        worker.signal(signal.SIGTERM)
    for worker in workers:
        worker.wait()
        worker.stop()


async def started_all(raw_redis: aredis.Redis, namespace: str, total: int) -> None:
    async def check() -> bool:
        return await raw_redis.hlen(f"{namespace}:runs") >= total

    await eventually(check, timeout=20, interval=0.02)


async def finished_all(raw_redis: aredis.Redis, namespace: str, total: int) -> None:
    async def check() -> bool:
        return await raw_redis.hlen(f"{namespace}:runs:done") >= total

    await eventually(check, timeout=30, interval=0.05)


async def assert_each_ran_once(
    client: tickr.Client, raw_redis: aredis.Redis, namespace: str, ids: list[str]
) -> None:
    started = await runs(raw_redis, namespace)
    assert started == dict.fromkeys(ids, 1), "a task ran twice: a lease was taken early"
    assert await done(raw_redis, namespace) == dict.fromkeys(ids, 1)
    for task_id in ids:
        info = await client.get_task(task_id)
        assert (info.state, info.retried, info.last_error) == ("completed", 0, None)


@pytest.mark.slow
async def test_a_worker_whose_clock_jumps_ahead_takes_no_lease_early(
    client: tickr.Client, raw_redis: aredis.Redis, url: str, namespace: str
) -> None:
    holder = FaultWorker(url, namespace, *LEASE, "--concurrency", str(TASKS))
    jumper = None
    try:
        holder.wait_ready()
        ids = ids_of(
            await client.enqueue_many(
                [tickr.TaskSpec("count", HANDLER_SECONDS, retention=60) for _ in range(TASKS)]
            )
        )
        await started_all(raw_redis, namespace, TASKS)
        jumper = jumping_worker(url, namespace, HOUR)
        jumper.signal(signal.SIGUSR1)
        jumper.wait_for_line("wall clock stepped")
        await finished_all(raw_redis, namespace, TASKS)
    finally:
        stop(holder, *([jumper] if jumper else []))
    await assert_each_ran_once(client, raw_redis, namespace, ids)


@pytest.mark.slow
async def test_a_worker_whose_clock_jumps_back_keeps_its_leases(
    client: tickr.Client, raw_redis: aredis.Redis, url: str, namespace: str
) -> None:
    jumper = jumping_worker(url, namespace, -HOUR, "--concurrency", str(TASKS))
    watcher = None
    try:
        ids = ids_of(
            await client.enqueue_many(
                [tickr.TaskSpec("count", HANDLER_SECONDS, retention=60) for _ in range(TASKS)]
            )
        )
        await started_all(raw_redis, namespace, TASKS)
        jumper.signal(signal.SIGUSR1)
        jumper.wait_for_line("wall clock stepped")
        watcher = FaultWorker(url, namespace, *LEASE)  # would recover leases that look expired
        watcher.wait_ready()
        await finished_all(raw_redis, namespace, TASKS)
    finally:
        stop(jumper, *([watcher] if watcher else []))
    await assert_each_ran_once(client, raw_redis, namespace, ids)
    assert (await counts(raw_redis, f"{namespace}:by-worker")) == {str(jumper.process.pid): TASKS}


@pytest.mark.slow
@pytest.mark.parametrize("jump", [HOUR, -HOUR], ids=["ahead", "back"])
async def test_delayed_tasks_neither_fire_early_nor_stall_when_the_clock_jumps(
    client: tickr.Client, raw_redis: aredis.Redis, url: str, namespace: str, jump: float
) -> None:
    worker = jumping_worker(url, namespace, jump, "--stamp")
    try:
        worker.signal(signal.SIGUSR1)
        worker.wait_for_line("wall clock stepped")
        await asyncio.sleep(0.5)  # a heartbeat or two on the stepped clock
        infos = [await client.enqueue("count", delay=delay) for delay in (1.5, 3.0)]
        ids = ids_of(infos)
        due_ms = {
            info.id: int(info.next_process_at.timestamp() * 1000)
            for info in infos
            if info.next_process_at is not None
        }
        assert time.time() * 1000 < min(due_ms.values()), "the test itself was too slow"
        await finished_all(raw_redis, namespace, len(ids))
    finally:
        stop(worker)
    stamps = await counts(raw_redis, f"{namespace}:first-start")
    assert set(stamps) == set(ids)
    for task_id in ids:
        assert stamps[task_id] >= due_ms[task_id], "a delayed task ran before its time"
    info = await queue_info(url, namespace)
    assert (info.scheduled, info.pending, info.retry) == (0, 0, 0)


@pytest.mark.slow
@pytest.mark.parametrize("jump", [HOUR, -HOUR], ids=["ahead", "back"])
async def test_a_retry_waits_its_delay_when_the_clock_jumps(
    client: tickr.Client, raw_redis: aredis.Redis, url: str, namespace: str, jump: float
) -> None:
    worker = jumping_worker(url, namespace, jump, "--retry-delay", "1")
    try:
        worker.signal(signal.SIGUSR1)
        worker.wait_for_line("wall clock stepped")
        info = await client.enqueue("fail-once", retention=60)
        await finished_all(raw_redis, namespace, 1)
    finally:
        stop(worker)
    failed_at = await counts(raw_redis, f"{namespace}:failed-at")
    retried_at = await counts(raw_redis, f"{namespace}:retried-at")
    assert retried_at[info.id] - failed_at[info.id] >= 1000, "the retry came before its delay"
    stored = await client.get_task(info.id)
    assert (stored.state, stored.retried) == ("completed", 1)
