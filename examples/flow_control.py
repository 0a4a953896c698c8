"""Flow control in one file: a partner API limited to 5 calls a second, and a heavy queue
that runs at most 2 tasks at once, across two servers.

Run it with ``python examples/flow_control.py``.  It uses the Redis at $TICKR_REDIS_URL;
when that is unset it starts a private redis-server of its own.  The namespace is fresh
on each run.

What it shows:
- `Inspector.set_rate_limit`: the calls start 0.2 s apart, whichever server takes them;
- `Inspector.set_concurrency_limit`: never more than 2 heavy tasks run at once, though
  each server has 8 workers;
- the limited queues do not slow the others ("mail" drains at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
import uuid
from collections.abc import Iterator

import tickr
from tickr.testing import RedisServer

started = time.monotonic()
api_starts: list[float] = []
heavy_running = 0
heavy_most = 0


def say(message: str) -> None:
    print(f"[{time.monotonic() - started:5.2f}s] {message}", flush=True)


mux = tickr.ServeMux()


@mux.handle("partner:sync")
async def sync_account(task: tickr.Task) -> None:
    api_starts.append(time.monotonic())
    say(f"call the partner API for account {task.payload['account']}")


@mux.handle("video:encode")
async def encode(task: tickr.Task) -> None:
    global heavy_running, heavy_most
    heavy_running += 1
    heavy_most = max(heavy_most, heavy_running)
    say(f"encode video {task.payload} ({heavy_running} encoding now)")
    await asyncio.sleep(0.3)
    heavy_running -= 1


@mux.handle("mail:send")
async def send(task: tickr.Task) -> None:
    return None


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
    namespace = f"flow-{uuid.uuid4().hex[:8]}"
    queues = {"partner-api": 1, "video": 1, "mail": 1}
    async with tickr.Inspector(url, namespace=namespace) as insp:
        await insp.set_rate_limit("partner-api", 5, period=1.0)
        await insp.set_concurrency_limit("video", 2)
        async with tickr.Client(url, namespace=namespace) as client:
            calls = [tickr.TaskSpec("partner:sync", {"account": n}, queue="partner-api")
                     for n in range(6)]  # fmt: skip
            videos = [tickr.TaskSpec("video:encode", n, queue="video") for n in range(6)]
            mails = [tickr.TaskSpec("mail:send", n, queue="mail") for n in range(50)]
            await client.enqueue_many(calls + videos + mails)
        say("enqueued 6 API calls, 6 videos and 50 mails; two servers of 8 workers start")
        servers = [tickr.Server(url, namespace=namespace, queues=queues, concurrency=8)
                   for _ in range(2)]  # fmt: skip
        serving = [asyncio.create_task(server.serve(mux)) for server in servers]
        while True:
            infos = await insp.queue_infos()
            if all(info.pending + info.active == 0 for info in infos):
                break
            await asyncio.sleep(0.05)
        for server in servers:
            await server.shutdown()
        await asyncio.gather(*serving)
    gaps = [b - a for a, b in itertools.pairwise(api_starts)]
    say(f"API calls started {min(gaps):.2f}s apart at the least (limit: 5 a second)")
    say(f"at most {heavy_most} videos encoded at once (limit: 2)")
    say("all tasks done")


if __name__ == "__main__":
    with redis_url() as url:
        asyncio.run(main(url))
