"""The dashboard on a large backlog: time to render a page, and the Redis commands it costs.

Starts a private redis-server, enqueues ``--tasks`` tasks (default 1,000,000) into one
queue, plus 1,000 archived tasks in another (their errors give the filters something to
find), logs in to the dashboard of `tickr.web.create_app` served in this process over
ASGI (no socket: what is timed is the app and Redis), then for each page:

- the median and the worst time of ``--repeat`` renders (the full response body);
- the Redis commands one render costs (``total_commands_processed`` before and after,
  less the INFO calls themselves).

Pages: the overview, the queue's first and last page of pending tasks, a task, and a
filtered page of archived tasks (error text, one bounded scan).  A page must cost the
same whatever the backlog: compare a run with ``--tasks 10000``.

Run ``python benchmarks/bench_dashboard.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import time
from pathlib import Path

import httpx
import redis

import tickr
from tickr.testing import RedisServer
from tickr.web import Token, create_app

NAMESPACE = "bench"
BATCH = 1000
SECRET = "dashboard-bench-0123456789"


def _commands(client: redis.Redis) -> int:
    return int(client.info("stats")["total_commands_processed"])


async def _fill(url: str, total: int) -> str:
    async with tickr.Client(url, namespace=NAMESPACE) as client:
        for start in range(0, total, BATCH):
            specs = [
                tickr.TaskSpec("email:send", {"i": n})
                for n in range(start, min(start + BATCH, total))
            ]
            await client.enqueue_many(specs)
        failed = []
        for n in range(1000):
            failed.append(await client.enqueue("report:build", {"i": n}, queue="reports"))
    async with tickr.Inspector(url, namespace=NAMESPACE) as inspector:
        for info in failed:
            await inspector.archive_task(info.id, "reports")
    return failed[0].id


async def _measure(
    url: str, port: int, task_id: str, repeat: int
) -> list[tuple[str, float, float, float]]:
    app = create_app(
        url, namespace=NAMESPACE, tokens=[Token("bench", secret=SECRET, scopes=["admin"])]
    )
    counter = redis.Redis(port=port, protocol=2)
    rows = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            form = (await http.get("/login")).text
            csrf = re.search(r'name="csrf" value="([^"]+)"', form)
            assert csrf is not None
            await http.post("/login", data={"token": SECRET, "csrf": csrf.group(1), "next": "/"})
            pages = {
                "overview": "/",
                "queue, first page": "/queues/default",
                "task": f"/queues/reports/tasks/{task_id}",
                "archived, error filter": "/queues/reports?state=archived&error=operator",
            }
            last = await http.get("/queues/default")
            pages_count = re.search(r"of ([0-9,]+) ·", last.text)
            if pages_count:
                pages["queue, last page"] = (
                    f"/queues/default?page={pages_count.group(1).replace(',', '')}"
                )
            for name, path in pages.items():
                times, costs = [], []
                for _ in range(repeat):
                    before = _commands(counter)
                    began = time.perf_counter()
                    reply = await http.get(path)
                    took = time.perf_counter() - began
                    costs.append(_commands(counter) - before - 1)  # the INFO before
                    assert reply.status_code == 200, (path, reply.status_code, reply.text[:500])
                    times.append(took)
                rows.append((name, statistics.median(times), max(times), statistics.median(costs)))
    counter.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000, help="pending tasks (1,000,000)")
    parser.add_argument("--repeat", type=int, default=20, help="renders per page (20)")
    parser.add_argument("--output", type=Path, help="also write the report here")
    args = parser.parse_args()
    with RedisServer() as server:
        began = time.perf_counter()
        task_id = asyncio.run(_fill(server.url, args.tasks))
        filled = time.perf_counter() - began
        rows = asyncio.run(_measure(server.url, server.port, task_id, args.repeat))
    lines = [
        f"Dashboard pages on a backlog of {args.tasks:,} pending tasks (filled in {filled:.0f} s) "
        f"and 1,000 archived ones; {args.repeat} renders per page, over ASGI in-process.",
        "",
        "| page | median (ms) | worst (ms) | Redis commands |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {median * 1000:.1f} | {worst * 1000:.1f} | {cost:.0f} |"
        for name, median, worst, cost in rows
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.output:
        args.output.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
