"""Producers and workers of compare.py: one small adapter per library (see README.md).

Run by compare.py, never by hand, as one of::

    _peers.py worker  LIB KIND --url URL   # serve tasks of KIND until "stop" on stdin
    _peers.py produce LIB KIND --url URL --mode single|batch|fill|paced --count N ...
    _peers.py produce LIB KIND --url URL --mode count    # tasks waiting, as LIB counts them

LIB is tickr, arq, saq, taskiq, streaq or floor (bare redis-py LPUSH/BRPOP).  KIND is the
task: ``noop``; ``sleep`` (``await asyncio.sleep(0.01)``); ``stamp`` (a no-op whose start
is compared with the enqueue time carried in its arguments); ``long``
(``await asyncio.sleep(10)``, for the recovery workload).  Every task carries two
arguments: ``i``, its number (what the correctness checks count), and ``t``, the
producer's ``time.time()`` just before the enqueue call.

Each library's handler is written the way that library documents its tasks, and calls
the same two recorder methods: `Recorder.start` as its first statement and
`Recorder.end` as its last.  A library is imported only by the adapter that needs it, so
no process imports a library it does not run.

The worker prints lines on stdout:

``ready``               the library's worker is up (its own start-up hook or readiness)
``P <runs> <distinct>`` progress, at most every 50 ms, from a thread
``S <i> <time>``        a ``long`` task started (printed at once)
``R <json>``            the report, after compare.py wrote ``stop`` to stdin (or closed it)

and then leaves with ``os._exit(0)``: no library gets to shut down gracefully, so none
pays for it.  The report holds the worker's first-statement time, the first handler start
and the last handler end, the ids run and how often, the most handlers seen running at
once, the ``stamp`` latencies, and the process's peak RSS and CPU seconds (getrusage).
"""

import time

STARTED = time.time()  # the worker's first statement: imports count as its start-up

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from collections.abc import Callable, Coroutine, Sequence  # noqa: E402
from typing import Any  # noqa: E402

from _proc import peak_rss_kib  # noqa: E402

CONCURRENCY = 100
SLEEP_S = 0.01
LONG_S = 10.0
LONG_TIMEOUT_S = 20  # the per-task timeout given to "long" tasks, where a library has one
LONG_RETRIES = 3  # attempts allowed to a "long" task where the default would allow only one
FILL_COROUTINES = 50  # untimed queue filling, for libraries without a batch API
FLOOR_QUEUE = "floor:queue"
KINDS = ("noop", "sleep", "stamp", "long")

_output_lock = threading.Lock()


def emit(line: str) -> None:
    with _output_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def usage() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return {"maxrss_kib": peak_rss_kib(), "cpu_s": own.ru_utime + own.ru_stime}


# ---------------------------------------------------------------------------- recorder


class Recorder:
    """What the handlers of one worker process did; touched only from the event loop."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.first_start = 0.0
        self.last_end = 0.0
        self.running = 0
        self.most_running = 0
        self.runs = 0
        self.counts: dict[int, int] = {}
        self.latencies: list[float] = []
        self.imported = 0.0

    def start(self, i: int, t: float) -> None:
        now = time.time()
        if not self.first_start:
            self.first_start = now
        self.running += 1
        if self.running > self.most_running:
            self.most_running = self.running
        if self.kind == "stamp" and i >= 0:
            self.latencies.append(now - t)
        elif self.kind == "long":
            emit(f"S {i} {now!r}")

    def end(self, i: int) -> None:
        self.last_end = time.time()
        self.running -= 1
        self.runs += 1
        self.counts[i] = self.counts.get(i, 0) + 1

    def report(self) -> dict[str, Any]:
        counts = dict(self.counts)
        return {
            "started": STARTED,
            "imported": self.imported,
            "first_start": self.first_start,
            "last_end": self.last_end,
            "runs": self.runs,
            "ids": sorted(counts),
            "repeats": {str(i): n for i, n in counts.items() if n > 1},
            "most_running": self.most_running,
            "latencies": list(self.latencies),
            **usage(),
        }


REC = Recorder("noop")


async def body(kind: str, i: int, t: float) -> None:
    """The common handler body: record, do the kind's work, record."""
    REC.start(i, t)
    if kind == "sleep":
        await asyncio.sleep(SLEEP_S)
    elif kind == "long":
        await asyncio.sleep(LONG_S)
    REC.end(i)


# ---------------------------------------------------------------------------- adapters

Ready = Callable[[], None]
Item = tuple[int, float]


