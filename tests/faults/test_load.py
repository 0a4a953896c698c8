"""Bursts: ten thousand tasks due at the same moment, and four processes racing on a queue."""

import signal
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aredis

import tickr
from tests.faults._support import FaultWorker, attempts, counts, done, ids_of, queue_info, runs
from tests.helpers import eventually

TOTAL = 10_000


@pytest.mark.slow
async def test_ten_thousand_tasks_due_at_the_same_moment_run_once_each_not_before(
    client: tickr.Client, raw_redis: aredis.Redis, url: str, namespace: str
) -> None:
    worker = FaultWorker(url, namespace, "--concurrency", "50", "--stamp")
    try:
        worker.wait_ready()
        due = datetime.now(UTC) + timedelta(seconds=4)
        due_ms = int(due.timestamp() * 1000)
        begin = time.monotonic()
        ids = ids_of(
            await client.enqueue_many([tickr.TaskSpec("count", at=due) for _ in range(TOTAL)])
        )
        enqueued = time.monotonic() - begin
        info = await queue_info(url, namespace)
        early = await raw_redis.hlen(f"{namespace}:runs")
        if time.time() * 1000 < due_ms - 200:  # still clearly before the due time
            assert (info.scheduled, info.pending, early) == (TOTAL, 0, 0), "nothing is due yet"

        async def all_done() -> bool:
            return await raw_redis.hlen(f"{namespace}:runs:done") >= TOTAL

        await eventually(all_done, timeout=60, interval=0.05)
        finished_ms = time.time() * 1000
    finally:
        worker.signal(signal.SIGTERM)
        worker.wait()
        worker.stop()
    stamps = await counts(raw_redis, f"{namespace}:first-start")
    print(
        f"\nenqueued {TOTAL} tasks due at once in {enqueued:.2f}s; first started "
        f"{(min(stamps.values()) - due_ms) / 1000:+.3f}s after the due time, last "
        f"{(max(stamps.values()) - due_ms) / 1000:+.3f}s, all done "
        f"{(finished_ms - due_ms) / 1000:+.3f}s"
    )
    assert min(stamps.values()) >= due_ms, "a task ran before its due time"
    started = await runs(raw_redis, namespace)
    assert set(started) == set(ids)
    assert set(started.values()) == {1}, "a task ran twice"
    assert set((await done(raw_redis, namespace)).values()) == {1}
    info = await queue_info(url, namespace)
    assert (info.scheduled, info.pending, info.active, info.retry) == (0, 0, 0, 0)
    assert await attempts(url, namespace) == (TOTAL, 0)


@pytest.mark.slow
async def test_four_worker_processes_racing_on_one_queue_run_each_task_once(
    client: tickr.Client, raw_redis: aredis.Redis, url: str, namespace: str
) -> None:
    workers = [FaultWorker(url, namespace, "--concurrency", "20") for _ in range(4)]
    try:
        for worker in workers:
            worker.wait_ready()
        # All four are idle and listening: the enqueue wakes them at the same moment.
        begin = time.monotonic()
        ids = ids_of(await client.enqueue_many([tickr.TaskSpec("count") for _ in range(TOTAL)]))

        async def all_done() -> bool:
            return await raw_redis.hlen(f"{namespace}:runs:done") >= TOTAL

        await eventually(all_done, timeout=60, interval=0.05)
        drained = time.monotonic() - begin
        for worker in workers:
            worker.signal(signal.SIGTERM)
        codes = [worker.wait() for worker in workers]
    finally:
        for worker in workers:
            worker.stop()
    assert codes == [0, 0, 0, 0]
    shares = await counts(raw_redis, f"{namespace}:by-worker")
    print(
        f"\n4 processes drained {TOTAL} tasks in {drained:.1f}s; shares: {sorted(shares.values())}"
    )
    started = await runs(raw_redis, namespace)
    assert set(started) == set(ids)
    assert set(started.values()) == {1}, "a task ran twice"
    assert sum(shares.values()) == TOTAL
    info = await queue_info(url, namespace)
    assert (info.pending, info.active, info.retry, info.archived) == (0, 0, 0, 0)
    assert await attempts(url, namespace) == (TOTAL, 0)
