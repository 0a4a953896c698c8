"""One awaited enqueue at a time against the floor's awaited LPUSH, with Redis' share.

    .venv/bin/python benchmarks/probe_enqueue.py [--tasks 10000] [--rounds 3] [--binary PATH]

Starts a private redis-server; per round, times `--tasks` awaited `LPUSH`es of a JSON
message through redis-py, then as many `Client.enqueue` calls on a flushed Redis, and
reads `INFO commandstats` after each: the microseconds Redis spent per call
(`usec_per_call` of the command, or of EVALSHA for Tickr).  Prints one line per round
and the median ratio.  What docs/performance.md's "The single enqueue, profiled" uses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import redis.asyncio as aredis

import tickr
from tickr.testing import RedisServer


async def _server_usec(client: aredis.Redis, command: str) -> float:
    stats = await client.info("commandstats")
    return float(stats.get(f"cmdstat_{command}", {}).get("usec_per_call", 0.0))


async def round_trip(url: str, tasks: int) -> tuple[float, float, float, float]:
    """(floor calls/s, Tickr calls/s, floor µs in Redis, Tickr µs in Redis) of one round."""
    raw = aredis.from_url(url)
    try:
        await raw.flushall()
        await raw.config_resetstat()
        began = time.perf_counter()
        for n in range(tasks):
            await raw.lpush("floor", json.dumps({"i": n, "t": time.time()}))
        floor_rate = tasks / (time.perf_counter() - began)
        floor_usec = await _server_usec(raw, "lpush")
        await raw.flushall()
        async with tickr.Client(url, namespace="probe") as client:
            await client.enqueue("noop", {"i": -1})  # connections open, scripts loaded
            await raw.config_resetstat()
            began = time.perf_counter()
            for n in range(tasks):
                await client.enqueue("noop", {"i": n, "t": time.time()})
            tickr_rate = tasks / (time.perf_counter() - began)
        tickr_usec = await _server_usec(raw, "evalsha")
    finally:
        await raw.aclose()
    return floor_rate, tickr_rate, floor_usec, tickr_usec


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--binary", help="redis-server or valkey-server to run")
    options = parser.parse_args()
    ratios = []
    with RedisServer(binary=options.binary) as server:
        for index in range(options.rounds):
            floor, mine, floor_usec, mine_usec = await round_trip(server.url, options.tasks)
            ratios.append(mine / floor)
            print(
                f"round {index + 1}: floor {floor:,.0f}/s ({floor_usec:.1f} µs in Redis), "
                f"Tickr {mine:,.0f}/s ({mine_usec:.1f} µs in Redis), {mine / floor:.2f}x"
            )
    print(f"median ratio {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