class Adapter:
    """One library: how to enqueue one task or a batch, and how to run a worker."""

    batch_api = False

    def __init__(self, url: str, kind: str) -> None:
        self.url = url
        self.kind = kind

    async def open(self) -> None:
        """Connect the producer."""

    async def close(self) -> None:
        """Disconnect the producer."""

    async def enqueue(self, i: int, t: float) -> None:
        raise NotImplementedError

    async def enqueue_batch(self, items: Sequence[Item]) -> None:
        raise NotImplementedError(f"{type(self).__name__} has no batch API")

    async def queued(self) -> int | None:
        """The tasks waiting in the queue, by one cheap count; None if there is none."""
        return None

    async def serve(self, ready: Ready) -> None:
        """Run the worker (concurrency 100) until the process exits."""
        raise NotImplementedError


class TickrAdapter(Adapter):
    """tickr.Client.enqueue / enqueue_many, one tickr.Server(concurrency=100)."""

    batch_api = True

    def _options(self) -> dict[str, Any]:
        return {"timeout": LONG_TIMEOUT_S} if self.kind == "long" else {}

    async def open(self) -> None:
        import tickr

        self.tickr = tickr
        self.client = tickr.Client(self.url)

    async def close(self) -> None:
        await self.client.aclose()

    async def enqueue(self, i: int, t: float) -> None:
        await self.client.enqueue(self.kind, {"i": i, "t": t}, **self._options())

    async def enqueue_batch(self, items: Sequence[Item]) -> None:
        spec = self.tickr.TaskSpec
        options = self._options()
        outcomes = await self.client.enqueue_many(
            [spec(self.kind, {"i": i, "t": t}, **options) for i, t in items]
        )
        refused = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
        if refused:
            raise RuntimeError(f"enqueue_many refused {len(refused)} tasks: {refused[0]!r}")

    async def queued(self) -> int:
        async with self.tickr.Inspector(self.url) as inspector:
            info = await inspector.queue_info("default", memory=False)
        return info.pending

    async def serve(self, ready: Ready) -> None:
        import tickr

        REC.imported = time.time()
        kind = self.kind
        mux = tickr.ServeMux()

        @mux.handle(kind)
        async def handler(task: tickr.Task) -> None:
            await body(kind, task.payload["i"], task.payload["t"])

        server = tickr.Server(self.url, concurrency=CONCURRENCY)
        serving = asyncio.create_task(server.serve(mux))
        await server.wait_ready()
        ready()
        await serving


class ArqAdapter(Adapter):
    """ArqRedis.enqueue_job; arq Worker(max_jobs=100), run in-process (async_run)."""

    async def open(self) -> None:
        from arq import create_pool
        from arq.connections import RedisSettings

        self.pool = await create_pool(RedisSettings.from_dsn(self.url))

    async def close(self) -> None:
        await self.pool.aclose()

    async def enqueue(self, i: int, t: float) -> None:
        await self.pool.enqueue_job(self.kind, i, t)

    async def queued(self) -> int:
        # ArqRedis.queued_jobs() reads and unpickles every job: ZCARD of its queue instead.
        return int(await self.pool.zcard(self.pool.default_queue_name))

    async def serve(self, ready: Ready) -> None:
        from arq.connections import RedisSettings
        from arq.worker import Worker, func

        REC.imported = time.time()
        kind = self.kind

        async def task(ctx: dict[str, Any], i: int, t: float) -> None:
            await body(kind, i, t)

        async def on_startup(ctx: dict[str, Any]) -> None:
            ready()

        timeout = LONG_TIMEOUT_S if kind == "long" else None
        worker = Worker(
            functions=[func(task, name=kind, timeout=timeout)],
            redis_settings=RedisSettings.from_dsn(self.url),
            max_jobs=CONCURRENCY,
            on_startup=on_startup,
        )
        await worker.async_run()


class SaqAdapter(Adapter):
    """saq Queue.enqueue; saq Worker(concurrency=100)."""

    def _options(self) -> dict[str, Any]:
        return {"timeout": LONG_TIMEOUT_S, "retries": LONG_RETRIES} if self.kind == "long" else {}

    async def open(self) -> None:
        from saq import Queue

        self.queue = Queue.from_url(self.url)
        await self.queue.connect()

    async def close(self) -> None:
        await self.queue.disconnect()

    async def enqueue(self, i: int, t: float) -> None:
        await self.queue.enqueue(self.kind, i=i, t=t, **self._options())

    async def queued(self) -> int:
        return int(await self.queue.count("queued"))

    async def serve(self, ready: Ready) -> None:
        from saq import Queue, Worker

        REC.imported = time.time()
        kind = self.kind

        async def task(ctx: dict[str, Any], *, i: int, t: float) -> None:
            await body(kind, i, t)

        async def on_startup(ctx: dict[str, Any]) -> None:
            ready()

        queue = Queue.from_url(self.url)
        await queue.connect()
        worker = Worker(
            queue, functions=[(kind, task)], concurrency=CONCURRENCY, startup=on_startup
        )
        await worker.start()


