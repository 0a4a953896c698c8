"""Tickr on a real Sentinel set-up started by the suite: a primary, a replica, 3 sentinels."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import redis.asyncio as aredis
from redis.asyncio.sentinel import Sentinel

import tickr
from tests.helpers import eventually
from tests.helpers.redis_clients import server_binaries, task_stored
from tickr._broker.keys import QueueKeys
from tickr.testing import RedisServer
from tickr.testing.topology import SentinelServers

pytestmark = pytest.mark.own_topology


@pytest.fixture(scope="module", params=server_binaries(), ids=["redis", "valkey"])
def sentinel(request: pytest.FixtureRequest) -> Iterator[SentinelServers]:
    """A primary with one replica and three sentinels, on Redis (6.2) or Valkey."""
    with SentinelServers(binary=request.param) as servers:
        yield servers


def _fresh_namespace() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


async def _stored_on(node: RedisServer, namespace: str, task_id: str) -> bool:
    raw = aredis.Redis(port=node.port, protocol=2)
    try:
        return await task_stored(raw, QueueKeys(namespace, "default"), task_id)
    finally:
        await raw.aclose()


async def test_a_server_drains_what_a_client_enqueued_over_the_sentinel_url(
    sentinel: SentinelServers,
) -> None:
    namespace = _fresh_namespace()
    done: list[int] = []

    async def handler(task: tickr.Task) -> int:
        done.append(task.payload)
        return int(task.payload) + 1

    async with tickr.Client(sentinel.url, namespace=namespace, wait_replicas=1) as client:
        infos = await client.enqueue_many(
            [tickr.TaskSpec("t", n, retention=60) for n in range(200)]
        )
        ids = [info.id for info in infos if isinstance(info, tickr.TaskInfo)]
        assert len(ids) == 200
        await tickr.Server(sentinel.url, namespace=namespace).serve(handler, burst=True)
        assert sorted(done) == list(range(200))
        assert await client.result(ids[5], timeout=5) == 6
    assert await _stored_on(sentinel.primary(), namespace, ids[5])


async def test_a_client_made_by_sentinel_master_for_is_accepted(
    sentinel: SentinelServers,
) -> None:
    namespace = _fresh_namespace()
    manager = Sentinel([("127.0.0.1", node.port) for node in sentinel.sentinels], protocol=2)
    given = manager.master_for(sentinel.service, protocol=2)
    try:
        async with tickr.Client(redis=given, namespace=namespace, wait_replicas=1) as client:
            info = await client.enqueue("t", {"a": 1})
            assert (await client.get_task(info.id)).payload == {"a": 1}
        assert await _stored_on(sentinel.primary(), namespace, info.id)
    finally:
        await given.aclose()
        for sentinel_client in manager.sentinels:  # redis-py's Sentinel leaves them open
            await sentinel_client.aclose()


async def test_wait_replicas_returns_once_the_replica_has_the_task(
    sentinel: SentinelServers,
) -> None:
    namespace = _fresh_namespace()
    async with tickr.Client(sentinel.url, namespace=namespace, wait_replicas=1) as client:
        info = await client.enqueue("t")
    replica = next(node for node in sentinel.nodes if node is not sentinel.primary())
    assert await _stored_on(replica, namespace, info.id)


async def test_a_user_whose_acl_forbids_role_still_reaches_the_primary(
    sentinel: SentinelServers,
) -> None:
    """ROLE is an @admin command: an application user often may not run it."""
    acl = ["--user", "app", "on", ">secret", "~*", "&*", "+@all", "-role"]
    with SentinelServers(binary=sentinel.binary, extra_args=acl) as restricted:
        url = restricted.url.replace("redis+sentinel://", "redis+sentinel://app:secret@")
        async with tickr.Client(url, namespace=_fresh_namespace()) as client:
            info = await client.enqueue("t")
            assert (await client.get_task(info.id)).state == "pending"


async def test_clients_and_servers_follow_a_graceful_failover(sentinel: SentinelServers) -> None:
    """After SENTINEL FAILOVER every write goes to the new primary, none to the old one.

    Last in the module: the old primary becomes a replica only ~10 s later.
    """
    namespace = _fresh_namespace()
    ran: list[str] = []

    async def handler(task: tickr.Task) -> None:
        ran.append(task.id)

    server = tickr.Server(sentinel.url, namespace=namespace, concurrency=2)
    serving = asyncio.create_task(server.serve(handler))
    try:
        await server.wait_ready()
        async with tickr.Client(sentinel.url, namespace=namespace) as client:
            before = await client.enqueue("t")
            await eventually(lambda: _has(ran, before.id), timeout=10)
            old = await asyncio.to_thread(sentinel.failover)
            new = await asyncio.to_thread(sentinel.wait_primary_other_than, old)

            async def enqueued_on_new_primary() -> bool:
                try:
                    info = await client.enqueue("t")
                except tickr.RedisUnavailable:
                    return False
                return await _stored_on(new, namespace, info.id)

            # The old primary takes writes for ~10 s more: following +switch-master is faster.
            await eventually(enqueued_on_new_primary, timeout=5, interval=0.05)
            after = await client.enqueue("t")
            await eventually(lambda: _has(ran, after.id), timeout=10)
    finally:
        await server.shutdown()
        await serving


async def _has(ran: list[str], task_id: str) -> bool:
    return task_id in ran
