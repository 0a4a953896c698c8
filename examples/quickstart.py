"""Tickr in one file: enqueue tasks of two types, then serve them until none are left.

Run it with ``make demo`` or ``python examples/quickstart.py``.  It uses the Redis at
$TICKR_REDIS_URL; when that is unset it starts a private redis-server of its own.

What it shows:
- a handler per task type, routed by a ServeMux, with a logging middleware;
- a delayed task, which waits for its time and then runs;
- a task that fails on its first attempt and succeeds on the retry;
- results kept for a while (`retention`) and read back with `client.result()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

import tickr
from tickr.testing import RedisServer, drain

mux = tickr.ServeMux()
started = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - started:5.2f}s] {message}", flush=True)


@mux.use
async def log_attempts(task: tickr.Task, call_next: tickr.CallNext) -> Any:
    say(f"start  {task.type:<13} {task.payload}  (attempt {task.retry_count + 1})")
    try:
        result = await call_next(task)
    except Exception as exc:
        say(f"failed {task.type:<13} {exc}; it will be retried")
        raise
    say(f"done   {task.type:<13} -> {result!r}")
    return result


@mux.handle("email:send")
async def send_email(task: tickr.Task) -> dict[str, str]:
    await asyncio.sleep(0.05)  # talk to a mail server here
    return {"sent_to": task.payload["to"]}


@mux.handle("report:build")
async def build_report(task: tickr.Task) -> str:
    if task.retry_count == 0:
        raise ConnectionError("the database is not ready yet")
    return f"report for {task.payload['day']}: 42 rows"


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    """The Redis to use: $TICKR_REDIS_URL, or a private redis-server started here."""
    configured = os.environ.get("TICKR_REDIS_URL")
    if configured:
        yield configured
        return
    with RedisServer() as server:
        say(f"started a private redis-server at {server.url}")
        yield server.url


async def main(url: str) -> None:
    async with tickr.Client(url, namespace="quickstart") as client:
        hello = await client.enqueue("email:send", {"to": "ada@example.com"}, retention=60)
        later = await client.enqueue(
            "email:send", {"to": "grace@example.com"}, delay=0.5, retention=60
        )
        report = await client.enqueue("report:build", {"day": "2026-11-22"}, retention=60)
        say(f"enqueued 3 tasks ({later.type} to grace is {later.state} for 0.5s)")

        await drain(
            mux,
            url=url,
            namespace="quickstart",
            concurrency=4,
            retry_delay=tickr.constant_delay(0.2),
        )

        for info in (hello, later, report):
            say(f"result of {info.type:<13} {await client.result(info.id)!r}")
        say("all tasks done")


if __name__ == "__main__":
    with redis_url() as url:
        asyncio.run(main(url))
