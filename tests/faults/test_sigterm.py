"""SIGTERM on a worker whose handlers outlast its shutdown_timeout: nothing lost or rerun."""

import signal
import time

import redis.asyncio as aredis

import tickr
from tests.faults._support import FaultWorker, attempts, done, ids_of, queue_info, runs
from tests.helpers import eventually


async def test_sigterm_requeues_the_long_tasks_at_once_and_never_reruns_finished_ones(
    client: tickr.Client, raw_redis: aredis.Redis, url: str, namespace: str
) -> None:
    # 10 quick tasks (finish within the 1 s shutdown_timeout) and 10 that sleep 30 s on
    # their first execution, interleaved.
    specs = [tickr.TaskSpec("count", 0.3 if n % 2 else 30, retention=300) for n in range(20)]
    ids = ids_of(await client.enqueue_many(specs))
    quick = {task_id for n, task_id in enumerate(ids) if n % 2}
    slow = set(ids) - quick

    first = FaultWorker(url, namespace, "--concurrency", "20", "--shutdown-timeout", "1")
    try:
        first.wait_ready()

        async def all_started() -> bool:
            return await raw_redis.hlen(f"{namespace}:runs") == 20

        await eventually(all_started, timeout=20)
        begin = time.monotonic()
        first.signal(signal.SIGTERM)
        assert first.wait() == 0
        print(f"\nworker exited {time.monotonic() - begin:.2f}s after SIGTERM")
    finally:
        first.stop()

    # Right after the exit: the quick ones completed, the slow ones are pending again
    # (requeued, not failed), none is left active for a lease to expire.
    finished = await done(raw_redis, namespace)
    assert set(finished) == quick
    for task_id in quick:
        assert (await client.get_task(task_id)).state == "completed"
    for task_id in slow:
        task = await client.get_task(task_id)
        assert (task.state, task.retried, task.last_error) == ("pending", 0, None), task
    info = await queue_info(url, namespace)
    assert (info.pending, info.active, info.retry, info.archived) == (10, 0, 0, 0)
    assert any("still running at shutdown: requeued" in line for line in first.lines)

    second = FaultWorker(url, namespace, "--concurrency", "20", "--burst")
    try:
        assert second.wait(timeout=30) == 0
    finally:
        second.stop()

    started = await runs(raw_redis, namespace)
    finished = await done(raw_redis, namespace)
    assert set(finished) == set(ids), "every task completed"
    assert set(finished.values()) == {1}
    assert {started[task_id] for task_id in quick} == {1}, "a finished task ran again"
    assert {started[task_id] for task_id in slow} == {2}, "interrupted once, then rerun"
    for task_id in ids:
        assert (await client.get_task(task_id)).state == "completed"
    info = await queue_info(url, namespace)
    assert (info.pending, info.active, info.retry, info.archived) == (0, 0, 0, 0)
    assert await attempts(url, namespace) == (20, 0), "a requeue at shutdown is no attempt"


async def test_sigterm_while_fetching_leaves_nothing_active_and_every_task_runs(
    client: tickr.Client, raw_redis: aredis.Redis, url: str, namespace: str
) -> None:
    """A shutdown must not drop the reply of a dequeue in flight.

    (Up to 6878fa5 the fetcher was cancelled mid-dequeue: the tasks it had taken stayed
    active until their lease ran out, and those without retries were archived unrun.)
    """
    # Quick tasks keep the fetcher busy: a slot frees up every few milliseconds.
    ids = ids_of(
        await client.enqueue_many([tickr.TaskSpec("count", max_retry=0) for _ in range(3000)])
    )
    left_active = []
    for round_ in range(1, 4):
        worker = FaultWorker(
            url, namespace, "--concurrency", "10",
            "--lease-duration", "2", "--heartbeat-interval", "0.5",
        )  # fmt: skip
        try:
            worker.wait_ready()

            async def some_done(target: int = 300 * round_) -> bool:
                return await raw_redis.hlen(f"{namespace}:runs:done") >= target

            await eventually(some_done, timeout=20)
            worker.signal(signal.SIGTERM)
            assert worker.wait() == 0
        finally:
            worker.stop()
        left_active.append((await queue_info(url, namespace)).active)
    last = FaultWorker(url, namespace, "--concurrency", "20", "--burst")
    try:
        assert last.wait(timeout=30) == 0
    finally:
        last.stop()
    info = await queue_info(url, namespace)
    unrun = set(ids) - set(await runs(raw_redis, namespace))
    print(f"\nactive after each graceful exit: {left_active}; archived unrun: {len(unrun)}")
    assert left_active == [0, 0, 0], "a graceful shutdown left tasks active"
    assert not unrun, "a task was archived without ever running"
    assert info.archived == 0
    assert (await attempts(url, namespace))[1] == 0, "no attempt failed"
