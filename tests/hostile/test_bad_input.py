"""Hostile input against a real Redis: every bad value is refused before anything is
written, and what is stored can always be read back (issue 10, parts 3 and 6)."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aredis

import tickr
from tests.conftest import ServerFactory
from tickr._broker.keys import QueueKeys
from tickr.cli import main


async def stored_keys(raw_redis: aredis.Redis, namespace: str) -> list[Any]:
    return sorted(await raw_redis.keys(f"{namespace}:*"))


# ------------------------------------------------------------------ values that cannot be read


@pytest.mark.parametrize(
    "payload",
    [
        {(1, 2): "a tuple key"},
        [{"nested": {("a",): 1}}],
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        {"at": datetime(9999, 12, 31, 23, tzinfo=timezone(-timedelta(hours=5)))},
    ],
)
async def test_a_payload_that_would_not_decode_is_refused_before_anything_is_written(
    client: tickr.Client, raw_redis: aredis.Redis, namespace: str, payload: Any
) -> None:
    with pytest.raises(TypeError, match="cannot be decoded once encoded"):
        await client.enqueue("t", payload)
    with pytest.raises(TypeError, match="cannot be decoded once encoded"):
        await client.enqueue_many([tickr.TaskSpec("t", "fine"), tickr.TaskSpec("t", payload)])
    assert await stored_keys(raw_redis, namespace) == []


async def test_a_result_that_would_not_decode_archives_its_task_as_unstorable(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    async def handler(task: tickr.Task) -> object:
        if task.payload == "tuple key":
            return {(1, 2): 3}
        return {"moment": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=2)))}

    keyed = await client.enqueue("t", "tuple key", retention=60)
    dated = await client.enqueue("t", "old date", retention=60)
    async with running_server(handler):
        with pytest.raises(tickr.TaskFailed) as keyed_failure:
            await client.result(keyed.id, timeout=10)
        with pytest.raises(tickr.TaskFailed) as dated_failure:
            await client.result(dated.id, timeout=10)
    assert keyed_failure.value.last_error == (
        "result cannot be stored: value cannot be decoded once encoded: "
        "a dict key is a tuple or list"
    )
    assert dated_failure.value.last_error == (
        "result cannot be stored: value cannot be decoded once encoded: "
        "a datetime is outside years 1-9999 in UTC"
    )
    assert (await client.get_task(keyed.id)).state == "archived"


# ------------------------------------------------------------------ durations and instants

LATE_UTC = datetime(9999, 12, 31, 23, tzinfo=timezone(-timedelta(hours=5)))


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"delay": 1e12}, "delay must be at most 31536000000 seconds"),
        ({"delay": timedelta.max}, "delay must be at most"),
        ({"delay": 1e300}, "delay must be at most"),
        ({"unique": 1e300}, "unique must be at most"),
        ({"timeout": 1e16}, "timeout must be at most"),
        ({"retention": 1e16}, "retention must be at most"),
        ({"at": LATE_UTC}, "at must fall within years 1-9999 in UTC"),
        ({"deadline": LATE_UTC}, "deadline must fall within years 1-9999 in UTC"),
        (
            {"at": datetime(9000, 1, 2, tzinfo=UTC), "deadline": datetime(9000, 1, 1, tzinfo=UTC)},
            "deadline must be later than at",
        ),
    ],
)
async def test_durations_and_instants_out_of_range_are_refused_before_anything_is_written(
    client: tickr.Client,
    raw_redis: aredis.Redis,
    namespace: str,
    options: dict[str, Any],
    error: str,
) -> None:
    with pytest.raises(ValueError, match=error):
        await client.enqueue("t", **options)
    with pytest.raises(ValueError, match=error):
        await client.enqueue_many([tickr.TaskSpec("t"), tickr.TaskSpec("t", **options)])
    assert await stored_keys(raw_redis, namespace) == []


async def test_a_stored_timestamp_past_year_9999_does_not_break_reading(
    client: tickr.Client, raw_redis: aredis.Redis, url: str, namespace: str
) -> None:
    """Older versions stored such values; every read of the page still works."""
    bad = await client.enqueue("t", "bad", delay=60)
    good = await client.enqueue("t", "good", delay=120)
    year_33715 = 1e12 * 1000 + 1_800_000_000_000
    await raw_redis.hset(QueueKeys(namespace, "default").task(bad.id), "due", int(year_33715))
    latest = datetime.max.replace(tzinfo=UTC)
    assert (await client.get_task(bad.id)).next_process_at == latest.replace(microsecond=999000)
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        listed = await inspector.list_tasks("default", "scheduled")
        assert {task.id for task in listed} == {bad.id, good.id}
        assert (await inspector.get_task(bad.id)).payload == "bad"


# ------------------------------------------------------------------ names on read and manage calls


@pytest.mark.parametrize(
    ("task_id", "queue", "error"),
    [
        (None, "default", TypeError),
        (123, "default", TypeError),
        ("", "default", ValueError),
        ("x", "a{b}", ValueError),
        ("x", None, TypeError),
        ("x", "has space", ValueError),
    ],
)
async def test_calls_about_one_task_check_its_id_and_queue_like_enqueue(
    client: tickr.Client,
    inspector: tickr.Inspector,
    raw_redis: aredis.Redis,
    namespace: str,
    task_id: Any,
    queue: Any,
    error: type[Exception],
) -> None:
    kept = await client.enqueue("t", "kept", delay=60)
    before = await stored_keys(raw_redis, namespace)
    calls = [
        client.get_task(task_id, queue),
        client.result(task_id, queue, timeout=1),
        client.cancel(task_id, queue),
        inspector.get_task(task_id, queue),
        inspector.delete_task(task_id, queue),
        inspector.run_task(task_id, queue),
        inspector.archive_task(task_id, queue),
        inspector.cancel(task_id, queue),
    ]
    for call in calls:
        with pytest.raises(error, match=r"task_id|queue"):
            await call
    assert await stored_keys(raw_redis, namespace) == before
    assert (await client.get_task(kept.id)).state == "scheduled"


@pytest.mark.parametrize(("queue", "error"), [(None, TypeError), ("a{b}", ValueError)])
async def test_calls_about_one_queue_check_its_name(
    inspector: tickr.Inspector, queue: Any, error: type[Exception]
) -> None:
    calls = [
        inspector.queue_info(queue),
        inspector.history(queue),
        inspector.list_tasks(queue, "pending"),
        inspector.delete_all(queue, "pending"),
        inspector.delete_queue(queue),
        inspector.pause(queue),
    ]
    for call in calls:
        with pytest.raises(error, match="queue"):
            await call


@pytest.mark.parametrize(
    ("page", "page_size", "error", "match"),
    [
        (10**20, 30, ValueError, "page must be from 1 to 2147483647"),
        (1, 10**20, ValueError, "page_size must be from 1 to 10000"),
        (0, 30, ValueError, "page must be from 1"),
        (True, 30, TypeError, "page must be an int"),
        (1, 2.0, TypeError, "page_size must be an int"),
    ],
)
async def test_list_tasks_refuses_pages_redis_cannot_serve(
    client: tickr.Client,
    inspector: tickr.Inspector,
    page: Any,
    page_size: Any,
    error: type[Exception],
    match: str,
) -> None:
    await client.enqueue("t")
    with pytest.raises(error, match=match):
        await inspector.list_tasks("default", "pending", page=page, page_size=page_size)
    assert len(await inspector.list_tasks("default", "pending", page=1, page_size=10_000)) == 1


# ------------------------------------------------------------------ a Client across event loops

_TWO_RUNS = """
import asyncio, sys
import tickr

