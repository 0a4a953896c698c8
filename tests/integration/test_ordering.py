"""Which task runs next: priority, FIFO, weighted and strict queues, paused queues."""

import asyncio
from collections import Counter
from collections.abc import Sequence

import tickr
from tests.conftest import ServerFactory
from tests.helpers import eventually


def recorder() -> tuple[list[object], tickr.Handler]:
    order: list[object] = []

    async def handler(task: tickr.Task) -> None:
        order.append(task.payload)

    return order, handler


async def test_higher_priority_runs_first_and_equal_priority_is_fifo(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    order, handler = recorder()
    specs = (
        [tickr.TaskSpec("t", ("low", i), priority=-5) for i in range(3)]
        + [tickr.TaskSpec("t", ("mid", i)) for i in range(3)]
        + [tickr.TaskSpec("t", ("high", i), priority=10) for i in range(3)]
    )
    await client.enqueue_many(specs)
    await client.enqueue("t", ("top", 0), priority=2**31 - 1)
    async with running_server(handler, concurrency=1):
        await eventually(lambda: _size(order, 10))
    assert order == [
        ["top", 0],
        *(["high", i] for i in range(3)),
        *(["mid", i] for i in range(3)),
        *(["low", i] for i in range(3)),
    ]


async def _size(items: Sequence[object], size: int) -> bool:
    return len(items) >= size


async def test_fifo_holds_for_many_tasks_and_across_enqueue_calls(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    order, handler = recorder()
    for i in range(50):
        await client.enqueue("t", i)
    await client.enqueue_many([tickr.TaskSpec("t", i) for i in range(50, 300)])
    async with running_server(handler, concurrency=1):
        await eventually(lambda: _size(order, 300))
    assert order == list(range(300))


async def test_due_scheduled_tasks_join_behind_waiting_ones_of_equal_priority(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    order, handler = recorder()
    await client.enqueue("t", "scheduled", delay=0.05)
    await asyncio.sleep(0.1)
    await client.enqueue("t", "pending-after")
    async with running_server(handler, concurrency=1):
        await eventually(lambda: _size(order, 2))
    assert order == ["pending-after", "scheduled"], "a scheduled task joins pending when moved"


async def test_weighted_queues_are_served_in_proportion(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    served: list[str] = []
    total = 400

    async def handler(task: tickr.Task) -> None:
        served.append(task.queue)
        await asyncio.sleep(0.001)

    for queue in ("heavy", "light"):
        await client.enqueue_many([tickr.TaskSpec("t", i, queue=queue) for i in range(total)])
    async with running_server(handler, queues={"heavy": 3, "light": 1}, concurrency=4):
        await eventually(lambda: _size(served, 200), timeout=20)
    counts = Counter(served[:200])
    ratio = counts["heavy"] / counts["light"]
    assert 3 * 0.7 <= ratio <= 3 * 1.3, counts


async def test_strict_priority_drains_heavier_queues_first(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    served: list[str] = []

    async def handler(task: tickr.Task) -> None:
        served.append(task.queue)

    for queue in ("low", "critical", "default"):
        await client.enqueue_many([tickr.TaskSpec("t", i, queue=queue) for i in range(20)])
    queues = {"critical": 6, "default": 3, "low": 1}
    async with running_server(handler, queues=queues, strict_priority=True, concurrency=1):
        await eventually(lambda: _size(served, 60))
    assert served == ["critical"] * 20 + ["default"] * 20 + ["low"] * 20


async def test_a_weighted_server_serves_a_lone_busy_queue_at_full_speed(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    served: list[str] = []

    async def handler(task: tickr.Task) -> None:
        served.append(task.queue)

    await client.enqueue_many([tickr.TaskSpec("t", i, queue="light") for i in range(100)])
    async with running_server(handler, queues={"heavy": 9, "light": 1}, concurrency=10):
        await eventually(lambda: _size(served, 100))
    assert set(served) == {"light"}


async def test_paused_queues_are_not_served_until_unpaused(
    client: tickr.Client, running_server: ServerFactory, url: str, namespace: str
) -> None:
    served: list[str] = []

    async def handler(task: tickr.Task) -> None:
        served.append(task.queue)

    async with tickr.Inspector(url, namespace=namespace) as inspector:
        await inspector.pause("held")
        await client.enqueue("t", queue="held")
        await client.enqueue("t", queue="open")
        async with running_server(handler, queues={"held": 1, "open": 1}):
            await eventually(lambda: _size(served, 1))
            await asyncio.sleep(0.2)
            assert served == ["open"]
            assert (await inspector.queue_info("held")).paused
            await inspector.unpause("held")
            await eventually(lambda: _size(served, 2))
        assert served == ["open", "held"]
        assert not (await inspector.queue_info("held")).paused
