"""Server behaviour: handlers, retries, archive, timeouts, deadlines, results, counters."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import tickr
from tests.conftest import ServerFactory
from tests.helpers import FAST_RETRY, eventually, wait_state


async def test_handler_receives_the_task(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    mux = tickr.ServeMux()
    seen: list[tickr.Task] = []

    @mux.handle("email:send")
    async def send(task: tickr.Task) -> dict[str, bool]:
        seen.append(task)
        return {"ok": True}

    deadline = datetime.now(UTC) + timedelta(hours=1)
    info = await client.enqueue(
        "email:send", {"to": "a"}, retention=60, deadline=deadline, timeout=60, max_retry=4
    )
    async with running_server(mux):
        assert await client.result(info.id, timeout=10) == {"ok": True}
    [task] = seen
    assert (task.id, task.type, task.payload, task.queue) == (
        info.id,
        "email:send",
        {"to": "a"},
        "default",
    )
    assert (task.retry_count, task.max_retry, task.timeout) == (0, 4, 60.0)
    assert task.deadline is not None
    assert task.deadline <= datetime.now(UTC) + timedelta(seconds=61), (
        "the attempt's timeout is earlier"
    )


async def test_failures_are_retried_then_succeed(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    attempts: list[int] = []

    async def flaky(task: tickr.Task) -> str:
        attempts.append(task.retry_count)
        if task.retry_count < 2:
            raise ValueError(f"attempt {task.retry_count} failed")
        return "done"

    info = await client.enqueue("t", retention=60)
    async with running_server(flaky, retry_delay=FAST_RETRY):
        assert await client.result(info.id, timeout=10) == "done"
    assert attempts == [0, 1, 2]
    stored = await client.get_task(info.id)
    assert stored.retried == 2
    assert stored.last_error == "ValueError: attempt 1 failed"


async def test_exhausted_retries_archive_the_task_with_its_error(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    calls = 0

    async def broken(task: tickr.Task) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("still broken")

    info = await client.enqueue("t", max_retry=2)
    async with running_server(broken, retry_delay=FAST_RETRY):
        stored = await wait_state(client, info.id, "archived")
    assert calls == 3
    assert stored.retried == 2
    assert stored.last_error == "RuntimeError: still broken"


async def test_retry_state_is_visible_between_attempts(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    async def broken(task: tickr.Task) -> None:
        raise RuntimeError("nope")

    info = await client.enqueue("t", max_retry=3)
    async with running_server(broken, retry_delay=tickr.constant_delay(60)):
        stored = await wait_state(client, info.id, "retry")
    assert stored.retried == 1 and stored.last_error == "RuntimeError: nope"
    assert stored.next_process_at is not None
    assert stored.next_process_at > datetime.now(UTC) + timedelta(seconds=50)


async def test_skip_retry_archives_at_once(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    calls = 0

    async def hopeless(task: tickr.Task) -> None:
        nonlocal calls
        calls += 1
        raise tickr.SkipRetry("bad address")

    info = await client.enqueue("t", max_retry=10)
    async with running_server(hopeless, retry_delay=FAST_RETRY):
        stored = await wait_state(client, info.id, "archived")
    assert calls == 1
    assert stored.last_error == "SkipRetry: bad address"


async def test_unknown_task_type_is_archived_with_a_clear_error(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    mux = tickr.ServeMux()
    mux.handle("known", _noop)
    info = await client.enqueue("unknown:type", max_retry=5)
    async with running_server(mux):
        stored = await wait_state(client, info.id, "archived")
    assert stored.last_error == "LookupError: no handler for task type 'unknown:type'"
    assert stored.retried == 0


async def _noop(task: tickr.Task) -> None:
    return None


async def test_timeout_cancels_the_handler_and_retries(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    outcomes: list[str] = []

    async def slow(task: tickr.Task) -> str:
        if task.retry_count == 0:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                outcomes.append("cancelled")
                raise
        return "fast enough"

    info = await client.enqueue("t", timeout=0.2, retention=60)
    async with running_server(slow, retry_delay=FAST_RETRY):
        assert await client.result(info.id, timeout=10) == "fast enough"
    assert outcomes == ["cancelled"]
    assert (await client.get_task(info.id)).last_error == "TimeoutError: timed out after 0.2s"


async def test_deadline_cancels_the_handler_and_archives(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    async def slow(task: tickr.Task) -> None:
        await asyncio.sleep(30)

    info = await client.enqueue(
        "t", deadline=datetime.now(UTC) + timedelta(seconds=0.3), max_retry=5
    )
    async with running_server(slow):
        stored = await wait_state(client, info.id, "archived")
    assert stored.last_error == "TimeoutError: deadline exceeded"
    assert stored.retried == 0


async def test_a_task_past_its_deadline_never_starts(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    ran = False

    async def handler(task: tickr.Task) -> None:
        nonlocal ran
        ran = True

    info = await client.enqueue("t", deadline=datetime.now(UTC) + timedelta(seconds=0.1), delay=0.3)
    async with running_server(handler):
        stored = await wait_state(client, info.id, "archived")
    assert not ran
    assert stored.last_error == "TimeoutError: deadline exceeded"


async def test_a_timeout_error_raised_by_the_handler_is_an_ordinary_failure(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    async def handler(task: tickr.Task) -> None:
        raise TimeoutError("upstream timed out")

    info = await client.enqueue("t", max_retry=0)
    async with running_server(handler):
        stored = await wait_state(client, info.id, "archived")
    assert stored.last_error == "TimeoutError: upstream timed out"


@pytest.mark.parametrize("is_async", [False, True])
async def test_error_handler_sees_every_failed_attempt(
    client: tickr.Client, running_server: ServerFactory, is_async: bool
) -> None:
    reported: list[tuple[str, int, str]] = []

    def record(task: tickr.Task, exc: BaseException) -> None:
        reported.append((task.id, task.retry_count, str(exc)))

    async def record_async(task: tickr.Task, exc: BaseException) -> None:
        record(task, exc)

    async def broken(task: tickr.Task) -> None:
        raise RuntimeError(f"failure {task.retry_count}")

    info = await client.enqueue("t", max_retry=1)
    handler = record_async if is_async else record
    async with running_server(broken, retry_delay=FAST_RETRY, error_handler=handler):
        await wait_state(client, info.id, "archived")
    assert reported == [(info.id, 0, "failure 0"), (info.id, 1, "failure 1")]


async def test_a_failing_error_handler_or_retry_delay_does_not_stop_the_server(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    def bad_error_handler(task: tickr.Task, exc: BaseException) -> None:
        raise RuntimeError("error handler bug")

    def bad_delay(retry_count: int, exc: BaseException, task: tickr.Task) -> float:
        raise RuntimeError("retry delay bug")

    async def broken(task: tickr.Task) -> None:
        raise RuntimeError("task failed")

    failing = await client.enqueue("fail", max_retry=3)
    async with running_server(broken, retry_delay=bad_delay, error_handler=bad_error_handler):
        stored = await wait_state(client, failing.id, "retry")
    assert stored.retried == 1


async def test_retry_delay_may_return_a_timedelta(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    async def flaky(task: tickr.Task) -> str:
        if task.retry_count == 0:
            raise RuntimeError("first try fails")
        return "ok"

    info = await client.enqueue("t", retention=60)
    async with running_server(flaky, retry_delay=lambda n, exc, task: timedelta(milliseconds=50)):
        assert await client.result(info.id, timeout=10) == "ok"


async def test_handlers_raising_base_exceptions_fail_and_the_server_goes_on(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    async def handler(task: tickr.Task) -> str:
        if task.payload == "exit":
            raise SystemExit(3)
        if task.payload == "interrupt":
            raise KeyboardInterrupt
        if task.payload == "cancelled":
            raise asyncio.CancelledError
        return "fine"

    exits = await client.enqueue("t", "exit", max_retry=0)
    interrupts = await client.enqueue("t", "interrupt", max_retry=0)
    cancels = await client.enqueue("t", "cancelled", max_retry=0)
    fine = await client.enqueue("t", "ok", retention=60)
    async with running_server(handler):
        assert await client.result(fine.id, timeout=10) == "fine"
        assert (await wait_state(client, exits.id, "archived")).last_error == "SystemExit: 3"
        assert (
            await wait_state(client, interrupts.id, "archived")
        ).last_error == "KeyboardInterrupt"
        assert (await wait_state(client, cancels.id, "archived")).last_error == "CancelledError"


async def test_results_are_kept_for_their_retention_only(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    kept = await client.enqueue("t", "kept", retention=0.5)
    dropped = await client.enqueue("t", "dropped")

    async def echo(task: tickr.Task) -> Any:
        return task.payload

    async with running_server(echo):
        assert await client.result(kept.id, timeout=10) == "kept"

        async def dropped_is_gone() -> bool:
            try:
                await client.get_task(dropped.id)
            except tickr.TaskNotFound:
                return True
            return False

        await eventually(dropped_is_gone)
        await asyncio.sleep(0.6)
        with pytest.raises(tickr.TaskNotFound):
            await client.get_task(kept.id)


async def test_unstorable_results_archive_the_task(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    async def handler(task: tickr.Task) -> object:
        return object()

    info = await client.enqueue("t", retention=60)
    async with running_server(handler):
        with pytest.raises(tickr.TaskFailed, match="result cannot be stored"):
            await client.result(info.id, timeout=10)


async def test_daily_counters_count_processed_and_failed_attempts(
    client: tickr.Client, running_server: ServerFactory, url: str, namespace: str
) -> None:
    async def handler(task: tickr.Task) -> None:
        if task.payload == "fail":
            raise RuntimeError("x")

    infos = [await client.enqueue("t", "ok") for _ in range(3)]
    failing = await client.enqueue("t", "fail", max_retry=1)
    async with running_server(handler, retry_delay=FAST_RETRY):
        await wait_state(client, failing.id, "archived")
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        info = await inspector.queue_info("default")
        assert (info.processed, info.failed) == (5, 2)
        history = await inspector.history("default", days=3)
    assert [(day.processed, day.failed) for day in history] == [(0, 0), (0, 0), (5, 2)]
    assert history[-1].day == datetime.now(UTC).date()
    assert len(infos) == 3


async def test_archive_is_capped_by_size(
    client: tickr.Client, running_server: ServerFactory, url: str, namespace: str
) -> None:
    async def broken(task: tickr.Task) -> None:
        await asyncio.sleep(0.005)  # archive times apart: the cap keeps the newest
        raise RuntimeError("x")

    infos = [await client.enqueue("t", i, max_retry=0) for i in range(6)]
    async with running_server(broken, archive_max_size=4, concurrency=1):
        await wait_state(client, infos[-1].id, "archived")
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        assert (await inspector.queue_info("default")).archived == 4
    with pytest.raises(tickr.TaskNotFound):
        await client.get_task(infos[0].id)


async def test_archive_is_capped_by_age(
    client: tickr.Client, running_server: ServerFactory, url: str, namespace: str
) -> None:
    async def broken(task: tickr.Task) -> None:
        raise RuntimeError("x")

    old = await client.enqueue("t", max_retry=0)
    async with running_server(broken, archive_max_age=0.3):
        await wait_state(client, old.id, "archived")
        await asyncio.sleep(0.4)
        new = await client.enqueue("t", max_retry=0)
        await wait_state(client, new.id, "archived")
    with pytest.raises(tickr.TaskNotFound):
        await client.get_task(old.id)


async def test_a_plain_async_function_serves_every_type(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    async def handler(task: tickr.Task) -> str:
        return task.type

    a = await client.enqueue("a", retention=60)
    b = await client.enqueue("b:c", retention=60)
    async with running_server(handler):
        assert await client.result(a.id, timeout=10) == "a"
        assert await client.result(b.id, timeout=10) == "b:c"


async def test_cancel_stops_a_running_handler_and_archives_it(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    started = asyncio.Event()
    stopped: list[str] = []

    async def slow(task: tickr.Task) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            stopped.append(task.id)
            raise

    info = await client.enqueue("t", max_retry=5)
    async with running_server(slow):
        await asyncio.wait_for(started.wait(), 10)
        assert await client.cancel(info.id) is True
        stored = await wait_state(client, info.id, "archived")
    assert stopped == [info.id]
    assert stored.last_error == "cancelled"
    assert await client.cancel(info.id) is False, "nothing left to cancel"


def test_invalid_server_settings_raise() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        tickr.Server(concurrency=0)
    with pytest.raises(ValueError, match="non-empty"):
        tickr.Server(queues={})
    with pytest.raises(ValueError, match="weight"):
        tickr.Server(queues={"a": 0})
    with pytest.raises(ValueError, match="braces"):
        tickr.Server(queues={"a{b}": 1})
    with pytest.raises(ValueError, match="negative"):
        tickr.Server(shutdown_timeout=-1)
    with pytest.raises(ValueError, match="heartbeat_interval"):
        tickr.Server(lease_duration=1, heartbeat_interval=2)
    with pytest.raises(TypeError, match="callable"):
        tickr.Server(error_handler="log")  # type: ignore[arg-type]
    for size in (0, -1):
        with pytest.raises(ValueError, match="max_result_bytes"):
            tickr.Server(max_result_bytes=size)
    for not_int in (True, 1.5):
        with pytest.raises(TypeError, match="max_result_bytes"):
            tickr.Server(max_result_bytes=not_int)  # type: ignore[arg-type]


async def test_serve_rejects_a_non_handler(url: str) -> None:
    with pytest.raises(TypeError):
        await tickr.Server(url).serve("not a handler")  # type: ignore[arg-type]


async def test_a_handler_that_swallows_its_timeout_still_timed_out(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    async def stubborn(task: tickr.Task) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return "pretending all is well"
        return "unreachable"

    info = await client.enqueue("t", timeout=0.2, max_retry=0, retention=60)
    async with running_server(stubborn):
        stored = await wait_state(client, info.id, "archived")
    assert stored.last_error == "TimeoutError: timed out after 0.2s"


async def test_a_cancelled_task_whose_handler_then_fails_is_not_retried(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    started = asyncio.Event()
    attempts = 0

    async def handler(task: tickr.Task) -> None:
        nonlocal attempts
        attempts += 1
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed while cancelling") from None

    info = await client.enqueue("t", max_retry=5)
    async with running_server(handler, retry_delay=FAST_RETRY):
        await asyncio.wait_for(started.wait(), 10)
        await client.cancel(info.id)
        stored = await wait_state(client, info.id, "archived")
        await asyncio.sleep(0.2)
    assert stored.last_error == "cancelled"
    assert attempts == 1


async def test_a_reused_task_id_survives_the_cleanup_of_its_expired_namesake(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    async def echo(task: tickr.Task) -> Any:
        return task.payload

    async with running_server(echo):
        await client.enqueue("t", "first", task_id="reused", retention=0.2)
        assert await client.result("reused", timeout=10) == "first"
        await asyncio.sleep(0.3)  # the first result expired; its index entry remains
        await client.enqueue("t", "second", task_id="reused", delay=30)
        trigger = await client.enqueue("t", "trigger", retention=60)
        assert await client.result(trigger.id, timeout=10) == "trigger"  # runs the cleanup
    stored = await client.get_task("reused")
    assert (stored.state, stored.payload) == ("scheduled", "second")


async def test_server_is_an_async_context_manager(
    client: tickr.Client, url: str, namespace: str
) -> None:
    async def echo(task: tickr.Task) -> Any:
        return task.payload

    info = await client.enqueue("t", "hello", retention=60)
    async with tickr.Server(url, namespace=namespace) as server:
        serving = asyncio.create_task(server.serve(echo))
        assert await client.result(info.id, timeout=10) == "hello"
    assert serving.done()
    await serving


async def test_serve_rejects_a_sync_function(url: str) -> None:
    def sync_handler(task: tickr.Task) -> None:
        return None

    with pytest.raises(TypeError, match="async function"):
        await tickr.Server(url).serve(sync_handler)  # type: ignore[arg-type]


async def test_queue_info_reports_sizes_latency_and_memory(
    client: tickr.Client, url: str, namespace: str
) -> None:
    await client.enqueue_many([tickr.TaskSpec("t", "x" * 200) for _ in range(50)])
    await client.enqueue("t", delay=60)
    await asyncio.sleep(0.05)
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        info = await inspector.queue_info("default")
        with pytest.raises(tickr.QueueNotFound):
            await inspector.queue_info("nope")
        with pytest.raises(TypeError):
            await inspector.history("default", days=1.5)  # type: ignore[arg-type]
    assert (info.pending, info.scheduled, info.size) == (50, 1, 51)
    assert info.latency >= 0.05
    assert 51 * 200 < info.memory < 51 * 5000, info.memory
