"""Tickr against arq, saq, taskiq, streaq and a bare redis-py floor (see README.md).

One command::

    .venv/bin/python benchmarks/compare.py             # the full run, ~25 min on 2 cores
    .venv/bin/python benchmarks/compare.py --quick     # smoke run: Tickr + floor, ~20 s

1. Creates ``benchmarks/.venv-peers/<name>/``, one virtual environment per library with
   its pinned versions (`REQUIREMENTS`), when missing or when the pins changed.  The
   peers' newest releases need three different majors of redis-py, so they cannot
   share one environment; every one runs on the same Python interpreter.  Tickr (an
   editable install of this checkout), the floor, and this script itself (with
   matplotlib) use ``.venv-peers/tickr``.  This script then re-runs itself there.
2. Starts a private redis-server on 127.0.0.1 (`tickr.testing.RedisServer`).
3. Runs every workload for every library, each on a flushed Redis, producers and workers
   in processes of their own (``_peers.py``), and the libraries in a rotating order.
4. Writes ``RESULTS.md`` and ``results.png`` (``_report.py``), plus the raw figures in
   ``out/results.json`` and every process's stderr in ``out/logs/``.
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
import shlex
import signal
import statistics
import subprocess
import sys
import time
import venv
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from _proc import git_revision

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS_DIR = HERE / ".venv-peers"
PEERS_SCRIPT = HERE / "_peers.py"
OUT = HERE / "out"
SETUP_ENV = "TICKR_COMPARE_SETUP"  # set on the re-run: the setup's findings, as JSON

LIBRARIES = ("tickr", "arq", "saq", "taskiq", "streaq", "floor")
WORKLOADS = ("enqueue", "batch", "drain", "sleep", "latency", "scaling", "memory", "recovery")
FILL_PROCESSES = 2  # producers that fill a queue for a library without a batch API
OWN = ("tickr", "floor")  # their problems make the exit status 1; the peers' never do
BATCH_API = {"tickr": "Client.enqueue_many", "streaq": "Worker.enqueue_many", "floor": "pipeline"}

# The environment each library runs in, and what is installed there, pinned.
VENV_OF = {lib: lib for lib in LIBRARIES} | {"floor": "tickr"}
REQUIREMENTS: dict[str, list[str]] = {
    "tickr": [
        "-e",
        str(ROOT),
        "redis[hiredis]==8.1.0",
        "hiredis==3.5.0",
        "msgpack==1.2.4",
        "matplotlib==3.11.2",
    ],
    # arq 0.28.0 (its newest) requires redis<6.
    "arq": ["arq==0.28.0", "redis[hiredis]==5.3.1", "hiredis==3.5.0"],
    # saq's "redis" extra requires redis<8; saq imports typing_extensions undeclared.
    "saq": [
        "saq[redis,hiredis]==0.26.4",
        "redis==7.4.1",
        "hiredis==3.5.0",
        "typing_extensions==4.16.0",
    ],
    # taskiq-redis 1.2.4 requires redis>=8; 1.0.x (redis 5) fails to import on taskiq 0.13.
    "taskiq": ["taskiq==0.13.0", "taskiq-redis==1.2.4", "redis[hiredis]==8.1.0", "hiredis==3.5.0"],
    # streaq talks to Redis through coredis, not redis-py.
    "streaq": ["streaq==7.2.0", "coredis==6.9.0", "anyio==4.16.0"],
}
IMPORTS = {
    "tickr": "import tickr, tickr.testing, redis.asyncio, matplotlib.pyplot",
    "arq": "import arq, arq.worker, arq.connections",
    "saq": "import saq, saq.worker, saq.queue.redis",
    "taskiq": "import taskiq, taskiq.api, taskiq.acks, taskiq_redis",
    "streaq": "import streaq, anyio",
}
# Problems met while choosing the pins above; RESULTS.md lists them with the others.
SETUP_NOTES = {
    "saq": "saq 0.26.4 imports `typing_extensions` (saq/worker.py) but does not declare it: "
    "in a fresh environment `import saq.worker` fails with ModuleNotFoundError. "
    "compare.py installs typing_extensions 4.16.0 beside it.",
    "taskiq": "taskiq-redis 1.0.9, the newest release that accepts redis-py 5 (which arq "
    "0.28.0 requires), fails to import with taskiq 0.13.0 (`ImportError: cannot import name "
    "'model_dump' from 'taskiq.compat'`); taskiq-redis 1.2.4 needs redis-py 8. Hence one "
    "environment per library.",
}
DISTRIBUTIONS = {  # whose versions RESULTS.md shows
    "tickr": ["tickr-queue", "redis", "hiredis"],
    "floor": ["redis", "hiredis"],
    "arq": ["arq", "redis", "hiredis"],
    "saq": ["saq", "redis", "hiredis"],
    "taskiq": ["taskiq", "taskiq-redis", "redis", "hiredis"],
    "streaq": ["streaq", "coredis", "anyio"],
}


@dataclass(frozen=True)
class Sizes:
    tasks: int = 20_000  # enqueue, batch, drain and scaling
    batch: int = 1_000
    sleep_tasks: int = 10_000
    latency_tasks: int = 2_000
    latency_rate: float = 200.0
    long_tasks: int = 20
    memory_tasks: int = 50_000  # pending tasks whose Redis memory is measured
    recovery_cap: float = 90.0
    stall: float = 30.0  # give up on a workload after this long without progress


QUICK = Sizes(
    tasks=300,
    batch=100,
    sleep_tasks=300,
    latency_tasks=100,
    memory_tasks=300,
    recovery_cap=30.0,
    stall=15.0,
)


# ---------------------------------------------------------------------------- setup


def python_of(venv_name: str) -> Path:
    return PEERS_DIR / venv_name / "bin" / "python"


def child_env(in_place: bool) -> dict[str, str]:
    """Environment of every producer and worker: bytecode cached outside src/, for all."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cache = (OUT if in_place else PEERS_DIR) / "pycache"
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def ensure_venv(name: str) -> str | None:
    """Create or update one environment; returns a problem, or None when it works."""
    directory = PEERS_DIR / name
    stamp = directory / "bench-requirements.json"
    wanted = json.dumps(REQUIREMENTS[name])
    python = python_of(name)
    if not (python.exists() and stamp.exists() and stamp.read_text() == wanted):
        print(f"setup: installing {name} into {directory}", file=sys.stderr, flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(directory)
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            + REQUIREMENTS[name],
            capture_output=True,
            text=True,
        )
        if install.returncode != 0:
            return f"pip install {' '.join(REQUIREMENTS[name])} failed: {install.stderr[-1500:]}"
        stamp.write_text(wanted)
    check = subprocess.run(
        [str(python), "-c", IMPORTS[name]],
        capture_output=True,
        text=True,
        env=child_env(False),
    )
    if check.returncode != 0:
        return (
            f"`{IMPORTS[name]}` fails on Python {platform.python_version()}: "
            + (check.stderr.strip().splitlines() or ["?"])[-1]
        )
    return None


