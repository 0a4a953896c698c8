"""Cancelling a task that runs in another process: archived as "cancelled", never retried."""

import asyncio
import signal

import pytest
import redis.asyncio as aredis

import tickr
from tests.faults._support import FaultWorker, attempts, done, runs
from tests.helpers import eventually


async def _cancel_running_task(
    client: tickr.Client,
    raw_redis: aredis.Redis,
    url: str,
    namespace: str,
    *,
    drop_pubsub: bool,
) -> FaultWorker:
    task = await client.enqueue("count", 30, retention=300)
    other = await client.enqueue("count", 0.2, retention=300)
    worker = FaultWorker(url, namespace, "--lease-duration", "2", "--heartbeat-interval", "0.5")
    try:
        worker.wait_ready()

        async def both_started() -> bool:
            return await raw_redis.hlen(f"{namespace}:runs") == 2

        await eventually(both_started)
        if drop_pubsub:
            # The cancel notice may then be published while the worker resubscribes: the
            # flag it leaves on the task reaches the worker with its next lease renewal.
            await raw_redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        assert (await client.get_task(task.id)).state == "active"
        assert await client.cancel(task.id) is True
        with pytest.raises(tickr.TaskFailed) as failed:
            await client.result(task.id, timeout=10)
        assert failed.value.last_error == "cancelled"
        stored = await client.get_task(task.id)
        assert (stored.state, stored.last_error, stored.retried) == ("archived", "cancelled", 0)
        assert await client.result(other.id, timeout=10) == "ran", "the other task is unharmed"
        # Not retried: nothing runs it again, for longer than a lease and a retry delay.
        await asyncio.sleep(3)
        assert (await runs(raw_redis, namespace)) == {task.id: 1, other.id: 1}
        assert (await done(raw_redis, namespace)) == {other.id: 1}, "the handler was stopped"
        assert (await client.get_task(task.id)).state == "archived"
        assert await client.cancel(task.id) is False, "nothing left to cancel"
        assert await attempts(url, namespace) == (2, 1)
        assert worker.process.poll() is None
    finally:
        worker.signal(signal.SIGTERM)
        worker.wait()
        worker.stop()
    assert worker.process.returncode == 0
    return worker


async def test_cancel_stops_a_task_running_in_another_process(
    client: tickr.Client, raw_redis: aredis.Redis, url: str, namespace: str
) -> None:
    await _cancel_running_task(client, raw_redis, url, namespace, drop_pubsub=False)


async def test_cancel_reaches_another_process_whose_pubsub_connection_dropped(
    client: tickr.Client, raw_redis: aredis.Redis, url: str, namespace: str
) -> None:
    await _cancel_running_task(client, raw_redis, url, namespace, drop_pubsub=True)
