"""The `tickr` command line against a real Redis.

Most commands run in-process (`tickr.cli.main` in a thread, output captured by capsys);
the worker, `stats --watch` and the entry points run as subprocesses, where signals and
the real interpreter start matter.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import tickr
from tests.conftest import ServerFactory
from tests.helpers import cli_app, eventually
from tests.helpers.processes import ROOT, WorkerProcess
from tickr._cli import worker
from tickr._cli.errors import CLIError
from tickr._cli.output import jsonable
from tickr._cli.parser import build_parser
from tickr.cli import main


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


CLI = Callable[..., Awaitable[Result]]


@pytest.fixture
def cli(
    url: str, namespace: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> CLI:
    """`await cli("task", "ls", ...)` runs `main` with --url/--namespace appended."""
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("TICKR_REDIS_URL", raising=False)

    async def run(*args: str, connect: bool = True) -> Result:
        argv = [*args, "--url", url, "--namespace", namespace] if connect else list(args)
        capsys.readouterr()
        code = await asyncio.to_thread(main, argv)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def assert_error(result: Result, message: str, code: int = 1) -> None:
    """One line on stderr, no traceback, nothing on stdout."""
    assert result.code == code, result
    assert result.err == f"error: {message}\n"
    assert result.out == ""


def assert_fits(result: Result, columns: int = 80) -> None:
    assert all(len(line) <= columns for line in result.lines), result.out


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tickr_process(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tickr", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "80"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# ------------------------------------------------------------------ entry points


def test_import_tickr_does_not_import_the_cli() -> None:
    code = (
        "import sys, tickr; "
        "print(sorted(m for m in sys.modules if m == 'tickr.cli' or m.startswith('tickr._cli')))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "[]"


def test_help_version_and_missing_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "worker" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"tickr {tickr.__version__}\n"
    assert main([]) == 2
    assert "required: COMMAND" in capsys.readouterr().err
    assert main(["task", "ls", "--help"]) == 0
    assert "--state" in capsys.readouterr().out


def test_console_script_and_python_m_run_the_cli() -> None:
    script = Path(sys.executable).parent / "tickr"
    commands = [[sys.executable, "-m", "tickr", "--version"]]
    if script.exists():
        commands.append([str(script), "--version"])
    for command in commands:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert (done.returncode, done.stdout) == (0, f"tickr {tickr.__version__}\n")


# ------------------------------------------------------------------ stats and queues


async def test_stats_table_and_json(
    cli: CLI, client: tickr.Client, inspector: tickr.Inspector
) -> None:
    assert (await cli("stats")).out.startswith("no queues in namespace")
    assert (await cli("stats", "--json")).json() == []
    await client.enqueue_many([tickr.TaskSpec("t", n) for n in range(3)])
    await client.enqueue("t", delay=600)
    await client.enqueue("t", queue="a-queue-with-a-very-long-name-indeed")
    await inspector.pause("default")
    result = await cli("stats")
    assert result.code == 0 and result.err == ""
    header, long_queue, default = result.lines
    assert header.split() == [
        "QUEUE", "PENDING", "ACTIVE", "SCHED", "RETRY", "ARCHIVED", "DONE", "PROC", "FAILED",
        "PAUSED", "LATENCY",
    ]  # fmt: skip
    assert long_queue.startswith("a-queue-wit…")
    assert default.split()[:10] == ["default", "3", "0", "1", "0", "0", "0", "0", "0", "yes"]
    assert default.split()[10].endswith("s")
    assert_fits(result)
    stats = {row["queue"]: row for row in (await cli("stats", "--json")).json()}
    assert stats["default"]["pending"] == 3 and stats["default"]["scheduled"] == 1
    assert stats["default"]["paused"] is True and stats["default"]["latency"] > 0
    assert set(stats["default"]) >= {"active", "retry", "archived", "completed", "processed"}
    assert stats["a-queue-with-a-very-long-name-indeed"]["size"] == 1


async def test_connection_options_go_before_or_after_the_command(
    cli: CLI, client: tickr.Client, url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.enqueue("t", queue="here")
    before = await cli("--url", url, "--namespace", namespace, "queue", "ls", connect=False)
    after = await cli("queue", "ls")
    assert before == after and after.lines[1].startswith("here")
    middle = await cli("--url", url, "queue", "--namespace", namespace, "ls", connect=False)
    assert middle == after
    overridden = await cli("--namespace", "other", "queue", "ls", "--namespace", namespace,
                           "--url", url, connect=False)  # fmt: skip
    assert overridden == after
    monkeypatch.setenv("TICKR_REDIS_URL", url)
    assert await cli("queue", "ls", "--namespace", namespace, connect=False) == after
    default = await cli("queue", "ls", connect=False)  # the default namespace, "tickr"
    assert default.code == 0 and "here" not in default.out


async def test_queue_commands(
    cli: CLI, client: tickr.Client, inspector: tickr.Inspector, running_server: ServerFactory
) -> None:
    async def fail_odd(task: tickr.Task) -> None:
        if task.payload % 2:
            raise tickr.SkipRetry("odd")

    await client.enqueue_many([tickr.TaskSpec("t", n, queue="work") for n in range(4)])
    async with running_server(fail_odd, queues={"work": 1}):

        async def processed() -> bool:
            return (await inspector.queue_info("work")).processed == 4

        await eventually(processed)

    listed = await cli("queue", "ls")
    assert listed.lines[0].split() == ["QUEUE", "PAUSED", "SIZE", "MEMORY"]
    assert listed.lines[1].split()[:3] == ["work", "no", "2"]
    [row] = (await cli("queue", "ls", "--json")).json()
    assert row["queue"] == "work" and row["size"] == 2 and row["memory"] > 0

    shown = await cli("queue", "inspect", "work")
    assert "archived:          2" in shown.lines and "failed today:      2" in shown.lines
    assert "rate limit:        none" in shown.lines
    info = (await cli("queue", "inspect", "work", "--json")).json()
    assert (info["archived"], info["processed"], info["failed"], info["paused"]) == (
        2, 4, 2, False,
    )  # fmt: skip

    history = await cli("queue", "history", "work", "--days", "3")
    assert history.lines[0].split() == ["DATE", "(UTC)", "PROCESSED", "FAILED", "FAILURE", "RATE"]
    today = datetime.now(UTC).date().isoformat()
    assert history.lines[-1].split() == [today, "4", "2", "50.0%"]
    days = (await cli("queue", "history", "work", "--json")).json()
    assert len(days) == 7 and days[-1] == {
        "queue": "work", "day": today, "processed": 4, "failed": 2,
    }  # fmt: skip

    assert (await cli("queue", "pause", "work")).out == "paused queue 'work'\n"
    assert (await cli("queue", "pause", "work")).out == "queue 'work' was already paused\n"
    assert (await cli("stats", "--json")).json()[0]["paused"] is True
    assert (await cli("queue", "unpause", "work")).out == "unpaused queue 'work'\n"
    assert (await cli("queue", "unpause", "work")).out == "queue 'work' was not paused\n"

    refused = await cli("queue", "rm", "work")
    assert_error(refused, "queue 'work' still has 2 tasks: add --force to delete them with it")
    removed = await cli("queue", "rm", "work", "--force")
    assert removed.out == "deleted queue 'work' and its 2 tasks\n"
    assert_error(await cli("queue", "inspect", "work"), "no queue named 'work'")


async def test_unknown_queues_are_errors(cli: CLI) -> None:
    for command in (
        ("queue", "inspect", "nope"),
        ("queue", "history", "nope"),
        ("queue", "pause", "nope"),
        ("queue", "unpause", "nope"),
        ("queue", "rm", "nope"),
        ("task", "ls", "nope"),
        ("task", "ls", "nope", "--json"),
        ("task", "delete", "--all", "--state", "archived", "--queue", "nope"),
    ):
        assert_error(await cli(*command), "no queue named 'nope'")


# ------------------------------------------------------------------ tasks


async def test_task_ls_in_every_state(
    cli: CLI, client: tickr.Client, inspector: tickr.Inspector, running_server: ServerFactory
) -> None:
    started = asyncio.Event()

    async def handler(task: tickr.Task) -> Any:
        if task.type == "slow":
            started.set()
            await asyncio.sleep(30)
        if task.type == "bad":
            raise ValueError("bad input\nwith a second line")
        return {"echo": task.payload}

    done = await client.enqueue("ok", b"\x00raw", retention=600, task_id="done-1")
    await client.enqueue("bad", "x", task_id="retry-1", max_retry=3)
    await client.enqueue("slow", task_id="active-1")
    async with running_server(handler, retry_delay=lambda *_: 3600, shutdown_timeout=0.1):
        await asyncio.wait_for(started.wait(), 10)
        await eventually(lambda: _state_is(client, "retry-1", "retry"))
        await client.result(done.id, timeout=10)
        await client.enqueue("later", {"n": 1}, delay=600, task_id="sched-1")
        await client.enqueue("t", "x" * 200, task_id="pend-1", queue="other")
        await client.enqueue("t", "high", task_id="pend-2", queue="other", priority=5)
        await client.enqueue("t", task_id="arch-1", delay=600)
        await inspector.archive_task("arch-1")
        expected = {
            "active": ("RETRIED", "ENQUEUED", "PAYLOAD"),
            "scheduled": ("DUE", "PAYLOAD"),
            "retry": ("DUE", "RETRIED", "LAST ERROR"),
            "archived": ("RETRIED", "LAST ERROR"),
            "completed": ("COMPLETED", "RESULT"),
        }
        for state, columns in expected.items():
            result = await cli("task", "ls", "default", "--state", state)
            assert result.code == 0, result
            assert result.lines[0].split()[:2] == ["ID", "TYPE"]
            assert all(column in result.lines[0] for column in columns)
            assert result.lines[-1] == f"1-1 of 1 {state} task"
            assert_fits(result)
        retry = await cli("task", "ls", "--state", "retry")  # the queue defaults to "default"
        assert "retry-1" in retry.out and "in 59m" in retry.out
        assert "ValueError: bad input with a second line" in retry.out
        completed = await cli("task", "ls", "--state", "completed")
        assert "{'echo': b'\\x00raw'}" in completed.out
        [task] = (await cli("task", "ls", "default", "--state", "completed", "--json")).json()
        assert task["result"] == {"echo": {"$base64": "AHJhdw=="}}
        assert task["payload"] == {"$base64": "AHJhdw=="}
        assert datetime.fromisoformat(task["completed_at"]).tzinfo is not None
        pending = await cli("task", "ls", "other")
        assert [line.split()[0] for line in pending.lines[1:3]] == ["pend-2", "pend-1"]
        assert pending.lines[2].endswith("…") and "xxxx" in pending.lines[2]
        assert_fits(pending)
        empty = await cli("task", "ls", "other", "--state", "retry")
        assert empty.out == "no retry tasks in queue 'other'\n"


async def _state_is(client: tickr.Client, task_id: str, state: str) -> bool:
    return (await client.get_task(task_id)).state == state


async def test_task_ls_pages(cli: CLI, client: tickr.Client) -> None:
    await client.enqueue_many([tickr.TaskSpec("t", n, task_id=f"t{n}") for n in range(5)])
    first = await cli("task", "ls", "default", "--size", "2")
    assert [line.split()[0] for line in first.lines[1:-1]] == ["t0", "t1"]
    assert first.lines[-1] == "1-2 of 5 pending tasks; next page: --page 2"
    last = await cli("task", "ls", "default", "--size", "2", "--page", "3")
    assert [line.split()[0] for line in last.lines[1:-1]] == ["t4"]
    assert last.lines[-1] == "5-5 of 5 pending tasks"
    beyond = await cli("task", "ls", "default", "--size", "2", "--page", "4")
    assert beyond.out == "page 4 is past the end: 5 pending tasks, 3 pages\n"
    page = (await cli("task", "ls", "default", "--size", "2", "--page", "2", "--json")).json()
    assert [task["id"] for task in page] == ["t2", "t3"]


async def test_task_get(cli: CLI, client: tickr.Client) -> None:
    deadline = (datetime.now(UTC) + timedelta(days=400)).replace(microsecond=0)
    payload = {"to": "a@example.com", "body": b"\x01\x02", "at": deadline, "n": [1, 2.5]}
    await client.enqueue(
        "email:send", payload, queue="mail", task_id="m1", delay=90, timeout=45, deadline=deadline
    )
    shown = await cli("task", "get", "m1", "--queue", "mail")
    assert shown.code == 0
    fields = dict(line.split(":", 1) for line in shown.lines if not line.startswith(" "))
    fields = {key: value.strip() for key, value in fields.items()}
    assert fields["type"] == "email:send" and fields["state"] == "scheduled"
    assert fields["retried"] == "0 of 25" and fields["timeout"] == "45s"
    assert fields["deadline"].startswith(f"{deadline:%Y-%m-%d %H:%M:%S} UTC (in ")
    assert fields["next run"].endswith("(in 1m29s)") or fields["next run"].endswith("(in 1m30s)")
    assert "'body': b'\\x01\\x02'" in shown.out and "'to': 'a@example.com'" in shown.out
    task = (await cli("task", "get", "m1", "--queue", "mail", "--json")).json()
    assert task["payload"] == {
        "to": "a@example.com",
        "body": {"$base64": "AQI="},
        "at": deadline.isoformat(),
        "n": [1, 2.5],
    }
    assert task["deadline"] == deadline.isoformat() and task["timeout"] == 45
    assert task["state"] == "scheduled" and task["queue"] == "mail"
    assert_error(await cli("task", "get", "m1"), "no task 'm1' in queue 'default'")
    assert_error(await cli("task", "get", "nope", "--json"), "no task 'nope' in queue 'default'")


async def test_single_task_operations(cli: CLI, client: tickr.Client) -> None:
    await client.enqueue("t", task_id="a", delay=600)
    assert (await cli("task", "run", "a")).out == "moved task 'a' of queue 'default' to pending\n"
    assert_error(await cli("task", "run", "a"), "cannot run task 'a' in 'default': it is pending")
    assert (await cli("task", "archive", "a")).out == "archived task 'a' of queue 'default'\n"
    assert (await cli("task", "get", "a", "--json")).json()["state"] == "archived"
    assert_error(
        await cli("task", "archive", "a"), "cannot archive task 'a' in 'default': it is archived"
    )
    assert (await cli("task", "delete", "a")).out == "deleted task 'a' from queue 'default'\n"
    for operation in ("run", "archive", "delete", "cancel", "get"):
        assert_error(await cli("task", operation, "a"), "no task 'a' in queue 'default'")


async def test_bulk_task_operations(cli: CLI, client: tickr.Client) -> None:
    await client.enqueue_many([tickr.TaskSpec("t", n, delay=600) for n in range(4)])
    await client.enqueue_many([tickr.TaskSpec("t", n, queue="q2") for n in range(2)])
    archived = await cli("task", "archive", "--all", "--state", "scheduled")
    assert archived.out == "archived 4 scheduled tasks of queue 'default'\n"
    ran = await cli("task", "run", "--all", "--state", "archived", "--queue", "default")
    assert ran.out == "moved 4 archived tasks of queue 'default' to pending\n"
    deleted = await cli("task", "delete", "--all", "--queue", "q2", "--state", "pending")
    assert deleted.out == "deleted 2 pending tasks from queue 'q2'\n"
    stats = {row["queue"]: row for row in (await cli("stats", "--json")).json()}
    assert (stats["default"]["pending"], stats["default"]["archived"], stats["q2"]["size"]) == (
        4, 0, 0,
    )  # fmt: skip
    nothing = await cli("task", "delete", "--all", "--state", "retry")
    assert nothing.out == "deleted 0 retry tasks from queue 'default'\n"
    usage = {
        ("task", "run", "--all", "--state", "pending"): (
            "cannot run pending tasks: only scheduled, retry, archived ones"
        ),
        ("task", "archive", "--all", "--state", "archived"): (
            "cannot archive archived tasks: only pending, scheduled, retry ones"
        ),
        ("task", "delete", "--all", "--state", "active"): (
            "cannot delete active tasks: only pending, scheduled, retry, archived, completed ones"
        ),
        ("task", "delete", "--all"): (
            "--all needs --state (one of pending, scheduled, retry, archived, completed)"
        ),
        ("task", "delete", "x", "--all", "--state", "pending"): (
            "give either a task ID or --all, not both"
        ),
        ("task", "delete", "x", "--state", "pending"): "--state goes with --all",
        ("task", "delete"): "give a task ID, or --all with --state",
    }
    for command, message in usage.items():
        assert_error(await cli(*command), message, code=2)


async def test_task_cancel(cli: CLI, client: tickr.Client, running_server: ServerFactory) -> None:
    started = asyncio.Event()

    async def slow(task: tickr.Task) -> None:
        started.set()
        await asyncio.sleep(30)

    await client.enqueue("t", task_id="waiting", queue="idle")
    cancelled = await cli("task", "cancel", "waiting", "--queue", "idle")
    assert cancelled.out == "cancelled pending task 'waiting' in 'idle' (deleted)\n"
    await client.enqueue("t", task_id="running")
    async with running_server(slow):
        await asyncio.wait_for(started.wait(), 10)
        refused = await cli("task", "delete", "running")
        assert_error(
            refused,
            "cannot delete task 'running' in 'default': it is active "
            "(cancel it with `tickr task cancel`)",
        )
        requested = await cli("task", "cancel", "running")
        assert requested.out == "requested the cancellation of active task 'running' in 'default'\n"
        await eventually(lambda: _state_is(client, "running", "archived"))
    assert_error(
        await cli("task", "cancel", "running"),
        "cannot cancel task 'running' in 'default': it is archived",
    )


# ------------------------------------------------------------------ servers and cron


async def test_server_ls(cli: CLI, client: tickr.Client, running_server: ServerFactory) -> None:
    assert (await cli("server", "ls")).out.startswith("no servers running in namespace")
    assert (await cli("server", "ls", "--json")).json() == []
    started = asyncio.Event()

    async def slow(task: tickr.Task) -> None:
        started.set()
        await asyncio.sleep(30)

    info = await client.enqueue("t", queue="high")
    queues = {"high": 6, "low": 1}
    async with running_server(
        slow,
        concurrency=3,
        queues=queues,
        strict_priority=True,
        shutdown_timeout=0.1,
        heartbeat_interval=0.2,
    ) as server:
        await asyncio.wait_for(started.wait(), 10)

        async def holds_the_task() -> bool:
            servers = (await cli("server", "ls", "--json")).json()
            return bool(servers) and bool(servers[0]["active_tasks"])

        await eventually(holds_the_task)
        [record] = (await cli("server", "ls", "--json")).json()
        assert record["id"] == server.id and record["pid"] == os.getpid()
        assert record["queues"] == queues and record["concurrency"] == 3
        assert record["strict_priority"] is True
        assert record["active_tasks"] == [{"queue": "high", "task_id": info.id}]
        assert datetime.fromisoformat(record["started_at"]) <= datetime.now(UTC)
        table = await cli("server", "ls")
        assert table.lines[0].split() == ["ID", "QUEUES", "ACTIVE", "UPTIME"]
        assert "high=6, low=1 (strict)" in table.lines[1] and " 1/3 " in table.lines[1]
        assert_fits(table)
        removed = await cli("queue", "rm", "low")
        assert removed.lines == [
            "deleted queue 'low'",
            f"note: server {server.id} still serves it and will list it again",
        ]


async def test_cron_ls_and_history(cli: CLI, url: str, namespace: str) -> None:
    assert (await cli("cron", "ls")).out.startswith("no periodic tasks")
    scheduler = tickr.Scheduler(url, namespace=namespace, heartbeat_interval=0.2)
    scheduler.register("@every 1s", "tick", {"n": 1}, entry_id="every-second", queue="ticks")
    serving = asyncio.create_task(scheduler.serve())
    try:
        await scheduler.wait_ready()

        async def ticked() -> bool:
            return bool((await cli("cron", "history", "every-second", "--json")).json())

        await eventually(ticked)
        [entry] = (await cli("cron", "ls", "--json")).json()
        assert (entry["id"], entry["spec"], entry["type"], entry["queue"]) == (
            "every-second", "@every 1s", "tick", "ticks",
        )  # fmt: skip
        assert entry["payload"] == {"n": 1} and entry["schedulers"] == [scheduler.id]
        # as of the scheduler's last heartbeat, so possibly just past
        assert datetime.fromisoformat(entry["next_run_at"]) > datetime.now(UTC) - timedelta(
            seconds=2
        )
        listed = await cli("cron", "ls")
        assert listed.lines[0].split() == ["ID", "SPEC", "TYPE", "QUEUE", "NEXT", "LAST"]
        assert listed.lines[1].startswith("every-second  @every 1s  tick  ticks")
        events = (await cli("cron", "history", "every-second", "--limit", "1", "--json")).json()
        assert len(events) == 1 and events[0]["outcome"] == "pending"
        history = await cli("cron", "history", "every-second")
        assert history.lines[0].split() == ["TICK", "(UTC)", "DELAY", "TASK", "ID", "OUTCOME"]
        assert events[0]["task_id"] in history.out
        assert_error(
            await cli("cron", "history", "nope"), "no running scheduler has a periodic task 'nope'"
        )
    finally:
        await scheduler.shutdown()
        await serving


# ------------------------------------------------------------------ errors


async def test_redis_down_fails_fast_with_one_line(cli: CLI) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    for command in (("stats",), ("task", "get", "x"), ("worker", "tests.helpers.cli_app:mux")):
        started = time.monotonic()
        result = await cli(*command, "--url", down, connect=False)
        assert time.monotonic() - started < 5
        assert result.code == 1 and result.out == ""
        assert result.err.startswith("error: Redis is unavailable: ")
        assert result.err.endswith(f"(url: {down})\n") and result.err.count("\n") == 1


async def test_bad_arguments_are_usage_errors(cli: CLI) -> None:
    assert_error(
        await cli("stats", "--url", "http://nowhere", connect=False),
        "invalid Redis URL: Redis URL must specify one of the following schemes "
        "(redis://, rediss://, unix://)",
        code=2,
    )
    assert_error(
        await cli("queue", "ls", "--namespace", "bad name", connect=False),
        "invalid --namespace: namespace 'bad name' must not contain braces, whitespace or "
        "control characters",
        code=2,
    )
    for command in (
        ("task", "ls", "--state", "lost"),
        ("task", "ls", "--page", "0"),
        ("task", "ls", "--size", "x"),
        ("queue", "history", "q", "--days", "91"),
        ("cron", "history", "e", "--limit", "0"),
        ("stats", "--watch", "0"),
        ("worker", "app:mux", "--queue", "q=0"),
        ("worker", "app:mux", "--concurrency", "-1"),
        ("queue",),
        ("nope",),
    ):
        result = await cli(*command)
        assert result.code == 2 and result.out == "", command
        assert result.err.startswith("usage: tickr") and "error: " in result.err


async def test_worker_targets_that_cannot_run(
    cli: CLI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_cli_app.py").write_text("raise RuntimeError('boom')\n")
    (tmp_path / "needs_cli_dep.py").write_text("import not_installed_anywhere\n")
    (tmp_path / "two_muxes_cli_app.py").write_text(
        "import tickr\na = tickr.ServeMux()\nb = tickr.ServeMux()\nserver = tickr.Server()\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the worker puts the cwd on it
    errors = {
        "missing_cli_app:mux": "cannot import 'missing_cli_app': no module named 'missing_cli_app'",
        "broken_cli_app:mux": "importing 'broken_cli_app' failed: RuntimeError: boom",
        "needs_cli_dep:mux": (
            "importing 'needs_cli_dep' failed: ModuleNotFoundError: "
            "No module named 'not_installed_anywhere'"
        ),
        "tests.helpers.cli_app:nope": "module 'tests.helpers.cli_app' has no attribute 'nope'",
        "tests.helpers.cli_app:not_a_handler": (
            "'tests.helpers.cli_app:not_a_handler' (int) is not a ServeMux, an async handler "
            "function or a tickr.Server"
        ),
        "two_muxes_cli_app:server": (
            "module 'two_muxes_cli_app' has several ServeMux objects (a, b): choose one with "
            "--handler ATTRIBUTE"
        ),
    }
    for target, message in errors.items():
        assert_error(await cli("worker", target), message)
    assert_error(
        await cli("worker", "tests.helpers.cli_app"),
        "the worker target must be 'module:attribute', not 'tests.helpers.cli_app'",
        code=2,
    )
    assert_error(
        await cli("worker", "tests.helpers.cli_app:mux", "--handler", "mux"),
        "--handler goes with a target that names a tickr.Server",
        code=2,
    )


def test_worker_builds_its_server_from_the_target_and_the_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parser = build_parser()

    def build(*argv: str) -> tuple[tickr.Server, object]:
        return worker.build(parser.parse_args(["worker", *argv]))

    server, handler = build("tests.helpers.cli_app:mux")
    assert handler is cli_app.mux
    assert (server.namespace, server.concurrency, server.queues) == ("tickr", 10, {"default": 1})
    assert server.strict_priority is False
    server, handler = build(
        "tests.helpers.cli_app:handle_anything", "--queue", "a=3", "--queue", "b",
        "--queue", "a=5", "--strict-priority", "--concurrency", "7", "--namespace", "ns",
    )  # fmt: skip
    assert handler is cli_app.handle_anything
    assert (server.namespace, server.concurrency, server.queues) == ("ns", 7, {"a": 5, "b": 1})
    assert server.strict_priority is True

    configured = tickr.Server("redis://example.invalid:1/0", concurrency=3, queues={"q": 2})
    monkeypatch.setattr(cli_app, "server", configured)
    server, handler = build("tests.helpers.cli_app:server")
    assert server is configured and handler is cli_app.mux
    assert (server.namespace, server.concurrency, server.queues) == ("tickr", 3, {"q": 2})
    assert server._url == "redis://example.invalid:1/0"
    server, handler = build(
        "tests.helpers.cli_app:server", "--handler", "handle_anything", "--url",
        "redis://127.0.0.1:2/0", "--namespace", "other", "--queue", "r",
        "--no-strict-priority", "--concurrency", "1",
    )  # fmt: skip
    assert handler is cli_app.handle_anything
    assert (server.namespace, server.concurrency, server.queues) == ("other", 1, {"r": 1})
    assert server._url == "redis://127.0.0.1:2/0" and server.strict_priority is False
    with pytest.raises(CLIError, match="--handler 'not_a_handler' is neither"):
        build("tests.helpers.cli_app:server", "--handler", "not_a_handler")
    (tmp_path / "lonely_cli_app.py").write_text("import tickr\nserver = tickr.Server()\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(CLIError, match="has no ServeMux: name its handler with --handler"):
        build("lonely_cli_app:server")


def test_parser_details() -> None:
    parser = build_parser()
    assert parser.parse_args(["stats"]).watch is None
    assert parser.parse_args(["stats", "--watch"]).watch == 2.0
    assert parser.parse_args(["stats", "--watch", "0.5", "--json"]).watch == 0.5
    args = parser.parse_args(["task", "ls"])
    assert (args.queue, args.state, args.page, args.size) == ("default", "pending", 1, 30)
    args = parser.parse_args(["worker", "a:b"])
    assert (args.queues, args.concurrency, args.strict_priority, args.burst) == (
        None, None, None, False,
    )  # fmt: skip


# ------------------------------------------------------------------ subprocesses


class CLIWorker(WorkerProcess):
    """`python -m tickr worker ...`, its stderr collected line by line."""

    def __init__(self, *args: str) -> None:
        self._start([sys.executable, "-m", "tickr", "worker", *args])


async def test_worker_serves_until_sigterm(
    cli: CLI, client: tickr.Client, url: str, namespace: str
) -> None:
    worker = CLIWorker(
        "tests.helpers.cli_app:mux",
        "--url", url, "--namespace", namespace,
        "--concurrency", "3", "--queue", "default=2", "--queue", "other",
    )  # fmt: skip
    try:
        worker.wait_ready()
        info = await client.enqueue("echo", {"hello": "world"}, retention=60)
        assert await client.result(info.id, timeout=10) == {"hello": "world"}
        [server] = (await cli("server", "ls", "--json")).json()
        assert server["queues"] == {"default": 2, "other": 1} and server["concurrency"] == 3
        assert server["pid"] == worker.process.pid
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
        worker.wait_for_line("stopped")
        assert not any("Traceback" in line for line in worker.lines)
    finally:
        worker.stop()
    assert (await cli("server", "ls", "--json")).json() == []


async def test_worker_burst_with_a_configured_server_exits_when_empty(
    client: tickr.Client, url: str, namespace: str, inspector: tickr.Inspector
) -> None:
    await client.enqueue_many([tickr.TaskSpec("echo", n, queue="cli") for n in range(20)])
    await client.enqueue("sleep", 0.2, queue="cli")
    await client.enqueue("echo", "not served", queue="default")
    worker = CLIWorker(
        "tests.helpers.cli_app:server", "--url", url, "--namespace", namespace, "--burst",
        "--concurrency", "2",
    )  # fmt: skip
    try:
        assert await asyncio.to_thread(worker.wait, 30) == 0
        worker.wait_for_line("queues are empty")
        worker.wait_for_line("serving cli=1 with concurrency 2")  # its queues, our concurrency
    finally:
        worker.stop()
    info = await inspector.queue_info("cli")
    assert (info.processed, info.size) == (21, 0)
    assert (await inspector.queue_info("default")).pending == 1


async def test_worker_runs_an_async_function_in_burst_mode(
    client: tickr.Client, url: str, namespace: str, inspector: tickr.Inspector
) -> None:
    infos = [await client.enqueue("anything", n, queue="fn", retention=60) for n in range(3)]
    worker = CLIWorker(
        "tests.helpers.cli_app:handle_anything", "--queue", "fn=3", "--burst",
        "--log-level", "warning", "--url", url, "--namespace", namespace,
    )  # fmt: skip
    try:
        assert await asyncio.to_thread(worker.wait, 30) == 0
    finally:
        worker.stop()
    assert [await client.result(info.id, "fn", timeout=1) for info in infos] == [0, 1, 2]
    assert not any(" INFO " in line for line in worker.lines)


async def test_stats_watch_refreshes_until_ctrl_c(client: tickr.Client, url: str,
                                                  namespace: str) -> None:  # fmt: skip
    await client.enqueue("t")
    process = tickr_process("stats", "--watch", "0.2", "--url", url, "--namespace", namespace)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(8)]
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0 and err == ""
    assert lines[0].startswith("every 0.2s, ") and lines[4].startswith("every 0.2s, ")
    assert lines[1].split()[:2] == ["QUEUE", "PENDING"]
    assert lines[2].split()[:2] == ["default", "1"]


# ------------------------------------------------------------------ output helpers


def test_json_conversion_keeps_every_payload() -> None:
    moment = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    converted = jsonable(
        {
            "bytes": b"\xff",
            "when": moment,
            "day": moment.date(),
            "tuple": (1, "a"),
            1: "int key",
            None: "none key",
            b"k": "bytes key",
            "nan": math.nan,
            "inf": -math.inf,
            "other": object,
        }
    )
    assert converted == {
        "bytes": {"$base64": "/w=="},
        "when": "2030-01-02T03:04:05+00:00",
        "day": "2030-01-02",
        "tuple": [1, "a"],
        "1": "int key",
        "null": "none key",
        "b'k'": "bytes key",
        "nan": "nan",
        "inf": "-inf",
        "other": "<class 'object'>",
    }
    json.dumps(converted, allow_nan=False)


async def test_queue_limit_shows_sets_and_removes_limits(
    cli: CLI, client: tickr.Client, inspector: tickr.Inspector
) -> None:
    await client.enqueue("t", queue="api")
    shown = await cli("queue", "limit", "api")
    assert shown.lines == ["rate limit none; concurrency limit none"]
    both = await cli(
        "queue", "limit", "api", "--rate", "100", "--period", "60", "--concurrency", "4"
    )
    assert both.lines == ["now: rate limit 100 per 1m, burst 1; concurrency limit 4 at once"]
    info = await inspector.queue_info("api", memory=False)
    assert info.rate_limit == tickr.RateLimit(100, 60.0) and info.concurrency_limit == 4
    assert "rate limit:" in " ".join((await cli("queue", "inspect", "api")).lines)
    cleared = await cli("queue", "limit", "api", "--clear-rate")
    assert cleared.lines == ["now: rate limit none; concurrency limit 4 at once"]