def setup(libraries: list[str]) -> dict[str, str]:
    """Install what `libraries` need; returns {library: why it cannot run}."""
    PEERS_DIR.mkdir(exist_ok=True)
    broken: dict[str, str] = {}
    for name in dict.fromkeys(["tickr", *(VENV_OF[lib] for lib in libraries)]):
        problem = ensure_venv(name)
        if problem:
            if name == "tickr":
                sys.exit(f"setup failed: {problem}")
            broken[name] = problem
    return {lib: broken[VENV_OF[lib]] for lib in libraries if VENV_OF[lib] in broken}


def versions(libraries: list[str], in_place: bool) -> dict[str, dict[str, str]]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "print(json.dumps({d: m.version(d) for d in sys.argv[1:]}))"
    )
    found = {}
    for lib in libraries:
        python = sys.executable if in_place else str(python_of(VENV_OF[lib]))
        done = subprocess.run(
            [python, "-c", code, *DISTRIBUTIONS[lib]], capture_output=True, text=True
        )
        found[lib] = json.loads(done.stdout) if done.returncode == 0 else {}
    return found


# ---------------------------------------------------------------------------- processes


def open_log(path: Path) -> TextIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("w")


def log_tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


class Worker:
    """One worker process of `_peers.py`, and what it printed."""

    def __init__(self, bench: Bench, lib: str, kind: str, tag: str, url: str | None = None) -> None:
        self.bench, self.lib, self.kind = bench, lib, kind
        self.url = url or bench.url
        self.log = bench.logs / f"{tag}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.ready = asyncio.Event()
        self.changed = asyncio.Event()
        self.runs = self.distinct = 0
        self.starts: list[tuple[int, float]] = []
        self.report: dict[str, Any] | None = None
        self.notes: list[str] = []
        self.spawned = 0.0
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        with open_log(self.log) as log:
            self.spawned = time.time()
            self.process = await asyncio.create_subprocess_exec(
                self.bench.python(self.lib),
                str(PEERS_SCRIPT),
                "worker",
                self.lib,
                self.kind,
                "--url",
                self.url,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=self.bench.env,
                limit=1 << 25,
            )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if line.startswith("P "):
                _, runs, distinct = line.split()
                self.runs, self.distinct = int(runs), int(distinct)
            elif line.startswith("S "):
                _, number, at = line.split()
                self.starts.append((int(number), float(at)))
            elif line.startswith("R "):
                self.report = json.loads(line[2:])
            elif line == "ready":
                self.ready.set()
            elif line.startswith("E "):
                self.notes.append(line[2:])
            self.changed.set()
        self.changed.set()

    @property
    def exited(self) -> bool:
        return self.process is None or self.process.returncode is not None

    async def stop(self) -> dict[str, Any] | None:
        """Ask for the report, wait for the process to leave; None if there was none."""
        assert self.process is not None and self.process.stdin is not None
        with contextlib.suppress(ConnectionError):
            self.process.stdin.write(b"stop\n")
            await self.process.stdin.drain()
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.notes.append("did not exit within 30 s of 'stop'; killed")
            await self.kill()
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 10)
        return self.report

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    def failure(self) -> str:
        code = None if self.process is None else self.process.returncode
        detail = "; ".join(self.notes) or log_tail(self.log)
        return f"worker exit code {code}: {detail}"


