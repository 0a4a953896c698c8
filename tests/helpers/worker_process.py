"""A Tickr worker in its own process, for tests that need real processes.

    python -m tests.helpers.worker_process URL NAMESPACE [--burst] [--concurrency N]
        [--sleep SECONDS] [--shutdown-timeout SECONDS] [--lease-duration S] [--heartbeat-interval S]

Every execution is counted in Redis (hash ``<namespace>:runs``: task id -> starts, and
``<namespace>:runs:done``: task id -> completions), so a test can check that each task
ran exactly once.  A task's payload may be a number of seconds to sleep on its first
attempt (retries do not sleep); otherwise it sleeps --sleep.  Type "block" blocks the
event loop for `payload` seconds with time.sleep, as a careless handler does.  The server
logs "serving" to stderr once it is ready.  With --burst it exits when the queues are
empty; otherwise it is `Server.run()`, stopped by signals.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time

import tickr
from tests.helpers.redis_clients import LazyClient


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("namespace")
    parser.add_argument("--burst", action="store_true")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--shutdown-timeout", type=float, default=8.0)
    parser.add_argument("--lease-duration", type=float, default=None)
    parser.add_argument("--heartbeat-interval", type=float, default=None)
    return parser.parse_args()


def build_mux(url: str, runs_key: str, default_sleep: float) -> tickr.ServeMux:
    mux = tickr.ServeMux()
    counters = LazyClient(url)

    @mux.handle("count")
    async def count(task: tickr.Task) -> None:
        counter = await counters.get()
        await counter.hincrby(runs_key, task.id, 1)
        seconds = default_sleep
        if isinstance(task.payload, int | float):
            seconds = task.payload if task.retry_count == 0 else 0
        if seconds:
            await asyncio.sleep(seconds)
        await counter.hincrby(runs_key + ":done", task.id, 1)

    @mux.handle("block")
    async def block(task: tickr.Task) -> None:
        """Blocks the whole event loop for `payload` seconds, as bad handlers do."""
        counter = await counters.get()
        await counter.hincrby(runs_key, task.id, 1)
        time.sleep(float(task.payload))  # noqa: ASYNC251 - blocking on purpose
        await counter.hincrby(runs_key + ":done", task.id, 1)

    return mux


def main() -> None:
    args = parse()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    mux = build_mux(args.url, f"{args.namespace}:runs", args.sleep)
    leases = {}
    if args.lease_duration is not None:
        leases["lease_duration"] = args.lease_duration
    if args.heartbeat_interval is not None:
        leases["heartbeat_interval"] = args.heartbeat_interval
    server = tickr.Server(
        args.url,
        namespace=args.namespace,
        concurrency=args.concurrency,
        shutdown_timeout=args.shutdown_timeout,
        **leases,
    )
    if args.burst:
        asyncio.run(server.serve(mux, burst=True))
    else:
        server.run(mux)


if __name__ == "__main__":
    main()
