"""RESULTS.md and results.png from compare.py's figures (see README.md)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

Doc = dict[str, Any]
TIMES = "\N{MULTIPLICATION SIGN}"
TIMES_TICKR = f"{TIMES} Tickr"

LABELS = {
    "tickr": "Tickr",
    "arq": "arq",
    "saq": "saq",
    "taskiq": "taskiq",
    "streaq": "streaq",
    "floor": "redis-py floor",
}

SETTINGS = {
    "tickr": "`tickr.Server(concurrency=100)` on the default queue, started with `serve()`; "
    "producer `tickr.Client.enqueue` (batch: `enqueue_many`, 1,000 `TaskSpec`s a call); "
    "handlers registered on a `ServeMux`; default lease (6 s) and heartbeat (1.5 s)",
    "arq": "`arq.worker.Worker(functions=[func(task, name=...)], max_jobs=100)` run with "
    "`async_run()`; other settings default (`poll_delay` 0.5 s, `queue_read_limit` 500, "
    "`keep_result` 3,600 s); producer `ArqRedis.enqueue_job`; no batch API",
    "saq": "`saq.Worker(Queue.from_url(url), functions=[(name, task)], concurrency=100)` run "
    "with `start()`; timers default (sweep every 60 s); producer `Queue.enqueue`; "
    "no batch API",
    "taskiq": "`taskiq_redis.ListQueueBroker`, receiver run in-process with "
    "`taskiq.api.run_receiver_task(broker, max_async_tasks=100, ack_time=WHEN_SAVED)` "
    "(the defaults of `taskiq worker`); no result backend; producer `task.kiq()`; "
    "no batch API",
    "streaq": "`streaq.Worker(redis_url=url, concurrency=100)` run with `run_async()`; "
    "`@worker.task(name=...)`; other settings default (`idle_timeout` 60 s, prefetch = "
    "concurrency); producer `await task.enqueue()` (batch: `Worker.enqueue_many`)",
    "floor": "redis-py only: the producer `LPUSH`es a JSON message (batch: a pipeline of "
    "1,000 `LPUSH`); the worker runs 100 coroutines that each `BRPOP` and run the no-op: "
    "no acknowledgement, no retry, no result; the floor of what a Redis queue costs",
}

LONG_NOTE = {
    "tickr": "`timeout=20` per task; `max_retry` default (25)",
    "arq": "`func(..., timeout=20)` (arq then re-runs a job whose in-progress key, "
    "`timeout + 10` s long, has expired); `max_tries` default (5)",
    "saq": "`timeout=20, retries=3` per job (with the default `retries=1` a job swept from "
    "a dead worker is aborted, never run again). saq's sweep runs every 60 s, takes a job "
    "as stuck once its `timeout` has passed, and handles stuck jobs one after another, "
    "waiting up to 5 s for each to acknowledge its abort",
    "taskiq": "label `timeout=20`; `ListQueueBroker` has no acknowledgement",
    "streaq": "`@worker.task(timeout=20)`; `max_tries` default (3)",
}


# Causes checked in the libraries' code (and, for saq's duplicates, in Redis after a run),
# printed under a problem of that library and kind when a run shows it.
EXPLANATIONS = {
    ("saq", "tally"): "The duplicates are the first tasks the worker took (numbers 0-4 in "
    "a check run), and their job records carry the error `swept`: the sweep that saq runs "
    "as soon as a worker starts treats a job just moved to its active list, and not yet "
    "marked active, as stuck, and queues it again. It happens in some runs only.",
    ("arq", "concurrency"): "arq starts jobs one at a time, each after its own "
    "WATCH/MULTI transaction, so 10 ms tasks end before many more have started.",
    ("taskiq", "concurrency"): "taskiq's `ListQueueBroker` takes one message per `BRPOP` "
    "round trip, so 10 ms tasks end before many more have arrived.",
    ("saq", "recovery"): "saq's sweep takes one stuck job after another and waits up to 5 s "
    "for each to acknowledge its abort, which a dead worker never does: the last of 20 "
    "runs again about 100 s after the first sweep that sees them.",
    ("taskiq", "recovery"): "`ListQueueBroker` removes a message from Redis when a worker "
    "takes it and has no acknowledgement: the tasks of a killed worker are lost (taskiq-"
    "redis's `RedisStreamBroker` has acknowledgements).",
}

# ---------------------------------------------------------------------------- formats


def number(value: Any, digits: int = 0) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "—"
    return f"{value:,.{digits}f}"


def with_unit(value: Any, digits: int, unit: str) -> str:
    shown = number(value, digits)
    return shown if shown == "—" else f"{shown} {unit}"


def times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def ratio(value: Any, tickr: Any) -> str:
    if not all(isinstance(v, int | float) for v in (value, tickr)):
        return "—"
    if math.isnan(value) or math.isnan(tickr) or tickr == 0:
        return "—"
    return f"{value / tickr:.2f}{TIMES}"


def runs_of(doc: Doc, workload: str, lib: str, key: str, digits: int) -> str:
    values = [
        number(run.get(key), digits) if "error" not in run else "failed"
        for run in doc["results"][workload].get(lib, [])
    ]
    return ", ".join(values) or "—"


def median(doc: Doc, workload: str, lib: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = doc["medians"][workload].get(lib)
    return found


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]


def correctness(m: dict[str, Any]) -> str:
    """Lost and duplicated tasks, summed over the runs."""
    lost = m.get("lost_total", m.get("lost", math.nan))
    duplicated = m.get("duplicated_total", m.get("duplicated", math.nan))
    if lost == 0 and duplicated == 0:
        return "ok"
    return f"{number(lost)} lost, {number(duplicated)} duplicated (all runs)"


# ---------------------------------------------------------------------------- tables

Column = tuple[str, Callable[[dict[str, Any], dict[str, Any]], str]]


def workload_table(
    doc: Doc, workload: str, columns: list[Column], runs: tuple[str, int], missing: str
) -> list[str]:
    tickr = median(doc, workload, "tickr") or {}
    rows = []
    for lib in doc["libraries"]:
        m = median(doc, workload, lib)
        if m is None:
            reason = "failed (see Peer problems)" if doc["results"][workload].get(lib) else missing
            if lib not in doc["ran"]:
                reason = "not run (see Peer problems)"
            rows.append([LABELS[lib], reason] + [""] * len(columns))
            continue
        cells = [cell(m, tickr) for _, cell in columns]
        rows.append([LABELS[lib], *cells, runs_of(doc, workload, lib, *runs)])
    return table(["library", *(name for name, _ in columns), "every run"], rows)


def rate_columns(key: str = "rate") -> list[Column]:
    return [
        ("tasks/s (median)", lambda m, t: number(m[key])),
        (TIMES_TICKR, lambda m, t: ratio(m[key], t.get(key))),
    ]


def section(doc: Doc, workload: str, title: str, lines: list[str]) -> list[str]:
    if workload not in doc["workloads"]:
        return []
    return [f"### {title}", "", *lines]


def enqueue_sections(doc: Doc) -> list[str]:
    sizes = doc["sizes"]
    cpu: Column = ("producer CPU s", lambda m, t: number(m["producer_cpu_s"], 2))
    out = section(
        doc,
        "enqueue",
        f"Enqueue: {sizes['tasks']:,} single awaits, one after another (higher is better)",
        [
            "One producer process, one coroutine: `await enqueue(...)` for each task before "
            "the next; no worker runs. Rate = tasks / wall time of the loop (one untimed "
            "enqueue first opens the connections).",
            "",
            *workload_table(doc, "enqueue", [*rate_columns(), cpu], ("rate", 0), "—"),
        ],
    )
    out += section(
        doc,
        "batch",
        f"Enqueue in batches of {sizes['batch']:,} (higher is better)",
        [
            "Only where the library has a batch API: Tickr `Client.enqueue_many`, streaq "
            "`Worker.enqueue_many`, the floor a non-transactional pipeline of `LPUSH`. arq, "
            "saq and taskiq have none.",
            "",
            *workload_table(doc, "batch", [*rate_columns(), cpu], ("rate", 0), "no batch API"),
        ],
    )
    return out


def drain_sections(doc: Doc) -> list[str]:
    sizes = doc["sizes"]
    tasks = sizes["tasks"]
    columns = [
        *rate_columns(),
        ("steady tasks/s", lambda m, t: number(m["steady_rate"])),
        ("start → first task", lambda m, t: with_unit(m["first_task_s"], 2, "s")),
        ("lost / duplicated", lambda m, t: correctness(m)),
    ]
    out = section(
        doc,
        "drain",
        f"Drain: {tasks:,} queued no-op tasks, one worker process (higher is better)",
        [
            "The queue is filled first; then one worker process starts. Rate = tasks / (last "
            "handler end - the worker's first statement, `time.time()` in the worker), so "
            "imports and start-up count, the same for every library. *Steady* = tasks / "
            "(last handler end - first handler start).",
            "",
            *workload_table(doc, "drain", columns, ("rate", 0), "—"),
        ],
    )
    sleep_columns: list[Column] = [
        ("total s (median)", lambda m, t: number(m["seconds"], 2)),
        (TIMES_TICKR, lambda m, t: ratio(m["seconds"], t.get("seconds"))),
        ("most running at once", lambda m, t: number(m["most_running"])),
        ("lost / duplicated", lambda m, t: correctness(m)),
    ]
    out += section(
        doc,
        "sleep",
        f"Sleep: {sizes['sleep_tasks']:,} tasks of `asyncio.sleep(0.01)` (lower is better)",
        [
            "Filled first, one worker process; total = last handler end - the worker's first "
            "statement. At concurrency 100 the ideal is "
            f"{sizes['sleep_tasks'] * 0.01 / 100:.2f} s plus start-up. *Most running at "
            "once* is counted in the worker (handlers started and not yet ended).",
            "",
            *workload_table(doc, "sleep", sleep_columns, ("seconds", 2), "—"),
        ],
    )
    return out


def latency_section(doc: Doc) -> list[str]:
    sizes = doc["sizes"]

    def pct(key: str) -> list[Column]:
        return [
            (f"{key} ms", lambda m, t: number(m[f"{key}_ms"], 2)),
            (TIMES_TICKR, lambda m, t: ratio(m[f"{key}_ms"], t.get(f"{key}_ms"))),
        ]

    columns = [
        *pct("p50"),
        *pct("p95"),
        *pct("p99"),
        ("enqueue call p50", lambda m, t: with_unit(m["enqueue_call_p50_ms"], 2, "ms")),
    ]
    return section(
        doc,
        "latency",
        f"Latency: {sizes['latency_tasks']:,} tasks at {sizes['latency_rate']:g}/s "
        "on an idle worker (lower is better)",
        [
            "One worker process, started and ready first. The producer enqueues on a fixed "
            "schedule; each task carries `time.time()` read just before its enqueue call, "
            "and the handler's first statement subtracts it from its own `time.time()`. "
            "Percentiles are nearest-rank over all tasks of a run; the table shows the "
            "median of the runs' percentiles. *Every run* lists p50.",
            "",
            *workload_table(doc, "latency", columns, ("p50_ms", 2), "—"),
        ],
    )


def resources_section(doc: Doc) -> list[str]:
    tasks = doc["sizes"]["tasks"]
    columns: list[Column] = [
        ("peak RSS MB", lambda m, t: number(m["rss_mb"], 1)),
        (TIMES_TICKR, lambda m, t: ratio(m["rss_mb"], t.get("rss_mb"))),
        ("CPU s", lambda m, t: number(m["cpu_s"], 2)),
        (TIMES_TICKR, lambda m, t: ratio(m["cpu_s"], t.get("cpu_s"))),
        ("CPU µs per task", lambda m, t: number(m["cpu_s"] / tasks * 1e6)),
        ("redis-server CPU s", lambda m, t: number(m["redis_cpu_s"], 2)),
    ]
    return section(
        doc,
        "drain",
        f"Worker resources during the drain of {tasks:,} no-op tasks (lower is better)",
        [
            "Measured in the worker when it is told to stop: peak RSS (`VmHWM` in "
            "`/proc/self/status`; not `ru_maxrss`, which Linux carries over `exec` from the "
            "forked parent) and user+system CPU over its whole life, imports included "
            "(`getrusage`). "
            "redis-server's CPU over the same time comes from `/proc/<pid>/stat`. "
            "*Every run* lists peak RSS.",
            "",
            *workload_table(doc, "drain", columns, ("rss_mb", 1), "—"),
        ],
    )


# How each library's count of its waiting tasks is taken in the memory workload.
QUEUED_BY = {
    "tickr": "`Inspector.queue_info(...).pending`",
    "arq": "`ZCARD` of `ArqRedis.default_queue_name` (its `queued_jobs()` reads every job)",
    "saq": '`Queue.count("queued")`',
    "taskiq": "`LLEN` of the broker's `queue_name` (taskiq has no count of its own)",
    "streaq": "`Worker.queue_size()`",
    "floor": "`LLEN`",
}


def memory_section(doc: Doc) -> list[str]:
    if "memory" not in doc["workloads"]:  # raw figures older than the workload have none
        return []
    count = doc["sizes"]["memory_tasks"]

    def queued(m: dict[str, Any], t: dict[str, Any]) -> str:
        value = m.get("queued", math.nan)
        return "not checked" if math.isnan(value) else number(value)

    columns: list[Column] = [
        ("bytes per task (median)", lambda m, t: number(m["bytes_per_task"])),
        (TIMES_TICKR, lambda m, t: ratio(m["bytes_per_task"], t.get("bytes_per_task"))),
        ("keys after the fill", lambda m, t: number(m["keys"])),
        ("queued, as counted", queued),
    ]
    counts = [f"{LABELS[lib]} {QUEUED_BY[lib]}" for lib in doc["libraries"] if lib in QUEUED_BY]
    return section(
        doc,
        "memory",
        f"Redis memory per pending task: {count:,} queued no-op tasks (lower is better)",
        [
            "On a flushed Redis, with no worker running, `used_memory` (`INFO memory`) is "
            f'read, {count:,} no-op tasks of payload `{{"i": n, "t": time}}` are '
            "queued by the library's own producer as for the drain (its batch API if it "
            "has one, else two processes of single enqueues; untimed), and `used_memory` "
            f"is read again once the producers have left. Figure: the growth / {count:,}, "
            "so every key, entry and index a pending task costs the library counts, under "
            "the redis-server version of the Machine line. The floor's figure is its "
            "`LPUSH`ed JSON message. Each run first queues one batch and flushes it "
            "again, untimed: FLUSHALL keeps the scripts a library loaded and the latency "
            "histogram Redis makes on a command's first call, one-off costs that are no "
            "task's. *Keys* is `DBSIZE` after the fill. *Queued* is each library's count "
            f"of its waiting tasks, checked against {count:,}: "
            + "; ".join(counts)
            + ". *Every run* lists bytes per task.",
            "",
            *workload_table(doc, "memory", columns, ("bytes_per_task", 0), "—"),
        ],
    )


def recovery_section(doc: Doc) -> list[str]:
    sizes = doc["sizes"]
    cap = sizes["recovery_cap"]
    columns: list[Column] = [
        ("seconds (median)", lambda m, t: number(m["seconds"], 1)),
        (TIMES_TICKR, lambda m, t: ratio(m["seconds"], t.get("seconds"))),
        ("first one ran again after", lambda m, t: with_unit(m["first_s"], 1, "s")),
        ("ran again", lambda m, t: f"{number(m['rerun'])} of {sizes['long_tasks']}"),
    ]
    notes = [f"- {LABELS[lib]}: {LONG_NOTE[lib]}" for lib in doc["libraries"] if lib in LONG_NOTE]
    return section(
        doc,
        "recovery",
        f"Recovery after SIGKILL: {sizes['long_tasks']} long tasks (lower is better)",
        [
            f"{sizes['long_tasks']} tasks of `asyncio.sleep(10)` are queued and a worker "
            "starts. Once all of them run in it, it gets SIGKILL and a new worker process "
            "starts at once. Figure: from the kill until the new worker has started every "
            f"one of them again (waited for at most {cap:.0f} s; — means not all ran again "
            "in that time: see Peer problems). The figure is set by each library's timers "
            "(lease, timeout, sweep interval), not by speed, so it runs "
            f"{times(doc['recovery_repeat'])} only, and while Tickr runs it alone, the "
            "peers run it side by side, each on a Redis database of its own. The floor is "
            "not run: `BRPOP` removes the message, so a killed worker's tasks are gone by "
            "design. Settings of the long tasks:",
            "",
            *notes,
            "",
            *workload_table(doc, "recovery", columns, ("seconds", 1), "not applicable"),
        ],
    )


def scaling_section(doc: Doc) -> list[str]:
    tasks = doc["sizes"]["tasks"]
    tickr_two = (median(doc, "scaling", "tickr") or {}).get("rate")
    rows = []
    for lib in doc["libraries"]:
        one, two = median(doc, "drain", lib), median(doc, "scaling", lib)
        one_rate = one["rate"] if one else math.nan
        two_rate = two["rate"] if two else math.nan
        one_steady = one.get("steady_rate", math.nan) if one else math.nan
        two_steady = two.get("steady_rate", math.nan) if two else math.nan
        rows.append(
            [
                LABELS[lib],
                number(one_rate),
                number(two_rate),
                ratio(two_rate, one_rate),
                ratio(two_steady, one_steady),
                ratio(two_rate, tickr_two),
                correctness(two) if two else "—",
                runs_of(doc, "scaling", lib, "rate", 0),
            ]
        )
    return section(
        doc,
        "scaling",
        f"Scaling: drain of {tasks:,} no-op tasks with 1 and 2 worker processes (higher is better)",
        [
            "Two worker processes start together on the filled queue; rate = tasks / (the "
            "last handler end in either - the earlier first statement). The 1-worker figure "
            "is the Drain table's. The machine has 2 cores, shared with Redis. *Steady 2 ÷ 1* "
            "divides the steady rates (first handler start to last handler end), which leave "
            "out the start-up (imports, connecting) that both figures otherwise pay once: "
            "for a fast library it is a large part of a short drain.",
            "",
            *table(
                [
                    "library",
                    "1 worker tasks/s",
                    "2 workers tasks/s",
                    "2 ÷ 1",
                    "steady 2 ÷ 1",
                    f"2 workers {TIMES_TICKR}",
                    "lost / duplicated",
                    "every run (2 workers)",
                ],
                rows,
            ),
        ],
    )


# ---------------------------------------------------------------------------- document


def summary(doc: Doc) -> list[str]:
    """One line per headline figure: every library's ratio to Tickr."""
    picks = [
        ("enqueue", "rate", "enqueue, single (tasks/s)", 0),
        ("batch", "rate", "enqueue, batched (tasks/s)", 0),
        ("drain", "rate", "drain, 1 worker (tasks/s)", 0),
        ("scaling", "rate", "drain, 2 workers (tasks/s)", 0),
        ("sleep", "seconds", "sleep workload (s)", 2),
        ("latency", "p50_ms", "latency p50 (ms)", 2),
        ("latency", "p99_ms", "latency p99 (ms)", 2),
        ("drain", "rss_mb", "worker peak RSS (MB)", 1),
        ("drain", "cpu_s", "worker CPU for the drain (s)", 2),
        ("memory", "bytes_per_task", "Redis memory per pending task (B)", 0),
        ("recovery", "seconds", "recovery after SIGKILL (s)", 1),
    ]
    header = ["figure", *(LABELS[lib] for lib in doc["libraries"])]
    rows = []
    for workload, key, label, digits in picks:
        if workload not in doc["workloads"]:
            continue
        tickr = (median(doc, workload, "tickr") or {}).get(key)
        cells = []
        for lib in doc["libraries"]:
            value = (median(doc, workload, lib) or {}).get(key)
            if not isinstance(value, int | float) or math.isnan(value):
                cells.append("—")
            elif lib == "tickr":
                cells.append(number(value, digits))
            else:
                cells.append(f"{number(value, digits)} ({ratio(value, tickr)})")
        rows.append([label, *cells])
    return table(header, rows)


