"""The Inspector: listing, single and bulk operations, deleting queues."""

import asyncio

import pytest

import tickr
from tests.conftest import ServerFactory
from tests.helpers import eventually


async def test_queues_are_listed(client: tickr.Client, inspector: tickr.Inspector) -> None:
    await client.enqueue("t", queue="b")
    await client.enqueue("t", queue="a")
    assert await inspector.queues() == ["a", "b"]


async def test_list_tasks_pages_in_each_states_order(
    client: tickr.Client, inspector: tickr.Inspector
) -> None:
    low = [await client.enqueue("t", n) for n in range(3)]
    high = await client.enqueue("t", "high", priority=5)
    pending = await inspector.list_tasks("default", "pending", page=1, page_size=2)
    assert [task.id for task in pending] == [high.id, low[0].id]
    second = await inspector.list_tasks("default", "pending", page=2, page_size=2)
    assert [task.id for task in second] == [low[1].id, low[2].id]
    assert await inspector.list_tasks("default", "pending", page=3, page_size=2) == []
    later = await client.enqueue("t", delay=120)
    sooner = await client.enqueue("t", delay=60)
    scheduled = await inspector.list_tasks("default", "scheduled")
    assert [task.id for task in scheduled] == [sooner.id, later.id]
    with pytest.raises(ValueError, match="unknown task state"):
        await inspector.list_tasks("default", "lost")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="page"):
        await inspector.list_tasks("default", "pending", page=0)
    with pytest.raises(tickr.QueueNotFound):
        await inspector.list_tasks("nope", "pending")


async def test_archived_tasks_are_listed_newest_first(
    client: tickr.Client, inspector: tickr.Inspector
) -> None:
    infos = [await client.enqueue("t", n) for n in range(3)]
    for info in infos:
        await inspector.archive_task(info.id)
        await asyncio.sleep(0.002)
    archived = await inspector.list_tasks("default", "archived")
    assert [task.id for task in archived] == [info.id for info in reversed(infos)]
    assert all(task.last_error == "archived by an operator" for task in archived)


async def test_run_archive_and_delete_single_tasks(
    client: tickr.Client, inspector: tickr.Inspector
) -> None:
    scheduled = await client.enqueue("t", delay=3600)
    await inspector.run_task(scheduled.id)
    assert (await inspector.get_task(scheduled.id)).state == "pending"
    await inspector.archive_task(scheduled.id)
    assert (await inspector.get_task(scheduled.id)).state == "archived"
    await inspector.run_task(scheduled.id)
    assert (await inspector.get_task(scheduled.id)).state == "pending"
    with pytest.raises(tickr.TaskStateConflict, match="it is pending"):
        await inspector.run_task(scheduled.id)
    await inspector.delete_task(scheduled.id)
    with pytest.raises(tickr.TaskNotFound):
        await inspector.get_task(scheduled.id)
    for operation in (inspector.delete_task, inspector.run_task, inspector.archive_task):
        with pytest.raises(tickr.TaskNotFound):
            await operation("missing")
    info = await inspector.queue_info("default")
    assert (info.pending, info.scheduled, info.archived) == (0, 0, 0)


async def test_an_archived_task_run_again_is_served(
    client: tickr.Client, inspector: tickr.Inspector, running_server: ServerFactory
) -> None:
    info = await client.enqueue("t", "again", retention=60)
    await inspector.archive_task(info.id)

    async def echo(task: tickr.Task) -> object:
        return task.payload

    async with running_server(echo):
        await asyncio.sleep(0.1)
        assert (await inspector.get_task(info.id)).state == "archived"
        await inspector.run_task(info.id)
        assert await client.result(info.id, timeout=10) == "again"


async def test_active_tasks_cannot_be_deleted_or_archived(
    client: tickr.Client, inspector: tickr.Inspector, running_server: ServerFactory
) -> None:
    started = asyncio.Event()

    async def slow(task: tickr.Task) -> None:
        started.set()
        await asyncio.sleep(30)

    info = await client.enqueue("t")
    async with running_server(slow):
        await asyncio.wait_for(started.wait(), 10)
        for operation in (inspector.delete_task, inspector.archive_task, inspector.run_task):
            with pytest.raises(tickr.TaskStateConflict, match="it is active"):
                await operation(info.id)
        [active] = await inspector.list_tasks("default", "active")
        assert active.id == info.id


