"""OpenTelemetry traces: a producer span at enqueue, a consumer span per attempt."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import tickr
import tickr.tracing
from tests.conftest import ServerFactory
from tests.helpers import FAST_RETRY, eventually
from tests.helpers.processes import WorkerProcess
from tests.integration.test_scheduler import START, make, scheduling
from tickr.testing import ManualClock


class Traced:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("test")

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if name is None or s.name == name]


@pytest.fixture
def traced() -> Iterator[Traced]:
    setup = Traced()
    tickr.tracing.enable(tracer_provider=setup.provider)
    yield setup
    tickr.tracing.enable()  # back to the global provider: no SDK, nothing recorded


def _holds(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def holds() -> bool:
        return check()

    return holds


async def test_an_enqueue_makes_a_producer_span_in_the_callers_trace(
    client: tickr.Client, traced: Traced
) -> None:
    with traced.tracer.start_as_current_span("request") as request:
        info = await client.enqueue("email:send", {"to": "a"})
    [send] = traced.spans("send default")
    assert send.kind is SpanKind.PRODUCER
    assert send.parent is not None and send.parent.span_id == request.get_span_context().span_id
    assert send.context.trace_id == request.get_span_context().trace_id
    attributes = dict(send.attributes or {})
    assert attributes["messaging.system"] == "tickr"
    assert attributes["messaging.destination.name"] == "default"
    assert attributes["messaging.operation.type"] == "send"
    assert attributes["messaging.message.id"] == info.id
    traceparent = info.headers["traceparent"]
    assert traceparent.startswith(f"00-{send.context.trace_id:032x}-{send.context.span_id:016x}-")
    stored = await client.get_task(info.id)
    assert stored.headers["traceparent"] == traceparent


async def test_each_attempt_runs_in_a_consumer_span_linked_to_and_child_of_the_producer(
    client: tickr.Client, running_server: ServerFactory, traced: Traced
) -> None:
    inside: list[int] = []

    async def flaky(task: tickr.Task) -> str:
        with traced.tracer.start_as_current_span("inside") as span:
            inside.append(span.get_span_context().span_id)
        if task.retry_count == 0:
            raise ValueError("first attempt fails")
        return "ok"

    info = await client.enqueue("t", retention=60)
    async with running_server(flaky, retry_delay=FAST_RETRY):
        assert await client.result(info.id, timeout=10) == "ok"
        await eventually(_holds(lambda: len(traced.spans("process default")) == 2))
    [send] = traced.spans("send default")
    first, second = sorted(traced.spans("process default"), key=lambda s: s.start_time or 0)
    for span, retry in ((first, 0), (second, 1)):
        assert span.kind is SpanKind.CONSUMER
        assert [link.context.span_id for link in span.links] == [send.context.span_id]
        assert span.parent is not None and span.parent.span_id == send.context.span_id
        assert span.context.trace_id == send.context.trace_id
        attributes = dict(span.attributes or {})
        assert attributes["messaging.message.id"] == info.id
        assert attributes["messaging.operation.type"] == "process"
        assert attributes["tickr.task.retry_count"] == retry
    assert dict(first.attributes or {})["tickr.task.outcome"] == "retried"
    assert first.status.status_code is StatusCode.ERROR
    assert [event.name for event in first.events] == ["exception"]
    assert dict(first.events[0].attributes or {})["exception.type"] == "ValueError"
    assert dict(second.attributes or {})["tickr.task.outcome"] == "completed"
    assert second.status.status_code is StatusCode.UNSET
    handler_spans = traced.spans("inside")
    assert [s.context.span_id for s in handler_spans] == inside
    assert [s.parent.span_id for s in handler_spans if s.parent] == [
        first.context.span_id,
        second.context.span_id,
    ], "the handler's spans are children of its attempt's span"


async def test_a_task_that_waited_long_starts_its_own_trace_but_keeps_the_link(
    client: tickr.Client, running_server: ServerFactory, traced: Traced
) -> None:
    tickr.tracing.enable(tracer_provider=traced.provider, child_within=0)

    async def handler(task: tickr.Task) -> None:
        await asyncio.sleep(0)

    info = await client.enqueue("t", retention=60)
    await asyncio.sleep(0.01)
    async with running_server(handler):
        await client.result(info.id, timeout=10)
        await eventually(_holds(lambda: len(traced.spans("process default")) == 1))
    [send] = traced.spans("send default")
    [process] = traced.spans("process default")
    assert process.parent is None
    assert process.context.trace_id != send.context.trace_id
    assert [link.context.span_id for link in process.links] == [send.context.span_id]


async def test_a_batch_is_one_span_per_queue_and_every_task_carries_it(
    client: tickr.Client, traced: Traced
) -> None:
    results = await client.enqueue_many(
        [tickr.TaskSpec("t", n) for n in range(3)] + [tickr.TaskSpec("t", queue="other")]
    )
    infos = [info for info in results if isinstance(info, tickr.TaskInfo)]
    [default] = traced.spans("send default")
    [other] = traced.spans("send other")
    assert dict(default.attributes or {})["messaging.batch.message_count"] == 3
    assert "messaging.batch.message_count" not in dict(other.attributes or {})
    parents = {info.headers["traceparent"].split("-")[2] for info in infos[:3]}
    assert parents == {f"{default.context.span_id:016x}"}
    assert infos[3].headers["traceparent"].split("-")[2] == f"{other.context.span_id:016x}"


async def test_given_headers_win_and_a_failed_enqueue_marks_its_span(
    client: tickr.Client, traced: Traced
) -> None:
    mine = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    info = await client.enqueue("t", headers={"traceparent": mine, "x": "y"})
    assert info.headers["traceparent"] == mine and info.headers["x"] == "y"
    await client.enqueue("t", task_id="same")
    with pytest.raises(tickr.TaskIDConflict):
        await client.enqueue("t", task_id="same")
    failed = traced.spans("send default")[-1]
    assert failed.status.status_code is StatusCode.ERROR
    with pytest.raises(TypeError):
        await client.enqueue("t", headers=["not", "a", "mapping"])  # type: ignore[arg-type]


async def test_without_an_sdk_nothing_is_added(client: tickr.Client) -> None:
    info = await client.enqueue("t")
    assert info.headers == {}, "the global provider has no SDK in the test process"


async def test_a_cron_tick_makes_its_producer_span_in_the_scheduler(
    url: str, namespace: str, traced: Traced, running_server: ServerFactory
) -> None:
    ran: list[tickr.Task] = []

    async def handler(task: tickr.Task) -> None:
        ran.append(task)

    clock = ManualClock(START)
    scheduler = make(url, namespace, clock)
    scheduler.register("@every 10s", "tick", headers={"source": "cron"})
    async with running_server(handler), scheduling(scheduler):
        await clock.advance(10)
        await eventually(_holds(lambda: bool(ran)))
        await eventually(_holds(lambda: bool(traced.spans("process default"))))
    [send] = traced.spans("send default")
    [process] = traced.spans("process default")
    assert ran[0].headers["source"] == "cron"
    assert [link.context.span_id for link in process.links] == [send.context.span_id]


async def test_a_trace_crosses_from_this_process_to_a_worker_process(
    client: tickr.Client, url: str, namespace: str, traced: Traced, tmp_path: Path
) -> None:
    spans_file = tmp_path / "spans.jsonl"
    worker = WorkerProcess.__new__(WorkerProcess)
    worker._start(
        [sys.executable, "-m", "tests.helpers.traced_worker", url, namespace, str(spans_file)]
    )
    try:
        worker.wait_ready()
        with traced.tracer.start_as_current_span("request") as request:
            work = await client.enqueue("work", 7, retention=60)
            flaky = await client.enqueue("flaky", retention=60)
        assert await client.result(work.id, timeout=10) == 7
        await client.result(flaky.id, timeout=10)

        def exported() -> list[dict[str, Any]]:
            if not spans_file.exists():
                return []
            return [json.loads(line) for line in spans_file.read_text().splitlines()]

        await eventually(
            _holds(lambda: sum(s["name"] == "process default" for s in exported()) == 3)
        )
    finally:
        worker.signal()
        worker.wait()
        worker.stop()
    spans = exported()
    trace_id = f"0x{request.get_span_context().trace_id:032x}"
    sends = {s.context.span_id: s for s in traced.spans("send default")}
    processes = [s for s in spans if s["name"] == "process default"]
    assert {s["context"]["trace_id"] for s in processes} == {trace_id}
    for span in processes:
        parent = int(str(span["parent_id"]), 16)
        assert parent in sends, "each attempt's parent is the producer span of its task"
        assert [int(str(link["context"]["span_id"]), 16) for link in span["links"]] == [parent]
    by_task: dict[str, list[dict[str, Any]]] = {}
    for span in processes:
        by_task.setdefault(span["attributes"]["messaging.message.id"], []).append(span)
    assert len(by_task[flaky.id]) == 2 and len(by_task[work.id]) == 1
    [inside] = [s for s in spans if s["name"] == "inside"]
    assert inside["parent_id"] == by_task[work.id][0]["context"]["span_id"]
    assert trace.get_current_span() is trace.INVALID_SPAN
