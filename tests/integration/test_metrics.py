"""Prometheus metrics: counted where events happen, queue gauges read cheaply from Redis."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import prometheus_client
import pytest
import redis.asyncio as aredis
from prometheus_client.parser import text_string_to_metric_families

import tickr
import tickr.metrics
from tests.conftest import ServerFactory
from tests.helpers import FAST_RETRY, eventually
from tests.helpers.processes import WorkerProcess
from tests.integration.test_recovery import FAST, take_as_ghost

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def total(found: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, have), v in found.items() if n == name and wanted <= set(have))


@pytest.fixture
def registry() -> Iterator[prometheus_client.CollectorRegistry]:
    registry = prometheus_client.CollectorRegistry()
    metrics = tickr.metrics.install(registry)
    yield registry
    tickr.metrics.uninstall(metrics)


def scrape(registry: prometheus_client.CollectorRegistry) -> Samples:
    return samples(prometheus_client.generate_latest(registry).decode())


async def test_attempts_are_counted_by_outcome_with_bounded_labels(
    client: tickr.Client,
    running_server: ServerFactory,
    registry: prometheus_client.CollectorRegistry,
) -> None:
    mux = tickr.ServeMux()

    @mux.handle("ok")
    async def ok(task: tickr.Task) -> None:
        await asyncio.sleep(0.01)

    @mux.handle("bad")
    async def bad(task: tickr.Task) -> None:
        raise ValueError("no")

    @mux.handle("report:")
    async def report(task: tickr.Task) -> None:
        return None

    async with running_server(mux, retry_delay=FAST_RETRY):
        await client.enqueue_many([tickr.TaskSpec("ok", n) for n in range(4)])
        await client.enqueue("bad", max_retry=1)
        await client.enqueue("report:daily")
        await client.enqueue("nobody-handles-this")
        await eventually(
            _holds(lambda: total(scrape(registry), "tickr_tasks_processed_total") == 8)
        )
        during = scrape(registry)
    found = scrape(registry)
    processed = "tickr_tasks_processed_total"
    assert value(found, processed, queue="default", type="ok", outcome="completed") == 4
    assert value(found, processed, queue="default", type="bad", outcome="retried") == 1
    assert value(found, processed, queue="default", type="bad", outcome="failed") == 1
    assert value(found, processed, queue="default", type="report:", outcome="completed") == 1
    assert value(found, processed, queue="default", type="_other", outcome="archived") == 1
    assert total(found, processed) == 8
    ran = total(found, "tickr_task_duration_seconds_count")
    assert ran == 7, "every attempt whose handler ran; not the one without a handler"
    assert value(found, "tickr_task_duration_seconds_count", queue="default", type="ok") == 4
    assert value(found, "tickr_task_duration_seconds_sum", queue="default", type="ok") >= 0.04
    assert value(found, "tickr_task_wait_seconds_count", queue="default") == 7
    enqueued = "tickr_tasks_enqueued_total"
    assert value(found, enqueued, queue="default", type="ok") == 4
    assert value(found, enqueued, queue="default", type="_other") == 1, "unregistered"
    assert total(found, enqueued) == 7
    assert not any("nobody" in str(key) for key in found), "an unknown type is never a label"
    [server_id] = {dict(labels)["server"] for (name, labels) in during if name == "tickr_workers"}
    workers = value(during, "tickr_workers", server=server_id, state="busy") + value(
        during, "tickr_workers", server=server_id, state="idle"
    )
    assert workers == 10, "the default concurrency"
    assert ("tickr_event_loop_lag_seconds", (("server", server_id),)) in during
    assert not any(name == "tickr_workers" for (name, _) in found), "the server stopped"


async def test_a_retry_waits_from_its_due_time_not_from_its_enqueue(
    client: tickr.Client,
    running_server: ServerFactory,
    registry: prometheus_client.CollectorRegistry,
) -> None:
    async def flaky(task: tickr.Task) -> None:
        if task.retry_count == 0:
            raise ValueError("once")

    await client.enqueue("t", delay=0.3, retention=60)
    async with running_server(flaky, retry_delay=tickr.constant_delay(0.4)):
        await eventually(
            _holds(lambda: total(scrape(registry), "tickr_tasks_processed_total") == 2)
        )
    found = scrape(registry)
    assert value(found, "tickr_task_wait_seconds_count", queue="default") == 2
    waited = value(found, "tickr_task_wait_seconds_sum", queue="default")
    assert waited < 0.6, f"neither the delay nor the retry delay counts as waiting: {waited}"


def _holds(predicate: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return predicate()

    return check


@pytest.fixture
async def backlog_client(url: str, namespace: str) -> AsyncIterator[tickr.Client]:
    async with tickr.Client(url, namespace=namespace) as client:
        yield client


async def _commands(raw: aredis.Redis) -> int:
    stats = await raw.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


@pytest.mark.single_redis  # counts the commands of one Redis
async def test_a_scrape_of_the_queues_costs_the_same_whatever_the_backlog(
    client: tickr.Client, url: str, namespace: str, raw_redis: aredis.Redis
) -> None:
    collector = tickr.metrics.QueueCollector(
        url, namespace=namespace, queues=["default", "other"], cache_seconds=0
    )
    registry = prometheus_client.CollectorRegistry()
    registry.register(collector)
    try:
        await client.enqueue("t", queue="other")
        costs = []
        for backlog in (10, 5_000):
            await client.enqueue_many([tickr.TaskSpec("t", n) for n in range(backlog)])
            await asyncio.to_thread(scrape, registry)  # scripts loaded, connections open
            await raw_redis.config_resetstat()
            found = await asyncio.to_thread(scrape, registry)
            costs.append(await _commands(raw_redis))
            assert value(found, "tickr_queue_size", queue="default", state="pending") >= backlog
        assert costs[0] == costs[1], f"commands per scrape: {costs}"
        assert costs[0] <= 20 * 2, "a few commands per queue (script calls count their own)"
        assert value(found, "tickr_queue_size", queue="other", state="pending") == 1
        assert value(found, "tickr_queue_paused", queue="default") == 0
        assert value(found, "tickr_queue_latency_seconds", queue="default") >= 0
        assert value(found, "tickr_queue_collector_up") == 1
    finally:
        await asyncio.to_thread(collector.close)


async def test_scrapes_within_the_cache_read_redis_once(
    client: tickr.Client, url: str, namespace: str
) -> None:
    collector = tickr.metrics.QueueCollector(url, namespace=namespace, cache_seconds=60)
    registry = prometheus_client.CollectorRegistry()
    registry.register(collector)
    await client.enqueue("t")
    try:
        first = await asyncio.to_thread(scrape, registry)
        await client.enqueue("t")
        second = await asyncio.to_thread(scrape, registry)
        assert collector.reads == 1
        assert first == second, "served from the cache"
        assert value(first, "tickr_queue_size", queue="default", state="pending") == 1
    finally:
        await asyncio.to_thread(collector.close)


def test_an_unreachable_redis_is_reported_not_raised() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    collector = tickr.metrics.QueueCollector(f"redis://127.0.0.1:{port}/0", timeout=5)
    registry = prometheus_client.CollectorRegistry()
    registry.register(collector)
    try:
        found = scrape(registry)
    finally:
        collector.close()
    assert value(found, "tickr_queue_collector_up") == 0
    assert not any(name == "tickr_queue_size" for (name, _) in found)


def test_installing_twice_gives_the_same_metrics_and_uninstall_stops_counting() -> None:
    registry = prometheus_client.CollectorRegistry()
    metrics = tickr.metrics.install(registry, task_types=["known"])
    assert tickr.metrics.install(registry, task_types=["known"]) is metrics
    metrics.task_enqueued("q", "known")
    metrics.task_enqueued("q", "unknown")
    found = scrape(registry)
    assert value(found, "tickr_tasks_enqueued_total", queue="q", type="known") == 1
    assert value(found, "tickr_tasks_enqueued_total", queue="q", type="_other") == 1
    tickr.metrics.uninstall(metrics)
    assert scrape(registry) == {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


async def test_a_worker_process_serves_what_it_ran_on_its_metrics_port(
    client: tickr.Client, url: str, namespace: str
) -> None:
    port = _free_port()
    worker = WorkerProcess.__new__(WorkerProcess)
    worker._start(
        [
            sys.executable, "-m", "tickr", "worker", "tests.helpers.cli_app:mux",
            "--url", url, "--namespace", namespace, "--metrics-port", str(port),
        ]
    )  # fmt: skip
    try:
        worker.wait_for_line(f"metrics on http://127.0.0.1:{port}/metrics")
        infos = [await client.enqueue("echo", n, retention=60) for n in range(5)]
        await client.enqueue("fail", max_retry=0)
        for info in infos:
            assert await client.result(info.id, timeout=10) == info.payload

        async def all_counted() -> bool:
            found = samples(await asyncio.to_thread(_get, port))
            return total(found, "tickr_tasks_processed_total") == 6

        await eventually(all_counted)
        found = samples(await asyncio.to_thread(_get, port))
    finally:
        worker.stop()
    processed = "tickr_tasks_processed_total"
    assert value(found, processed, queue="default", type="echo", outcome="completed") == 5
    assert value(found, processed, queue="default", type="fail", outcome="failed") == 1
    assert total(found, "tickr_task_duration_seconds_count") == 6
    assert value(found, "tickr_queue_collector_up") == 1
    assert ("tickr_queue_size", (("queue", "default"), ("state", "archived"))) in found


async def test_a_blocked_loop_shows_in_the_lag_gauge_after_the_block(
    client: tickr.Client,
    running_server: ServerFactory,
    registry: prometheus_client.CollectorRegistry,
) -> None:
    async def blocking(task: tickr.Task) -> None:
        time.sleep(0.7)  # noqa: ASYNC251 - blocking the loop on purpose

    async with running_server(blocking):
        info = await client.enqueue("t", retention=60)
        await client.result(info.id, timeout=10)
        await asyncio.sleep(0.6)  # the block ended a while ago
        found = scrape(registry)
    [lag] = [v for (name, _), v in found.items() if name == "tickr_event_loop_lag_seconds"]
    assert lag >= 0.7 - 0.5, "at least the block's length less the timer's period"


async def test_a_closed_collector_reports_down_and_reads_nothing(
    client: tickr.Client, url: str, namespace: str
) -> None:
    collector = tickr.metrics.QueueCollector(url, namespace=namespace, cache_seconds=0)
    registry = prometheus_client.CollectorRegistry()
    registry.register(collector)
    await client.enqueue("t")
    assert value(await asyncio.to_thread(scrape, registry), "tickr_queue_collector_up") == 1
    await asyncio.to_thread(collector.close)
    found = await asyncio.to_thread(scrape, registry)
    assert value(found, "tickr_queue_collector_up") == 0
    assert collector.reads == 1


async def test_a_task_taken_back_from_a_dead_server_counts_as_lost_once(
    client: tickr.Client,
    raw_redis: aredis.Redis,
    namespace: str,
    running_server: ServerFactory,
    registry: prometheus_client.CollectorRegistry,
) -> None:
    info = await client.enqueue("t", retention=60)
    assert await take_as_ghost(raw_redis, namespace, 1) == [info.id]

    async def handler(task: tickr.Task) -> None:
        return None

    async with running_server(handler, **FAST):
        await client.result(info.id, timeout=10)
        await eventually(
            _holds(lambda: total(scrape(registry), "tickr_tasks_processed_total") == 2)
        )
    found = scrape(registry)
    processed = "tickr_tasks_processed_total"
    assert value(found, processed, queue="default", type="_other", outcome="lost") == 1
    assert value(found, processed, queue="default", type="_other", outcome="completed") == 1


def test_installing_again_with_other_settings_is_refused() -> None:
    registry = prometheus_client.CollectorRegistry()
    metrics = tickr.metrics.install(registry, task_types=["a"])
    try:
        assert tickr.metrics.install(registry, task_types=["a"]) is metrics
        with pytest.raises(ValueError, match="other settings"):
            tickr.metrics.install(registry, task_types=["b"])
    finally:
        tickr.metrics.uninstall(metrics)
