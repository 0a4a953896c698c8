"""The worker process of bench_tickr.py: one Tickr Server in a process of its own.

Two modes, both printing one JSON object as the last line of stdout:

``drain``  serves the queue in burst mode (`tickr.testing.drain`) until it is empty.
           Reports its own start time, the first and last handler times, the time
           drain() returned, the number of tasks handled, peak RSS and CPU seconds.

``serve``  serves until SIGTERM.  Prints ``ready`` once `Server.wait_ready()` returns and
           ``done`` once ``--expect`` stamped tasks have started.  Each ``bench:stamp`` task
           carries ``{"t": time.time() at enqueue}``; the handler records
           ``time.time() - t`` at its start.  Reports those latencies (seconds).

All times are ``time.time()`` (wall clock), comparable with the producer's stamps.
"""

import time

STARTED = time.time()  # before the imports: they are part of the worker's start-up cost

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

from _proc import peak_rss_kib  # noqa: E402

import tickr  # noqa: E402
from tickr.testing import drain  # noqa: E402

IMPORTED = time.time()


def usage() -> dict[str, Any]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "maxrss_kib": peak_rss_kib(),
        "cpu_user_s": own.ru_utime,
        "cpu_sys_s": own.ru_stime,
    }


def report(values: dict[str, Any]) -> None:
    print(json.dumps({"started": STARTED, "imported": IMPORTED, **values, **usage()}), flush=True)


async def run_drain(args: argparse.Namespace) -> None:
    times = {"first": 0.0, "last": 0.0}
    handled = 0
    mux = tickr.ServeMux()

    @mux.handle("bench:noop")
    async def noop(task: tickr.Task) -> None:
        nonlocal handled
        now = time.time()
        if not handled:
            times["first"] = now
        times["last"] = now
        handled += 1

    await drain(
        mux,
        url=args.url,
        namespace=args.namespace,
        concurrency=args.concurrency,
        timeout=args.timeout,
    )
    drained = time.time()
    report(
        {
            "handled": handled,
            "first_handler": times["first"],
            "last_handler": times["last"],
            "drained": drained,
        }
    )


async def run_serve(args: argparse.Namespace) -> None:
    latencies: list[float] = []
    mux = tickr.ServeMux()

    @mux.handle("bench:stamp")
    async def stamp(task: tickr.Task) -> None:
        latencies.append(time.time() - task.payload["t"])
        if len(latencies) == args.expect:
            print("done", flush=True)

    @mux.handle("bench:warmup")
    async def warmup(task: tickr.Task) -> None:
        return None

    server = tickr.Server(args.url, namespace=args.namespace, concurrency=args.concurrency)
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []
    signalled = {"at": 0.0}

    def on_sigterm() -> None:
        if not stopping:
            signalled["at"] = time.time()
            stopping.append(asyncio.create_task(server.shutdown()))

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    serving = asyncio.create_task(server.serve(mux))
    ready = asyncio.create_task(server.wait_ready())
    await asyncio.wait({serving, ready}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():  # serve() ended (failed) before it was ready
        ready.cancel()
        await serving
        return
    print("ready", flush=True)
    ready_at = time.time()
    await serving
    if stopping:
        await stopping[0]
    report(
        {
            "ready": ready_at,
            "sigterm": signalled["at"],
            "stopped": time.time(),
            "handled": len(latencies),
            "latencies": latencies,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("drain", "serve"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--namespace", default="bench")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--expect", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(run_drain(args) if args.mode == "drain" else run_serve(args))


if __name__ == "__main__":
    sys.exit(main())
