"""Flow control across servers: rate limits and concurrency limits held in Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

import tickr
from tests.conftest import ServerFactory
from tests.helpers import eventually

JITTER = 0.02
"""Seconds between a dequeue in Redis and its handler's start, allowed for in the windows."""


def _worst_excess(starts: list[float], limit: int, period: float, burst: int) -> float:
    """The largest count over `burst + limit * t / period` in any window of the starts."""
    ordered = sorted(starts)
    worst = 0.0
    for first in range(len(ordered)):
        for last in range(first, len(ordered)):
            window = ordered[last] - ordered[first] + JITTER
            allowed = burst + limit * window / period
            worst = max(worst, (last - first + 1) - allowed)
    return worst


async def _drained(inspector: tickr.Inspector, queue: str = "default") -> bool:
    info = await inspector.queue_info(queue, memory=False)
    return info.pending + info.active == 0


async def test_a_rate_limit_holds_in_every_window_across_two_servers(
    client: tickr.Client, inspector: tickr.Inspector, running_server: ServerFactory
) -> None:
    await inspector.set_rate_limit("default", 20, 1.0, burst=3)
    starts: list[float] = []

    async def record(task: tickr.Task) -> None:
        starts.append(time.monotonic())

    async with running_server(record, concurrency=10), running_server(record, concurrency=10):
        await client.enqueue_many([tickr.TaskSpec("t", n) for n in range(50)])
        await eventually(lambda: _drained(inspector), timeout=30)
    assert len(starts) == 50
    assert _worst_excess(starts, 20, 1.0, 3) <= 0, "never more than the limit allows"
    span = max(starts) - min(starts)
    assert span >= (50 - 3) / 20 - JITTER, "the limit held the queue back"
    info = await inspector.queue_info("default", memory=False)
    assert info.rate_limit == tickr.RateLimit(20, 1.0, 3)
    assert info.retry == info.archived == 0, "held tasks stay pending: no attempt counted"


async def test_changing_or_clearing_a_rate_limit_applies_at_once(
    client: tickr.Client, inspector: tickr.Inspector, running_server: ServerFactory
) -> None:
    await inspector.set_rate_limit("default", 1, 3600.0)  # one an hour
    starts: list[float] = []

    async def record(task: tickr.Task) -> None:
        starts.append(time.monotonic())

    async with running_server(record, concurrency=5):
        await client.enqueue_many([tickr.TaskSpec("t", n) for n in range(20)])
        await eventually(lambda: _count(starts, 1))
        await asyncio.sleep(0.3)
        assert len(starts) == 1, "the rest waits for the next hour"
        changed = time.monotonic()
        await inspector.set_rate_limit("default", 50, 1.0)
        await eventually(lambda: _count(starts, 6), timeout=5)
        assert starts[5] - changed < 1.0, "the new limit holds within the second"
        await inspector.clear_rate_limit("default")
        await eventually(lambda: _drained(inspector), timeout=10)
    assert (await inspector.queue_info("default", memory=False)).rate_limit is None


async def _count(starts: list[float], count: int) -> bool:
    return len(starts) >= count


async def test_a_concurrency_limit_is_never_exceeded_across_servers(
    client: tickr.Client, inspector: tickr.Inspector, running_server: ServerFactory
) -> None:
    await inspector.set_concurrency_limit("default", 3)
    running = 0
    most = 0

    async def slow(task: tickr.Task) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.05)
        running -= 1

    async with running_server(slow, concurrency=10), running_server(slow, concurrency=10):
        await client.enqueue_many([tickr.TaskSpec("t", n) for n in range(40)])
        await eventually(lambda: _drained(inspector), timeout=30)
    assert most == 3, "the limit was used, and never exceeded"
    assert (await inspector.queue_info("default", memory=False)).concurrency_limit == 3
    await inspector.clear_concurrency_limit("default")
    assert (await inspector.queue_info("default", memory=False)).concurrency_limit is None


async def test_a_limited_queue_does_not_hold_back_the_others(
    client: tickr.Client, inspector: tickr.Inspector, running_server: ServerFactory
) -> None:
    await inspector.set_rate_limit("slow", 1, 3600.0)
    done: list[str] = []

    async def record(task: tickr.Task) -> None:
        done.append(task.queue)

    async with running_server(record, queues={"slow": 1, "fast": 1}, concurrency=4):
        await client.enqueue_many([tickr.TaskSpec("t", n, queue="slow") for n in range(5)])
        await client.enqueue_many([tickr.TaskSpec("t", n, queue="fast") for n in range(30)])
        await eventually(lambda: _drained(inspector, "fast"), timeout=10)
    assert done.count("fast") == 30 and done.count("slow") == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda i: i.set_rate_limit("q", 0), "limit"),
        (lambda i: i.set_rate_limit("q", 5, 0), "period"),
        (lambda i: i.set_rate_limit("q", 5, burst=0), "burst"),
        (lambda i: i.set_concurrency_limit("q", 0), "limit"),
        (lambda i: i.set_concurrency_limit("q", True), "limit"),
    ],
)
async def test_bad_limits_are_refused_before_anything_is_written(
    inspector: tickr.Inspector, call: object, message: str
) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        await call(inspector)  # type: ignore[operator]
    assert "q" not in await inspector.queues()


