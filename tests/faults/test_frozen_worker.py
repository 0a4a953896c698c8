"""A worker frozen (SIGSTOP) past its lease: the task is recovered and completed elsewhere,
and whatever the frozen worker does once continued (SIGCONT) changes nothing."""

import signal
from typing import Any

import redis.asyncio as aredis

import tickr
from tests.conftest import ServerFactory
from tests.faults._support import FaultWorker, attempts, done, runs
from tests.helpers import eventually

FROZEN_LEASE = ("--lease-duration", "2", "--heartbeat-interval", "0.5")
RECOVERER = {"lease_duration": 2, "heartbeat_interval": 0.2}


def recovering_handler(raw_redis: aredis.Redis, namespace: str) -> Any:
    async def handler(task: tickr.Task) -> str:
        await raw_redis.hincrby(f"{namespace}:runs", task.id, 1)
        await raw_redis.hincrby(f"{namespace}:runs:done", task.id, 1)
        return "recovered"

    return handler


async def _frozen(worker: FaultWorker) -> bool:
    return worker.state() == "T"


async def _completed(client: tickr.Client, task_id: str) -> bool:
    return (await client.get_task(task_id)).state == "completed"


async def test_a_frozen_workers_task_is_recovered_and_its_handler_stopped_on_resume(
    client: tickr.Client,
    raw_redis: aredis.Redis,
    running_server: ServerFactory,
    url: str,
    namespace: str,
) -> None:
    info = await client.enqueue("count", 30, retention=300)
    frozen = FaultWorker(url, namespace, *FROZEN_LEASE)
    try:
        frozen.wait_ready()

        async def started() -> bool:
            return await raw_redis.hget(f"{namespace}:runs", info.id) is not None

        await eventually(started)
        frozen.signal(signal.SIGSTOP)
        await eventually(lambda: _frozen(frozen))
        async with running_server(recovering_handler(raw_redis, namespace), **RECOVERER):
            await eventually(lambda: _completed(client, info.id), timeout=20)
            frozen.signal(signal.SIGCONT)
            # Once it runs again, the frozen worker learns that it lost the lease.
            frozen.wait_for_line(f"lost the lease of task {info.id}")
        stored = await client.get_task(info.id)
        assert (stored.state, stored.result) == ("completed", "recovered")
        assert (stored.retried, stored.last_error) == (1, "worker lost")
        assert (await runs(raw_redis, namespace))[info.id] == 2
        assert (await done(raw_redis, namespace))[info.id] == 1, "its handler was stopped"
        assert await attempts(url, namespace) == (2, 1), "the frozen attempt counted once"
        assert frozen.process.poll() is None, "the continued worker serves on"
    finally:
        frozen.signal(signal.SIGCONT)
        frozen.signal(signal.SIGTERM)
        frozen.wait()
        frozen.stop()
    assert frozen.process.returncode == 0


async def test_the_late_acknowledgement_of_a_frozen_worker_is_rejected(
    client: tickr.Client,
    raw_redis: aredis.Redis,
    running_server: ServerFactory,
    url: str,
    namespace: str,
) -> None:
    info = await client.enqueue("freeze-self", retention=300)
    frozen = FaultWorker(url, namespace, *FROZEN_LEASE)
    try:
        frozen.wait_ready()
        # Its handler stops its own process mid-task (see tests/faults/_worker.py).
        await eventually(lambda: _frozen(frozen), timeout=20)
        async with running_server(recovering_handler(raw_redis, namespace), **RECOVERER):
            await eventually(lambda: _completed(client, info.id), timeout=20)
        assert (await client.get_task(info.id)).result == "recovered"
        frozen.signal(signal.SIGCONT)
        # The handler finishes at once and the server reports "completed": Redis refuses.
        frozen.wait_for_line(f"of task {info.id} in 'default' ignored")
        stored = await client.get_task(info.id)
        assert (stored.state, stored.result) == ("completed", "recovered"), "not 'late'"
        assert (stored.retried, stored.last_error) == (1, "worker lost")
        assert (await runs(raw_redis, namespace))[info.id] == 2
        # The frozen handler did run to its end: the one duplicate at-least-once allows.
        assert (await done(raw_redis, namespace))[info.id] == 2
        assert await attempts(url, namespace) == (2, 1), "the late outcome is not counted"
        assert frozen.process.poll() is None
    finally:
        frozen.signal(signal.SIGCONT)
        frozen.signal(signal.SIGTERM)
        frozen.wait()
        frozen.stop()
    assert frozen.process.returncode == 0
