"""A large backlog: Redis memory per pending task, the drain of it, inspection on it.

Starts a private redis-server, then:

1. enqueues ``--tasks`` tasks (default 1,000,000) of payload ``{"i": n}`` with
   ``enqueue_many`` in batches of 1,000, reporting the time and Redis' ``used_memory``
   growth per task (the raw LPUSH of the same msgpack payloads, in another database of
   the same Redis, is the floor);
2. times the Inspector on that backlog: ``queue_info`` with and without ``memory``, and
   ``list_tasks`` for the first and the last page of pending tasks;
3. drains it with one worker process (benchmarks/_worker.py, concurrency 100) and reports
   the rate, Redis CPU per task (µs, ``used_cpu_sys + used_cpu_user``) and the worker's
   peak RSS.

Run ``python benchmarks/bench_backlog.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import msgpack
import redis

import tickr
from tickr.testing import RedisServer

WORKER = Path(__file__).with_name("_worker.py")
NAMESPACE = "bench"
BATCH = 1000


def _used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def _redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def floor_bytes_per_task(port: int, total: int) -> float:
    """used_memory growth per task of a bare LPUSH of the same payloads (database 1)."""
    client = redis.Redis(port=port, db=1, protocol=2)
    before = _used_memory(client)
    for start in range(0, total, BATCH):
        pipe = client.pipeline(transaction=False)
        for n in range(start, min(start + BATCH, total)):
            pipe.lpush("floor", msgpack.packb({"i": n}))
        pipe.execute()
    grown = _used_memory(client) - before
    client.flushdb()
    client.close()
    return grown / total


async def enqueue_backlog(url: str, total: int) -> float:
    """Enqueue the backlog; returns the seconds it took."""
    begin = time.perf_counter()
    async with tickr.Client(url, namespace=NAMESPACE) as client:
        for start in range(0, total, BATCH):
            specs = [
                tickr.TaskSpec("bench:noop", {"i": n})
                for n in range(start, min(start + BATCH, total))
            ]
            await client.enqueue_many(specs)
    return time.perf_counter() - begin


async def time_inspection(url: str, total: int) -> dict[str, float]:
    """Milliseconds of each Inspector call on the backlog."""
    timings: dict[str, float] = {}
    async with tickr.Inspector(url, namespace=NAMESPACE) as inspector:
        await inspector.queue_info("default", memory=False)  # the connection is open

        async def timed(name: str, call: Any) -> Any:
            begin = time.perf_counter()
            result = await call
            timings[name] = (time.perf_counter() - begin) * 1000
            return result

        info = await timed("queue_info", inspector.queue_info("default", memory=False))
        await timed("queue_info(memory=True)", inspector.queue_info("default"))
        await timed("list_tasks first page", inspector.list_tasks("default", "pending"))
        last_page = max(1, -(-info.pending // 30))
        page = await timed(
            "list_tasks last page", inspector.list_tasks("default", "pending", page=last_page)
        )
        if info.pending != total or not page:
            raise RuntimeError(f"the backlog is not what was enqueued: {info!r}")
    return timings


async def drain(url: str) -> dict[str, Any]:
    """Drain with one worker process; its JSON report."""
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER),
        "drain",
        "--url",
        url,
        "--namespace",
        NAMESPACE,
        "--concurrency",
        "100",
        "--timeout",
        "3600",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await worker.communicate()
    if worker.returncode != 0:
        raise RuntimeError(f"the worker failed with exit code {worker.returncode}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--binary", help="redis-server or valkey-server to run")
    parser.add_argument("--output", type=Path, help="also write the report here")
    options = parser.parse_args()
    total = options.tasks
    with RedisServer(binary=options.binary) as server:
        raw = redis.Redis(port=server.port, protocol=2)
        floor = floor_bytes_per_task(server.port, total)
        before = _used_memory(raw)
        enqueue_s = await enqueue_backlog(server.url, total)
        per_task = (_used_memory(raw) - before) / total
        timings = await time_inspection(server.url, total)
        cpu_before = _redis_cpu(raw)
        report = await drain(server.url)
        redis_cpu_us = (_redis_cpu(raw) - cpu_before) * 1e6 / total
        raw.close()
    if report["handled"] != total:
        raise RuntimeError(f"the worker handled {report['handled']} of {total} tasks")
    drain_s = report["last_handler"] - report["first_handler"]
    lines = [
        f'Backlog of {total:,} tasks of payload {{"i": n}} (enqueue_many, batches of {BATCH}).',
        "",
        "| Figure | Value |",
        "|---|---|",
        f"| enqueue | {enqueue_s:.1f} s ({total / enqueue_s:,.0f} tasks/s) |",
        f"| Redis memory per pending task | {per_task:.0f} B |",
        f"| floor: LPUSH of the msgpack payload | {floor:.0f} B |",
        *(f"| {name} | {ms:.1f} ms |" for name, ms in timings.items()),
        f"| drain, one worker (concurrency 100) | {total / drain_s:,.0f} tasks/s |",
        f"| Redis CPU per task in the drain | {redis_cpu_us:.1f} µs |",
        f"| worker peak RSS | {report['maxrss_kib'] / 1024:.0f} MiB |",
    ]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if options.output is not None:
        options.output.write_text(text)


if __name__ == "__main__":
    asyncio.run(main())
