"""`Client`: enqueues tasks, reads them back, waits for results and cancels."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from tickr import _observe as observe
from tickr._aio import ClosedOnExit, cancel_and_wait
from tickr._broker import (
    Broker,
    Enqueued,
    EnqueueOutcome,
    Event,
    EventKind,
    EventListener,
    RedisClient,
)
from tickr._checks import (
    check_int,
    check_name,
    check_positive_ms,
    check_seconds,
    check_task,
    check_url,
)
from tickr._options import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    DEFAULT_MAX_RETRY,
    DEFAULT_QUEUE,
    DEFAULT_TIMEOUT,
    PreparedTask,
    TaskSpec,
    prepare_task,
)
from tickr._records import read_task
from tickr._serialization import MessageDecodeError, decode_value
from tickr._time import datetime_from_ms
from tickr.errors import (
    DuplicateTask,
    RedisUnavailable,
    TaskFailed,
    TaskIDConflict,
    TaskNotFound,
)
from tickr.values import TaskInfo

__all__ = ["Client"]

logger = logging.getLogger("tickr.client")

_REGISTER_AGAIN: Final = 60.0
MAX_WAIT_REPLICAS: Final = 1000


class Client(ClosedOnExit):
    """Enqueues tasks and inspects their outcome.

    Args:
        url: Redis URL; default $TICKR_REDIS_URL, else ``redis://127.0.0.1:6379/0``.
        redis: An existing `redis.asyncio.Redis` to use instead (never closed by Tickr).
        namespace: Prefix of every key.
        max_payload_bytes: Largest encoded payload accepted (default 512 KiB).
        wait_replicas: With N > 0, `enqueue` and `enqueue_many` return only once N
            replicas have the tasks (Redis ``WAIT``), so that an acknowledged task
            survives a failover; else they raise `RedisUnavailable`.
        wait_timeout: How long (seconds, or a timedelta) to wait for those replicas.

    Raises:
        TypeError: For a setting of the wrong type.
        ValueError: For an invalid URL, namespace, limit or timeout.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        redis: RedisClient | None = None,
        namespace: str = "tickr",
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        wait_replicas: int = 0,
        wait_timeout: float | timedelta = 1.0,
    ) -> None:
        check_url(url)
        check_name(namespace, "namespace")
        check_int(max_payload_bytes, "max_payload_bytes", 1)
        check_int(wait_replicas, "wait_replicas", 0, MAX_WAIT_REPLICAS)
        self._wait_timeout_ms = check_positive_ms(wait_timeout, "wait_timeout")
        self.namespace = namespace
        self.max_payload_bytes = max_payload_bytes
        self.wait_replicas = wait_replicas
        """Replicas that must have a task before `enqueue` returns (0: do not wait)."""
        self._broker = Broker.connect(url, redis, namespace)
        self._registered_queues: dict[str, float] = {}
        observe.ensure_tracing()
        self._listener: EventListener | None = None
        self._listener_task: asyncio.Task[None] | None = None
        self._waiters: dict[tuple[str, str], set[asyncio.Event]] = {}

    async def aclose(self) -> None:
        """Stop listening for results and close the connection if Tickr opened it."""
        if self._listener_task is not None:
            await cancel_and_wait([self._listener_task])
            self._listener_task = None
            self._listener = None
        await self._broker.aclose()

    # ------------------------------------------------------------------ enqueue

    async def enqueue(
        self,
        type: str,
        payload: Any = None,
        *,
        queue: str = DEFAULT_QUEUE,
        priority: int = 0,
        delay: float | timedelta | None = None,
        at: datetime | None = None,
        max_retry: int = DEFAULT_MAX_RETRY,
        timeout: float | timedelta | None = DEFAULT_TIMEOUT,
        deadline: datetime | None = None,
        task_id: str | None = None,
        unique: float | timedelta | None = None,
        retention: float | timedelta = 0,
        headers: Mapping[str, str] | None = None,
        lane: str | None = None,
    ) -> TaskInfo:
        """Enqueue one task.

        Args:
            type: Task type, a non-empty str; selects the handler.
            payload: Anything msgpack encodes (see `tickr.serialization`).
            queue: Queue name.
            priority: Higher runs first within the queue; FIFO among equals.
            delay: Run no earlier than now + delay (seconds or timedelta).
            at: Run no earlier than this aware datetime (not together with delay).
            max_retry: Retries after the first attempt; 0 never retries.
            timeout: Seconds (or timedelta) per attempt; None for no limit.
            deadline: Aware datetime after which no attempt may run or continue.
            task_id: Caller-chosen id; default a fresh uuid4 hex string.
            unique: Reject an equal task (type, payload, queue) while one is live, for
                at most this long (seconds or timedelta).
            retention: How long to keep the completed task and its result.
            headers: String metadata carried with the task to `Task.headers` on every
                attempt and shown in `TaskInfo` (at most 64 names of HTTP token
                characters, 8 KiB in all); not part of what `unique` compares.
            lane: The lane of the task within its queue (a name, as queue names are):
                the lanes of a queue are served round-robin, one task per turn, so
                that one lane's backlog does not delay another's; priority and FIFO
                hold within a lane.  None: the queue's tasks without a lane, which take
                turns as one lane while lanes exist.

        Returns:
            The task as enqueued, in state "pending" or "scheduled".

        Raises:
            TaskIDConflict: If `task_id` is already used in the queue.
            DuplicateTask: If `unique` found a live equal task.
            TypeError: For an argument of the wrong type or an unencodable payload.
            ValueError: For an argument out of range (empty type, negative delay, both
                delay and at, naive datetime, deadline in the past, payload over
                `max_payload_bytes`...).
            RedisUnavailable: If Redis cannot be reached, or fewer than `wait_replicas`
                replicas confirmed the task within `wait_timeout`: it may have been
                stored all the same, so retry with the same `task_id` (a
                `TaskIDConflict` then says that the first try stored it).
        """
        spec = TaskSpec(
            type, payload, queue=queue, priority=priority, delay=delay, at=at,
            max_retry=max_retry, timeout=timeout, deadline=deadline, task_id=task_id,
            unique=unique, retention=retention, headers=headers, lane=lane,
        )  # fmt: skip
        trace = observe.sending(queue, 1)
        try:
            prepared = prepare_task(
                spec,
                now_ms=await self._broker.time_ms(),
                max_payload_bytes=self.max_payload_bytes,
                headers=trace.carry(headers),
            )
            await self._register_queues((prepared.queue,))
            outcome = await self._broker.enqueue(
                prepared.queue,
                prepared.item,
                replicas=self.wait_replicas,
                timeout_ms=self._wait_timeout_ms,
            )
            result = _interpret(prepared, outcome)
            trace.sent([prepared.item.id])
            if not isinstance(result, TaskInfo):
                raise result
        except BaseException as exc:
            trace.close(exc)
            raise
        trace.close(None)
        return result

    async def enqueue_many(
        self, specs: Iterable[TaskSpec]
    ) -> list[TaskInfo | TaskIDConflict | DuplicateTask]:
        """Enqueue many tasks in as few round trips as possible.

        Every spec is validated before anything is written.

        Returns:
            One entry per spec, in order: its `TaskInfo`, or the `TaskIDConflict` or
            `DuplicateTask` that kept it out (the other specs are enqueued regardless).

        Raises:
            TypeError, ValueError: If any spec is invalid (nothing is enqueued).
            RedisUnavailable: If Redis cannot be reached.
        """
        now = await self._broker.time_ms()
        now_datetime = datetime_from_ms(now)
        limit = self.max_payload_bytes
        specs = list(specs)
        for spec in specs:
            if not isinstance(spec, TaskSpec):
                raise TypeError(f"enqueue_many takes TaskSpec objects, not {type(spec).__name__}")
        traces = _batch_traces(specs)
        try:
            prepared = [
                prepare_task(
                    spec,
                    now_ms=now,
                    max_payload_bytes=limit,
                    now=now_datetime,
                    headers=traces[spec.queue].carry(spec.headers)
                    if spec.queue in traces
                    else spec.headers,
                )
                for spec in specs
            ]
            results = await self._store_many(prepared)
        except BaseException as exc:
            for trace in traces.values():
                trace.close(exc)
            raise
        for trace in traces.values():
            trace.close(None)
        return results

    async def _store_many(
        self, prepared: list[PreparedTask]
    ) -> list[TaskInfo | TaskIDConflict | DuplicateTask]:
        if not prepared:
            return []
        by_queue: dict[str, list[int]] = {}
        for index, task in enumerate(prepared):
            by_queue.setdefault(task.queue, []).append(index)
        await self._register_queues(by_queue)
        batches = [
            (queue, [prepared[i].item for i in indexes]) for queue, indexes in by_queue.items()
        ]
        results: list[TaskInfo | TaskIDConflict | DuplicateTask] = [None] * len(prepared)  # type: ignore[list-item]
        storing = asyncio.ensure_future(
            self._broker.enqueue_many(
                batches, replicas=self.wait_replicas, timeout_ms=self._wait_timeout_ms
            )
        )
        await asyncio.sleep(0)  # the request goes out; build the infos while Redis works
        for task in prepared:
            task.info  # noqa: B018 - built now, on purpose
        outcomes = await storing
        for indexes, queue_outcomes in zip(by_queue.values(), outcomes, strict=True):
            for index, outcome in zip(indexes, queue_outcomes, strict=True):
                results[index] = _interpret(prepared[index], outcome)
        return results

    async def _register_queues(self, queues: Iterable[str]) -> None:
        """Record the queues' names (again after a minute, in case one was deleted).

        The names live in the namespace's registry, on one node of a Cluster.  When
        that node cannot be reached the enqueue goes on, to its queue's own node, and
        the next enqueue records the names.
        """
        now = time.monotonic()
        stale = [
            queue
            for queue in queues
            if now - self._registered_queues.get(queue, -_REGISTER_AGAIN) >= _REGISTER_AGAIN
        ]
        if not stale:
            return
        try:
            await self._broker.register_queues(stale)
        except RedisUnavailable as exc:
            logger.warning(
                "could not record the queue names %s (%s); the next enqueue will", stale, exc
            )
            return
        self._registered_queues.update(dict.fromkeys(stale, now))

    # ------------------------------------------------------------------ reading

    async def get_task(self, task_id: str, queue: str = DEFAULT_QUEUE) -> TaskInfo:
        """The current state of a task.

        Raises:
            TaskNotFound: If the queue has no task with this id (any more).
            TypeError, ValueError: For an invalid task id or queue name.
            RedisUnavailable: If Redis cannot be reached.
        """
        return await read_task(self._broker, task_id, queue)

    async def result(
        self, task_id: str, queue: str = DEFAULT_QUEUE, timeout: float | None = None
    ) -> Any:
        """Wait for a task to complete and return its handler's return value.

        The result is kept only for tasks enqueued with ``retention > 0``.

        Raises:
            TaskFailed: If the task ended archived (its last error is attached).
            TaskNotFound: If there is no such task, or it completed without retention.
            TimeoutError: If `timeout` seconds pass first.
            TypeError, ValueError: For an invalid task id, queue name or timeout.
            RedisUnavailable: If Redis cannot be reached.
        """
        check_task(task_id, queue)
        if timeout is not None:
            timeout = check_seconds(timeout, "timeout")
        async with asyncio.timeout(timeout):
            return await self._wait_for_result(task_id, queue)

    async def _wait_for_result(self, task_id: str, queue: str) -> Any:
        listener = self._ensure_listener()
        await listener.watch_done(queue)
        changed = asyncio.Event()
        key = (queue, task_id)
        self._waiters.setdefault(key, set()).add(changed)
        try:
            while True:
                changed.clear()
                outcome = await self._broker.watch_result(queue, task_id)
                if outcome is None:
                    raise TaskNotFound(task_id, queue)
                state, result, error = outcome
                if state == "completed":
                    return _decode_result(result)
                if state == "archived":
                    raise TaskFailed(task_id, queue, None if error is None else error.decode())
                await changed.wait()
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(changed)
                if not waiters:
                    del self._waiters[key]

    def _ensure_listener(self) -> EventListener:
        task = self._listener_task
        if task is not None and (task.done() or task.get_loop() is not asyncio.get_running_loop()):
            self._listener = None  # it ran on an event loop that has ended
        if self._listener is None:
            self._listener = self._broker.listener(self._on_event)
            self._listener_task = asyncio.create_task(
                self._listener.run(), name="tickr-client-listener"
            )
        return self._listener

    def _on_event(self, event: Event) -> None:
        if event.kind is EventKind.DONE:
            for changed in self._waiters.get((event.queue, event.task_id), ()):
                changed.set()
        elif event.kind is EventKind.RESYNC:
            for (queue, _task_id), waiters in self._waiters.items():
                if queue == event.queue:
                    for changed in waiters:
                        changed.set()

    # ------------------------------------------------------------------ cancel

    async def cancel(self, task_id: str, queue: str = DEFAULT_QUEUE) -> bool:
        """Cancel a task.

        A pending, scheduled or retry task is deleted.  An active task has its handler
        cancelled on whichever server runs it; that attempt is archived with the error
        "cancelled" and not retried.

        Returns:
            True if a task was deleted or its cancellation requested; False if there
            was nothing to cancel: the task had completed, been archived, or is not in
            the queue (never enqueued, deleted, or cancelled already).

        Raises:
            TypeError, ValueError: For an invalid task id or queue name.
            RedisUnavailable: If Redis cannot be reached.
        """
        check_task(task_id, queue)
        return await self._broker.cancel(queue, task_id)


def _batch_traces(specs: Sequence[TaskSpec]) -> dict[str, observe.SendScope]:
    """One tracing scope per queue of a batch (queues that are no str are refused later)."""
    counts: dict[str, int] = {}
    for spec in specs:
        if isinstance(spec.queue, str):
            counts[spec.queue] = counts.get(spec.queue, 0) + 1
    return {queue: observe.sending(queue, count) for queue, count in counts.items()}


def _interpret(
    prepared: PreparedTask, enqueued: Enqueued
) -> TaskInfo | TaskIDConflict | DuplicateTask:
    info = prepared.info
    outcome = enqueued.outcome
    if outcome is EnqueueOutcome.PENDING or outcome is EnqueueOutcome.SCHEDULED:
        observe.enqueued(info.queue, info.type)
        return info
    if outcome is EnqueueOutcome.ID_TAKEN:
        return TaskIDConflict(info.id, info.queue)
    return DuplicateTask(info.type, info.queue, enqueued.live_id)


def _decode_result(result: bytes | None) -> Any:
    if not result:
        return None
    try:
        return decode_value(result)
    except MessageDecodeError:
        logger.warning("a stored result cannot be decoded; returning None")
        return None