async def wait_until(
    workers: list[Worker], done: Callable[[], bool], stall: float, cap: float
) -> str | None:
    """Wait until `done()`; returns why not if no worker printed anything for `stall` s."""
    deadline = time.monotonic() + cap
    while not done():
        if all(worker.exited for worker in workers):
            return "every worker exited: " + workers[0].failure()
        for worker in workers:
            worker.changed.clear()
        waits = [asyncio.create_task(worker.changed.wait()) for worker in workers]
        finished, pending = await asyncio.wait(
            waits,
            timeout=min(stall, max(0.0, deadline - time.monotonic())),
            return_when=asyncio.FIRST_COMPLETED,
        )
        for wait in pending:
            wait.cancel()
        if not finished and not done():
            if time.monotonic() >= deadline:
                return f"not done after {cap:.0f} s"
            return f"no progress for {stall:.0f} s"
    return None


# ---------------------------------------------------------------------------- the bench


@dataclass
class Bench:
    url: str
    redis_pid: int | None
    sizes: Sizes
    in_place: bool
    env: dict[str, str]
    logs: Path
    admin: Any
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    _count: int = 0

    def python(self, lib: str) -> str:
        return sys.executable if self.in_place else str(python_of(VENV_OF[lib]))

    def tag(self, lib: str, what: str) -> str:
        self._count += 1
        return f"{self._count:04d}-{lib}-{what}"

    def problem(self, lib: str, workload: str, text: str, kind: str = "") -> None:
        """Record a problem; those of one `kind` are listed together in RESULTS.md."""
        self.problems.append((lib, workload, text, kind or text))
        print(f"  problem: {lib} {workload}: {text}", file=sys.stderr, flush=True)

    async def fill(self, lib: str, kind: str, count: int, url: str = "") -> None:
        """Queue `count` tasks, untimed: two producer processes without a batch API."""
        parts = 1 if lib in BATCH_API or count < 1000 else FILL_PROCESSES
        await asyncio.gather(
            *(
                self.produce(
                    lib, kind, "fill", count, "--part", str(part), "--parts", str(parts), url=url
                )
                for part in range(parts)
            )
        )

    def flush(self) -> None:
        self.admin.flushall()

    def used_memory(self) -> int:
        return int(self.admin.info("memory")["used_memory"])

    def redis_cpu(self) -> float:
        try:
            stat = Path(f"/proc/{self.redis_pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return math.nan
        return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")

    async def produce(
        self, lib: str, kind: str, mode: str, count: int, *extra: str, url: str = ""
    ) -> dict[str, Any]:
        log = self.logs / f"{self.tag(lib, 'produce-' + mode)}.log"
        with open_log(log) as stderr:
            process = await asyncio.create_subprocess_exec(
                self.python(lib),
                str(PEERS_SCRIPT),
                "produce",
                lib,
                kind,
                "--url",
                url or self.url,
                "--mode",
                mode,
                "--count",
                str(count),
                "--batch",
                str(self.sizes.batch),
                *extra,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                env=self.env,
                limit=1 << 25,
            )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), 900)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        reports = [line for line in output.decode().splitlines() if line.startswith("R ")]
        if process.returncode != 0 or not reports:
            raise RuntimeError(f"producer exit code {process.returncode}: {log_tail(log, 2)}")
        result: dict[str, Any] = json.loads(reports[-1][2:])
        return result


