"""Lanes: one queue's lanes are served round-robin; priority and FIFO hold within a lane."""

from __future__ import annotations

import pytest

import tickr
from tests.conftest import ServerFactory
from tests.helpers import eventually


async def _drained(inspector: tickr.Inspector, queue: str = "default") -> bool:
    info = await inspector.queue_info(queue, memory=False)
    return info.pending + info.active == 0


async def test_a_small_lane_is_not_stuck_behind_a_large_one(
    client: tickr.Client, inspector: tickr.Inspector, running_server: ServerFactory
) -> None:
    await client.enqueue_many(
        [tickr.TaskSpec("t", f"big-{n}", lane="tenant-big") for n in range(100)]
    )
    await client.enqueue_many(
        [tickr.TaskSpec("t", f"small-{n}", lane="tenant-small") for n in range(3)]
    )
    assert (await inspector.queue_info("default", memory=False)).lanes == 2
    order: list[str] = []

    async def record(task: tickr.Task) -> None:
        order.append(task.payload)

    async with running_server(record, concurrency=1):
        await eventually(lambda: _drained(inspector), timeout=30)
    assert len(order) == 103
    small = [order.index(f"small-{n}") for n in range(3)]
    assert max(small) < 8, f"served in turns with the big lane, not after it: {small}"
    assert [p for p in order if p.startswith("big")] == [f"big-{n}" for n in range(100)]
    assert (await inspector.queue_info("default", memory=False)).lanes == 0


async def test_priority_and_fifo_hold_within_a_lane_and_tasks_without_one_take_turns(
    client: tickr.Client, inspector: tickr.Inspector, running_server: ServerFactory
) -> None:
    await client.enqueue_many(
        [tickr.TaskSpec("t", "a-low-1", lane="a"), tickr.TaskSpec("t", "a-low-2", lane="a"),
         tickr.TaskSpec("t", "a-high", lane="a", priority=5)]
        + [tickr.TaskSpec("t", f"plain-{n}") for n in range(3)]
        + [tickr.TaskSpec("t", f"b-{n}", lane="b") for n in range(3)]
    )  # fmt: skip
    order: list[str] = []

    async def record(task: tickr.Task) -> None:
        order.append(task.payload)

    async with running_server(record, concurrency=1):
        await eventually(lambda: _drained(inspector), timeout=10)
    lane_a = [p for p in order if p.startswith("a-")]
    assert lane_a == ["a-high", "a-low-1", "a-low-2"]
    assert [p for p in order if p.startswith("plain")] == ["plain-0", "plain-1", "plain-2"]
    first_three = {p.split("-")[0] for p in order[:3]}
    assert first_three == {"a", "plain", "b"}, f"one task per lane per turn: {order}"


async def test_a_lane_is_kept_through_inspection_retries_and_operators(
    client: tickr.Client, inspector: tickr.Inspector, running_server: ServerFactory
) -> None:
    info = await client.enqueue("t", 1, lane="tenant-7", max_retry=1)
    assert info.lane == "tenant-7"
    assert (await client.get_task(info.id)).lane == "tenant-7"
    [listed] = await inspector.list_tasks("default", "pending")
    assert listed.id == info.id and listed.lane == "tenant-7"
    await inspector.archive_task(info.id)
    await inspector.run_task(info.id)
    assert (await client.get_task(info.id)).lane == "tenant-7"
    attempts: list[str | None] = []

    async def fail_once(task: tickr.Task) -> None:
        attempts.append((await client.get_task(task.id)).lane)
        if task.retry_count == 0:
            raise RuntimeError("first try fails")

    async with running_server(fail_once, retry_delay=tickr.constant_delay(0.05)):
        await eventually(lambda: _drained(inspector), timeout=10)
        await eventually(lambda: _retries_done(inspector), timeout=10)
    assert attempts == ["tenant-7", "tenant-7"]


async def _retries_done(inspector: tickr.Inspector) -> bool:
    info = await inspector.queue_info("default", memory=False)
    return info.retry == 0 and info.pending == 0 and info.active == 0


async def test_a_pending_laned_task_can_be_cancelled_and_deleted(
    client: tickr.Client, inspector: tickr.Inspector, running_server: ServerFactory
) -> None:
    kept = await client.enqueue("t", "kept", lane="x")
    gone = await client.enqueue("t", "gone", lane="x")
    deleted = await client.enqueue("t", "deleted", lane="y")
    assert await client.cancel(gone.id)
    await inspector.delete_task(deleted.id)
    assert (await inspector.queue_info("default", memory=False)).lanes == 1
    ran: list[str] = []

    async def record(task: tickr.Task) -> None:
        ran.append(task.payload)

    async with running_server(record):
        await eventually(lambda: _drained(inspector), timeout=10)
    assert ran == ["kept"] and kept.lane == "x"


async def test_bad_lanes_are_refused_before_anything_is_written(
    client: tickr.Client, inspector: tickr.Inspector
) -> None:
    with pytest.raises(ValueError, match="lane"):
        await client.enqueue("t", lane="")
    with pytest.raises(TypeError, match="lane"):
        await client.enqueue("t", lane=7)  # type: ignore[arg-type]
    assert await inspector.queues() == []
