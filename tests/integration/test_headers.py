"""Headers: string metadata that travels with a task to every attempt and every view."""

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aredis

import tickr
from tests.conftest import ServerFactory
from tests.helpers import FAST_RETRY, eventually
from tests.integration.test_recovery import FAST, take_as_ghost
from tests.integration.test_scheduler import START, make, scheduling
from tickr.testing import ManualClock


def holds(predicate: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return predicate()

    return check


TRACE = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tenant": "é"}


async def test_every_attempt_and_every_view_carries_the_headers(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    seen: list[dict[str, str]] = []

    async def flaky(task: tickr.Task) -> str:
        seen.append(dict(task.headers))
        if task.retry_count < 2:
            raise ValueError("again")
        return "ok"

    info = await client.enqueue("t", headers=TRACE, retention=60)
    assert info.headers == TRACE
    assert (await client.get_task(info.id)).headers == TRACE, "pending"
    async with running_server(flaky, retry_delay=FAST_RETRY):
        assert await client.result(info.id, timeout=10) == "ok"
    assert seen == [TRACE, TRACE, TRACE], "first attempt and both retries"
    assert (await client.get_task(info.id)).headers == TRACE, "completed"


async def test_a_task_without_headers_has_an_empty_read_only_mapping(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    seen: list[tickr.Task] = []

    async def handler(task: tickr.Task) -> None:
        seen.append(task)

    info = await client.enqueue("t")
    assert info.headers == {}
    async with running_server(handler):
        await eventually(holds(lambda: bool(seen)), timeout=10)
    assert seen[0].headers == {}
    with pytest.raises(TypeError):
        seen[0].headers["x"] = "y"  # type: ignore[index]


async def test_headers_survive_scheduling_and_the_batch_path(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    seen: dict[str, dict[str, str]] = {}

    async def handler(task: tickr.Task) -> None:
        seen[task.id] = dict(task.headers)

    outcomes = await client.enqueue_many(
        [
            tickr.TaskSpec("t", 1, headers={"n": "1"}),
            tickr.TaskSpec("t", 2),
            tickr.TaskSpec("t", 3, headers={"n": "3"}, delay=0.2),
        ]
    )
    infos = [info for info in outcomes if isinstance(info, tickr.TaskInfo)]
    assert len(infos) == 3
    assert [info.headers for info in infos] == [{"n": "1"}, {}, {"n": "3"}]
    scheduled = await client.get_task(infos[2].id)
    assert (scheduled.state, scheduled.headers) == ("scheduled", {"n": "3"})
    async with running_server(handler):
        await eventually(holds(lambda: len(seen) == 3), timeout=10)
    assert seen == {infos[0].id: {"n": "1"}, infos[1].id: {}, infos[2].id: {"n": "3"}}


async def test_a_recovered_task_keeps_its_headers(
    client: tickr.Client, raw_redis: aredis.Redis, namespace: str, running_server: ServerFactory
) -> None:
    info = await client.enqueue("t", headers=TRACE, retention=60)
    assert await take_as_ghost(raw_redis, namespace, 1) == [info.id]
    seen: list[tuple[int, dict[str, str]]] = []

    async def handler(task: tickr.Task) -> None:
        seen.append((task.retry_count, dict(task.headers)))

    async with running_server(handler, **FAST):
        await client.result(info.id, timeout=10)
    assert seen == [(1, TRACE)], "the lost attempt was retried with the same headers"


async def test_an_archived_task_shows_its_headers_and_runs_again_with_them(
    client: tickr.Client, running_server: ServerFactory, url: str, namespace: str
) -> None:
    seen: list[dict[str, str]] = []

    async def broken(task: tickr.Task) -> None:
        seen.append(dict(task.headers))
        raise RuntimeError("no")

    info = await client.enqueue("t", headers={"k": "v"}, max_retry=0)
    async with running_server(broken):
        await eventually(holds(lambda: len(seen) == 1), timeout=10)
        async with tickr.Inspector(url, namespace=namespace) as inspector:

            async def archived() -> bool:
                return (await inspector.get_task(info.id)).state == "archived"

            await eventually(archived, timeout=10)
            [listed] = await inspector.list_tasks("default", "archived")
            assert listed.headers == {"k": "v"}
            await inspector.run_task(info.id)
            await eventually(holds(lambda: len(seen) == 2), timeout=10)
    assert seen == [{"k": "v"}, {"k": "v"}]


@pytest.mark.parametrize(
    ("headers", "error", "match"),
    [
        (["a"], TypeError, "mapping"),
        ({1: "a"}, TypeError, "header name must be a str"),
        ({"a": 1}, TypeError, "header 'a' must be a str"),
        ({"": "a"}, ValueError, "header name"),
        ({"a b": "a"}, ValueError, "header name"),
        ({"a": "line\nbreak"}, ValueError, "control characters"),
        ({"a": "\ud800"}, ValueError, "not valid Unicode"),
        ({f"h{i}": "" for i in range(65)}, ValueError, "at most 64 headers"),
        ({"big": "x" * 8190}, ValueError, "over the limit of 8192"),
    ],
    ids=["list", "int-name", "int-value", "empty-name", "space", "newline", "surrogate",
         "too-many", "too-big"],
)  # fmt: skip
async def test_bad_headers_are_refused_before_anything_is_written(
    client: tickr.Client, raw_redis: aredis.Redis, headers: object, error: type, match: str
) -> None:
    before = await raw_redis.dbsize()
    with pytest.raises(error, match=match):
        await client.enqueue("t", headers=headers)  # type: ignore[arg-type]
    with pytest.raises(error, match=match):
        await client.enqueue_many([tickr.TaskSpec("t"), tickr.TaskSpec("t", headers=headers)])  # type: ignore[arg-type]
    assert await raw_redis.dbsize() == before, "not even the good task of the batch"


async def test_a_tab_and_the_largest_allowed_headers_are_taken(client: tickr.Client) -> None:
    headers = {"a": "tab\there", "big": "x" * (8192 - 3 - len("tab\there") - 1)}
    info = await client.enqueue("t", headers=headers)
    assert (await client.get_task(info.id)).headers == headers


async def test_headers_do_not_count_for_uniqueness(client: tickr.Client) -> None:
    await client.enqueue("t", {"x": 1}, unique=60, headers={"traceparent": "a"})
    with pytest.raises(tickr.DuplicateTask):
        await client.enqueue("t", {"x": 1}, unique=60, headers={"traceparent": "b"})


async def test_cron_ticks_carry_the_entry_headers(url: str, namespace: str) -> None:
    clock = ManualClock(START)
    scheduler = make(url, namespace, clock)
    entry = scheduler.register("@every 10s", "tick", headers={"source": "cron"})
    assert entry == scheduler.register("@every 10s", "tick", headers={"source": "cron"})
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        async with scheduling(scheduler):
            await clock.advance(10)

            async def ticked() -> bool:
                try:
                    return bool(await inspector.list_tasks("default", "pending"))
                except tickr.QueueNotFound:
                    return False

            await eventually(ticked, timeout=10)
        [task] = await inspector.list_tasks("default", "pending")
    assert task.headers == {"source": "cron"}
    await asyncio.sleep(0)


def test_the_order_of_an_entrys_headers_does_not_change_its_id() -> None:
    scheduler = tickr.Scheduler()
    first = scheduler.register("@hourly", "t", headers={"a": "1", "b": "2"})
    assert scheduler.register("@hourly", "t", headers={"b": "2", "a": "1"}) == first
    assert scheduler.register("@hourly", "t", headers={"a": "1", "b": "3"}) != first
    with pytest.raises(ValueError, match="header name"):
        scheduler.register("@hourly", "t", headers={"a b": "1"})