# ---------------------------------------------------------------------------- workloads

Metrics = dict[str, Any]


def tally(reports: list[dict[str, Any]], expected: int) -> dict[str, int]:
    """Lost and duplicated tasks over every worker's report."""
    runs: dict[int, int] = {}
    for report in reports:
        repeats = report["repeats"]
        for number in report["ids"]:
            runs[number] = runs.get(number, 0) + repeats.get(str(number), 1)
    wanted = [runs.get(number, 0) for number in range(expected)]
    return {
        "lost": sum(1 for count in wanted if count == 0),
        "duplicated": sum(count - 1 for count in wanted if count > 1),
    }


def check_tally(bench: Bench, lib: str, workload: str, metrics: Metrics, expected: int) -> None:
    if metrics["lost"] or metrics["duplicated"]:
        bench.problem(
            lib,
            workload,
            f"{metrics['lost']} of {expected:,} tasks lost (never ran), "
            f"{metrics['duplicated']} duplicate runs (a task run again after it ran)",
            "tally",
        )


async def enqueue(bench: Bench, lib: str) -> Metrics:
    bench.flush()
    result = await bench.produce(lib, "noop", "single", bench.sizes.tasks)
    return {
        "rate": bench.sizes.tasks / result["elapsed_s"],
        "producer_cpu_s": result["cpu_s"],
    }


async def batch(bench: Bench, lib: str) -> Metrics | None:
    if lib not in BATCH_API:
        return None
    bench.flush()
    result = await bench.produce(lib, "noop", "batch", bench.sizes.tasks)
    return {
        "rate": bench.sizes.tasks / result["elapsed_s"],
        "producer_cpu_s": result["cpu_s"],
    }


async def run_workers(
    bench: Bench, lib: str, kind: str, count: int, processes: int, workload: str
) -> tuple[list[dict[str, Any]], float]:
    """Fill the queue, run `processes` workers until `count` tasks ran; their reports."""
    bench.flush()
    await bench.fill(lib, kind, count)
    redis_before = bench.redis_cpu()
    workers = [
        Worker(bench, lib, kind, bench.tag(lib, f"{workload}-w{n}")) for n in range(processes)
    ]
    try:
        await asyncio.gather(*(worker.start() for worker in workers))
        why = await wait_until(
            workers,
            lambda: sum(worker.distinct for worker in workers) >= count,
            bench.sizes.stall,
            cap=max(300.0, count / 20),
        )
        if why:
            bench.problem(lib, workload, f"stopped early: {why}")
        reports = [await worker.stop() for worker in workers]
    finally:
        for worker in workers:
            await worker.kill()
    redis_cpu = bench.redis_cpu() - redis_before
    if not all(reports):
        failed = [
            worker.failure() for worker, report in zip(workers, reports, strict=True) if not report
        ]
        raise RuntimeError("no report from a worker: " + "; ".join(failed))
    return [report for report in reports if report], redis_cpu


