"""A child process for the Cluster fault tests: enqueue a backlog, then drain it.

    python -m tests.faults._cluster_drain URL NAMESPACE OUTPUT [options]

It enqueues ``--total`` tasks round-robin over ``--queues`` (with ``--wait-replicas``),
prints ``serving`` once its server is ready and ``progress N`` as tasks finish, and
stops when every task of ``--finish-queues`` (default: all) has run, or after
``--max-seconds``.  It then writes OUTPUT: the acknowledged ids with their queue, and
every run as (id, queue, time.monotonic()).  Kept out of the test process so that
redis-py's cluster client, which leaves sockets behind when a node dies, cannot leak
into the test session.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import tickr


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("namespace")
    parser.add_argument("output")
    parser.add_argument("--queues", default="q0,q1,q2,q3,q4,q5")
    parser.add_argument("--finish-queues", default="")
    parser.add_argument("--total", type=int, default=1200)
    parser.add_argument("--sleep", type=float, default=0.01)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--wait-replicas", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    return parser.parse_args()


async def main() -> tuple[str, dict[str, object]]:
    options = _parse()
    queues = options.queues.split(",")
    finish_queues = set(options.finish_queues.split(",")) if options.finish_queues else set(queues)
    acknowledged: dict[str, str] = {}
    runs: list[tuple[str, str, float]] = []
    async with tickr.Client(
        options.url, namespace=options.namespace, wait_replicas=options.wait_replicas
    ) as client:
        specs = [
            tickr.TaskSpec("t", n, queue=queues[n % len(queues)]) for n in range(options.total)
        ]
        for start in range(0, len(specs), 200):
            for result in await client.enqueue_many(specs[start : start + 200]):
                assert isinstance(result, tickr.TaskInfo), result
                acknowledged[result.id] = result.queue
    remaining = {task_id for task_id, queue in acknowledged.items() if queue in finish_queues}
    finished = asyncio.Event()

    async def handler(task: tickr.Task) -> None:
        await asyncio.sleep(options.sleep)
        runs.append((task.id, task.queue, time.monotonic()))
        if len(runs) % 50 == 0:
            print(f"progress {len(runs)}", file=sys.stderr, flush=True)
        remaining.discard(task.id)
        if not remaining:
            finished.set()

    server = tickr.Server(
        options.url,
        namespace=options.namespace,
        queues=dict.fromkeys(queues, 1),
        concurrency=options.concurrency,
        lease_duration=3,
        heartbeat_interval=0.5,
        retry_delay=tickr.constant_delay(0.2),
    )
    serving = asyncio.create_task(server.serve(handler))
    try:
        await server.wait_ready()
        print("serving", file=sys.stderr, flush=True)
        try:
            await asyncio.wait_for(finished.wait(), options.max_seconds)
        except TimeoutError:
            print("gave up waiting", file=sys.stderr, flush=True)
    finally:
        await server.shutdown()
        await serving
    return options.output, {"acknowledged": acknowledged, "runs": runs}


if __name__ == "__main__":
    output, outcome = asyncio.run(main())
    Path(output).write_text(json.dumps(outcome))
