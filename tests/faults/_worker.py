"""A Tickr worker process for the fault tests, with settings the shared helper lacks.

    python -m tests.faults._worker URL NAMESPACE [--counter-url URL] [--burst]
        [--concurrency N] [--sleep SECONDS] [--shutdown-timeout SECONDS]
        [--lease-duration SECONDS] [--heartbeat-interval SECONDS] [--retry-delay SECONDS]
        [--stamp] [--clock-jump SECONDS]

Tickr connects to URL; the handlers count on --counter-url (default URL), so that a test
can break Tickr's connections without disturbing the bookkeeping it checks.

Handlers (every one counts each execution per task id in Redis: hash
``<namespace>:runs`` at the start, ``<namespace>:runs:done`` at the end, and
``<namespace>:by-worker`` pid -> executions):

- ``count``: like tests.helpers.worker_process, except that a numeric payload is the
  seconds to sleep on the task's first execution only (counted in Redis: a task requeued
  by a shutdown does not sleep again although it is still on its first attempt);
  otherwise it sleeps --sleep.
- ``freeze-self``: on its first attempt the handler stops its own process with SIGSTOP
  right after counting the start; once continued (SIGCONT) it counts the end at once,
  without yielding to the event loop, and returns "late".  So the handler is sure to
  finish, and hand its outcome to the server, before the server's heartbeat can notice
  that the lease was lost meanwhile.  Retries behave like ``count`` and return "ran".
- ``fail-once``: its first attempt records the real time (ms) in the hash
  ``<namespace>:failed-at`` and raises; a retry records the real time it started in
  ``<namespace>:retried-at`` and returns "ran".

With --stamp, the real time (ms) of each task's first start is kept in the hash
``<namespace>:first-start``.

With --clock-jump, each SIGUSR1 steps the process' wall clock (`time.time`) by that many
seconds, as `date -s` or an NTP step does to a machine; the monotonic clock and the
stamps above stay true.

The server logs "serving" to stderr once it is ready (logging at INFO).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time

import redis
import redis.asyncio as aredis

import tickr


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("namespace")
    parser.add_argument("--counter-url", default=None)
    parser.add_argument("--burst", action="store_true")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--shutdown-timeout", type=float, default=8.0)
    parser.add_argument("--lease-duration", type=float, default=6.0)
    parser.add_argument("--heartbeat-interval", type=float, default=1.5)
    parser.add_argument("--retry-delay", type=float, default=None)
    parser.add_argument("--stamp", action="store_true")
    parser.add_argument("--clock-jump", type=float, default=None)
    return parser.parse_args()


def step_wall_clock_on_sigusr1(seconds: float) -> None:
    """Make each SIGUSR1 move `time.time()` by `seconds`, as a jump of the machine's clock."""
    true_time = time.time
    shift = [0.0]

    def stepped_time() -> float:
        return true_time() + shift[0]

    def step(signum: int, frame: object) -> None:
        shift[0] += seconds
        logging.getLogger("tests.faults.worker").info("wall clock stepped by %+gs", seconds)

    time.time = stepped_time
    signal.signal(signal.SIGUSR1, step)


def real_time_ms() -> int:
    """This machine's real time, which --clock-jump does not move."""
    return int(time.clock_gettime(time.CLOCK_REALTIME) * 1000)


def build_mux(
    counter_url: str, namespace: str, default_sleep: float, *, stamp: bool = False
) -> tickr.ServeMux:
    runs_key = f"{namespace}:runs"
    stamps_key = f"{namespace}:first-start"
    done_key = f"{runs_key}:done"
    by_worker_key = f"{namespace}:by-worker"
    pid = str(os.getpid())
    mux = tickr.ServeMux()
    counters: list[aredis.Redis] = []

    def counter() -> aredis.Redis:
        if not counters:
            counters.append(aredis.Redis.from_url(counter_url))
        return counters[0]

    async def started(task: tickr.Task) -> int:
        """Count the start; returns how many executions of the task started so far."""
        pipe = counter().pipeline(transaction=True)
        pipe.hincrby(runs_key, task.id, 1)
        pipe.hincrby(by_worker_key, pid, 1)
        if stamp:
            pipe.hsetnx(stamps_key, task.id, real_time_ms())
        replies = await pipe.execute()
        return int(replies[0])

    @mux.handle("count")
    async def count(task: tickr.Task) -> str:
        executions = await started(task)
        seconds = default_sleep
        if isinstance(task.payload, int | float):
            seconds = task.payload if executions == 1 else 0
        if seconds:
            await asyncio.sleep(seconds)
        await counter().hincrby(done_key, task.id, 1)
        return "ran"

    @mux.handle("fail-once")
    async def fail_once(task: tickr.Task) -> str:
        await started(task)
        if task.retry_count == 0:
            await counter().hset(f"{namespace}:failed-at", task.id, real_time_ms())
            raise RuntimeError("the first attempt fails")
        await counter().hset(f"{namespace}:retried-at", task.id, real_time_ms())
        await counter().hincrby(done_key, task.id, 1)
        return "ran"

    @mux.handle("freeze-self")
    async def freeze_self(task: tickr.Task) -> str:
        await started(task)
        if task.retry_count > 0:
            await counter().hincrby(done_key, task.id, 1)
            return "ran"
        os.kill(os.getpid(), signal.SIGSTOP)
        # Continued: finish without yielding, before any other coroutine runs.
        with redis.Redis.from_url(counter_url) as blocking:
            blocking.hincrby(done_key, task.id, 1)
        return "late"

    return mux


def main() -> None:
    args = parse()
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s:%(name)s:%(message)s",
    )
    if args.clock_jump is not None:
        step_wall_clock_on_sigusr1(args.clock_jump)
    mux = build_mux(args.counter_url or args.url, args.namespace, args.sleep, stamp=args.stamp)
    server = tickr.Server(
        args.url,
        namespace=args.namespace,
        concurrency=args.concurrency,
        shutdown_timeout=args.shutdown_timeout,
        lease_duration=args.lease_duration,
        heartbeat_interval=args.heartbeat_interval,
        retry_delay=None if args.retry_delay is None else tickr.constant_delay(args.retry_delay),
    )
    if args.burst:
        asyncio.run(server.serve(mux, burst=True))
    else:
        server.run(mux)


if __name__ == "__main__":
    main()
