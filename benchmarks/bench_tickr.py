"""Tickr's throughput and latency benchmark (see benchmarks/README.md).

Starts a private redis-server on loopback TCP, then measures, each workload on a flushed
Redis and with one Server process at concurrency 100:

1. enqueue: N single ``await client.enqueue()`` calls one after another; the same N calls
   from 100 coroutines; and N tasks through ``enqueue_many`` in batches.
2. drain: N queued no-op tasks, served by a worker process started after they were queued.
3. latency: enqueue -> handler start on an idle server, at about 200 tasks/s.

Run ``python benchmarks/bench_tickr.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import math
import os
import platform
import resource
import signal
import statistics
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import redis.asyncio
from _proc import git_revision

import tickr
from tickr.testing import RedisServer

WORKER = Path(__file__).with_name("_worker.py")
NAMESPACE = "bench"
QUEUE = "default"
CONCURRENCY = 100
ENQUEUERS = 100
WORKER_TIMEOUT = 600.0

TARGETS: dict[str, tuple[str, float]] = {
    "enqueue_sequential_per_s": (">=", 6_000),
    "enqueue_concurrent_per_s": (">=", 6_000),
    "enqueue_many_per_s": (">=", 50_000),
    "drain_per_s": (">=", 5_000),
    "drain_worker_maxrss_mb": ("<=", 50),
    "latency_p50_ms": ("<=", 1),
}


# ---------------------------------------------------------------------------- helpers


class Bench:
    """The Redis under test and the settings of one benchmark run."""

    def __init__(self, server: RedisServer, args: argparse.Namespace) -> None:
        self.server = server
        self.url = server.url
        self.tasks: int = args.tasks
        self.batch: int = args.batch
        self.latency_tasks: int = args.latency_tasks
        self.latency_rate: float = args.latency_rate
        self.admin = redis.asyncio.Redis.from_url(self.url)

    async def flush(self) -> None:
        await self.admin.flushall()

    def client(self) -> tickr.Client:
        return tickr.Client(self.url, namespace=NAMESPACE)

    def redis_cpu_seconds(self) -> float:
        """User+system CPU seconds used so far by redis-server (Linux /proc), or NaN."""
        try:
            fields = Path(f"/proc/{self.server.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return math.nan
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    @contextlib.contextmanager
    def cpu(self, prefix: str, into: dict[str, float]) -> Iterator[None]:
        """Record the CPU seconds this process and redis-server spend in the block."""
        own_before, redis_before = own_cpu_seconds(), self.redis_cpu_seconds()
        yield
        into[f"{prefix}_producer_cpu_s"] = own_cpu_seconds() - own_before
        into[f"{prefix}_redis_cpu_s"] = self.redis_cpu_seconds() - redis_before

    async def spawn_worker(self, mode: str, *extra: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER),
            mode,
            "--url",
            self.url,
            "--namespace",
            NAMESPACE,
            "--concurrency",
            str(CONCURRENCY),
            "--timeout",
            str(WORKER_TIMEOUT),
            *extra,
            stdout=asyncio.subprocess.PIPE,
        )

    async def check_empty(self, expected_processed: int) -> None:
        """Fail loudly unless every task of the workload was processed."""
        async with tickr.Inspector(self.url, namespace=NAMESPACE) as inspector:
            info = await inspector.queue_info(QUEUE)
        left = info.pending + info.active + info.scheduled + info.retry + info.archived
        if left:
            raise RuntimeError(f"tasks left in the queue after the workload: {info!r}")
        if info.processed != expected_processed:  # a daily counter: off across UTC midnight
            print(
                f"warning: {info.processed} tasks counted as processed today, "
                f"expected {expected_processed}",
                file=sys.stderr,
            )


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def last_json_line(output: bytes) -> dict[str, Any]:
    lines = [line for line in output.decode().splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"the worker printed no report: {output[-2000:]!r}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def payload(number: int) -> dict[str, Any]:
    return {"n": number}


# ---------------------------------------------------------------------------- workloads


async def enqueue_sequential(bench: Bench) -> dict[str, float]:
    await bench.flush()
    metrics: dict[str, float] = {}
    async with bench.client() as client:
        with bench.cpu("enqueue_sequential", metrics):
            began = time.perf_counter()
            for number in range(bench.tasks):
                await client.enqueue("bench:noop", payload(number))
            elapsed = time.perf_counter() - began
    metrics["enqueue_sequential_per_s"] = bench.tasks / elapsed
    metrics["enqueue_sequential_s"] = elapsed
    return metrics


async def enqueue_concurrent(bench: Bench) -> dict[str, float]:
    await bench.flush()
    shares = [range(i, bench.tasks, ENQUEUERS) for i in range(ENQUEUERS)]

    async def enqueuer(client: tickr.Client, numbers: range) -> None:
        for number in numbers:
            await client.enqueue("bench:noop", payload(number))

    metrics: dict[str, float] = {}
    async with bench.client() as client:
        with bench.cpu("enqueue_concurrent", metrics):
            began = time.perf_counter()
            await asyncio.gather(*(enqueuer(client, share) for share in shares))
            elapsed = time.perf_counter() - began
    metrics["enqueue_concurrent_per_s"] = bench.tasks / elapsed
    metrics["enqueue_concurrent_s"] = elapsed
    return metrics


async def enqueue_batched(client: tickr.Client, tasks: int, batch: int) -> None:
    for start in range(0, tasks, batch):
        specs = [
            tickr.TaskSpec("bench:noop", payload(number))
            for number in range(start, min(start + batch, tasks))
        ]
        outcomes = await client.enqueue_many(specs)
        errors = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
        if errors:
            raise RuntimeError(f"enqueue_many refused {len(errors)} tasks: {errors[0]!r}")


async def enqueue_many(bench: Bench) -> dict[str, float]:
    await bench.flush()
    metrics: dict[str, float] = {}
    async with bench.client() as client:
        with bench.cpu("enqueue_many", metrics):
            began = time.perf_counter()
            await enqueue_batched(client, bench.tasks, bench.batch)
            elapsed = time.perf_counter() - began
    metrics["enqueue_many_per_s"] = bench.tasks / elapsed
    metrics["enqueue_many_s"] = elapsed
    return metrics


async def drain_rate(bench: Bench) -> dict[str, float]:
    await bench.flush()
    async with bench.client() as client:
        await enqueue_batched(client, bench.tasks, bench.batch)
    redis_cpu_before = bench.redis_cpu_seconds()
    spawned = time.time()
    worker = await bench.spawn_worker("drain")
    try:
        output, _ = await asyncio.wait_for(worker.communicate(), WORKER_TIMEOUT + 60)
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    redis_cpu = bench.redis_cpu_seconds() - redis_cpu_before
    if worker.returncode != 0:
        raise RuntimeError(f"the drain worker exited with {worker.returncode}")
    report = last_json_line(output)
    if report["handled"] != bench.tasks:
        raise RuntimeError(f"the worker handled {report['handled']} of {bench.tasks} tasks")
    await bench.check_empty(bench.tasks)
    started, last = report["started"], report["last_handler"]
    steady = last - report["first_handler"]
    return {
        "drain_per_s": bench.tasks / (last - started),
        "drain_s": last - started,
        "drain_steady_per_s": (bench.tasks - 1) / steady if steady > 0 else math.nan,
        "drain_until_exit_per_s": bench.tasks / (report["drained"] - started),
        "drain_worker_interpreter_s": started - spawned,
        "drain_worker_import_s": report["imported"] - started,
        "drain_worker_first_task_s": report["first_handler"] - started,
        "drain_worker_maxrss_mb": report["maxrss_kib"] * 1024 / 1e6,
        "drain_worker_cpu_s": report["cpu_user_s"] + report["cpu_sys_s"],
        "drain_redis_cpu_s": redis_cpu,
    }


async def read_until(worker: asyncio.subprocess.Process, word: str, timeout: float) -> None:
    assert worker.stdout is not None
    async with asyncio.timeout(timeout):
        while True:
            line = await worker.stdout.readline()
            if not line:
                raise RuntimeError(f"the worker exited before printing {word!r}")
            if line.strip() == word.encode():
                return


async def send_paced(bench: Bench, client: tickr.Client) -> list[float]:
    """Enqueue the stamped tasks on a fixed schedule; returns each call's duration (ms)."""
    interval = 1 / bench.latency_rate
    durations = []
    began = time.perf_counter()
    for number in range(bench.latency_tasks):
        delay = began + number * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        call = time.perf_counter()
        await client.enqueue("bench:stamp", {"t": time.time()})
        durations.append((time.perf_counter() - call) * 1000)
    return sorted(durations)


