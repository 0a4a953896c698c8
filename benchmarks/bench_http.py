"""Task submissions through Tickr's HTTP API against `tickr.Client.enqueue`, in one run.

    .venv/bin/python benchmarks/bench_http.py [--tasks 20000] [--concurrency 32] [--quick]

Starts a private redis-server and, in a process of its own, `tickr web` (one uvicorn worker) serving
`tickr.web.create_app` on loopback (`server_command`).  Then, per run and for each of
three ways to submit a task, one after another on the same Redis:

1. throughput: ``--tasks`` submits from ``--concurrency`` coroutines (over HTTP each
   with a keep-alive connection of its own; the Client's share one `tickr.Client`);
2. latency: ``--latency-tasks`` submits one at a time, each awaited before the next: p50
   and p99 of one round trip.

The three ways: ``POST /api/v1/queues/{queue}/tasks`` (answered 201) with an
``httpx.AsyncClient`` per coroutine; the same request from a minimal HTTP/1.1 client on
asyncio streams (the server's figure with the least load-generator cost, a cross-check:
httpx costs more CPU per request than the server does); and ``await client.enqueue(...)``
on one `tickr.Client`.  The order rotates by one place from run to run.  Afterwards
`tickr.Inspector.queue_info` must count as many pending tasks in each queue as there were
submits answered, and every answer must carry another task id, else the exit status is 1.
Prints a markdown report (ratios are to Client.enqueue); ``--help`` lists the options.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import hashlib
import importlib.util
import json
import math
import os
import platform
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import redis
import uvicorn
from _proc import git_revision

import tickr
from tickr.testing import RedisServer

NAMESPACE = "bench"
TASK_TYPE = "bench"
SERVER_START_TIMEOUT = 30.0
SIDES = ("httpx", "raw", "client")
LABELS = {"httpx": "HTTP API, httpx", "raw": "HTTP API, minimal client", "client": "Client.enqueue"}
HTTP_SIDES = ("httpx", "raw")
SHORT = {"httpx": "httpx", "raw": "minimal"}

Submit = Callable[[int, str, int], Awaitable[None]]
"""Submit one task: (slot, queue, number); a slot is one connection."""


# ---------------------------------------------------------------------------- the server


def server_command(url: str, port: int, token_file: Path) -> list[str]:
    """The command line of the HTTP server process: ``tickr web``, one uvicorn worker.

    The one place to change to measure another way of serving the app.
    """
    return [
        sys.executable, "-m", "tickr", "web", "--url", url, "--namespace", NAMESPACE,
        "--port", str(port), "--token-file", str(token_file), "--no-access-log",
        "--log-level", "warning",
    ]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.contextmanager
def http_server(url: str, secret: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The server process and its port; SIGTERM (then SIGKILL) at the end.

    Its one token (scope tasks:submit) is in a token file that holds only its SHA-256.
    """
    port = free_port()
    folder = tempfile.TemporaryDirectory(prefix="tickr-bench-http-")
    token_file = Path(folder.name) / "tokens.toml"
    digest = hashlib.sha256(secret.encode()).hexdigest()
    token_file.write_text(
        f'[[token]]\nname = "bench"\nsha256 = "{digest}"\nscopes = ["tasks:submit"]\n'
    )
    command = server_command(url, port, token_file)
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    try:
        yield process, port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        folder.cleanup()


