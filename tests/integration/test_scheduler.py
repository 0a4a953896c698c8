"""The Scheduler against a real Redis, with time driven by a ManualClock."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

import tickr
from tests.conftest import ServerFactory
from tests.helpers import eventually
from tickr.testing import ManualClock

START = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC).timestamp() + 0.5
"""A fixed instant: behind the real clock, as an injected clock may be."""
YEARS_AHEAD = (int(time.time()) // 60 + 5 * 525_600) * 60 + 0.5
"""Five years ahead of the real clock, on a whole minute (and half a second)."""


@contextlib.asynccontextmanager
async def scheduling(scheduler: tickr.Scheduler) -> AsyncIterator[tickr.Scheduler]:
    serving = asyncio.create_task(scheduler.serve())
    await scheduler.wait_ready()
    try:
        yield scheduler
    finally:
        await scheduler.shutdown()
        await serving


async def pending(url: str, namespace: str, queue: str = "default") -> int:
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        try:
            info = await inspector.queue_info(queue)
        except tickr.QueueNotFound:
            return 0
    return info.pending + info.scheduled


async def reaches(url: str, namespace: str, count: int, queue: str = "default") -> None:
    async def check() -> bool:
        return await pending(url, namespace, queue) >= count

    await eventually(check, timeout=10)
    await asyncio.sleep(0.05)
    assert await pending(url, namespace, queue) == count


def make(url: str, namespace: str, clock: ManualClock, **options: Any) -> tickr.Scheduler:
    return tickr.Scheduler(url, namespace=namespace, clock=clock, **options)


def test_registration_validates_everything() -> None:
    scheduler = tickr.Scheduler(timezone="Europe/Berlin")
    assert scheduler.register("*/5 * * * *", "report:build", {"kind": "daily"}, queue="reports")
    with pytest.raises(ValueError, match="cron spec"):
        scheduler.register("* * *", "t")
    with pytest.raises(ValueError, match="timezone"):
        scheduler.register("@daily", "t", timezone="Nowhere/Land")
    with pytest.raises(ValueError, match="duration"):
        scheduler.register("@every soon", "t")
    with pytest.raises(ValueError, match="'at' cannot"):
        scheduler.register("@daily", "t", at=datetime.now(UTC))
    with pytest.raises(ValueError, match="'task_id' cannot"):
        scheduler.register("@daily", "t", task_id="x")
    with pytest.raises(TypeError):
        scheduler.register("@daily", "t", not_an_option=1)
    with pytest.raises(ValueError, match="negative"):
        scheduler.register("@daily", "t", max_retry=-1)
    with pytest.raises(ValueError, match="timezone"):
        tickr.Scheduler(timezone="Moon/Base")
    with pytest.raises(ValueError, match="catch_up"):
        tickr.Scheduler(catch_up="sometimes")  # type: ignore[arg-type]


def test_entry_ids_are_stable_and_explicit_ids_are_kept() -> None:
    first, second = tickr.Scheduler(), tickr.Scheduler()
    assert first.register("@hourly", "t", {"a": 1, "b": 2}) == second.register(
        "@hourly", "t", {"b": 2, "a": 1}
    )
    assert first.register("@hourly", "t", {"a": 2}) != first.register("@hourly", "t", {"a": 1})
    assert first.register("@daily", "t", entry_id="nightly") == "nightly"
    assert first.unregister("nightly") and not first.unregister("nightly")


async def test_each_tick_is_enqueued_once(url: str, namespace: str) -> None:
    clock = ManualClock(START)
    scheduler = make(url, namespace, clock)
    scheduler.register("@every 10s", "tick")
    async with scheduling(scheduler):
        await clock.advance(10)
        await reaches(url, namespace, 1)
        await clock.advance(10)
        await reaches(url, namespace, 2)
        await clock.advance(5)
        await asyncio.sleep(0.1)
        assert await pending(url, namespace) == 2, "no tick between two ticks"


async def test_a_new_entry_does_not_run_ticks_from_before_it_started(
    url: str, namespace: str
) -> None:
    clock = ManualClock(START)
    scheduler = make(url, namespace, clock)
    scheduler.register("@every 1s", "tick")
    async with scheduling(scheduler):
        await asyncio.sleep(0.2)
        assert await pending(url, namespace) == 0


async def test_several_schedulers_enqueue_each_tick_once(url: str, namespace: str) -> None:
    clock = ManualClock(START)
    schedulers = [make(url, namespace, clock) for _ in range(3)]
    for scheduler in schedulers:
        scheduler.register("@every 10s", "tick", queue="shared")
    async with scheduling(schedulers[0]), scheduling(schedulers[1]), scheduling(schedulers[2]):
        for expected in range(1, 6):
            await clock.advance(10)
            await reaches(url, namespace, expected, queue="shared")


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("latest", 1), ("none", 0), ("all", 5)],
)
async def test_missed_ticks_follow_the_catch_up_policy(
    url: str, namespace: str, policy: str, expected: int
) -> None:
    clock = ManualClock(START)
    first = make(url, namespace, clock)
    first.register("@every 60s", "tick", entry_id="minutely")
    async with scheduling(first):
        await clock.advance(60)
        await reaches(url, namespace, 1)
    # Every scheduler is down for five ticks...
    await clock.advance(5 * 60 + 10)
    later = make(url, namespace, clock, catch_up=policy)
    later.register("@every 60s", "tick", entry_id="minutely")
    async with scheduling(later):
        await asyncio.sleep(0.2)
        assert await pending(url, namespace) == 1 + expected


async def test_catch_up_all_is_bounded(url: str, namespace: str) -> None:
    clock = ManualClock(START)
    first = make(url, namespace, clock)
    first.register("@every 1s", "tick", entry_id="fast")
    async with scheduling(first):
        await clock.advance(1)
        await reaches(url, namespace, 1)
    await clock.advance(50)
    later = make(url, namespace, clock, catch_up="all", max_catch_up=7)
    later.register("@every 1s", "tick", entry_id="fast")
    async with scheduling(later):
        await reaches(url, namespace, 8)


async def test_the_provider_adds_changes_and_removes_entries(url: str, namespace: str) -> None:
    clock = ManualClock(START)
    config = [tickr.PeriodicTask("@every 10s", "a", entry_id="a", queue="a")]

    async def provider() -> list[tickr.PeriodicTask]:
        return list(config)

    scheduler = make(url, namespace, clock, config_provider=provider, config_interval=30)
    async with scheduling(scheduler):
        assert scheduler.entry_ids == ["a"]
        await clock.advance(10)
        await reaches(url, namespace, 1, queue="a")
        config.append(tickr.PeriodicTask("@every 10s", "b", entry_id="b", queue="b"))
        await clock.advance(10)
        await reaches(url, namespace, 2, queue="a")
        await clock.advance(10)  # the provider is read again at +30 s
        await eventually(lambda: _ids(scheduler, ["a", "b"]))
        await clock.advance(10)
        await reaches(url, namespace, 1, queue="b")
        await reaches(url, namespace, 4, queue="a")
        config.pop(0)
        for _ in range(3):  # the provider is read again at +60 s
            await clock.advance(10)
            await asyncio.sleep(0.05)
        await eventually(lambda: _ids(scheduler, ["b"]))
        a_count = await pending(url, namespace, "a")
        await clock.advance(30)
        await asyncio.sleep(0.1)
        assert await pending(url, namespace, "a") == a_count, "a removed entry stops"


async def _ids(scheduler: tickr.Scheduler, ids: list[str]) -> bool:
    return scheduler.entry_ids == ids


@pytest.mark.parametrize("start", [START, YEARS_AHEAD], ids=["clock-behind", "clock-ahead"])
async def test_entries_and_their_history_are_visible(
    url: str, namespace: str, start: float
) -> None:
    clock = ManualClock(start)
    scheduler = make(url, namespace, clock, heartbeat_interval=1)
    entry_id = scheduler.register("@every 10s", "report", {"n": 1}, queue="reports")
    async with scheduling(scheduler), tickr.Inspector(url, namespace=namespace) as inspector:
        await clock.advance(10)
        await reaches(url, namespace, 1, queue="reports")
        await clock.advance(1)

        async def listed() -> bool:
            entries = await inspector.scheduler_entries()
            return bool(entries) and entries[0].prev_run_at is not None

        await eventually(listed)
        [entry] = await inspector.scheduler_entries()
        assert (entry.id, entry.spec, entry.type, entry.queue) == (
            entry_id,
            "@every 10s",
            "report",
            "reports",
        )
        assert entry.payload == {"n": 1}
        assert entry.schedulers == (scheduler.id,)
        assert entry.prev_run_at == datetime.fromtimestamp(start - 0.5 + 10, UTC)
        assert entry.next_run_at == datetime.fromtimestamp(start - 0.5 + 20, UTC)
        [event] = await inspector.scheduler_history(entry_id)
        assert (event.tick_at, event.outcome) == (entry.prev_run_at, "pending")
        task = await inspector.get_task(event.task_id, queue="reports")
        assert (task.type, task.payload) == ("report", {"n": 1})
        with pytest.raises(KeyError):
            await inspector.scheduler_history("unknown")
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        assert await inspector.scheduler_entries() == [], "a stopped scheduler leaves"


async def test_a_tick_that_meets_a_live_unique_task_is_reported(url: str, namespace: str) -> None:
    clock = ManualClock(START)
    reports: list[tuple[str, str]] = []

    def on_error(task: tickr.PeriodicTask, exc: BaseException) -> None:
        reports.append((task.type, type(exc).__name__))

    scheduler = make(url, namespace, clock, error_handler=on_error)
    scheduler.register("@every 10s", "only-one", unique=3600)
    async with scheduling(scheduler):
        await clock.advance(10)
        await reaches(url, namespace, 1)
        await clock.advance(10)
        await eventually(lambda: _has(reports))
    assert reports == [("only-one", "DuplicateTask")]
    assert await pending(url, namespace) == 1


async def _has(items: list[Any]) -> bool:
    return bool(items)


async def test_a_server_can_run_a_scheduler_in_process(
    client: tickr.Client, url: str, namespace: str, running_server: ServerFactory
) -> None:
    clock = ManualClock(START)
    scheduler = make(url, namespace, clock)
    scheduler.register("@every 10s", "tick", entry_id="in-process")
    ran: list[str] = []

    async def handler(task: tickr.Task) -> None:
        ran.append(task.type)

    async with running_server(handler, scheduler=scheduler):
        await scheduler.wait_ready()
        await clock.advance(10)
        await eventually(lambda: _has(ran))
    assert ran == ["tick"]
    with pytest.raises(TypeError, match="Scheduler"):
        tickr.Server(url, scheduler="not a scheduler")  # type: ignore[arg-type]


async def test_the_real_clock_drives_a_scheduler(url: str, namespace: str) -> None:
    scheduler = tickr.Scheduler(url, namespace=namespace)
    scheduler.register("@every 200ms", "tick")
    async with scheduling(scheduler):
        await reaches_at_least(url, namespace, 3)


async def reaches_at_least(url: str, namespace: str, count: int) -> None:
    async def check() -> bool:
        return await pending(url, namespace) >= count

    await eventually(check, timeout=5)


async def test_a_tick_that_failed_while_redis_was_down_is_enqueued_when_it_returns(
    namespace: str,
) -> None:
    from tickr.testing import RedisServer

    with RedisServer() as redis_server:
        clock = ManualClock(START)
        scheduler = make(redis_server.url, namespace, clock)
        scheduler.register("@every 10s", "tick")
        async with scheduling(scheduler):
            redis_server.kill()
            await clock.advance(10)  # the tick fails: Redis is down
            await asyncio.sleep(0.3)
            redis_server.start()
            await clock.advance(1)  # the retry comes one second later
            await reaches(redis_server.url, namespace, 1)


async def test_wait_ready_raises_when_serve_cannot_start(namespace: str) -> None:
    scheduler = tickr.Scheduler("http://not-redis", namespace=namespace)
    serving = asyncio.create_task(scheduler.serve())
    with pytest.raises(RuntimeError, match="before it was ready"):
        await scheduler.wait_ready()
    with pytest.raises(ValueError, match="Redis URL"):
        await serving
    with pytest.raises(ValueError, match="Redis URL"):
        await scheduler.serve()  # not "already serving": it may be tried again


def test_schedulers_agree_on_entry_ids_whatever_their_defaults() -> None:
    from datetime import timedelta

    berlin, utc = tickr.Scheduler(timezone="Europe/Berlin"), tickr.Scheduler(timezone="utc")
    assert berlin.register("@every 30s", "t") == utc.register("@every  30s", "t")
    assert berlin.register("0 9 * * *", "t", timezone="UTC") == utc.register("0  9 * * *", "t")
    assert berlin.register("0 9 * * *", "t") != utc.register("0 9 * * *", "t")
    assert berlin.register("@hourly", "t", timezone="UTC", delay=60) == utc.register(
        "@hourly", "t", delay=timedelta(seconds=60)
    )


async def test_catch_up_all_after_a_very_long_gap_stays_bounded(url: str, namespace: str) -> None:
    clock = ManualClock(START)
    first = make(url, namespace, clock)
    first.register("@every 1s", "tick", entry_id="dense")
    async with scheduling(first):
        await clock.advance(1)
        await reaches(url, namespace, 1)
    await clock.advance(30 * 86400)  # a month of missed ticks
    later = make(url, namespace, clock, catch_up="all", max_catch_up=5)
    later.register("@every 1s", "tick", entry_id="dense")
    async with scheduling(later):
        await reaches(url, namespace, 6)


async def test_a_deleted_queue_still_in_use_is_listed_again(
    client: tickr.Client, url: str, namespace: str, running_server: ServerFactory
) -> None:
    async def handler(task: tickr.Task) -> None:
        return None

    await client.enqueue("t", queue="reused")
    async with (
        tickr.Inspector(url, namespace=namespace) as inspector,
        running_server(handler, queues={"reused": 1}, heartbeat_interval=0.1),
    ):
        await eventually(lambda: _empty(inspector))
        await inspector.delete_queue("reused")

        async def listed() -> bool:
            return "reused" in await inspector.queues()

        await eventually(listed)


async def _empty(inspector: tickr.Inspector) -> bool:
    return (await inspector.queue_info("reused")).size == 0
