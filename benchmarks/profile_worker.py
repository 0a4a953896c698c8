"""Profile a Tickr worker draining no-op tasks with py-spy (see benchmarks/README.md).

Starts a private redis-server, queues N no-op tasks, then runs one worker process
(concurrency 100, ``tickr.testing.drain``) under ``py-spy record`` and prints the
functions with the most samples: *self* (the function was running) and *total* (the
function was on the stack).

``--src DIR`` imports Tickr from another checkout's ``src`` (for a before/after
comparison, e.g. a ``git worktree`` of an older commit); the queue is always filled by
the Tickr under test. Needs ``pip install py-spy`` and the right to trace a child
process (root, or ``kernel.yama.ptrace_scope`` 0).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKER_CODE = """
import asyncio, sys, time
import tickr
from tickr.testing import drain

async def noop(task):
    return None

started = time.perf_counter()
asyncio.run(drain(noop, url=sys.argv[1], namespace="profile", concurrency=100, timeout=600))
elapsed = time.perf_counter() - started
with open(sys.argv[3], "w") as report:
    report.write(f"{int(sys.argv[2]) / elapsed:.0f}")
"""

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def frame_name(frame: str, root: str) -> str:
    """``function (file:line)`` as ``module-ish/file.py:function``, without the line."""
    match = FRAME.match(frame)
    if match is None:
        return frame
    file = match["file"]
    for marker in ("/src/tickr/", "site-packages/", "/lib/python3"):
        index = file.find(marker)
        if index >= 0:
            file = file[index + len(marker) :].lstrip("/")
            if marker == "/src/tickr/":
                file = "tickr/" + file
            break
    else:
        file = os.path.relpath(file, root) if file.startswith("/") else file
    return f"{file}:{match['function']}"


def summarise(raw: Path, top: int, root: str) -> str:
    """Tables of a py-spy raw (collapsed, ``--threads``) file.

    Import samples (start-up) are counted apart; the tables cover the thread that runs
    the event loop: the top functions by self samples, and Tickr's by total samples.
    """
    by_thread: collections.Counter[str] = collections.Counter()
    self_samples: collections.Counter[str] = collections.Counter()
    total_samples: collections.Counter[str] = collections.Counter()
    samples = loop_samples = import_samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        samples += count
        thread, _, frames_text = stack.partition(";")
        by_thread[thread] += count
        if "importlib._bootstrap" in frames_text:
            import_samples += count
            continue
        if "asyncio/runners.py" not in frames_text:
            continue
        loop_samples += count
        frames = [frame_name(frame, root) for frame in frames_text.split(";")]
        self_samples[frames[-1]] += count
        for name in set(frames):
            if name.startswith("tickr/"):
                total_samples[name] += count
    other_threads = samples - import_samples - loop_samples
    lines = [
        f"{samples} samples in {len(by_thread)} threads: event loop {loop_samples}, "
        f"imports {import_samples}, other threads (lease renewal) {other_threads}",
        "(percentages are of the event loop's samples)",
    ]
    for title, counter in (("self", self_samples), ("total, Tickr only", total_samples)):
        lines.append("")
        lines.append(f"| # | {title} % | function |")
        lines.append("|---|---|---|")
        for rank, (name, count) in enumerate(counter.most_common(top), start=1):
            lines.append(f"| {rank} | {100 * count / max(loop_samples, 1):.1f} | `{name}` |")
    return "\n".join(lines)


async def fill(url: str, tasks: int) -> None:
    """Queue ``tasks`` no-op tasks in batches of 1,000."""
    import tickr

    async with tickr.Client(url, namespace="profile") as client:
        for start in range(0, tasks, 1000):
            batch = range(start, min(start + 1000, tasks))
            await client.enqueue_many([tickr.TaskSpec("noop", {"n": n}) for n in batch])


def main() -> int:
    """Run the profile and print its summary; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200_000, help="tasks to drain")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=15, help="entries per table")
    parser.add_argument("--src", type=Path, help="import the worker's Tickr from this src/")
    parser.add_argument("--raw", type=Path, help="also keep py-spy's raw output here")
    args = parser.parse_args()

    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2

    from tickr.testing import RedisServer

    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    if args.src is not None:
        env["PYTHONPATH"] = str(args.src.resolve())
    with RedisServer() as redis_server, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(fill(redis_server.url, args.tasks))
        raw = args.raw or Path(tmp) / "profile.txt"
        rate_file = Path(tmp) / "rate.txt"
        command = [py_spy, "record", "--threads", "--format", "raw", "--rate", str(args.rate)]
        command += ["--output", str(raw), "--", sys.executable, "-c", WORKER_CODE]
        command += [redis_server.url, str(args.tasks), str(rate_file)]
        started = time.perf_counter()
        finished = subprocess.run(command, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if finished.returncode != 0:
            print(finished.stdout, finished.stderr, sep="\n", file=sys.stderr)
            return 1
        rate = rate_file.read_text()
        print(f"drained {args.tasks} tasks at {rate}/s under py-spy ({elapsed:.1f} s in all)")
        print(summarise(raw, args.top, root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
