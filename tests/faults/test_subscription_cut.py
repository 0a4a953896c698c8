"""A worker's pub/sub connection cut while it resubscribes: it must hear of new work."""

import asyncio
import time
from urllib.parse import urlparse

import redis.asyncio as aredis

import tickr
from tests.faults._support import CuttingProxy, FaultWorker
from tests.helpers import eventually

PROMPTLY = 10.0
"""Seconds a task due soon may wait on an idle worker that lost its subscription.  A
worker reconnects within its backoff (at most 2 s); a missed event costs the forwarder's
safety recheck instead, 30 s."""


async def _done(raw_redis: aredis.Redis, namespace: str, task_id: str) -> bool:
    return await raw_redis.hget(f"{namespace}:runs:done", task_id) is not None


async def test_an_idle_worker_hears_of_new_work_after_its_subscription_is_cut(
    client: tickr.Client, raw_redis: aredis.Redis, url: str, namespace: str
) -> None:
    redis_address = urlparse(url)
    assert redis_address.hostname is not None and redis_address.port is not None
    proxy = CuttingProxy(redis_address.hostname, redis_address.port)
    proxied = await proxy.start()
    worker = FaultWorker(proxied, namespace, "--counter-url", url)
    try:
        # The proxy runs on this loop: block only other threads while waiting.
        await asyncio.to_thread(worker.wait_ready)
        first = await client.enqueue("count")
        await eventually(lambda: _done(raw_redis, namespace, first.id))
        # The worker is idle now.  Drop its subscription, and cut the next attempt to
        # subscribe again right after it authenticated.
        proxy.cut_subscribes = 1
        proxy.drop_subscribers()

        async def cut() -> bool:
            return proxy.cuts == 1

        await eventually(cut)
        # A delayed task: an idle worker is handed tasks that are runnable now without
        # pub/sub, but learns when a delayed one is due only from the subscription.
        second = await client.enqueue("count", delay=0.5)
        begin = time.monotonic()
        try:
            await eventually(lambda: _done(raw_redis, namespace, second.id), timeout=PROMPTLY)
        finally:
            print(f"\nthe task enqueued after the cut waited {time.monotonic() - begin:.1f}s")
    finally:
        worker.signal()
        await asyncio.to_thread(worker.wait)
        worker.stop()
        await proxy.close()