async def drain(bench: Bench, lib: str, processes: int = 1, workload: str = "drain") -> Metrics:
    count = bench.sizes.tasks
    reports, redis_cpu = await run_workers(bench, lib, "noop", count, processes, workload)
    started = min(report["started"] for report in reports)
    first = min(report["first_start"] or math.inf for report in reports)
    last = max(report["last_end"] for report in reports)
    metrics: Metrics = {
        "rate": count / (last - started),
        "seconds": last - started,
        "steady_rate": count / (last - first) if last > first else math.nan,
        "first_task_s": first - started,
        "import_s": max(report["imported"] - report["started"] for report in reports),
        "rss_mb": max(report["maxrss_kib"] for report in reports) * 1024 / 1e6,
        "cpu_s": sum(report["cpu_s"] for report in reports),
        "redis_cpu_s": redis_cpu,
        **tally(reports, count),
    }
    check_tally(bench, lib, workload, metrics, count)
    return metrics


async def scaling(bench: Bench, lib: str) -> Metrics:
    return await drain(bench, lib, processes=2, workload="scaling")


async def sleep(bench: Bench, lib: str) -> Metrics:
    count = bench.sizes.sleep_tasks
    reports, _ = await run_workers(bench, lib, "sleep", count, 1, "sleep")
    report = reports[0]
    metrics: Metrics = {
        "seconds": report["last_end"] - report["started"],
        "steady_seconds": report["last_end"] - report["first_start"],
        "most_running": report["most_running"],
        "rss_mb": report["maxrss_kib"] * 1024 / 1e6,
        "cpu_s": report["cpu_s"],
        **tally(reports, count),
    }
    check_tally(bench, lib, "sleep", metrics, count)
    if metrics["most_running"] < 100:
        bench.problem(
            lib,
            "sleep",
            f"concurrency 100 never reached: at most {metrics['most_running']} "
            "handlers ran at once",
            "concurrency",
        )
    return metrics


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


async def latency(bench: Bench, lib: str) -> Metrics:
    count = bench.sizes.latency_tasks
    bench.flush()
    worker = Worker(bench, lib, "stamp", bench.tag(lib, "latency"))
    try:
        await worker.start()
        ready = asyncio.create_task(worker.ready.wait())
        await asyncio.wait({ready}, timeout=60)
        if not worker.ready.is_set():
            ready.cancel()
            raise RuntimeError("not ready after 60 s: " + worker.failure())
        sent = await bench.produce(
            lib, "stamp", "paced", count, "--rate", str(bench.sizes.latency_rate)
        )
        why = await wait_until([worker], lambda: worker.distinct >= count + 1, 10, 60)
        if why:
            bench.problem(lib, "latency", f"stopped early: {why}")
        report = await worker.stop()
    finally:
        await worker.kill()
    if not report:
        raise RuntimeError("no report: " + worker.failure())
    latencies = [value * 1000 for value in report["latencies"]]
    if not latencies:
        raise RuntimeError("no task ran")
    metrics: Metrics = {
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies),
        "enqueue_call_p50_ms": percentile([d * 1000 for d in sent["durations"]], 50),
        **tally([report], count),
    }
    check_tally(bench, lib, "latency", metrics, count)
    return metrics


async def memory(bench: Bench, lib: str) -> Metrics:
    """Redis `used_memory` growth per pending task: an untimed fill, no worker.

    Then the library's own count of the tasks waiting, where it has a cheap one.
    """
    count = bench.sizes.memory_tasks
    bench.flush()
    # An untimed warm-up of one batch: FLUSHALL keeps the scripts a library loaded and
    # the latency histogram Redis makes on a command's first call, one-off costs that
    # would otherwise fall on whichever run first uses them.
    await bench.fill(lib, "noop", min(count, bench.sizes.batch))
    bench.flush()
    before = bench.used_memory()
    await bench.fill(lib, "noop", count)
    grown = bench.used_memory() - before  # the producers have left: no client buffers
    keys = int(bench.admin.dbsize())
    queued = (await bench.produce(lib, "noop", "count", 0))["queued"]
    if queued is not None and queued != count:
        bench.problem(lib, "memory", f"{queued:,} of the {count:,} tasks queued", "queued")
    return {
        "bytes_per_task": grown / count,
        "grown_bytes": grown,
        "keys": keys,
        "queued": math.nan if queued is None else queued,
    }


