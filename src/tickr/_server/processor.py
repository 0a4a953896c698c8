"""The processor: `concurrency` worker coroutines that run handlers.

The fetcher submits jobs; each worker takes one, decodes it, finds its handler, runs it
inside a timeout scope, and hands the outcome to the finisher.  The scope serves every
way the server stops a handler itself (timeout, deadline, cancel, lost lease, shutdown):
the job records why, and the scope turns the cancellation into a `TimeoutError` inside
this module.

Only the server cancels its workers on purpose (`cancel_workers`, at shutdown), and it
says so: any other cancellation that reaches a handler (the handler cancelled its own
task, or raised `CancelledError`) is the handler's failure, and the worker goes on.
Tasks a handler starts run under a task factory that stops a `SystemExit` or
`KeyboardInterrupt` of theirs from leaving the event loop: the attempt fails instead.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable, Coroutine, Generator, Mapping
from datetime import timedelta
from typing import Any, Final

from tickr import _observe as observe
from tickr._aio import call_hook, cancel_and_wait, forget_cancellation, within
from tickr._broker import DequeuedTask
from tickr._log_fields import task_fields
from tickr._observe import Outcome
from tickr._serialization import MessageDecodeError, TaskMessage, decode_message, encode_value
from tickr._server.context import ServerContext
from tickr._server.finisher import Finisher
from tickr._server.job import Job, StopReason
from tickr._server.supervisor import RETIRED, Supervisor
from tickr.backoff import RetryDelay, exponential_backoff
from tickr.errors import SkipRetry
from tickr.mux import CallNext, _no_handler_message
from tickr.task import _RUNNING_TASK, Task

__all__ = ["ErrorHandler", "Processor"]

logger = logging.getLogger("tickr.server.processor")

ErrorHandler = Callable[[Task, BaseException], Any]
"""``(task, exc) -> None``, sync or async: told about every failed attempt."""

_FALLBACK_DELAY: Final = exponential_backoff()
MAX_RETRY_DELAY: Final = 366 * 86400
"""Longest retry delay, in seconds: a longer one (up to infinity) is cut to this."""

_HANDLER_GRACE: Final = 1.0
"""Seconds that handlers get to end once cancelled at shutdown."""

_running_job: contextvars.ContextVar[Job | None] = contextvars.ContextVar(
    "tickr_running_job", default=None
)
"""The job whose handler runs in this context (tasks the handler starts inherit it)."""


class _EscapeStopped(Exception):
    """Raised in place of a SystemExit or KeyboardInterrupt of a task a handler started."""


def describe(exc: BaseException) -> str:
    """The error message recorded for an exception (even one whose str() fails)."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not lose the task
        text = f"<{type(exc).__name__} whose message cannot be shown>"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Processor:
    """Runs jobs on a fixed set of worker coroutines.

    Args:
        ctx: The server's context; jobs are held in `ctx.held`.
        concurrency: Number of worker coroutines.
        resolve: Returns the handler for a task type, or None.
        finisher: Receives every outcome.
        retry_delay: Seconds to wait before the next attempt of a failed task.
        error_handler: Called for every failed attempt, or None.
        max_result_bytes: Largest encoded result stored; a larger one archives its task.
    """

    def __init__(
        self,
        ctx: ServerContext,
        *,
        concurrency: int,
        resolve: Callable[[str], CallNext | None],
        finisher: Finisher,
        retry_delay: RetryDelay,
        error_handler: ErrorHandler | None,
        max_result_bytes: int,
    ) -> None:
        self._concurrency = concurrency
        self._now_ms = ctx.broker.clock.now_ms
        """Redis' time now, in ms, for deadlines and retry times."""
        self._max_result_bytes = max_result_bytes
        self._resolve = resolve
        self._finisher = finisher
        self._retry_delay = retry_delay
        self._error_handler = error_handler
        self._inbox: asyncio.Queue[Job | None] = asyncio.Queue()
        """Jobs for the workers; None wakes an idle worker to see whether it retires."""
        self._retiring = 0
        self._supervisor: Supervisor | None = None
        self._free = concurrency
        self._slot_freed = asyncio.Event()
        self._all_idle = asyncio.Event()
        self._all_idle.set()
        self._workers: list[asyncio.Task[None]] = []
        self._held = ctx.held
        self.running: dict[tuple[str, str], Job] = {}
        """Jobs whose handler is running now."""
        self.longest_wait = 0.0
        """The longest a task started since this was last reset had waited (s)."""
        self._job_by_worker: dict[asyncio.Task[Any], Job] = {}
        self._cancelling = False
        self._factory_loop: asyncio.AbstractEventLoop | None = None
        self._previous_factory: Any = None
        self._factory = self._make_task

    # Capacity -------------------------------------------------------------

    @property
    def free(self) -> int:
        """Workers neither running a handler nor assigned a job."""
        return self._free

    async def wait_for_free_worker(self) -> None:
        """Return once at least one worker is free."""
        while self._free <= 0:
            self._slot_freed.clear()
            await self._slot_freed.wait()

    async def wait_until_idle(self) -> None:
        """Return once no job is waiting or running."""
        await self._all_idle.wait()

    # Jobs -----------------------------------------------------------------

    def start(self, supervisor: Supervisor) -> None:
        """Start the worker coroutines, each supervised (restarted if it ever ends).

        Also installs the running loop's task factory that contains the tasks handlers
        start (see the module docstring); `cancel_workers` restores the previous one.
        """
        loop = asyncio.get_running_loop()
        self._factory_loop = loop
        self._previous_factory = loop.get_task_factory()
        loop.set_task_factory(self._factory)
        self._supervisor = supervisor
        self._workers = [
            supervisor.spawn("worker", self._work, name=f"tickr-worker-{i}")
            for i in range(self._concurrency)
        ]

    @property
    def concurrency(self) -> int:
        """How many jobs run at once."""
        return self._concurrency

    def resize(self, concurrency: int) -> None:
        """Run up to `concurrency` jobs at once from now on.

        Growing starts workers at once; shrinking lets running handlers finish, and the
        workers beyond the new size end as they become free.
        """
        change = concurrency - self._concurrency
        if change == 0:
            return
        self._concurrency = concurrency
        self._free += change
        if self._supervisor is None or self._cancelling:
            return  # no workers yet (start() makes `concurrency`), or none any more
        if change > 0:
            cancelling = min(self._retiring, change)
            self._retiring -= cancelling  # workers about to retire stay instead
            supervisor = self._supervisor
            if supervisor is not None:
                first = len(self._workers)
                self._workers = [worker for worker in self._workers if not worker.done()]
                self._workers += [
                    supervisor.spawn("worker", self._work, name=f"tickr-worker-{first + i}")
                    for i in range(change - cancelling)
                ]
            self._slot_freed.set()
        else:
            self._retiring -= change
            for _ in range(-change):
                self._inbox.put_nowait(None)  # wakes idle workers, which then retire
        if self._free >= self._concurrency:
            self._all_idle.set()

    def submit(self, queue: str, tasks: list[DequeuedTask]) -> None:
        """Queue fetched tasks for the workers."""
        for task_id, msg, retried, ready_ms in tasks:
            job = Job(queue, task_id, msg, retried, ready_ms)
            self._held[(queue, task_id)] = job
            self._free -= 1
            self._all_idle.clear()
            self._inbox.put_nowait(job)

    def log_fields(self, queue: str, task_id: str) -> Mapping[str, str]:
        """The `extra` of a log record about a task, with its type if it is held."""
        job = self._held.get((queue, task_id))
        return job.log_fields if job is not None else task_fields(task_id, queue)

    def stop_job(self, queue: str, task_id: str, reason: StopReason) -> bool:
        """Stop a held job, running or waiting; returns whether it was stopped.

        A job whose outcome is already on its way to Redis is left alone: its lease may
        only look lost because Redis recorded the outcome before this server heard of
        it, and if another server did take the task over, Redis refuses the outcome.
        """
        job = self._held.get((queue, task_id))
        if job is None or job.done:
            return False
        job.stop(reason)
        if reason is StopReason.LEASE_LOST:
            self._held.pop((queue, task_id), None)
        return True

    def job_of(self, worker: asyncio.Task[Any]) -> Job | None:
        """The job whose handler runs on this worker coroutine, if any."""
        return self._job_by_worker.get(worker)

    def take_waiting(self) -> list[Job]:
        """Remove and return the jobs no worker has started yet."""
        jobs = []
        while not self._inbox.empty():
            job = self._inbox.get_nowait()
            if job is not None:
                jobs.append(job)
                self._release_worker()
        return jobs

    async def drain(self, timeout: float, force: asyncio.Event) -> None:
        """Shutdown steps 2 to 4 (see server.py).

        Requeue the jobs no worker started, wait up to `timeout` seconds (unless `force`
        is set) for the running handlers, then requeue and stop those still running.
        """
        for job in self.take_waiting():
            job.stop_reason = StopReason.SHUTDOWN
            self._requeue(job)
        if self.running and not force.is_set():
            idle = asyncio.create_task(self.wait_until_idle())
            forced = asyncio.create_task(force.wait())
            try:
                await asyncio.wait(
                    {idle, forced}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                idle.cancel()
                forced.cancel()
        for job in list(self.running.values()):
            logger.info(
                "task %s in %r still running at shutdown: requeued",
                job.id,
                job.queue,
                extra=job.log_fields,
            )
            requeue = job.stop_reason is None
            job.stop(StopReason.SHUTDOWN)  # before the requeue, which makes the job done
            if requeue:
                self._requeue(job)

    async def stop(self) -> None:
        """Give the handlers still running a moment to end, then cancel every worker."""
        if not await within(self.wait_until_idle(), _HANDLER_GRACE):
            logger.warning("some handlers ignored cancellation; abandoning them")
        await self.cancel_workers(_HANDLER_GRACE)

    async def cancel_workers(self, patience: float) -> None:
        """Cancel every worker coroutine and wait up to `patience` seconds for them."""
        self._cancelling = True
        loop = self._factory_loop
        if loop is not None and loop.get_task_factory() is self._factory:
            loop.set_task_factory(self._previous_factory)
        self._factory_loop = None
        stuck = await cancel_and_wait(self._workers, patience)
        if stuck:
            logger.warning(
                "%d handler(s) ignore cancellation (they swallow CancelledError); abandoning them",
                len(stuck),
            )
        self._workers = []

    def _release_worker(self) -> None:
        self._free += 1
        self._slot_freed.set()
        if self._free >= self._concurrency:
            self._all_idle.set()

    # One job --------------------------------------------------------------

    async def _work(self) -> object:
        get = self._inbox.get
        while True:
            if self._retiring > 0:
                self._retiring -= 1
                return RETIRED
            job = await get()
            if job is None:
                continue
            try:
                await self._process(job)
            except asyncio.CancelledError:
                if self._cancelling:
                    raise
                # Nobody else means to stop a worker: a hook cancelled it (and the job
                # has its outcome), so the worker forgets it and goes on.
                forget_cancellation()
                logger.error(
                    "a worker was cancelled while finishing task %s in %r; it goes on",
                    job.id,
                    job.queue,
                    extra=job.log_fields,
                )
                if not job.done:
                    self._finisher.archive(job, "internal error: cancelled while finishing")
            except BaseException as exc:  # even SystemExit: the job must still end
                if job.done:  # it has its outcome already; a second one would contradict it
                    logger.exception(
                        "processing task %s in %r failed after its outcome",
                        job.id,
                        job.queue,
                        extra=job.log_fields,
                    )
                else:
                    logger.exception(
                        "processing task %s in %r failed; archiving it",
                        job.id,
                        job.queue,
                        extra=job.log_fields,
                    )
                    self._finisher.archive(job, f"internal error: {describe(exc)}")
            finally:
                self._release_worker()

    async def _process(self, job: Job) -> None:
        try:
            message = decode_message(job.msg)
        except MessageDecodeError as exc:
            logger.error(
                "task %s in %r cannot be decoded: %s; archiving it",
                job.id,
                job.queue,
                exc,
                extra=job.log_fields,
            )
            self._finisher.archive(job, str(exc))
            self._ended(job, "", "archived", None)
            return
        job.type = message.type
        started = self._now_ms()
        deadline_ms = message.deadline_ms
        if message.timeout_ms is not None:
            attempt_end = started + message.timeout_ms
            if deadline_ms is None or attempt_end < deadline_ms:
                deadline_ms = attempt_end
        task = Task(
            job.id,
            message.type,
            message.payload,
            job.queue,
            retry_count=job.retried,
            max_retry=message.max_retry,
            timeout=None if message.timeout_ms is None else message.timeout_ms / 1000,
            deadline_ms=deadline_ms,
            enqueued_ms=message.enqueued_ms,
            headers=message.headers,
        )
        job.trace = observe.processing(
            job.queue, job.id, message.type, job.retried, message.headers, message.enqueued_ms
        )
        if job.stop_reason is not None:
            await self._stopped_before_start(job, task)
            return
        handler = self._resolve(message.type)
        if handler is None:
            await self._fail(job, task, LookupError(_no_handler_message(message.type)), final=True)
            return
        if message.deadline_ms is not None and message.deadline_ms <= started:
            await self._fail(job, task, TimeoutError("deadline exceeded"), final=True)
            return
        await self._run(job, task, message, handler, deadline_ms, started)

    def _requeue(self, job: Job) -> None:
        """Give a job back to pending (shutdown): not an attempt, so not counted."""
        job.trace.close("requeued", None)
        self._finisher.requeue(job)

    def _ended(
        self, job: Job, task_type: str, outcome: Outcome, error: BaseException | None
    ) -> None:
        """Report the end of an attempt to the metrics and the tracer."""
        observe.attempt_ended(job.queue, task_type, outcome, job.ran_seconds)
        job.trace.close(outcome, error)

    async def _stopped_before_start(self, job: Job, task: Task) -> None:
        if job.stop_reason is StopReason.CANCELLED:
            await self._fail(job, task, asyncio.CancelledError("cancelled"), final=True)
        elif job.stop_reason is StopReason.SHUTDOWN:
            self._requeue(job)

    async def _run(
        self,
        job: Job,
        task: Task,
        message: TaskMessage,
        handler: CallNext,
        deadline_ms: int | None,
        started_ms: int,
    ) -> None:
        loop = asyncio.get_running_loop()
        when = None if deadline_ms is None else loop.time() + (deadline_ms - started_ms) / 1000
        key = (job.queue, job.id)
        self.running[key] = job
        worker = asyncio.current_task()
        if worker is not None:
            self._job_by_worker[worker] = job
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "task %s (%s) in %r started", job.id, task.type, job.queue, extra=job.log_fields
            )
        ready_ms = job.ready_ms or (message.enqueued_ms if job.retried == 0 else 0)
        waited = max(0.0, (started_ms - ready_ms) / 1000) if ready_ms else None
        if waited is not None and waited > self.longest_wait:
            self.longest_wait = waited
        observe.attempt_started(job.queue, task.type, waited)
        running = _RUNNING_TASK.set(task)
        traced = job.trace.enter()
        began = time.perf_counter()
        try:
            succeeded, outcome = await self._call(job, handler, task, when)
        finally:
            job.ran_seconds = time.perf_counter() - began
            job.trace.leave(traced)
            _RUNNING_TASK.reset(running)
            self.running.pop(key, None)
            if worker is not None:
                self._job_by_worker.pop(worker, None)
        if job.escaped is not None:
            succeeded, outcome = False, job.escaped
        # A handler that blocked the loop past its end was never interrupted: it is late.
        overran = when is not None and loop.time() >= when
        stopped_by_us = (
            job.stop_reason is not None
            or (job.scope is not None and job.scope.expired())
            or overran
        )
        if succeeded and not stopped_by_us:
            await self._succeed(job, task, message, outcome)
        elif stopped_by_us and (
            succeeded or isinstance(outcome, TimeoutError | asyncio.CancelledError)
        ):
            # Our scope stopped the handler (or it swallowed the cancellation and
            # returned, or blocked the loop until past its end).
            await self._stopped(job, task, message)
        elif isinstance(outcome, SkipRetry):
            await self._fail(job, task, outcome, final=True)
        else:
            await self._fail(job, task, outcome)

    async def _call(
        self, job: Job, handler: CallNext, task: Task, when: float | None
    ) -> tuple[bool, Any]:
        """Run the handler; (True, result) or (False, what it raised).

        Only the server's cancellation of its workers (a forced shutdown) propagates;
        the task is requeued first.
        """
        token = _running_job.set(job)
        try:
            async with asyncio.timeout_at(when) as scope:
                job.scope = scope
                return True, await handler(task)
        except asyncio.CancelledError as exc:
            if self._cancelling:
                if job.stop_reason is None:
                    job.stop_reason = StopReason.SHUTDOWN
                    self._requeue(job)
                raise
            return False, exc  # a CancelledError of the handler's own making
        except BaseException as exc:  # noqa: BLE001 - any error of the handler is a failed attempt
            return False, exc
        finally:
            _running_job.reset(token)
            if not self._cancelling:
                await self._absorb_own_cancellation()

    async def _absorb_own_cancellation(self) -> None:
        """Take back a cancellation the handler requested of its worker and left behind.

        It would otherwise stop the worker at its next await (or be mistaken for ours).
        """
        worker = asyncio.current_task()
        if worker is None or not worker.cancelling():
            return
        try:
            await asyncio.sleep(0)  # a requested cancellation not delivered yet lands here
        except asyncio.CancelledError:
            if self._cancelling:
                raise
        forget_cancellation()

    def _make_task(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any] | Generator[Any, None, Any],
        **kwargs: Any,
    ) -> asyncio.Future[Any]:
        """The task factory: tasks started by a handler run contained (see `_contained`)."""
        job = _running_job.get()
        if job is not None and isinstance(coro, Coroutine):
            coro = _contained(job, coro)
        previous = self._previous_factory
        if previous is not None:
            return previous(loop, coro, **kwargs)  # type: ignore[no-any-return]
        return asyncio.Task(coro, loop=loop, **kwargs)

    async def _stopped(self, job: Job, task: Task, message: TaskMessage) -> None:
        reason = job.stop_reason
        if reason is StopReason.CANCELLED:
            await self._fail(job, task, asyncio.CancelledError("cancelled"), final=True)
        elif reason is None:
            deadline_ms = message.deadline_ms
            if deadline_ms is not None and self._now_ms() >= deadline_ms - 1:
                await self._fail(job, task, TimeoutError("deadline exceeded"), final=True)
            else:
                timeout = (message.timeout_ms or 0) / 1000
                await self._fail(job, task, TimeoutError(f"timed out after {timeout:g}s"))
        elif reason is StopReason.LEASE_LOST:  # another server owns the task now
            job.trace.close("lost", None)  # counted by the server that took it back
        # SHUTDOWN: requeued already, not an attempt.

    async def _succeed(self, job: Job, task: Task, message: TaskMessage, result: Any) -> None:
        encoded = b""
        if message.retention_ms > 0 and result is not None:
            detail = None
            try:
                encoded = encode_value(result)
            except Exception as exc:  # noqa: BLE001 - whatever the result's own code raises
                detail = str(exc) if isinstance(exc, TypeError) else describe(exc)
            else:
                if len(encoded) > self._max_result_bytes:
                    detail = (
                        f"it is {len(encoded)} bytes encoded, "
                        f"more than max_result_bytes ({self._max_result_bytes})"
                    )
            if detail is not None:
                logger.error(
                    "task %s in %r returned a result that cannot be stored: %s",
                    job.id,
                    job.queue,
                    detail,
                    extra=job.log_fields,
                )
                error = TypeError(f"result cannot be stored: {detail}")
                self._finisher.archive(job, str(error))
                self._ended(job, task.type, "archived", error)
                await self._report(task, error)
                return
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "task %s (%s) in %r completed", job.id, task.type, job.queue, extra=job.log_fields
            )
        self._finisher.complete(job, message.retention_ms, encoded)
        self._ended(job, task.type, "completed", None)

    async def _fail(self, job: Job, task: Task, exc: BaseException, *, final: bool = False) -> None:
        error = describe(exc)
        if isinstance(exc, asyncio.CancelledError) and final:
            error = "cancelled"
        if final or task.retry_count >= task.max_retry:
            logger.debug(
                "task %s (%s) in %r archived: %s",
                job.id,
                task.type,
                job.queue,
                error,
                extra=job.log_fields,
            )
            self._finisher.archive(job, error)
            outcome: Outcome = "failed"
            if isinstance(exc, asyncio.CancelledError) and final:
                outcome = "cancelled"
            elif job.ran_seconds is None:
                outcome = "archived"  # the handler never ran: no handler, deadline passed
            self._ended(job, task.type, outcome, exc)
        else:
            delay = self._delay(task, exc)
            logger.debug(
                "task %s (%s) in %r failed (%s); retry in %.3gs",
                job.id,
                task.type,
                job.queue,
                error,
                delay,
                extra=job.log_fields,
            )
            self._finisher.retry(job, self._now_ms() + int(delay * 1000), error)
            self._ended(job, task.type, "retried", exc)
        await self._report(task, exc)

    def _delay(self, task: Task, exc: BaseException) -> float:
        try:
            delay = self._retry_delay(task.retry_count, exc, task)
            seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
            if 0 <= seconds <= MAX_RETRY_DELAY:
                return seconds
            if seconds > MAX_RETRY_DELAY:
                logger.warning(
                    "retry_delay returned %r, more than %d days; retrying in %d days",
                    delay,
                    MAX_RETRY_DELAY // 86400,
                    MAX_RETRY_DELAY // 86400,
                )
                return MAX_RETRY_DELAY
            logger.error(
                "retry_delay returned %r, not a delay (negative or NaN); using the default", delay
            )
        except BaseException:  # even its SystemExit: a hook never stops a server
            logger.exception("retry_delay raised; using the default backoff")
        return _FALLBACK_DELAY(task.retry_count, exc, task)

    async def _report(self, task: Task, exc: BaseException) -> None:
        await call_hook(
            self._error_handler,
            (task, exc),
            logger,
            "error_handler raised while reporting task %s",
            task.id,
        )


async def _contained(job: Job, coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a task started by the handler of `job`; a SystemExit of it fails the attempt.

    Raises:
        _EscapeStopped: Instead of a SystemExit or KeyboardInterrupt of the task, which
            would otherwise leave the event loop and end the process.
    """
    try:
        return await coro
    except (SystemExit, KeyboardInterrupt) as exc:
        consequence = "ignored: the attempt had ended"
        if not job.done and job.escaped is None:
            job.escaped = exc
            consequence = "the attempt fails"
        logger.error(
            "a task started by the handler of task %s in %r raised %s; %s",
            job.id,
            job.queue,
            describe(exc),
            consequence,
            extra=job.log_fields,
        )
        raise _EscapeStopped(describe(exc)) from exc