async def test_a_running_server_grows_and_shrinks_without_stopping_a_task(
    client: tickr.Client, inspector: tickr.Inspector, running_server: ServerFactory
) -> None:
    running = 0
    most = 0
    release = asyncio.Event()

    async def held(task: tickr.Task) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1

    async with running_server(held, concurrency=2) as server:
        await client.enqueue_many([tickr.TaskSpec("t", n) for n in range(12)])
        await eventually(lambda: _value(lambda: running == 2))
        await server.set_concurrency(6)
        await eventually(lambda: _value(lambda: running == 6), timeout=5)
        [info] = await inspector.servers()
        await eventually(lambda: _concurrency(inspector, 6), timeout=5)
        await inspector.set_server_concurrency(server.id, 3)
        await eventually(lambda: _value(lambda: server.concurrency == 3), timeout=1)
        release.set()  # six finish; from now on three at a time
        await eventually(lambda: _drained(inspector), timeout=10)
        assert server.concurrency == 3 and info.id == server.id
    assert most == 6
    assert (await inspector.queue_info("default", memory=False)).processed == 12


async def test_after_shrinking_at_most_the_new_size_runs(
    client: tickr.Client, inspector: tickr.Inspector, running_server: ServerFactory
) -> None:
    running = 0
    most_after = 0
    shrunk = False

    async def short(task: tickr.Task) -> None:
        nonlocal running, most_after
        running += 1
        if shrunk:
            most_after = max(most_after, running)
        await asyncio.sleep(0.02)
        running -= 1

    async with running_server(short, concurrency=8) as server:
        await client.enqueue_many([tickr.TaskSpec("t", n) for n in range(20)])
        await server.set_concurrency(2)
        await eventually(lambda: _value(lambda: running <= 2))
        shrunk = True
        await client.enqueue_many([tickr.TaskSpec("t", n) for n in range(40)])
        await eventually(lambda: _drained(inspector), timeout=10)
    assert 1 <= most_after <= 2


async def test_resizing_an_unknown_server_or_to_a_bad_size_is_refused(
    inspector: tickr.Inspector, running_server: ServerFactory
) -> None:
    with pytest.raises(tickr.ServerNotFound):
        await inspector.set_server_concurrency("no-such-server", 4)

    async def noop(task: tickr.Task) -> None:
        return None

    async with running_server(noop) as server:
        with pytest.raises(ValueError, match="concurrency"):
            await inspector.set_server_concurrency(server.id, 0)
        with pytest.raises(TypeError):
            await server.set_concurrency(2.5)  # type: ignore[arg-type]


async def _value(check: Callable[[], bool]) -> bool:
    return check()


async def _concurrency(inspector: tickr.Inspector, size: int) -> bool:
    return [server.concurrency for server in await inspector.servers()] == [size]


async def test_autoscale_grows_under_a_backlog_and_shrinks_when_quiet(
    client: tickr.Client, inspector: tickr.Inspector, running_server: ServerFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level("INFO", logger="tickr.server.autoscale")

    async def io_bound(task: tickr.Task) -> None:
        await asyncio.sleep(0.2)

    settings = tickr.Autoscale(min=2, max=16, target_latency=0.3, quiet=1.0)
    async with running_server(io_bound, concurrency=2, autoscale=settings) as server:
        began = time.monotonic()
        await client.enqueue_many([tickr.TaskSpec("t", n) for n in range(300)])
        await eventually(lambda: _value(lambda: server.concurrency > 2), timeout=5)
        grew_after = time.monotonic() - began
        await eventually(lambda: _drained(inspector), timeout=30)
        peak = server.concurrency
        await eventually(lambda: _value(lambda: server.concurrency < peak), timeout=10)
    assert grew_after < 2.5, "it reacts within two seconds"
    assert 2 < peak <= 16
    assert any("autoscale: concurrency 2 -> 3" in message for message in caplog.messages)


async def test_metrics_count_the_time_a_limit_held_a_queue(
    client: tickr.Client, inspector: tickr.Inspector, running_server: ServerFactory
) -> None:
    import prometheus_client

    import tickr.metrics

    registry = prometheus_client.CollectorRegistry()
    metrics = tickr.metrics.install(registry)
    try:
        await inspector.set_rate_limit("default", 10, 1.0)

        async def noop(task: tickr.Task) -> None:
            return None

        async with running_server(noop):
            await client.enqueue_many([tickr.TaskSpec("t", n) for n in range(6)])
            await eventually(lambda: _drained(inspector), timeout=10)
        held = registry.get_sample_value(
            "tickr_queue_limited_seconds_total", {"queue": "default", "limit": "rate"}
        )
        assert held is not None and 0.3 < held < 1.5, "five gaps of 0.1 s"
    finally:
        tickr.metrics.uninstall(metrics)


async def test_resizing_after_serving_leaves_no_worker_behind(
    inspector: tickr.Inspector, running_server: ServerFactory
) -> None:
    async def noop(task: tickr.Task) -> None:
        return None

    async with running_server(noop, concurrency=2) as server:
        pass
    await server.set_concurrency(6)
    workers = [t for t in asyncio.all_tasks() if t.get_name().startswith("tickr-worker")]
    assert workers == [] and server.concurrency == 6


async def test_a_stopped_servers_wait_does_not_take_the_slots_wake_up(
    client: tickr.Client, inspector: tickr.Inspector, running_server: ServerFactory
) -> None:
    await inspector.set_concurrency_limit("default", 1)
    release = asyncio.Event()
    started: list[float] = []

    async def held(task: tickr.Task) -> None:
        started.append(time.monotonic())
        if task.payload == 0:
            await release.wait()

    await client.enqueue("t", 0)
    async with running_server(held) as first:
        await eventually(lambda: _value(lambda: len(started) == 1))
        await client.enqueue_many([tickr.TaskSpec("t", n) for n in (1, 2)])
        async with running_server(held, queues={"default": 1}):
            async with running_server(held):
                await asyncio.sleep(0.3)  # both wait for the slot
            freed = time.monotonic()
            release.set()
            await eventually(lambda: _value(lambda: len(started) >= 2), timeout=5)
            assert started[1] - freed < 1.0, "a live waiter got the slot at once"
        del first