async def recovery(bench: Bench, lib: str, database: int = 0) -> Metrics:
    """SIGKILL a worker holding the long tasks, start another, time until all re-ran.

    Runs on Redis database `database` (flushed before by the caller), so that several
    libraries can run it side by side: it is all timers and sleeping tasks.
    """
    count, cap = bench.sizes.long_tasks, bench.sizes.recovery_cap
    url = bench.url.rsplit("/", 1)[0] + f"/{database}"
    await bench.fill(lib, "long", count, url=url)
    first = Worker(bench, lib, "long", bench.tag(lib, "recovery-a"), url)
    second = Worker(bench, lib, "long", bench.tag(lib, "recovery-b"), url)
    try:
        await first.start()
        why = await wait_until([first], lambda: len({n for n, _ in first.starts}) >= count, 60, 60)
        if why:
            raise RuntimeError(f"the first worker never held all {count} tasks: {why}")
        await first.kill()
        killed = time.time()
        await second.start()
        await wait_until(
            [second], lambda: len({n for n, _ in second.starts}) >= count, cap + 5, cap
        )
    finally:
        await first.kill()
        await second.kill()
    again: dict[int, float] = {}
    for number, at in second.starts:
        again.setdefault(number, at)
    rerun = len(again)
    metrics: Metrics = {
        "seconds": max(again.values()) - killed if rerun >= count else math.nan,
        "first_s": min(again.values()) - killed if again else math.nan,
        "rerun": rerun,
        "duplicated": len(second.starts) - rerun,
        "cap_s": cap,
    }
    if rerun < count:
        pace = (
            f" (the first after {metrics['first_s']:.0f} s, the last seen after "
            f"{max(again.values()) - killed:.0f} s)"
            if again
            else ""
        )
        bench.problem(
            lib,
            "recovery",
            f"{rerun} of the {count} tasks held by the SIGKILLed worker ran again within "
            f"{cap:.0f} s{pace}",
        )
    if metrics["duplicated"]:
        bench.problem(
            lib, "recovery", f"{metrics['duplicated']} tasks started twice in the new worker"
        )
    return metrics


WORKLOAD_RUNNERS: dict[str, Callable[[Bench, str], Awaitable[Metrics | None]]] = {
    "enqueue": enqueue,
    "batch": batch,
    "drain": drain,
    "sleep": sleep,
    "latency": latency,
    "scaling": scaling,
    "memory": memory,
}


# ---------------------------------------------------------------------------- the run


def progress(began: float, attempt: int, workload: str, libs: list[str]) -> None:
    elapsed = time.monotonic() - began
    print(
        f"[{elapsed:6.0f} s] run {attempt + 1} {workload:8} {', '.join(libs)}",
        file=sys.stderr,
        flush=True,
    )


async def guarded(
    bench: Bench, lib: str, workload: str, attempt: int, run: Awaitable[Metrics | None]
) -> Metrics | None:
    """Run one workload for one library; a failure is recorded, never raised."""
    try:
        return await run
    except Exception as exc:
        bench.problem(lib, workload, f"run {attempt + 1} failed: {exc}", "failed")
        return {"error": str(exc)}


async def recoveries(
    bench: Bench, libs: list[str], attempt: int, began: float
) -> dict[str, Metrics | None]:
    """Tickr alone, then every peer side by side, each on a Redis database of its own."""
    bench.flush()
    found: dict[str, Metrics | None] = {}
    if "tickr" in libs:
        progress(began, attempt, "recovery", ["tickr"])
        found["tickr"] = await guarded(
            bench, "tickr", "recovery", attempt, recovery(bench, "tickr")
        )
    peers = [lib for lib in libs if lib not in ("tickr", "floor")]
    if peers:
        progress(began, attempt, "recovery", peers)
        outcomes = await asyncio.gather(
            *(
                guarded(bench, lib, "recovery", attempt, recovery(bench, lib, database))
                for database, lib in enumerate(peers, start=1)
            )
        )
        found.update(zip(peers, outcomes, strict=True))
    return found  # the floor is not run: BRPOP removes the message for good