class TaskiqAdapter(Adapter):
    """taskiq-redis ListQueueBroker, task.kiq(); the receiver run in-process (max 100)."""

    def _broker(self) -> Any:
        from taskiq_redis import ListQueueBroker

        broker = ListQueueBroker(self.url)
        kind = self.kind
        labels: dict[str, Any] = {"timeout": LONG_TIMEOUT_S} if kind == "long" else {}

        @broker.task(task_name=kind, **labels)
        async def task(i: int, t: float) -> None:
            await body(kind, i, t)

        self.task = task
        return broker

    async def open(self) -> None:
        self.broker = self._broker()
        await self.broker.startup()

    async def close(self) -> None:
        await self.broker.shutdown()

    async def enqueue(self, i: int, t: float) -> None:
        await self.task.kiq(i, t)

    async def queued(self) -> int:
        # No count in taskiq's API: LLEN of the broker's list (its `queue_name`).
        from redis.asyncio import Redis

        async with Redis(connection_pool=self.broker.connection_pool) as redis:
            return int(await redis.llen(self.broker.queue_name))

    async def serve(self, ready: Ready) -> None:
        from taskiq.acks import AcknowledgeType
        from taskiq.api import run_receiver_task

        broker = self._broker()
        REC.imported = time.time()
        broker.is_worker_process = True
        await broker.startup()
        ready()
        # The defaults of `taskiq worker` (one process): 100 async tasks, ack when saved.
        await run_receiver_task(
            broker, max_async_tasks=CONCURRENCY, ack_time=AcknowledgeType.WHEN_SAVED
        )


class StreaqAdapter(Adapter):
    """streaq task.enqueue() / Worker.enqueue_many; streaq Worker(concurrency=100)."""

    batch_api = True

    def _worker(self) -> Any:
        from streaq import Worker

        worker = Worker(redis_url=self.url, concurrency=CONCURRENCY)
        kind = self.kind
        timeout = LONG_TIMEOUT_S if kind == "long" else None

        @worker.task(name=kind, timeout=timeout)
        async def task(i: int, t: float) -> None:
            await body(kind, i, t)

        self.task = task
        return worker

    async def open(self) -> None:
        self.worker = self._worker()
        await self.worker.__aenter__()

    async def close(self) -> None:
        await self.worker.__aexit__(None, None, None)

    async def enqueue(self, i: int, t: float) -> None:
        await self.task.enqueue(i, t)

    async def enqueue_batch(self, items: Sequence[Item]) -> None:
        await self.worker.enqueue_many([self.task.enqueue(i, t) for i, t in items])

    async def queued(self) -> int:
        return int(await self.worker.queue_size())

    async def serve(self, ready: Ready) -> None:
        import anyio

        worker = self._worker()
        REC.imported = time.time()
        async with anyio.create_task_group() as group:
            await group.start(worker.run_async)
            ready()