async def idle_latency(bench: Bench) -> dict[str, float]:
    await bench.flush()
    spawned = time.time()
    worker = await bench.spawn_worker("serve", "--expect", str(bench.latency_tasks))
    try:
        await read_until(worker, "ready", 60)
        ready = time.time()
        async with bench.client() as client:
            # One untimed task opens the client's connection and registers the queue.
            await client.enqueue("bench:warmup")
            await asyncio.sleep(0.2)
            durations = await send_paced(bench, client)
        await read_until(worker, "done", 60)
        worker.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(worker.communicate(), 60)
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    if worker.returncode != 0:
        raise RuntimeError(f"the serving worker exited with {worker.returncode}")
    report = last_json_line(output)
    await bench.check_empty(bench.latency_tasks + 1)
    latencies = sorted(value * 1000 for value in report["latencies"])
    return {
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "latency_p99_ms": percentile(latencies, 99),
        "latency_max_ms": latencies[-1],
        "latency_mean_ms": statistics.fmean(latencies),
        "latency_enqueue_call_p50_ms": percentile(durations, 50),
        "serve_worker_ready_s": ready - spawned,
        "serve_worker_shutdown_s": report["stopped"] - report["sigterm"],
        "serve_worker_maxrss_mb": report["maxrss_kib"] * 1024 / 1e6,
    }


