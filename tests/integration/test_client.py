"""Client behaviour against a real Redis: enqueue, read back, unique, cancel, results."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aredis

import tickr
from tests.conftest import ServerFactory


async def test_enqueue_returns_a_pending_task_that_reads_back(client: tickr.Client) -> None:
    info = await client.enqueue("email:send", {"to": "a@example.com"}, priority=3, max_retry=2)
    assert info.state == "pending"
    stored = await client.get_task(info.id)
    assert (stored.id, stored.type, stored.payload) == (
        info.id,
        "email:send",
        {"to": "a@example.com"},
    )
    assert (stored.queue, stored.state, stored.priority, stored.max_retry) == (
        "default",
        "pending",
        3,
        2,
    )
    assert stored.retried == 0 and stored.last_error is None
    assert stored.enqueued_at is not None and stored.next_process_at is not None


async def test_delay_and_at_make_scheduled_tasks(client: tickr.Client) -> None:
    delayed = await client.enqueue("t", delay=timedelta(minutes=5))
    at = datetime.now(UTC) + timedelta(hours=1)
    timed = await client.enqueue("t", at=at)
    assert delayed.state == timed.state == "scheduled"
    stored = await client.get_task(timed.id)
    assert stored.state == "scheduled"
    assert stored.next_process_at is not None
    assert abs((stored.next_process_at - at).total_seconds()) < 0.01


async def test_payload_types_round_trip(client: tickr.Client) -> None:
    payload = {
        "when": datetime(2026, 5, 1, 12, tzinfo=UTC),
        "blob": b"\x00\x01",
        "n": [1, 2.5, None],
    }
    info = await client.enqueue("t", payload)
    assert (await client.get_task(info.id)).payload == payload


async def test_reusing_a_task_id_raises_task_id_conflict(client: tickr.Client) -> None:
    await client.enqueue("t", 1, task_id="order-17")
    with pytest.raises(tickr.TaskIDConflict) as caught:
        await client.enqueue("t", 2, task_id="order-17")
    assert caught.value.task_id == "order-17"
    await client.enqueue("t", 2, task_id="order-17", queue="other")  # ids are per queue
    assert (await client.get_task("order-17")).payload == 1


async def test_a_resent_identical_enqueue_is_not_a_conflict(
    client: tickr.Client, raw_redis: aredis.Redis, namespace: str
) -> None:
    """A retry after a lost reply re-sends the very same message: it must succeed."""
    from tickr._broker import Broker, Enqueued, EnqueueOutcome
    from tickr._options import TaskSpec, prepare_task
    from tickr._time import now_ms

    prepared = prepare_task(TaskSpec("t", 1, task_id="x"), now_ms=now_ms(), max_payload_bytes=1000)
    async with Broker.connect(None, raw_redis, namespace) as broker:
        pending = Enqueued(EnqueueOutcome.PENDING)
        assert await broker.enqueue("default", prepared.item) == pending
        assert await broker.enqueue("default", prepared.item) == pending
        assert (await broker.queue_sizes("default"))["pending"] == 1


@pytest.mark.parametrize(
    "second",
    [{"priority": 9}, {"delay": 100}, {}],
    ids=["other-priority", "other-delay", "identical"],
)
async def test_an_id_used_twice_in_one_batch_is_a_conflict_however_alike_the_tasks(
    client: tickr.Client, second: dict[str, Any]
) -> None:
    """Items of one batch share their enqueue time, so even identical tasks encode to the
    same message: only the call that wrote the task may find it again as its own."""
    first, again = await client.enqueue_many(
        [tickr.TaskSpec("t", 1, task_id="dup"), tickr.TaskSpec("t", 1, task_id="dup", **second)]
    )
    assert isinstance(first, tickr.TaskInfo)
    assert isinstance(again, tickr.TaskIDConflict)
    stored = await client.get_task("dup")
    assert (stored.state, stored.priority) == ("pending", 0)


async def test_concurrent_enqueues_of_one_id_succeed_exactly_once(client: tickr.Client) -> None:
    outcomes = await asyncio.gather(
        *(client.enqueue("t", 1, task_id="race") for _ in range(20)), return_exceptions=True
    )
    assert sum(isinstance(outcome, tickr.TaskInfo) for outcome in outcomes) == 1
    assert sum(isinstance(outcome, tickr.TaskIDConflict) for outcome in outcomes) == 19


async def test_unique_rejects_a_live_equal_task(client: tickr.Client) -> None:
    first = await client.enqueue("report", {"day": 1, "kind": "x"}, unique=60)
    with pytest.raises(tickr.DuplicateTask) as caught:
        await client.enqueue("report", {"kind": "x", "day": 1}, unique=60)
    assert caught.value.existing_id == first.id
    await client.enqueue("report", {"day": 2, "kind": "x"}, unique=60)
    await client.enqueue("report", {"day": 1, "kind": "x"}, unique=60, queue="other")


async def test_unique_lock_expires(client: tickr.Client) -> None:
    await client.enqueue("t", "p", unique=0.2)
    with pytest.raises(tickr.DuplicateTask):
        await client.enqueue("t", "p", unique=0.2)
    await asyncio.sleep(0.3)
    await client.enqueue("t", "p", unique=0.2)


async def test_unique_lock_is_released_when_the_task_is_done_or_cancelled(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    cancelled = await client.enqueue("t", "p", unique=60)
    assert await client.cancel(cancelled.id)
    done = await client.enqueue("t", "p", unique=60, retention=60)

    async def handler(task: tickr.Task) -> str:
        return "ok"

    async with running_server(handler):
        assert await client.result(done.id, timeout=10) == "ok"
    await client.enqueue("t", "p", unique=60)


async def test_enqueue_many_reports_each_item(client: tickr.Client) -> None:
    await client.enqueue("t", task_id="taken")
    await client.enqueue("u", "same", unique=60)
    results = await client.enqueue_many(
        [
            tickr.TaskSpec("t", 1),
            tickr.TaskSpec("t", 2, task_id="taken"),
            tickr.TaskSpec("u", "same", unique=60),
            tickr.TaskSpec("t", 3, queue="other", delay=60),
        ]
    )
    assert isinstance(results[0], tickr.TaskInfo) and results[0].state == "pending"
    assert isinstance(results[1], tickr.TaskIDConflict)
    assert isinstance(results[2], tickr.DuplicateTask)
    assert isinstance(results[3], tickr.TaskInfo) and results[3].state == "scheduled"
    assert (await client.get_task(results[3].id, queue="other")).payload == 3


async def test_enqueue_many_validates_everything_before_writing(
    client: tickr.Client, raw_redis: aredis.Redis, namespace: str
) -> None:
    with pytest.raises(ValueError, match="negative"):
        await client.enqueue_many([tickr.TaskSpec("t", 1), tickr.TaskSpec("t", 2, delay=-1)])
    with pytest.raises(TypeError):
        await client.enqueue_many([tickr.TaskSpec("t", 1), ("t", 2)])  # type: ignore[list-item]
    assert await raw_redis.keys(f"{namespace}:*") == []
    assert await client.enqueue_many([]) == []


async def test_enqueue_many_handles_large_batches(client: tickr.Client, url: str) -> None:
    results = await client.enqueue_many([tickr.TaskSpec("t", i) for i in range(2500)])
    assert all(isinstance(result, tickr.TaskInfo) for result in results)
    async with tickr.Inspector(url, namespace=client.namespace) as insp:
        assert (await insp.queue_info("default")).pending == 2500


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"type": ""}, ValueError),
        ({"type": "t", "delay": -1}, ValueError),
        ({"type": "t", "delay": 1, "at": datetime.now(UTC)}, ValueError),
        ({"type": "t", "at": datetime(2030, 1, 1)}, ValueError),
        ({"type": "t", "payload": object()}, TypeError),
        ({"type": "t", "payload": b"x" * (512 * 1024 + 1)}, ValueError),
    ],
)
async def test_bad_arguments_raise_before_anything_is_written(
    client: tickr.Client,
    raw_redis: aredis.Redis,
    namespace: str,
    kwargs: dict[str, Any],
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        await client.enqueue(**kwargs)
    assert await raw_redis.keys(f"{namespace}:*") == []


async def test_max_payload_bytes_is_a_client_setting(url: str, namespace: str) -> None:
    async with tickr.Client(url, namespace=namespace, max_payload_bytes=100) as small:
        with pytest.raises(ValueError, match="over the limit of 100"):
            await small.enqueue("t", "x" * 200)
    with pytest.raises(ValueError, match="max_payload_bytes"):
        tickr.Client(url, max_payload_bytes=0)


async def test_get_task_of_an_unknown_id_raises_task_not_found(client: tickr.Client) -> None:
    with pytest.raises(tickr.TaskNotFound):
        await client.get_task("nope")


async def test_cancel_deletes_waiting_tasks(client: tickr.Client) -> None:
    pending = await client.enqueue("t")
    scheduled = await client.enqueue("t", delay=60)
    for info in (pending, scheduled):
        assert await client.cancel(info.id) is True
        with pytest.raises(tickr.TaskNotFound):
            await client.get_task(info.id)
    assert await client.cancel("never-existed") is False, "nothing to cancel is no error"


async def test_cancelled_pending_task_never_runs(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    ran: list[str] = []

    async def handler(task: tickr.Task) -> None:
        ran.append(task.id)

    doomed = await client.enqueue("t")
    await client.cancel(doomed.id)
    kept = await client.enqueue("t", retention=60)
    async with running_server(handler):
        await client.result(kept.id, timeout=10)
    assert ran == [kept.id]


async def test_result_waits_for_completion(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    info = await client.enqueue("add", [2, 3], retention=60, delay=0.2)

    async def add(task: tickr.Task) -> int:
        return int(sum(task.payload))

    waiter = asyncio.create_task(client.result(info.id, timeout=10))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    async with running_server(add):
        assert await waiter == 5
        assert await client.result(info.id) == 5, "a completed result can be read again"
    stored = await client.get_task(info.id)
    assert stored.state == "completed" and stored.result == 5 and stored.completed_at is not None


async def test_result_raises_task_failed_for_archived_tasks(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    info = await client.enqueue("t", retention=60, max_retry=0)

    async def broken(task: tickr.Task) -> None:
        raise RuntimeError("disk on fire")

    async with running_server(broken):
        with pytest.raises(tickr.TaskFailed, match="disk on fire") as caught:
            await client.result(info.id, timeout=10)
    assert caught.value.last_error == "RuntimeError: disk on fire"


async def test_result_times_out_and_reports_missing_tasks(client: tickr.Client) -> None:
    info = await client.enqueue("t", retention=60)
    with pytest.raises(TimeoutError):
        await client.result(info.id, timeout=0.2)
    with pytest.raises(tickr.TaskNotFound):
        await client.result("missing", timeout=1)


async def test_result_of_a_task_cancelled_while_waited_on_raises_task_not_found(
    client: tickr.Client,
) -> None:
    info = await client.enqueue("t", delay=60, retention=60)
    waiter = asyncio.create_task(client.result(info.id, timeout=10))
    await asyncio.sleep(0.1)
    await client.cancel(info.id)
    with pytest.raises(tickr.TaskNotFound):
        await waiter


async def test_url_from_the_environment(
    url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TICKR_REDIS_URL", url)
    async with tickr.Client(namespace=namespace) as client:
        info = await client.enqueue("t")
        assert (await client.get_task(info.id)).id == info.id


async def test_a_given_redis_client_is_used_and_not_closed(
    raw_redis: aredis.Redis, namespace: str
) -> None:
    async with tickr.Client(redis=raw_redis, namespace=namespace) as client:
        await client.enqueue("t")
    assert await raw_redis.ping()


async def test_redis_down_raises_redis_unavailable(namespace: str) -> None:
    async with tickr.Client("redis://127.0.0.1:1/0", namespace=namespace) as client:
        with pytest.raises(tickr.RedisUnavailable):
            await client.enqueue("t")
        with pytest.raises(ConnectionError):
            await client.get_task("x")


@pytest.mark.single_redis
async def test_wait_replicas_without_replicas_raises_redis_unavailable(
    url: str, namespace: str
) -> None:
    async with tickr.Client(url, namespace=namespace, wait_replicas=1, wait_timeout=0.05) as client:
        with pytest.raises(tickr.RedisUnavailable, match="0 of 1 replicas confirmed"):
            await client.enqueue("t", task_id="lonely")
        with pytest.raises(tickr.RedisUnavailable, match="retry with the same task_id"):
            await client.enqueue_many([tickr.TaskSpec("t", n) for n in range(3)])
        # The task was stored all the same: a retry with its id says so.
        async with tickr.Client(url, namespace=namespace) as plain:
            with pytest.raises(tickr.TaskIDConflict):
                await plain.enqueue("t", task_id="lonely")


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"wait_replicas": -1}, ValueError),
        ({"wait_replicas": "1"}, TypeError),
        ({"wait_replicas": True}, TypeError),
        ({"wait_timeout": 0}, ValueError),
        ({"wait_timeout": float("nan")}, ValueError),
        ({"wait_timeout": "1"}, TypeError),
    ],
)
def test_wait_settings_are_checked(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        tickr.Client("redis://127.0.0.1:1/0", **options)