def merged(texts: list[str]) -> str:
    """ "a: x", "a: y" -> "a: x; y"."""
    heads = {text.split(": ", 1)[0] for text in texts}
    if len(texts) > 1 and len(heads) == 1 and all(": " in text for text in texts):
        return f"{heads.pop()}: " + "; ".join(text.split(": ", 1)[1] for text in texts)
    return "; ".join(texts)


def problems_section(doc: Doc) -> list[str]:
    lines = ["## Peer problems seen", ""]
    notes = doc.get("setup_notes") or {}
    if notes:
        lines += ["While choosing and installing the pinned versions:", ""]
        lines += [f"- **{LABELS[lib]}**: {text}" for lib, text in notes.items()]
        lines += ["", "During this run:", ""]
    if not doc["problems"]:
        return [*lines, "None: no lost or duplicated task, no failure.", ""]
    lines += [
        "Everything that went wrong in this run, as compare.py recorded it (Tickr's and the "
        "floor's own problems are listed too). Logs of every process are in "
        f"`{doc['logs']}/` on the machine that ran it.",
        "",
    ]
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for lib, workload, text, kind in doc["problems"]:
        grouped.setdefault((lib, workload, kind), []).append(text)
    for (lib, workload, kind), texts in grouped.items():
        times = f" ({len(texts)} runs)" if len(texts) > 1 else ""
        shown = merged(list(dict.fromkeys(texts)))
        lines.append(f"- **{LABELS[lib]}**, {workload}{times}: {shown}")
        explanation = EXPLANATIONS.get((lib, kind)) or EXPLANATIONS.get((lib, workload))
        if explanation:
            lines.append(f"  {explanation}")
    return [*lines, ""]