WORKLOADS: list[tuple[str, Callable[[Bench], Coroutine[Any, Any, dict[str, float]]]]] = [
    ("enqueue, sequential", enqueue_sequential),
    ("enqueue, 100 coroutines", enqueue_concurrent),
    ("enqueue_many", enqueue_many),
    ("drain", drain_rate),
    ("idle latency", idle_latency),
]


async def run(server: RedisServer, args: argparse.Namespace) -> tuple[dict[str, Any], list[Any]]:
    bench = Bench(server, args)
    began = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    try:
        info = await bench.admin.info("server")
        runs: list[dict[str, float]] = []
        for attempt in range(1, args.repeat + 1):
            metrics: dict[str, float] = {}
            for name, workload in WORKLOADS:
                print(f"[run {attempt}/{args.repeat}] {name}...", file=sys.stderr, flush=True)
                metrics.update(await workload(bench))
            runs.append(metrics)
        await bench.flush()
    finally:
        await bench.admin.aclose()
    environment = {
        "date": began,
        "tickr": tickr.__version__,
        "python": platform.python_version(),
        "redis_server": info.get("redis_version", "?"),
        "redis_url": "loopback TCP",
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "tasks": args.tasks,
        "batch": args.batch,
        "concurrency": CONCURRENCY,
        "enqueuers": ENQUEUERS,
        "latency_tasks": args.latency_tasks,
        "latency_rate": args.latency_rate,
        "repeat": args.repeat,
    }
    return environment, runs


# ---------------------------------------------------------------------------- output