client = tickr.Client(sys.argv[1], namespace=sys.argv[2])

async def use() -> str:
    info = await client.enqueue("t", "payload")
    try:
        await client.result(info.id, timeout=0.1)
    except TimeoutError:
        pass
    return (await client.get_task(info.id)).state

for _ in range(2):
    print(asyncio.run(asyncio.wait_for(use(), 10)))
asyncio.run(client.aclose())
print("closed")
"""


async def test_a_module_level_client_works_from_a_second_asyncio_run(
    url: str, namespace: str
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _TWO_RUNS, url, namespace,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert (process.returncode, out.decode(), err.decode()) == (0, "pending\npending\nclosed\n", "")
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        assert (await inspector.queue_info("default")).pending == 2


# ------------------------------------------------------------------ the command line


async def tickr_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_cli_refuses_bad_arguments_as_usage_errors(
    capsys: pytest.CaptureFixture[str], url: str, namespace: str
) -> None:
    connection = ("--url", url, "--namespace", namespace)
    for argv, message in {
        ("stats", "--url", ""): "argument --url: must not be empty",
        ("--url", "", "stats"): "argument --url: must not be empty",
        ("task", "get", "a{b}", *connection): "task_id 'a{b}' must not contain braces",
        ("task", "ls", "has space", *connection): "queue 'has space' must not contain",
        ("task", "ls", "--page", str(10**20), *connection): "page must be at most 2147483647",
        ("task", "ls", "--size", "10001", *connection): "page size must be at most 10000",
        ("queue", "pause", "a{b}", *connection): "queue 'a{b}' must not contain braces",
        ("worker", "app:mux", "--concurrency", "10001"): "concurrency must be at most 10000",
    }.items():
        code, out, err = await tickr_cli(capsys, *argv)
        assert (code, out) == (2, ""), argv
        assert err.startswith("usage: tickr") and message in err, argv


async def test_cli_says_so_when_a_worker_module_exits_while_imported(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    url: str,
) -> None:
    (tmp_path / "exits_on_import_app.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    code, out, err = await tickr_cli(capsys, "worker", "exits_on_import_app:mux", "--url", url)
    assert (code, out) == (1, "")
    assert err == "error: importing 'exits_on_import_app' failed: it exited (SystemExit: 3)\n"


async def test_cli_lists_tasks_whose_stored_timestamp_is_past_year_9999(
    capsys: pytest.CaptureFixture[str],
    client: tickr.Client,
    raw_redis: aredis.Redis,
    url: str,
    namespace: str,
) -> None:
    bad = await client.enqueue("t", "bad", delay=60)
    await raw_redis.hset(QueueKeys(namespace, "default").task(bad.id), "due", 10**15)
    connection = ("--url", url, "--namespace", namespace)
    code, out, err = await tickr_cli(capsys, "task", "ls", "--state", "scheduled", *connection)
    assert (code, err) == (0, "") and bad.id in out
    code, out, err = await tickr_cli(capsys, "task", "get", bad.id, "--json", *connection)
    assert (code, err) == (0, "")
    assert json.loads(out)["next_process_at"].startswith("9999-12-31T23:59:59.999")