async def wait_ready(process: subprocess.Popen[bytes], base_url: str) -> float:
    """Poll /readyz until the app answers 200; the seconds it took."""
    began = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=1.0, trust_env=False) as probe:
        while time.perf_counter() - began < SERVER_START_TIMEOUT:
            if process.poll() is not None:
                raise RuntimeError(f"the HTTP server exited with status {process.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if (await probe.get("/readyz")).status_code == 200:
                    return time.perf_counter() - began
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the HTTP server was not ready after {SERVER_START_TIMEOUT:g} s")


# ---------------------------------------------------------------------------- clients


class RawConnection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: the leanest submit client."""

    def __init__(self, port: int, secret: str) -> None:
        self.port = port
        self.head = (
            "POST /api/v1/queues/{queue}/tasks HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {secret}\r\nContent-Type: application/json\r\n"
            "Content-Length: {length}\r\n\r\n"
        )
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def post(self, queue: str, body: bytes) -> tuple[int, bytes]:
        """Send one submit; its status and body."""
        assert self.reader is not None and self.writer is not None
        head = self.head.format(queue=queue, port=self.port, length=len(body))
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        answer = await self.reader.readuntil(b"\r\n\r\n")
        lines = answer.split(b"\r\n")
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise RuntimeError(f"an answer without Content-Length: {answer!r}")
        return int(lines[0].split(b" ", 2)[1]), await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


def body_of(number: int) -> dict[str, Any]:
    return {"type": TASK_TYPE, "payload": {"n": number}}


class Ledger:
    """Every submit answered, by queue, and the task ids the answers carried."""

    def __init__(self) -> None:
        self.submitted: dict[str, int] = {}
        self.ids: set[str] = set()
        self.answers = 0

    def record(self, queue: str, task_id: str) -> None:
        self.submitted[queue] = self.submitted.get(queue, 0) + 1
        self.ids.add(task_id)
        self.answers += 1


class Submitters:
    """The three ways to submit, one connection per slot, and what they submitted."""

    def __init__(
        self,
        httpxs: list[httpx.AsyncClient],
        raws: list[RawConnection],
        client: tickr.Client,
    ) -> None:
        self.httpxs = httpxs
        self.raws = raws
        self.client = client
        self.ledger = Ledger()

    async def httpx_submit(self, slot: int, queue: str, number: int) -> None:
        response = await self.httpxs[slot].post(
            f"/api/v1/queues/{queue}/tasks", json=body_of(number)
        )
        if response.status_code != 201:
            raise RuntimeError(f"submit answered {response.status_code}: {response.text[:500]}")
        self.ledger.record(queue, response.json()["id"])

    async def raw_submit(self, slot: int, queue: str, number: int) -> None:
        status, body = await self.raws[slot].post(queue, json.dumps(body_of(number)).encode())
        if status != 201:
            raise RuntimeError(f"submit answered {status}: {body[:500]!r}")
        self.ledger.record(queue, json.loads(body)["id"])

    async def client_submit(self, slot: int, queue: str, number: int) -> None:
        info = await self.client.enqueue(TASK_TYPE, {"n": number}, queue=queue)
        self.ledger.record(queue, info.id)

    async def reopen_raws(self) -> None:
        for raw in self.raws:
            await raw.close()
            await raw.open()

    def of(self, side: str) -> Submit:
        submit: Submit = getattr(self, f"{side}_submit")
        return submit


@contextlib.asynccontextmanager
async def submitters(
    redis_url: str, port: int, secret: str, slots: int
) -> AsyncIterator[Submitters]:
    base_url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {secret}"}
    # One client per slot: httpx's shared pool costs CPU per request on every connection;
    # at 32 connections, in a trial, a quarter of the rate was left.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        httpxs = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=base_url, headers=headers, limits=limits, timeout=30.0, trust_env=False
                )
            )
            for _ in range(slots)
        ]
        raws = [RawConnection(port, secret) for _ in range(slots)]
        for raw in raws:
            stack.push_async_callback(raw.close)
        client = await stack.enter_async_context(tickr.Client(redis_url, namespace=NAMESPACE))
        yield Submitters(httpxs, raws, client)


# ---------------------------------------------------------------------------- measuring


def cpu_seconds(pid: int | None) -> float:
    """User+system CPU seconds of a process so far (Linux /proc), or NaN."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


class Bench:
    """The workloads, on the submitters, watching the processes' CPU."""

    def __init__(self, submit: Submitters, server_pid: int, redis_pid: int) -> None:
        self.submit = submit
        self.pids = {"server": server_pid, "redis": redis_pid}

    def cpu_now(self) -> dict[str, float]:
        return {
            "generator": own_cpu_seconds(),
            **{name: cpu_seconds(pid) for name, pid in self.pids.items()},
        }

    async def warm_up(self, side: str, slots: int) -> None:
        """Untimed, before a side's workloads: every slot submits once (queue warmup).

        That (re)opens its connection: uvicorn closes one idle for 5 s, which the other
        sides' workloads take longer than.  httpx reconnects by itself; the minimal
        client's connections are opened afresh.
        """
        if side == "raw":
            await self.submit.reopen_raws()
        submit = self.submit.of(side)
        await asyncio.gather(*(submit(slot, "warmup", -1) for slot in range(slots)))

    async def throughput(self, side: str, tasks: int, slots: int) -> dict[str, float]:
        """`tasks` submits from `slots` coroutines: the rate, and CPU per submit."""
        submit, queue = self.submit.of(side), f"{side}-burst"

        async def submitter(slot: int) -> None:
            for number in range(slot, tasks, slots):
                await submit(slot, queue, number)

        cpu_before = self.cpu_now()
        began = time.perf_counter()
        await asyncio.gather(*(submitter(slot) for slot in range(slots)))
        elapsed = time.perf_counter() - began
        cpu_after = self.cpu_now()
        figures = {f"{side}_per_s": tasks / elapsed, f"{side}_burst_s": elapsed}
        for name, before in cpu_before.items():
            if name != "server" or side in HTTP_SIDES:  # else the HTTP server idles
                figures[f"{side}_{name}_cpu_us"] = (cpu_after[name] - before) * 1e6 / tasks
        return figures

    async def latency(self, side: str, tasks: int) -> dict[str, float]:
        """`tasks` submits, each awaited before the next: round-trip percentiles."""
        submit, queue = self.submit.of(side), f"{side}-sequential"
        durations = []
        for number in range(tasks):
            began = time.perf_counter()
            await submit(0, queue, number)
            durations.append((time.perf_counter() - began) * 1000)
        durations.sort()
        return {
            f"{side}_p50_ms": percentile(durations, 50),
            f"{side}_p99_ms": percentile(durations, 99),
            f"{side}_mean_ms": statistics.fmean(durations),
        }


async def count_pending(url: str, ledger: Ledger) -> tuple[dict[str, list[int]], bool]:
    """{queue: [pending, submitted]}, and whether every answered submit is pending once."""
    found: dict[str, list[int]] = {}
    ok = len(ledger.ids) == ledger.answers
    async with tickr.Inspector(url, namespace=NAMESPACE) as inspector:
        for queue, submitted in sorted(ledger.submitted.items()):
            info = await inspector.queue_info(queue, memory=False)
            found[queue] = [info.pending, submitted]
            others = info.active + info.scheduled + info.retry + info.archived + info.completed
            ok = ok and info.pending == submitted and others == 0
    return found, ok


async def run(args: argparse.Namespace, server: RedisServer) -> dict[str, Any]:
    """Every run of every side; the JSON document of the results."""
    source = git_revision("+dirty")  # before the server imports the code it measures
    secret = secrets.token_urlsafe(24)
    runs: list[dict[str, float]] = []
    assert server.pid is not None
    with http_server(server.url, secret) as (process, port):
        ready_s = await wait_ready(process, f"http://127.0.0.1:{port}")
        async with submitters(server.url, port, secret, args.concurrency) as submit:
            bench = Bench(submit, process.pid, server.pid)
            for index in range(args.repeat):
                shift = index % len(SIDES)
                figures: dict[str, float] = {}
                for side in SIDES[shift:] + SIDES[:shift]:
                    print(f"[run {index + 1}/{args.repeat}] {side}...", file=sys.stderr, flush=True)
                    await bench.warm_up(side, args.concurrency)
                    figures.update(await bench.throughput(side, args.tasks, args.concurrency))
                    figures.update(await bench.latency(side, args.latency_tasks))
                runs.append(figures)
        if process.poll() is not None:
            raise RuntimeError(f"the HTTP server exited with status {process.returncode}")
    pending, ok = await count_pending(server.url, submit.ledger)
    return {
        "environment": environment(args, server, source, ready_s),
        "median": {key: statistics.median(run[key] for run in runs) for key in runs[0]},
        "runs": runs,
        "pending": pending,
        "distinct_ids": len(submit.ledger.ids),
        "answers": submit.ledger.answers,
        "nothing_lost": ok,
    }


def environment(
    args: argparse.Namespace, server: RedisServer, source: str, ready_s: float
) -> dict[str, Any]:
    admin = redis.Redis(port=server.port, protocol=2)
    try:
        redis_version = str(admin.info("server").get("redis_version", "?"))
    finally:
        admin.close()
    parser = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python benchmarks/bench_http.py", *sys.argv[1:]]),
        "source": source,
        "tickr": tickr.__version__,
        "python": platform.python_version(),
        "redis_server": redis_version,
        "server": f"uvicorn {uvicorn.__version__} ({parser}, {loop} loop), 1 worker",
        "httpx": httpx.__version__,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "tasks": args.tasks,
        "concurrency": args.concurrency,
        "latency_tasks": args.latency_tasks,
        "repeat": args.repeat,
        "server_ready_s": ready_s,
    }


