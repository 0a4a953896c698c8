"""Tickr on one Redis, on a Redis Cluster and on Sentinel, in the same run.

Starts the three topologies on loopback ports (tickr.testing: one redis-server; a
Cluster of 3 primaries with a replica each and ``cluster-require-full-coverage no``; a
primary, a replica and 3 sentinels), then measures on each, with one in-process Server
(concurrency 100) serving six queues:

1. drain: N no-op tasks spread over the six queues, enqueued first, then served in burst
   mode; tasks/s, and the ratio to one Redis.
2. latency: enqueue -> handler start on an idle server, one task at a time round-robin
   over the queues (p50, p99).
3. Redis CPU per task, per shard (``used_cpu_sys + used_cpu_user`` of each primary over the
   drain), and how the six queues spread over the shards.
4. failover: a light steady load (one enqueue every 5 ms to a queue of the failing
   primary) while that primary is SIGKILLed (Cluster, Sentinel) or failed over with
   ``SENTINEL FAILOVER``; the outage is the longest pause between two handler starts of
   that queue, and the enqueue outage the time from the first failed enqueue to the next
   that succeeded.

Run ``python benchmarks/bench_topologies.py --help`` for the options.  Timings depend on
the machine; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

import tickr
from tickr._broker.keys import QueueKeys
from tickr.testing import RedisServer
from tickr.testing.topology import ClusterServers, SentinelServers

QUEUES = [f"q{n}" for n in range(6)]
PARTIAL_COVERAGE = ["--cluster-require-full-coverage", "no"]


def _cpu(port: int) -> float:
    with redis.Redis(port=port, protocol=2) as node:
        info = node.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def drain(url: str, namespace: str, total: int) -> float:
    """Enqueue `total` tasks over the six queues, then serve them; returns tasks/s."""
    async with tickr.Client(url, namespace=namespace) as client:
        specs = [tickr.TaskSpec("t", n, queue=QUEUES[n % 6]) for n in range(total)]
        for start in range(0, total, 1000):
            await client.enqueue_many(specs[start : start + 1000])

    async def handler(task: tickr.Task) -> None:
        return None

    server = tickr.Server(
        url, namespace=namespace, concurrency=100, queues=dict.fromkeys(QUEUES, 1)
    )
    begin = time.perf_counter()
    await server.serve(handler, burst=True)
    return total / (time.perf_counter() - begin)


async def latency(url: str, namespace: str, samples: int) -> tuple[float, float]:
    """Enqueue -> handler start on an idle server, in ms: (p50, p99)."""
    started: dict[str, float] = {}
    arrived = asyncio.Event()

    async def handler(task: tickr.Task) -> None:
        started[task.id] = time.perf_counter()
        arrived.set()

    server = tickr.Server(url, namespace=namespace, queues=dict.fromkeys(QUEUES, 1))
    serving = asyncio.create_task(server.serve(handler))
    delays = []
    try:
        await server.wait_ready()
        async with tickr.Client(url, namespace=namespace) as client:
            await asyncio.sleep(0.3)  # idle
            for n in range(samples):
                arrived.clear()
                sent = time.perf_counter()
                info = await client.enqueue("t", queue=QUEUES[n % 6])
                await asyncio.wait_for(arrived.wait(), 10)
                delays.append((started[info.id] - sent) * 1000)
                await asyncio.sleep(0.01)
    finally:
        await server.shutdown()
        await serving
    delays.sort()
    return statistics.median(delays), delays[int(len(delays) * 0.99) - 1]


async def outage(
    url: str, namespace: str, queue: str, fail: Any, settle: float
) -> tuple[float, float, int]:
    """(handler outage s, enqueue outage s, enqueues that failed) around `fail()`."""
    starts: list[float] = []

    async def handler(task: tickr.Task) -> None:
        starts.append(time.perf_counter())

    server = tickr.Server(url, namespace=namespace, queues={queue: 1})
    serving = asyncio.create_task(server.serve(handler))
    failed_at: float | None = None
    enqueue_gap = 0.0
    failures = 0
    try:
        await server.wait_ready()
        async with tickr.Client(url, namespace=namespace) as client:
            end = time.perf_counter() + settle
            failing = asyncio.create_task(_after(0.5, fail))
            while time.perf_counter() < end or not failing.done():
                try:
                    await client.enqueue("t", queue=queue)
                except tickr.RedisUnavailable:
                    failures += 1
                    failed_at = failed_at or time.perf_counter()
                else:
                    if failed_at is not None:
                        enqueue_gap = max(enqueue_gap, time.perf_counter() - failed_at)
                        failed_at = None
                await asyncio.sleep(0.005)
            await failing
            await asyncio.sleep(1.0)
    finally:
        await server.shutdown()
        await serving
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    return max(gaps, default=0.0), enqueue_gap, failures


async def _after(delay: float, action: Any) -> None:
    await asyncio.sleep(delay)
    await asyncio.to_thread(action)


@contextlib.contextmanager
def topologies(binary: str | None) -> Iterator[dict[str, Any]]:
    with (
        RedisServer(binary=binary) as single,
        ClusterServers(binary=binary, extra_args=PARTIAL_COVERAGE) as cluster,
        SentinelServers(binary=binary) as sentinel,
    ):
        yield {"one Redis": single, "Cluster": cluster, "Sentinel": sentinel}


def _primaries(servers: Any) -> list[RedisServer]:
    if isinstance(servers, RedisServer):
        return [servers]
    if isinstance(servers, SentinelServers):
        return [servers.primary()]
    return [
        node
        for node in servers.nodes
        if node.running and servers.client(node).execute_command("ROLE")[0] == b"master"
    ]


def _spread(servers: Any, namespace: str) -> str:
    if not isinstance(servers, ClusterServers):
        return "one node"
    counts: dict[int, int] = {}
    for queue in QUEUES:
        port = servers.primary_of(QueueKeys(namespace, queue).pending).port
        counts[port] = counts.get(port, 0) + 1
    return " / ".join(str(count) for count in sorted(counts.values(), reverse=True))


async def _failovers(cluster: ClusterServers, sentinel: SentinelServers) -> list[str]:
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    victim = cluster.primary_of(QueueKeys(namespace, "q0").pending)
    faults = [
        ("Cluster primary SIGKILL", cluster.url, victim.kill),
        ("SENTINEL FAILOVER", sentinel.url, sentinel.failover),
        ("Sentinel primary SIGKILL", sentinel.url, lambda: sentinel.primary().kill()),
    ]
    lines = [
        "",
        "| Failover | Queue's handler outage (s) | Enqueue outage (s) | Failed enqueues |",
        "|---|---|---|---|",
    ]
    for name, url, fail in faults:
        await asyncio.to_thread(sentinel.wait_healthy)  # the previous failover settled
        handler_gap, enqueue_gap, failures = await outage(url, namespace, "q0", fail, 4.0)
        lines.append(f"| {name} | {handler_gap:.2f} | {enqueue_gap:.2f} | {failures} |")
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=20_000, help="tasks per drain")
    parser.add_argument("--samples", type=int, default=200, help="latency samples")
    parser.add_argument("--no-failover", action="store_true", help="skip the failovers")
    parser.add_argument("--binary", help="redis-server or valkey-server to run")
    parser.add_argument("--output", type=Path, help="also write the report here")
    options = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the failovers' warnings are expected
    lines = [
        f"Tickr on three topologies: {options.tasks} tasks per drain, "
        f"{options.samples} latency samples, one in-process Server (concurrency 100) "
        "serving six queues.",
        "",
        "| Topology | Drain (tasks/s) | vs one Redis | Latency p50 / p99 (ms) | "
        "Redis CPU per task (µs, per primary) | Queues per primary |",
        "|---|---|---|---|---|---|",
    ]
    with topologies(options.binary) as deployed:
        base = None
        for name, servers in deployed.items():
            namespace = f"bench-{uuid.uuid4().hex[:6]}"
            primaries = _primaries(servers)
            before = [_cpu(node.port) for node in primaries]
            rate = await drain(servers.url, namespace, options.tasks)
            cpu = [
                (_cpu(node.port) - was) * 1e6 / options.tasks
                for node, was in zip(primaries, before, strict=True)
            ]
            base = base or rate
            p50, p99 = await latency(servers.url, namespace, options.samples)
            lines.append(
                f"| {name} | {rate:,.0f} | {rate / base:.2f}x | {p50:.2f} / {p99:.2f} | "
                f"{' / '.join(f'{c:.1f}' for c in cpu)} | {_spread(servers, namespace)} |"
            )
        if not options.no_failover:
            lines += await _failovers(deployed["Cluster"], deployed["Sentinel"])
    report = "\n".join(lines) + "\n"
    sys.stdout.write(report)
    if options.output is not None:
        options.output.write_text(report)


if __name__ == "__main__":
    asyncio.run(main())