ROWS: list[tuple[str, str, str]] = [
    # (label, metric, format)
    ("enqueue, 1 coroutine, sequential awaits", "enqueue_sequential_per_s", "{:,.0f} tasks/s"),
    ("  producer CPU (user+sys)", "enqueue_sequential_producer_cpu_s", "{:.2f} s"),
    ("  redis-server CPU", "enqueue_sequential_redis_cpu_s", "{:.2f} s"),
    ("enqueue, 100 coroutines", "enqueue_concurrent_per_s", "{:,.0f} tasks/s"),
    ("  producer CPU (user+sys)", "enqueue_concurrent_producer_cpu_s", "{:.2f} s"),
    ("  redis-server CPU", "enqueue_concurrent_redis_cpu_s", "{:.2f} s"),
    ("enqueue_many, batches of {batch:,}", "enqueue_many_per_s", "{:,.0f} tasks/s"),
    ("  producer CPU (user+sys)", "enqueue_many_producer_cpu_s", "{:.2f} s"),
    ("  redis-server CPU", "enqueue_many_redis_cpu_s", "{:.2f} s"),
    ("drain {tasks:,} no-op tasks, 1 worker", "drain_per_s", "{:,.0f} tasks/s"),
    ("  steady state (first -> last handler)", "drain_steady_per_s", "{:,.0f} tasks/s"),
    ("  until drain() returned (burst exit)", "drain_until_exit_per_s", "{:,.0f} tasks/s"),
    ("  interpreter start (spawn -> script)", "drain_worker_interpreter_s", "{:.3f} s"),
    ("  imports (script -> tickr imported)", "drain_worker_import_s", "{:.3f} s"),
    ("  worker start -> first handler", "drain_worker_first_task_s", "{:.3f} s"),
    ("  worker start -> last handler", "drain_s", "{:.3f} s"),
    ("  worker peak RSS", "drain_worker_maxrss_mb", "{:.1f} MB"),
    ("  worker CPU (user+sys)", "drain_worker_cpu_s", "{:.2f} s"),
    ("  redis-server CPU during the drain", "drain_redis_cpu_s", "{:.2f} s"),
    ("idle latency enqueue -> start, p50", "latency_p50_ms", "{:.2f} ms"),
    ("  p95", "latency_p95_ms", "{:.2f} ms"),
    ("  p99", "latency_p99_ms", "{:.2f} ms"),
    ("  max", "latency_max_ms", "{:.2f} ms"),
    ("  mean", "latency_mean_ms", "{:.2f} ms"),
    ("  the enqueue call alone, p50", "latency_enqueue_call_p50_ms", "{:.2f} ms"),
    ("  worker spawn -> ready", "serve_worker_ready_s", "{:.3f} s"),
    ("  SIGTERM -> worker stopped", "serve_worker_shutdown_s", "{:.3f} s"),
    ("  worker peak RSS", "serve_worker_maxrss_mb", "{:.1f} MB"),
]


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def verdict(metric: str, value: float) -> tuple[str, str]:
    if metric not in TARGETS:
        return "", ""
    op, bound = TARGETS[metric]
    met = value >= bound if op == ">=" else value <= bound
    return f"{op} {bound:,g}", "met" if met else "MISSED"


def table(environment: dict[str, Any], summary: dict[str, float]) -> str:
    env = environment
    lines = [
        f"Tickr {env['tickr']} (source {env['source']}) benchmark, started {env['date']}",
        f"Python {env['python']}, redis-server {env['redis_server']} on {env['redis_url']}, "
        f"{env['cpus']} CPUs, {env['platform']}",
        f"{env['tasks']:,} tasks, worker concurrency {env['concurrency']}, "
        f"latency: {env['latency_tasks']:,} tasks at {env['latency_rate']:g}/s, "
        f"repeat {env['repeat']}" + (" (medians)" if env["repeat"] > 1 else ""),
        "",
    ]
    header = f"{'measurement':<44} {'result':>18}   {'target':<10} {'':<6}"
    lines += [header.rstrip(), "-" * len(header)]
    for label, metric, fmt in ROWS:
        value = summary[metric]
        target, status = verdict(metric, value)
        text = label.format(batch=env["batch"], tasks=env["tasks"])
        lines.append(f"{text:<44} {fmt.format(value):>18}   {target:<10} {status:<6}".rstrip())
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure Tickr's enqueue and drain rates and its idle start latency."
    )
    parser.add_argument(
        "--tasks", type=int, default=20_000, help="tasks per workload (default 20000)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of every workload; medians are reported"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument(
        "--batch", type=int, default=1_000, help="enqueue_many batch size (default 1000)"
    )
    parser.add_argument(
        "--latency-tasks",
        type=int,
        help="tasks of the latency workload (default tasks/10, so 2000)",
    )
    parser.add_argument(
        "--latency-rate", type=float, default=200.0, help="their enqueue rate per s (200)"
    )
    args = parser.parse_args()
    if args.latency_tasks is None:
        args.latency_tasks = max(1, args.tasks // 10)
    for name in ("tasks", "repeat", "batch", "latency_tasks"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.latency_rate <= 0:
        parser.error("--latency-rate must be positive")
    return args


def main() -> None:
    args = parse_args()
    with RedisServer(unix_socket=False) as server:
        environment, runs = asyncio.run(run(server, args))
    environment["source"] = git_revision("+dirty")
    summary = median_of(runs)
    print(table(environment, summary))
    if args.json:
        document = {"environment": environment, "targets": TARGETS, "median": summary}
        document["runs"] = runs
        args.json.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