def versions_section(doc: Doc) -> list[str]:
    rows = []
    for lib in doc["libraries"]:
        found = doc["versions"].get(lib) or {}
        shown = ", ".join(f"{name} {version}" for name, version in found.items()) or "—"
        rows.append([LABELS[lib], shown, SETTINGS[lib]])
    lines = [
        "## Versions and settings",
        "",
        *table(["library", "versions", "how it runs here"], rows),
    ]
    if doc["requirements"]:
        lines += [
            "Installed by compare.py with these pins, one virtual environment per library "
            "(`benchmarks/.venv-peers/<name>/`), all on the same interpreter. The peers' "
            "newest releases want different majors of redis-py (arq <6, saq <8, "
            "taskiq-redis ≥8), so they cannot share one environment. Tickr and the floor "
            "share one.",
            "",
        ]
        for lib, pins in doc["requirements"].items():
            lines.append(f"- {LABELS[lib]}: `{' '.join(pins)}`")
        if "floor" in doc["libraries"]:
            lines.append(f"- {LABELS['floor']}: in Tickr's environment")
        lines.append("")
    return lines


def write_markdown(doc: Doc, path: Path, chart: Path | None) -> None:
    sizes = doc["sizes"]
    m = doc["machine"]
    lines = [
        "# Tickr against its peers",
        "",
        f"Generated by `{doc['command']}` on {doc['date']} (UTC), in "
        f"{doc['wall_s'] / 60:.1f} min. Tickr source: {doc['revision']}.",
        "",
        f"**Machine:** {m['cpus']} {TIMES} {m['cpu']}, {m['memory']}, {m['platform']}; "
        f"{m['python']}; redis-server {doc['redis_server']} on loopback TCP (private, no "
        "persistence), shared by the producer, the workers and Redis.",
        "",
        "**Read this first.** The machine is a shared, noisy VM: absolute figures move "
        "by 15-25 % from run to run, and more between days. What counts are the ratios "
        "to Tickr *within this run*: all libraries ran the same workloads back to back, "
        f"{times(doc['repeat'])} each, in an order rotated from one repeat to the next, "
        "and each table shows the median. Compare ratios, not absolute numbers, with "
        "other runs.",
        "",
        f"**Common setup.** Every workload starts on a flushed Redis. Producers and "
        "workers are separate processes, started afresh for every run; each worker "
        "process runs one library's worker at concurrency 100 on one queue. Sizes: "
        f"{sizes['tasks']:,} tasks to enqueue and drain, {sizes['sleep_tasks']:,} sleeping "
        f"tasks, {sizes['latency_tasks']:,} latency tasks at {sizes['latency_rate']:g}/s, "
        f"{sizes['long_tasks']} long tasks for recovery"
        + (
            f", {sizes['memory_tasks']:,} pending tasks for Redis memory"
            if "memory_tasks" in sizes
            else ""
        )
        + ". Each handler is written the way "
        "its library documents tasks and records `time.time()` at its first and last "
        "statement and its task's number, so every run also counts lost and duplicated "
        "tasks. No library's logging is configured (warnings go to stderr). Workers are "
        "told to stop over stdin once every task ran and leave with `os._exit`, so no "
        "graceful shutdown is timed.",
        "",
    ]
    if chart is not None:
        lines += [f"![drain and latency]({chart.name})", ""]
    lines += ["## Summary (median; in brackets, the ratio to Tickr)", "", *summary(doc)]
    lines += ["## Results", ""]
    lines += enqueue_sections(doc)
    lines += drain_sections(doc)
    lines += latency_section(doc)
    lines += resources_section(doc)
    lines += scaling_section(doc)
    lines += memory_section(doc)
    lines += recovery_section(doc)
    lines += problems_section(doc)
    lines += versions_section(doc)
    kept = _kept_sections(path)
    path.write_text("\n".join(lines).rstrip() + "\n" + kept)


