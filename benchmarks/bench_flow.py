"""Flow control: what the rate limiter costs, and how exact it is.

Starts a private redis-server, then, with two Servers in this process (concurrency 50
each, a no-op handler):

1. overhead: drains ``--tasks`` tasks with no limit, then the same with a rate limit far
   above the load (1,000,000,000 a second) and with a concurrency limit far above it
   (100,000), in an order rotated from one repeat to the next, ``--repeat`` times: the
   drain rates and their ratios;
2. precision: ``--starts`` tasks under a rate limit of ``--rate`` a second, for each
   burst of ``--bursts``, each handler recording when it started; the report gives the
   largest excess over what the limit allows in any window, in ms (how much earlier than
   allowed the most crowded window's last task started; below 1 ms is exact to the
   millisecond, Redis' resolution), and the achieved rate.

Run ``python benchmarks/bench_flow.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import tickr
from tickr.testing import RedisServer

BATCH = 1000


def worst_excess_ms(starts: list[float], per_second: float, burst: int = 1) -> float:
    """The largest (allowed span - actual span) over any run of starts, in ms.

    k starts need (k - burst) / per_second seconds between the first and the last; with
    a_k = k / per_second - t_k that is max over i < j of a_j - a_i, found in one pass.
    """
    interval = 1 / per_second
    ordered = sorted(starts)
    worst = -float("inf")
    lowest = float("inf")
    for index, moment in enumerate(ordered):
        value = index * interval - moment
        lowest = min(lowest, value)
        worst = max(worst, value - lowest + (1 - burst) * interval)
    return worst * 1000


async def _fill(url: str, namespace: str, total: int, queue: str = "default") -> None:
    async with tickr.Client(url, namespace=namespace) as client:
        for start in range(0, total, BATCH):
            count = min(BATCH, total - start)
            await client.enqueue_many([tickr.TaskSpec("t", n, queue=queue) for n in range(count)])


async def _drain(
    url: str, namespace: str, total: int, handler: Callable[[tickr.Task], Awaitable[None]]
) -> float:
    """Seconds two servers take to finish `total` tasks already enqueued."""
    finished = 0
    done = asyncio.Event()

    async def counted(task: tickr.Task) -> None:
        nonlocal finished
        await handler(task)
        finished += 1
        if finished >= total:
            done.set()

    servers = [tickr.Server(url, namespace=namespace, concurrency=50) for _ in range(2)]
    began = time.perf_counter()
    serving = [asyncio.create_task(server.serve(counted)) for server in servers]
    await asyncio.wait_for(done.wait(), timeout=600)
    took = time.perf_counter() - began
    for server in servers:
        await server.shutdown()
    await asyncio.gather(*serving)
    return took


async def _noop(task: tickr.Task) -> None:
    return None


async def overhead(url: str, tasks: int, repeat: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {"no limit": [], "rate limit far above": [],
                                     "concurrency limit far above": []}  # fmt: skip
    names = list(rates)
    for run in range(repeat):
        for name in names[run % len(names) :] + names[: run % len(names)]:  # rotated
            namespace = f"flow-{run}-{len(rates[name])}-{name.split()[0]}"
            async with tickr.Inspector(url, namespace=namespace) as inspector:
                if name.startswith("rate"):
                    await inspector.set_rate_limit("default", 1_000_000_000)
                elif name.startswith("concurrency"):
                    await inspector.set_concurrency_limit("default", 100_000)
            await _fill(url, namespace, tasks)
            rates[name].append(tasks / await _drain(url, namespace, tasks, _noop))
    return rates


async def precision(url: str, starts: int, rate: float, burst: int) -> tuple[float, float]:
    namespace = f"flow-precision-{burst}"
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        await inspector.set_rate_limit("default", int(rate), 1.0, burst=burst)
    await _fill(url, namespace, starts)
    moments: list[float] = []

    async def record(task: tickr.Task) -> None:
        moments.append(time.monotonic())

    await _drain(url, namespace, starts, record)
    span = max(moments) - min(moments)
    return worst_excess_ms(moments, rate, burst), (len(moments) - 1) / span


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=20_000, help="tasks per drain (20,000)")
    parser.add_argument("--repeat", type=int, default=3, help="drains of each kind (3)")
    parser.add_argument("--starts", type=int, default=10_000, help="starts measured (10,000)")
    parser.add_argument("--rate", type=float, default=1000.0, help="their rate limit (1000/s)")
    parser.add_argument(
        "--bursts", type=int, nargs="+", default=[1, 10], help="bursts measured (1 10)"
    )
    parser.add_argument("--output", type=Path, help="also write the report here")
    args = parser.parse_args()
    with RedisServer() as server:
        rates = asyncio.run(overhead(server.url, args.tasks, args.repeat))
        measured = [
            (burst, *asyncio.run(precision(server.url, args.starts, args.rate, burst)))
            for burst in args.bursts
        ]
    base = statistics.median(rates["no limit"])
    lines = [
        f"Flow control: drains of {args.tasks:,} no-op tasks by two Servers (concurrency 50 "
        f"each, one process), medians of {args.repeat}; {args.starts:,} starts at a rate "
        f"limit of {args.rate:g}/s.",
        "",
        "| drain | tasks/s | against no limit |",
        "|---|---|---|",
    ]
    for name, values in rates.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:,.0f} | {median / base:.2f}x |")
    lines += [
        "",
        "| burst | largest excess over the limit in any window | achieved rate |",
        "|---|---|---|",
    ]
    lines += [
        f"| {burst} | {excess:.2f} ms | {achieved:,.0f}/s of {args.rate:g}/s |"
        for burst, excess, achieved in measured
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.output:
        args.output.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