class FloorAdapter(Adapter):
    """Bare redis-py: LPUSH a JSON message; 100 coroutines BRPOP and run a no-op."""

    batch_api = True

    async def open(self) -> None:
        import redis.asyncio

        self.redis = redis.asyncio.Redis.from_url(self.url)

    async def close(self) -> None:
        await self.redis.aclose()

    async def enqueue(self, i: int, t: float) -> None:
        await self.redis.lpush(FLOOR_QUEUE, json.dumps({"i": i, "t": t}))

    async def enqueue_batch(self, items: Sequence[Item]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for i, t in items:
                pipe.lpush(FLOOR_QUEUE, json.dumps({"i": i, "t": t}))
            await pipe.execute()

    async def queued(self) -> int:
        return int(await self.redis.llen(FLOOR_QUEUE))

    async def serve(self, ready: Ready) -> None:
        import redis.asyncio

        REC.imported = time.time()
        kind = self.kind
        client = redis.asyncio.Redis.from_url(self.url)

        async def consumer() -> None:
            while True:
                _, raw = await client.brpop([FLOOR_QUEUE])
                message = json.loads(raw)
                await body(kind, message["i"], message["t"])

        await client.ping()
        consumers = [asyncio.create_task(consumer()) for _ in range(CONCURRENCY)]
        ready()
        await asyncio.gather(*consumers)


ADAPTERS: dict[str, type[Adapter]] = {
    "tickr": TickrAdapter,
    "arq": ArqAdapter,
    "saq": SaqAdapter,
    "taskiq": TaskiqAdapter,
    "streaq": StreaqAdapter,
    "floor": FloorAdapter,
}


# ---------------------------------------------------------------------------- worker


def watch_stdin(loop: asyncio.AbstractEventLoop) -> None:
    """Wait for "stop" (or EOF), then print the report from the loop and leave."""
    for line in sys.stdin:
        if line.strip() == "stop":
            break

    def finish() -> None:
        emit("R " + json.dumps(REC.report()))
        os._exit(0)

    loop.call_soon_threadsafe(finish)
    time.sleep(10)  # the loop is blocked: report from this thread instead
    for _attempt in range(5):
        try:
            finish()
        except RuntimeError:  # a dict changed size while being copied
            time.sleep(0.01)
    os._exit(3)


def watch_progress() -> None:
    last = (-1, -1)
    while True:
        time.sleep(0.05)
        now = (REC.runs, len(REC.counts))
        if now != last:
            emit(f"P {now[0]} {now[1]}")
            last = now


async def run_worker(adapter: Adapter) -> None:
    loop = asyncio.get_running_loop()
    threading.Thread(target=watch_stdin, args=(loop,), daemon=True).start()
    threading.Thread(target=watch_progress, daemon=True).start()
    await adapter.serve(lambda: emit("ready"))
    emit("E the worker returned by itself")
    await asyncio.Event().wait()  # wait for "stop" all the same


# ---------------------------------------------------------------------------- producer


async def timed(work: Coroutine[Any, Any, None]) -> dict[str, float]:
    cpu_before = usage()["cpu_s"]
    began = time.perf_counter()
    await work
    elapsed = time.perf_counter() - began
    return {"elapsed_s": elapsed, "cpu_s": usage()["cpu_s"] - cpu_before}


async def single(adapter: Adapter, count: int) -> None:
    for i in range(count):
        await adapter.enqueue(i, time.time())


async def batches(adapter: Adapter, count: int, size: int) -> None:
    for start in range(0, count, size):
        now = time.time()
        await adapter.enqueue_batch([(i, now) for i in range(start, min(start + size, count))])


async def fill(adapter: Adapter, count: int, size: int, part: int, parts: int) -> None:
    """Queue tasks part, part + parts... below `count`, as fast as the library allows.

    Not timed by compare.py, which runs several such processes for a library without a
    batch API.
    """
    mine = range(part, count, parts)
    if adapter.batch_api:
        now = time.time()
        for start in range(0, len(mine), size):
            await adapter.enqueue_batch([(i, now) for i in mine[start : start + size]])
        return

    async def share(first: int) -> None:
        for i in mine[first::FILL_COROUTINES]:
            await adapter.enqueue(i, time.time())

    await asyncio.gather(*(share(first) for first in range(FILL_COROUTINES)))


async def paced(adapter: Adapter, count: int, rate: float) -> list[float]:
    """Enqueue on a fixed schedule of `rate` per second; returns each call's duration."""
    await adapter.enqueue(-1, time.time())  # untimed warm-up: connections, scripts
    await asyncio.sleep(0.3)
    durations = []
    began = time.perf_counter()
    for i in range(count):
        delay = began + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        call = time.perf_counter()
        await adapter.enqueue(i, time.time())
        durations.append(time.perf_counter() - call)
    return durations


async def run_producer(adapter: Adapter, args: argparse.Namespace) -> dict[str, Any]:
    await adapter.open()
    try:
        if args.mode == "paced":
            return {"durations": await paced(adapter, args.count, args.rate)}
        if args.mode == "fill":
            return await timed(fill(adapter, args.count, args.batch, args.part, args.parts))
        if args.mode == "count":
            return {"queued": await adapter.queued()}
        await adapter.enqueue(-1, time.time())  # untimed warm-up: connections, scripts
        if args.mode == "single":
            return await timed(single(adapter, args.count))
        return await timed(batches(adapter, args.count, args.batch))
    finally:
        await adapter.close()


# ---------------------------------------------------------------------------- main


def main() -> None:
    global REC
    parser = argparse.ArgumentParser(description="compare.py's producers and workers")
    parser.add_argument("role", choices=("worker", "produce"))
    parser.add_argument("library", choices=sorted(ADAPTERS))
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--url", required=True)
    parser.add_argument(
        "--mode", choices=("single", "batch", "fill", "paced", "count"), default="single"
    )
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--part", type=int, default=0, help="fill: this process's share")
    parser.add_argument("--parts", type=int, default=1, help="fill: of so many processes")
    args = parser.parse_args()
    REC = Recorder(args.kind)
    adapter = ADAPTERS[args.library](args.url, args.kind)
    if args.role == "worker":
        asyncio.run(run_worker(adapter))
    else:
        if args.mode == "batch" and not adapter.batch_api:
            parser.error(f"{args.library} has no batch API")
        emit("R " + json.dumps(asyncio.run(run_producer(adapter, args))))


if __name__ == "__main__":
    main()