# ---------------------------------------------------------------------------- output


def report(doc: dict[str, Any]) -> str:
    env, median, runs = doc["environment"], doc["median"], doc["runs"]

    def value(side: str, key: str, digits: int) -> str:
        found = median.get(f"{side}_{key}", math.nan)
        return "—" if math.isnan(found) else f"{found:,.{digits}f}"

    def ratios(key: str) -> list[str]:
        base = median[f"client_{key}"]
        return [f"{median[f'{side}_{key}'] / base:.2f}x" for side in HTTP_SIDES]

    def row(label: str, key: str, digits: int, with_ratios: bool = True) -> str:
        cells = [value(side, key, digits) for side in SIDES]
        cells += ratios(key) if with_ratios else ["", ""]
        return f"| {label} | {' | '.join(cells)} |"

    every = [", ".join(f"{run[f'{side}_per_s']:,.0f}" for run in runs) for side in SIDES]
    runs_text = f"{env['repeat']} runs, medians" if env["repeat"] > 1 else "1 run"
    lines = [
        f"Tickr {env['tickr']} (source {env['source']}): HTTP API submissions against "
        f"Client.enqueue, {env['tasks']:,} submits at {env['concurrency']} in flight and "
        f"{env['latency_tasks']:,} one at a time per side, {runs_text}.",
        f"Server: {env['server']} serving create_app, in a process of its own; load: "
        f"httpx {env['httpx']} (one AsyncClient per connection) or a minimal HTTP/1.1 "
        "client, in the benchmark process.",
        f"Machine: {env['cpus']} CPUs, {env['platform']}, Python {env['python']}, "
        f"redis-server {env['redis_server']} on loopback TCP (private, no persistence).",
        "",
        f"| Figure | {' | '.join(LABELS[side] for side in SIDES)} | "
        f"{' | '.join(f'{SHORT[side]} / Client' for side in HTTP_SIDES)} |",
        "|---|---|---|---|---|---|",
        row(f"submits/s, {env['concurrency']} in flight", "per_s", 0),
        row("one submit's round trip, p50 (ms)", "p50_ms", 2),
        row("one submit's round trip, p99 (ms)", "p99_ms", 2),
        row("CPU per submit in flight, load generator (µs)", "generator_cpu_us", 0, False),
        row("CPU per submit in flight, HTTP server (µs)", "server_cpu_us", 0, False),
        row("CPU per submit in flight, redis-server (µs)", "redis_cpu_us", 0, False),
        f"| every run, submits/s | {' | '.join(every)} |  |  |",
        "",
    ]
    pending = "; ".join(
        f"{queue} {found:,} of {submitted:,}"
        for queue, (found, submitted) in doc["pending"].items()
    )
    verdict = "nothing lost" if doc["nothing_lost"] else "TASKS LOST OR DUPLICATED"
    lines.append(
        f"Pending after the run, of the submits answered: {pending}; "
        f"{doc['distinct_ids']:,} distinct task ids in {doc['answers']:,} answers: {verdict}."
    )
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, help="submits in flight per side and run (20000)")
    parser.add_argument("--concurrency", type=int, default=32, help="submits in flight (32)")
    parser.add_argument(
        "--latency-tasks", type=int, help="submits one at a time per side and run (2000)"
    )
    parser.add_argument("--repeat", type=int, help="runs; the report shows medians (3)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 300 tasks, 50 one at a time, 1 run"
    )
    parser.add_argument("--binary", help="redis-server or valkey-server to run")
    parser.add_argument("--output", type=Path, help="also write the report here")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    args = parser.parse_args()
    quick = {"tasks": 300, "latency_tasks": 50, "repeat": 1} if args.quick else {}
    for name, default in {"tasks": 20_000, "latency_tasks": 2_000, "repeat": 3}.items():
        if getattr(args, name) is None:
            setattr(args, name, quick.get(name, default))
    for name in ("tasks", "concurrency", "latency_tasks", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main() -> int:
    args = parse_args()
    if importlib.util.find_spec("sniffio") is None:
        # httpcore imports sniffio four times a request; when it is not installed, each
        # failed import searches sys.path again (about 0.3 ms of CPU a request on the
        # 2-core VM).  None in sys.modules fails the import at once, with the same outcome
        # (asyncio).  Only in the load generator's process: the server runs as anywhere.
        sys.modules["sniffio"] = None  # type: ignore[assignment]
    with RedisServer(binary=args.binary) as server:
        doc = asyncio.run(run(args, server))
    text = report(doc)
    sys.stdout.write(text)
    if args.output is not None:
        args.output.write_text(text)
    if args.json is not None:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0 if doc["nothing_lost"] else 1


if __name__ == "__main__":
    sys.exit(main())