async def test_bulk_operations(client: tickr.Client, inspector: tickr.Inspector) -> None:
    await client.enqueue_many([tickr.TaskSpec("t", n, delay=3600) for n in range(2500)])
    await client.enqueue_many([tickr.TaskSpec("t", n) for n in range(10)])
    assert await inspector.archive_all("default", "scheduled") == 2500
    assert await inspector.run_all("default", "archived") == 2500
    info = await inspector.queue_info("default")
    assert (info.pending, info.scheduled, info.archived) == (2510, 0, 0)
    assert await inspector.delete_all("default", "pending") == 2510
    assert (await inspector.queue_info("default")).size == 0
    with pytest.raises(ValueError, match="cannot run pending"):
        await inspector.run_all("default", "pending")
    with pytest.raises(ValueError, match="cannot delete active"):
        await inspector.delete_all("default", "active")


async def test_unique_locks_are_released_by_deletes(
    client: tickr.Client, inspector: tickr.Inspector
) -> None:
    info = await client.enqueue("t", "same", unique=3600)
    await inspector.delete_task(info.id)
    again = await client.enqueue("t", "same", unique=3600)
    await inspector.archive_task(again.id)
    await client.enqueue("t", "same", unique=3600)


async def test_delete_queue(client: tickr.Client, inspector: tickr.Inspector) -> None:
    await client.enqueue_many([tickr.TaskSpec("t", n, queue="doomed") for n in range(5)])
    await client.enqueue("t", queue="doomed", delay=60, unique=60)
    with pytest.raises(tickr.QueueNotEmpty, match="6 task"):
        await inspector.delete_queue("doomed")
    await inspector.delete_queue("doomed", force=True)
    assert "doomed" not in await inspector.queues()
    with pytest.raises(tickr.QueueNotFound):
        await inspector.queue_info("doomed")
    with pytest.raises(tickr.QueueNotFound):
        await inspector.delete_queue("doomed")
    await client.enqueue("t", queue="doomed", delay=60, unique=60)  # no unique lock is left
    await client.enqueue("t", queue="empty")
    tasks = await inspector.list_tasks("empty", "pending")
    await inspector.delete_task(tasks[0].id, queue="empty")
    await inspector.delete_queue("empty")


async def test_history_covers_the_last_days(
    client: tickr.Client, inspector: tickr.Inspector, running_server: ServerFactory
) -> None:
    async def handler(task: tickr.Task) -> None:
        return None

    await client.enqueue_many([tickr.TaskSpec("t", n) for n in range(4)])
    async with running_server(handler):

        async def processed() -> bool:
            return (await inspector.queue_info("default")).processed == 4

        await eventually(processed)
    history = await inspector.history("default", days=30)
    assert len(history) == 30
    assert history[-1].processed == 4 and sum(day.processed for day in history) == 4


async def test_find_tasks_filters_by_type_and_error_in_bounded_steps(
    client: tickr.Client, inspector: tickr.Inspector, running_server: ServerFactory
) -> None:
    for number in range(30):
        kind = "email:send" if number % 3 == 0 else "sms:send"
        await client.enqueue(kind, number, delay=3600, task_id=f"s{number:02d}")
    found: list[str] = []
    cursor: int | None = 0
    steps = 0
    while cursor is not None:
        step = await inspector.find_tasks(
            "default", "scheduled", type="email:*", cursor=cursor, scan=7
        )
        assert step.scanned <= 7
        found += [task.id for task in step.tasks]
        cursor, steps = step.next_cursor, steps + 1
    assert found == [f"s{number:02d}" for number in range(0, 30, 3)]
    assert steps == 5, "30 tasks looked at 7 at a time"
    first_two = await inspector.find_tasks("default", "scheduled", type="sms:send", limit=2)
    assert [task.id for task in first_two.tasks] == ["s01", "s02"]
    assert first_two.next_cursor == 3

    async def fail(task: tickr.Task) -> None:
        raise RuntimeError("Disk FULL" if task.payload % 2 else "timeout")

    for number in range(6):
        await client.enqueue("job", number, queue="jobs", max_retry=0)
    async with running_server(fail, queues={"jobs": 1}):
        await eventually(lambda: _archived(inspector, "jobs", 6))
    full = await inspector.find_tasks("jobs", "archived", error="disk full")
    assert sorted(task.payload for task in full.tasks) == [1, 3, 5]
    assert full.next_cursor is None and full.scanned == 6


async def _archived(inspector: tickr.Inspector, queue: str, count: int) -> bool:
    return (await inspector.queue_info(queue, memory=False)).archived == count