async def run_all(bench: Bench, args: argparse.Namespace, libs: list[str]) -> dict[str, Any]:
    results: dict[str, dict[str, list[Any]]] = {w: {lib: [] for lib in libs} for w in WORKLOADS}
    began = time.monotonic()
    for attempt in range(args.repeat):
        shift = attempt % len(libs)
        order = libs[shift:] + libs[:shift]  # rotated from one repeat to the next
        for workload in args.workloads:
            if workload == "recovery":
                continue
            for lib in order:
                progress(began, attempt, workload, [lib])
                run = WORKLOAD_RUNNERS[workload](bench, lib)
                metrics = await guarded(bench, lib, workload, attempt, run)
                if metrics is not None:
                    results[workload][lib].append(metrics)
    if "recovery" in args.workloads:
        for attempt in range(args.recovery_repeat):
            found = await recoveries(bench, libs, attempt, began)
            for lib, metrics in found.items():
                if metrics is not None:
                    results["recovery"][lib].append(metrics)
    return results


def median_metrics(runs: list[Metrics]) -> Metrics | None:
    good = [run for run in runs if "error" not in run]
    if not good:
        return None
    summary: Metrics = {}
    for key in good[0]:
        values = [run[key] for run in good if isinstance(run.get(key), int | float)]
        finite = [value for value in values if not math.isnan(value)]
        summary[key] = statistics.median(finite) if finite else math.nan
    for key in ("lost", "duplicated"):  # summed: one bad run must show
        if key in good[0]:
            summary[f"{key}_total"] = sum(run[key] for run in good)
    summary["runs"] = len(good)
    return summary


def machine() -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError, ValueError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory": memory,
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }


