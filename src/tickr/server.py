"""`Server`: runs handlers for the tasks of some queues.

Start order: connect and subscribe to the queues' events, then start the finisher,
the workers, the lease keeper (a thread), the heartbeat, the forwarder, the inbox of
handed tasks and finally the fetcher, so that nothing is fetched before everything that
handles it runs.  `serve()` reports readiness
(`wait_ready()`) only once all of them are up.

Shutdown order, and why:

1. Stop the fetcher (never during a dequeue), the inbox of handed tasks (never during
   a BLPOP) and the forwarder: take nothing new.
2. Requeue the jobs that no worker has started yet, at once: other servers can run them
   while this one waits for its running handlers.
3. Wait up to `shutdown_timeout` for the running handlers to finish.
4. Requeue the handlers still running (to the front of pending) and cancel them.
5. Write every outcome to Redis (the lease keeper keeps the leases alive meanwhile).
6. Stop the heartbeat and the lease keeper, then the finisher and the event listener;
   cancel the workers; close Redis.

A Scheduler given to the server starts last and stops first (before step 1).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, Final

from tickr._aio import Backoff, cancel_and_wait, first_of, within
from tickr._broker import Broker, Event, EventKind, EventListener, RedisClient, SyncRenewer
from tickr._server.burst import BurstWatcher
from tickr._server.fetcher import Fetcher
from tickr._server.finisher import Finisher
from tickr._server.forwarder import Forwarder
from tickr._server.heartbeat import HealthCheck, Heartbeat
from tickr._server.inbox import WAIT_SECONDS as INBOX_WAIT_SECONDS
from tickr._server.inbox import Inbox
from tickr._server.job import StopReason
from tickr._server.lease_keeper import LeaseKeeper
from tickr._server.processor import ErrorHandler, Processor
from tickr._server.redis_check import check_redis
from tickr._server.supervisor import Supervisor
from tickr._service import Run, Service
from tickr._time import duration_ms, seconds
from tickr.backoff import RetryDelay, exponential_backoff
from tickr.errors import RedisUnavailable
from tickr.mux import CallNext, ServeMux, is_async_callable
from tickr.options import check_bool, check_int, check_name, check_url
from tickr.scheduler import Scheduler
from tickr.task import Task

__all__ = ["Server"]

logger = logging.getLogger("tickr.server")

DEFAULT_LEASE: Final = 6.0
DEFAULT_HEARTBEAT: Final = 1.5
DEFAULT_ARCHIVE_MAX_SIZE: Final = 10_000
DEFAULT_ARCHIVE_MAX_AGE: Final = timedelta(days=90)
DEFAULT_MAX_RESULT_BYTES: Final = 1024 * 1024
_FINAL_FLUSH_LIMIT: Final = 30.0
MAX_CONCURRENCY: Final = 10_000
"""The most worker coroutines one Server runs; run more servers for more."""
_HANDLER_GRACE: Final = 1.0
_FETCH_GRACE: Final = 12.0
"""Longest wait at shutdown for a dequeue in flight (above the broker's call timeout)."""


class Server(Service):
    """Runs handlers for the tasks of some queues, `concurrency` at a time.

    Args:
        url: Redis URL; default $TICKR_REDIS_URL, else ``redis://127.0.0.1:6379/0``.
        redis: An existing client to use instead (never closed by Tickr).
        namespace: Prefix of every key.
        concurrency: Number of worker coroutines (tasks run at once), 1 to 10,000
            (`MAX_CONCURRENCY`).
        queues: Queue name -> weight.  A queue of weight 6 is served about six times as
            often as one of weight 1 while both have work.
        strict_priority: True to always drain heavier queues first instead.
        retry_delay: ``(retry_count, exc, task) -> seconds`` before a retry.
        error_handler: ``(task, exc)``, sync or async, called on every failed attempt.
        shutdown_timeout: Seconds that running handlers get to finish on shutdown.
        health_check: ``(exc | None)``, sync or async, called after every heartbeat with
            the Redis error of that heartbeat, else a `TickrError` naming a loop or
            worker of the server that failed since the last beat (and was restarted),
            or None when all is well.
        lease_duration: Seconds a task stays held without a heartbeat; after that any
            server takes it back (to retry, with the error "worker lost").  A task of a
            server that died is back in play within lease_duration + heartbeat_interval.
        heartbeat_interval: Seconds between heartbeats, which renew this server's leases
            and take back expired ones (keep it well below lease_duration).
        archive_max_size: Most archived tasks kept per queue.
        archive_max_age: Archived tasks older than this are deleted (seconds/timedelta).
        scheduler: A `Scheduler` to run inside this server: it starts once the server is
            ready and stops first at shutdown.
        max_result_bytes: Largest result stored, encoded (default 1 MiB).  A task that
            returns a larger one (with retention) is archived with the error
            ``result cannot be stored: ...``.  Error messages are stored cut to 4 KiB.

    Raises:
        TypeError, ValueError: For invalid settings.
    """

    _noun = "server"

    def __init__(
        self,
        url: str | None = None,
        *,
        redis: RedisClient | None = None,
        namespace: str = "tickr",
        concurrency: int = 10,
        queues: Mapping[str, int] | None = None,
        strict_priority: bool = False,
        retry_delay: RetryDelay | None = None,
        error_handler: ErrorHandler | None = None,
        shutdown_timeout: float = 8.0,
        health_check: HealthCheck | None = None,
        lease_duration: float = DEFAULT_LEASE,
        heartbeat_interval: float = DEFAULT_HEARTBEAT,
        archive_max_size: int = DEFAULT_ARCHIVE_MAX_SIZE,
        archive_max_age: float | timedelta = DEFAULT_ARCHIVE_MAX_AGE,
        scheduler: Scheduler | None = None,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
    ) -> None:
        super().__init__()
        check_url(url)
        check_name(namespace, "namespace")
        check_int(concurrency, "concurrency", 1, MAX_CONCURRENCY)
        check_bool(strict_priority, "strict_priority")
        self._queues = _check_queues({"default": 1} if queues is None else queues)
        self._shutdown_timeout = seconds(shutdown_timeout, "shutdown_timeout")
        self._lease_ms = duration_ms(lease_duration, "lease_duration")
        self._heartbeat_interval = seconds(heartbeat_interval, "heartbeat_interval")
        if not 0 < self._heartbeat_interval * 1000 < self._lease_ms:
            raise ValueError("heartbeat_interval must be positive and shorter than lease_duration")
        check_int(archive_max_size, "archive_max_size", 0)
        check_int(max_result_bytes, "max_result_bytes", 1)
        for name, hook in (("retry_delay", retry_delay), ("error_handler", error_handler)):
            if hook is not None and not callable(hook):
                raise TypeError(f"{name} must be callable")
        if health_check is not None and not callable(health_check):
            raise TypeError("health_check must be callable")
        self._url = url
        self._redis = redis
        self.namespace = namespace
        self.concurrency = concurrency
        self.strict_priority = strict_priority
        self._retry_delay = retry_delay or exponential_backoff()
        self._error_handler = error_handler
        self._health_check = health_check
        self._archive_max_size = archive_max_size
        self._max_result_bytes = max_result_bytes
        self._archive_max_age_ms = duration_ms(archive_max_age, "archive_max_age")
        if scheduler is not None and not isinstance(scheduler, Scheduler):
            raise TypeError("scheduler must be a tickr.Scheduler")
        self.scheduler = scheduler
        self._inbox: Inbox | None = None

    async def aclose(self) -> None:
        """Shut down if serving (see `shutdown`); the connection closes with `serve()`."""
        await self.shutdown()

    @property
    def queues(self) -> dict[str, int]:
        """Queue name -> weight, as configured."""
        return dict(self._queues)

    # ------------------------------------------------------------------ public API

    def run(
        self, handler: ServeMux | Callable[[Task], Awaitable[Any]], *, burst: bool = False
    ) -> None:
        """Serve in a new event loop until SIGINT or SIGTERM, then shut down gracefully.

        A second signal skips the wait for running handlers: they are requeued and
        cancelled at once.  With `burst`, it also stops once the queues are empty (see
        `serve`).

        Raises:
            RuntimeError: If called from a running event loop (use `serve`).
        """
        self._run_until_signalled(lambda: self.serve(handler, burst=burst), logger)

    async def serve(
        self, handler: ServeMux | Callable[[Task], Awaitable[Any]], *, burst: bool = False
    ) -> None:
        """Serve in the running event loop; returns after `shutdown()` completes.

        Args:
            handler: A `ServeMux`, or one async function that handles every task.
            burst: Shut down by itself once the queues have no pending, active,
                scheduled or retry tasks left.

        Raises:
            RuntimeError: If this server is already serving.
            TypeError: If `handler` is neither a ServeMux nor an async callable.
            TickrError: If Redis is older than 6.2 (checked once Redis answers), or
                after a clean shutdown because one of the server's loops or workers
                kept failing (see docs/reliability.md).
        """
        resolve = _resolver(handler)
        await self._serve_once(lambda run: self._serve(run, resolve, burst))

    async def wait_ready(self) -> None:
        """Return once `serve()` has every loop running and listens for work.

        It waits for the `serve()` call running now, or else for the next one to start
        (for example in a task of its own).

        Raises:
            RuntimeError: If that `serve()` call ended before it was ready (it failed to
                start, or was shut down first).
        """
        await self._wait_ready()

    async def shutdown(self) -> None:
        """Stop fetching, give running handlers `shutdown_timeout`, requeue the rest.

        Returns once `serve()` has finished shutting down (at once if not serving).
        """
        run = self._request_stop()
        if run is not None:
            await run.ended.wait()

    # ------------------------------------------------------------------ serving

    async def _serve(
        self, run: Run, resolve: Callable[[str], CallNext | None], burst: bool
    ) -> None:
        stop_requested = run.stop
        supervisor = Supervisor(lambda _failure: stop_requested.set(), stop_requested.is_set)
        broker = Broker.connect(self._url, self._redis, self.namespace)
        renewer = broker.sync_renewer()
        processor, finisher, fetcher, forwarder, heartbeat, listener, leases = self._build(
            broker, resolve, renewer, supervisor, run
        )
        background: dict[str, asyncio.Task[None]] = {}
        cancelled = False
        try:
            background["listener"] = supervisor.spawn("listener", listener.run)
            if await self._start_up(broker, listener, stop_requested):
                background["finisher"] = supervisor.spawn("finisher", finisher.run)
                processor.start(supervisor)
                if leases is not None:
                    leases.start()
                background["heartbeat"] = supervisor.spawn("heartbeat", heartbeat.run)
                background["forwarder"] = supervisor.spawn("forwarder", forwarder.run)
                inbox = Inbox(
                    broker, processor, fetcher.handoff, owner=self.id, queues=list(self._queues)
                )
                self._inbox = inbox
                background["inbox"] = supervisor.spawn("inbox", inbox.run)
                background["fetcher"] = supervisor.spawn("fetcher", fetcher.run)
                if burst:
                    watcher = BurstWatcher(
                        broker, processor, list(self._queues), lambda: self._empty(run)
                    )
                    background["burst"] = supervisor.spawn("burst", watcher.run)
                if self.scheduler is not None:
                    background["scheduler"] = asyncio.create_task(
                        self.scheduler.serve(), name="tickr-scheduler"
                    )
                logger.info(
                    "server %s serving %s with concurrency %d",
                    self.id,
                    ", ".join(f"{q}={w}" for q, w in self._queues.items()),
                    self.concurrency,
                )
                run.set_ready()
                await stop_requested.wait()
                logger.info("server %s shutting down", self.id)
        except asyncio.CancelledError:
            # Cancelled from outside: shut down at once (requeue running tasks without
            # waiting for them), then let the cancellation go on.
            cancelled = True
            run.force.set()
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            logger.info("server %s cancelled: shutting down now", self.id)
        finally:
            stop_requested.set()  # from now on the loops may end: the supervisor lets them
            await self._shut_down(run, broker, background, processor, finisher, fetcher, leases)
        if cancelled:
            raise asyncio.CancelledError
        if supervisor.gave_up is not None:
            raise supervisor.gave_up

    async def _start_up(self, broker: Broker, listener: EventListener, stop: asyncio.Event) -> bool:
        """Register the queues and wait for the subscription; False if stopped first."""
        backoff = Backoff()
        while not stop.is_set():
            try:
                await check_redis(broker)
                await broker.read_clock()
                await broker.register_queues(self._queues)
                break
            except RedisUnavailable as exc:
                delay = backoff.next()
                logger.warning("cannot reach Redis to start (%s); retrying in %.2fs", exc, delay)
                await first_of(stop.wait(), asyncio.sleep(delay))
        await first_of(stop.wait(), listener.connected.wait())
        return not stop.is_set()

    def _build(
        self,
        broker: Broker,
        resolve: Callable[[str], CallNext | None],
        renewer: SyncRenewer | None,
        supervisor: Supervisor,
        run: Run,
    ) -> tuple[
        Processor, Finisher, Fetcher, Forwarder, Heartbeat, EventListener, LeaseKeeper | None
    ]:
        processor_ref: list[Processor] = []
        finisher = Finisher(
            broker,
            self.id,
            archive_max_size=self._archive_max_size,
            archive_max_age_ms=self._archive_max_age_ms,
            on_recorded=lambda queue, task_id: processor_ref[0].recorded(queue, task_id),
        )
        processor = Processor(
            concurrency=self.concurrency,
            resolve=resolve,
            finisher=finisher,
            retry_delay=self._retry_delay,
            error_handler=self._error_handler,
            max_result_bytes=self._max_result_bytes,
            now_ms=broker.clock.now_ms,
        )
        processor_ref.append(processor)
        fetcher = Fetcher(
            broker,
            processor,
            owner=self.id,
            queues=self._queues,
            strict_priority=self.strict_priority,
            lease_ms=self._lease_ms,
            waiter_ttl_ms=int(self._heartbeat_interval * 3000) + 1000,
        )
        forwarder = Forwarder(broker, list(self._queues))
        leases = None
        if renewer is not None:
            leases = LeaseKeeper(
                renewer,
                processor,
                owner=self.id,
                queues=list(self._queues),
                lease_ms=self._lease_ms,
                interval=self._heartbeat_interval,
                blocked_after=max(1.0, self._heartbeat_interval),
            )
        heartbeat = Heartbeat(
            broker,
            processor,
            owner=self.id,
            queues=list(self._queues),
            interval=self._heartbeat_interval,
            lease_ms=self._lease_ms,
            archive_max_size=self._archive_max_size,
            archive_max_age_ms=self._archive_max_age_ms,
            health_check=self._health_check,
            renew=leases is None,
            record=lambda: self._registry_record(processor, supervisor, run),
            other_failure=lambda: (
                supervisor.take_failure() or (None if leases is None else leases.failure)
            ),
            waiter=fetcher.handoff.waiter,
            waiter_ttl_ms=int(self._heartbeat_interval * 3000) + 1000,
        )

        def on_event(event: Event) -> None:
            kind = event.kind
            if kind is EventKind.PENDING:
                fetcher.wake()
            elif kind is EventKind.SCHEDULE:
                forwarder.wake()
            elif kind is EventKind.CANCEL:
                processor.stop(event.queue, event.task_id, StopReason.CANCELLED)
            elif kind is EventKind.RESYNC:
                fetcher.wake()
                forwarder.wake()

        listener = broker.listener(on_event)
        for queue in self._queues:
            listener.add_events(queue)
        return processor, finisher, fetcher, forwarder, heartbeat, listener, leases

    def _registry_record(self, processor: Processor, supervisor: Supervisor, run: Run) -> bytes:
        return self._record(
            queues=self._queues,
            concurrency=self.concurrency,
            strict_priority=self.strict_priority,
            started_ms=run.started_ms,
            active=[[queue, task_id] for queue, task_id in tuple(processor.held)],
            workers_alive=supervisor.alive.get("worker", 0),
            restarts=dict(supervisor.restarts),
        )

    def _empty(self, run: Run) -> None:
        logger.info("server %s: queues are empty, stopping (burst mode)", self.id)
        run.stop.set()

    async def _shut_down(
        self,
        run: Run,
        broker: Broker,
        background: dict[str, asyncio.Task[None]],
        processor: Processor,
        finisher: Finisher,
        fetcher: Fetcher,
        leases: LeaseKeeper | None,
    ) -> None:
        scheduler_task = background.pop("scheduler", None)
        if self.scheduler is not None and scheduler_task is not None:
            await self.scheduler.shutdown()
            await asyncio.wait({scheduler_task}, timeout=_FETCH_GRACE)
            await _cancel(scheduler_task)
        await _cancel(background.pop("burst", None))
        await self._stop_fetcher(fetcher, background.pop("fetcher", None))
        await self._stop_inbox(fetcher, background.pop("inbox", None))
        await _cancel(background.pop("forwarder", None))
        for job in processor.take_waiting():
            job.stop_reason = StopReason.SHUTDOWN
            finisher.requeue(job)
        await self._wait_for_handlers(processor, run.force)
        for job in list(processor.running.values()):
            logger.info("task %s in %r still running at shutdown: requeued", job.id, job.queue)
            requeue = job.stop_reason is None
            job.stop(StopReason.SHUTDOWN)  # before the requeue, which makes the job done
            if requeue:
                finisher.requeue(job)
        flushed = "finisher" not in background or await within(finisher.drain(), _FINAL_FLUSH_LIMIT)
        if not flushed:
            logger.warning(
                "could not record every outcome before shutting down; their leases will "
                "expire and other servers will recover those tasks"
            )
        await _cancel(background.pop("heartbeat", None))
        try:
            await broker.unregister("server", self.id)
        except Exception as exc:  # noqa: BLE001 - the record expires by itself anyway
            logger.info("could not remove this server from the registry (%s)", exc)
        if leases is not None:
            leases.stop()
            await leases.join()
        await _cancel(background.pop("finisher", None))
        await _cancel(background.pop("listener", None))
        if not await within(processor.wait_until_idle(), _HANDLER_GRACE):
            logger.warning("some handlers ignored cancellation; abandoning them")
        await processor.cancel_workers(_HANDLER_GRACE)
        await broker.aclose()
        logger.info("server %s stopped", self.id)

    async def _stop_fetcher(self, fetcher: Fetcher, task: asyncio.Task[None] | None) -> None:
        """Stop the fetcher without dropping the reply of a dequeue in flight."""
        fetcher.stop()
        if task is not None and fetcher.taking:
            await asyncio.wait({task}, timeout=_FETCH_GRACE)
        await _cancel(task)

    async def _stop_inbox(self, fetcher: Fetcher, task: asyncio.Task[None] | None) -> None:
        """Stop receiving handed tasks without dropping one.

        The inbox loop ends once its BLPOP returns (at once: it is woken); then the
        registrations end, and what was handed meanwhile is taken and requeued with the
        other unstarted jobs.
        """
        if task is None:
            return
        inbox = self._inbox
        if inbox is not None:
            await inbox.stop()
            await asyncio.wait({task}, timeout=INBOX_WAIT_SECONDS + _FETCH_GRACE)
        await _cancel(task)
        try:
            await fetcher.handoff.leave()
        except Exception as exc:  # noqa: BLE001 - registrations expire by themselves
            logger.info("could not leave the waiters of the queues (%s)", exc)

    async def _wait_for_handlers(self, processor: Processor, force: asyncio.Event) -> None:
        if not processor.running or force.is_set():
            return
        idle = asyncio.create_task(processor.wait_until_idle())
        forced = asyncio.create_task(force.wait())
        try:
            await asyncio.wait(
                {idle, forced},
                timeout=self._shutdown_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            idle.cancel()
            forced.cancel()


async def _cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel a loop, wait for it to end, and log it if it had failed."""
    if task is None:
        return
    await cancel_and_wait([task])
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        logger.error("a server loop had failed", exc_info=exc)


def _check_queues(queues: Mapping[str, int]) -> dict[str, int]:
    if not isinstance(queues, Mapping) or not queues:
        raise ValueError("queues must be a non-empty mapping of queue name to weight")
    checked = {}
    for name, weight in queues.items():
        check_name(name, "queue")
        checked[name] = check_int(weight, f"the weight of queue {name!r}", 1)
    return checked


def _resolver(
    handler: ServeMux | Callable[[Task], Awaitable[Any]],
) -> Callable[[str], CallNext | None]:
    if isinstance(handler, ServeMux):
        return handler.handler_for
    if not is_async_callable(handler):
        raise TypeError("serve() needs a ServeMux or an async function taking a Task")
    return lambda task_type: handler