KEPT_SECTIONS = ("## HTTP API submissions",)
"""Sections of RESULTS.md that other benchmarks write (bench_http.py): a rewrite keeps them."""


def _kept_sections(path: Path) -> str:
    """The kept sections of the file as it is, each up to the next section heading."""
    if not path.exists():
        return ""
    text = path.read_text()
    kept = []
    for heading in KEPT_SECTIONS:
        start = text.find("\n" + heading + "\n")
        if start < 0:
            continue
        end = text.find("\n## ", start + len(heading) + 2)
        kept.append(text[start : end if end >= 0 else len(text)].rstrip() + "\n")
    return "".join(kept)


# ---------------------------------------------------------------------------- chart


def write_chart(doc: Doc, path: Path) -> bool:
    """The drain rates (1 and 2 workers) and the latency percentiles; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    libs = doc["libraries"]
    labels = [LABELS[lib] for lib in libs]

    def values(workload: str, key: str) -> list[float]:
        found = []
        for lib in libs:
            m = (doc["medians"].get(workload) or {}).get(lib) or {}
            value = m.get(key, math.nan)
            found.append(value if isinstance(value, int | float) else math.nan)
        return found

    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    positions = range(len(libs))
    width = 0.38
    for offset, (workload, name) in zip(
        (-width / 2, width / 2), (("drain", "1 worker"), ("scaling", "2 workers")), strict=True
    ):
        bars = left.bar(
            [p + offset for p in positions], values(workload, "rate"), width, label=name
        )
        left.bar_label(bars, fmt="{:,.0f}", fontsize=7)
    left.set_xticks(list(positions), labels, rotation=20)
    left.set_ylabel("tasks per second (higher is better)")
    left.set_title(f"Drain of {doc['sizes']['tasks']:,} no-op tasks, concurrency 100")
    left.legend()
    width = 0.27
    for offset, key in zip((-width, 0, width), ("p50_ms", "p95_ms", "p99_ms"), strict=True):
        right.bar(
            [p + offset for p in positions],
            values("latency", key),
            width,
            label=key.replace("_ms", ""),
        )
    right.set_yscale("log")
    right.set_xticks(list(positions), labels, rotation=20)
    right.set_ylabel("enqueue → handler start, ms (log scale, lower is better)")
    right.set_title(
        f"Idle-worker latency, {doc['sizes']['latency_tasks']:,} tasks at "
        f"{doc['sizes']['latency_rate']:g}/s"
    )
    right.legend()
    figure.suptitle(
        f"Tickr vs peers, {doc['date'][:10]}, {doc['machine']['cpus']} CPUs; medians of "
        f"{doc['repeat']} run(s); only ratios within one run count"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def write(doc: Doc, markdown: Path, chart: Path) -> list[Path]:
    """Write the report (and the chart when matplotlib is there); the files written."""
    drew = write_chart(doc, chart)
    write_markdown(doc, markdown, chart if drew else None)
    return [markdown, chart] if drew else [markdown]