def bench_main(args: argparse.Namespace, libs: list[str], broken: dict[str, str]) -> int:
    """Run the benchmark and write its results; the exit status (1 if Tickr had problems)."""
    import _report
    import redis

    from tickr.testing import RedisServer

    sizes: Sizes = args.sizes
    output: Path = args.output
    stamp = datetime.datetime.now(datetime.UTC)
    logs = OUT / "logs" / stamp.strftime("%Y%m%dT%H%M%S")
    runnable = [lib for lib in libs if lib not in broken]
    began = time.monotonic()
    with RedisServer(unix_socket=False) as server:
        admin = redis.Redis.from_url(server.url)
        info = admin.info("server")
        bench = Bench(
            url=server.url,
            redis_pid=server.pid,
            sizes=sizes,
            in_place=args.in_place,
            env=child_env(args.in_place),
            logs=logs,
            admin=admin,
        )
        for lib, why in broken.items():
            bench.problem(lib, "setup", why)
        try:
            results = asyncio.run(run_all(bench, args, runnable))
        finally:
            admin.close()
    document = {
        "date": stamp.isoformat(timespec="seconds"),
        "command": " ".join(["benchmarks/compare.py", *map(shlex.quote, sys.argv[1:])]),
        "wall_s": time.monotonic() - began,
        "revision": git_revision(" with uncommitted changes in src/"),
        "machine": machine(),
        "redis_server": info.get("redis_version", "?"),
        "sizes": vars(sizes),
        "repeat": args.repeat,
        "recovery_repeat": args.recovery_repeat,
        "libraries": libs,
        "ran": runnable,
        "workloads": args.workloads,
        "versions": versions(runnable, args.in_place),
        "requirements": {
            lib: [pin.replace(str(ROOT), "<this checkout>") for pin in REQUIREMENTS[lib]]
            for lib in libs
            if lib in REQUIREMENTS
        }
        if not args.in_place
        else {},
        "in_place": args.in_place,
        "results": results,
        "medians": {
            workload: {lib: median_metrics(runs) for lib, runs in by_lib.items()}
            for workload, by_lib in results.items()
        },
        "problems": bench.problems,
        "setup_notes": {lib: SETUP_NOTES[lib] for lib in libs if lib in SETUP_NOTES},
        "logs": str(logs.relative_to(ROOT)),
    }
    OUT.mkdir(exist_ok=True)
    output.mkdir(parents=True, exist_ok=True)
    raw = OUT / ("results-quick.json" if args.quick else "results.json")
    raw.write_text(json.dumps(document, indent=1, default=str) + "\n")
    written = _report.write(document, output / "RESULTS.md", output / "results.png")
    print(f"wrote {', '.join(map(str, [*written, raw]))}", file=sys.stderr)
    own = [f"{lib} {work}: {text}" for lib, work, text, _ in bench.problems if lib in OWN]
    if own:
        print("problems of Tickr or the floor:\n  " + "\n  ".join(own), file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------- CLI


def names(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in allowed]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown)}; choose from {', '.join(allowed)}"
        )
    return [name for name in allowed if name in chosen]  # the canonical order


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark Tickr against arq, saq, taskiq, streaq and a redis-py floor."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: a few hundred tasks, one repeat, Tickr and the floor unless --only; "
        "writes to benchmarks/out/quick/",
    )
    parser.add_argument("--repeat", type=int, help="runs of each workload (default 3; quick 1)")
    parser.add_argument(
        "--recovery-repeat",
        type=int,
        default=1,
        help="runs of the recovery workload (default 1: its figure is set by timers)",
    )
    parser.add_argument(
        "--only",
        type=lambda text: names(text, LIBRARIES, "library"),
        help="comma-separated libraries (default all: " + ",".join(LIBRARIES) + ")",
    )
    parser.add_argument(
        "--workloads",
        type=lambda text: names(text, WORKLOADS, "workload"),
        default=list(WORKLOADS),
        help="comma-separated workloads (default all: " + ",".join(WORKLOADS) + ")",
    )
    parser.add_argument("--tasks", type=int, help="tasks of enqueue, batch, drain, scaling")
    parser.add_argument("--sleep-tasks", type=int, help="tasks of the sleep workload")
    parser.add_argument("--latency-tasks", type=int, help="tasks of the latency workload")
    parser.add_argument("--output", type=Path, help="directory for RESULTS.md and results.png")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="only rewrite RESULTS.md and results.png from the last out/results.json",
    )
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="no virtual environments: run everything with this interpreter (Tickr and the "
        "floor only; the default for --quick without peers)",
    )
    args = parser.parse_args(argv)
    args.only = args.only or (["tickr", "floor"] if args.quick else list(LIBRARIES))
    if args.quick and set(args.only) <= {"tickr", "floor"}:
        args.in_place = True
    if args.in_place and not set(args.only) <= {"tickr", "floor"}:
        parser.error("--in-place runs only tickr and floor: the peers need their environments")
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.sizes = QUICK if args.quick else Sizes()
    for name in ("tasks", "sleep_tasks", "latency_tasks"):
        if getattr(args, name) is not None:
            args.sizes = Sizes(**{**vars(args.sizes), name: getattr(args, name)})
    args.output = args.output or (OUT / "quick" if args.quick else HERE)
    counts = (args.sizes.tasks, args.sizes.sleep_tasks, args.sizes.latency_tasks)
    if min(args.repeat, args.recovery_repeat, *counts) < 1:
        parser.error("--repeat, --recovery-repeat and the task counts must be at least 1")
    return args


def render_only(args: argparse.Namespace) -> None:
    import _report

    raw = OUT / ("results-quick.json" if args.quick else "results.json")
    document = json.loads(raw.read_text())
    args.output.mkdir(parents=True, exist_ok=True)
    _report.write(document, args.output / "RESULTS.md", args.output / "results.png")


def main() -> None:
    args = parse_args(sys.argv[1:])
    if args.render_only and (args.in_place or SETUP_ENV in os.environ):
        render_only(args)
        return
    if args.render_only:  # matplotlib is in .venv-peers/tickr
        setup([])
        python = str(python_of("tickr"))
        env = dict(os.environ, **{SETUP_ENV: "{}"})
        os.execve(python, [python, str(Path(__file__).resolve()), *sys.argv[1:]], env)
    if args.in_place:
        sys.exit(bench_main(args, args.only, {}))
    if SETUP_ENV in os.environ:  # the re-run inside .venv-peers/tickr
        sys.exit(bench_main(args, args.only, json.loads(os.environ[SETUP_ENV])))
    broken = setup(args.only)
    env = dict(os.environ, **{SETUP_ENV: json.dumps(broken)})
    python = str(python_of("tickr"))
    os.execve(python, [python, str(Path(__file__).resolve()), *sys.argv[1:]], env)


if __name__ == "__main__":
    main()
