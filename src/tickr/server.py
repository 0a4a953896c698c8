"""`Server`: runs handlers for the tasks of some queues.

Each `serve()` builds one `ServerContext` (tickr._server.context) and the parts from
it; every part has `start(supervisor)` and `stop()` (tickr._server.part), and
`_shut_down` reads as the list below.

Start order: connect and subscribe to the queues' events (the listener), then start the
finisher, the workers, the lease keeper (a thread), the heartbeat, the forwarder, the
inbox of handed tasks, the fetcher, the burst watcher and a given scheduler
(`_Parts.start_order`), so that nothing is fetched before everything that handles it
runs.  `serve()` reports readiness (`wait_ready()`) only once all of them are up.

Shutdown order, and why:

1. Stop the scheduler and the burst watcher, the fetcher (never during a dequeue), the
   inbox of handed tasks (never during a BLPOP; then the registrations end and what was
   handed is taken) and the forwarder: take nothing new.
2. Requeue the jobs that no worker has started yet, at once: other servers can run them
   while this one waits for its running handlers.
3. Wait up to `shutdown_timeout` for the running handlers to finish.
4. Requeue the handlers still running (to the front of pending) and cancel them.
5. Write every outcome to Redis (the lease keeper keeps the leases alive meanwhile).
6. Stop the heartbeat (it leaves the registry) and the lease keeper, then the finisher
   and the event listener; cancel the workers; close Redis.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from tickr import _observe as observe
from tickr._aio import Backoff, first_of
from tickr._broker import Broker, RedisClient
from tickr._checks import (
    check_bool,
    check_callable,
    check_duration_ms,
    check_int,
    check_name,
    check_seconds,
    check_url,
    is_async_callable,
)
from tickr._options import MAX_CONCURRENCY
from tickr._server.autoscaler import Autoscaler
from tickr._server.burst import BurstWatcher
from tickr._server.context import ServerContext
from tickr._server.fetcher import FETCH_GRACE, Fetcher
from tickr._server.finisher import Finisher
from tickr._server.forwarder import Forwarder
from tickr._server.heartbeat import HealthCheck, Heartbeat
from tickr._server.inbox import Inbox
from tickr._server.lease_keeper import LeaseKeeper
from tickr._server.listener import Listener
from tickr._server.part import Loop, Part
from tickr._server.processor import ErrorHandler, Processor
from tickr._server.redis_check import check_redis
from tickr._server.supervisor import Supervisor
from tickr._service import Run, Service
from tickr._time import now_ms
from tickr.autoscale import Autoscale
from tickr.backoff import RetryDelay, exponential_backoff
from tickr.errors import RedisUnavailable
from tickr.mux import CallNext, ServeMux
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
        autoscale: Let the server size its concurrency to the load, within these bounds
            (`tickr.Autoscale`); `concurrency` is where it starts (kept within them).

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
        autoscale: Autoscale | None = None,
    ) -> None:
        super().__init__()
        check_url(url)
        check_name(namespace, "namespace")
        check_int(concurrency, "concurrency", 1, MAX_CONCURRENCY)
        check_bool(strict_priority, "strict_priority")
        self._queues = _check_queues({"default": 1} if queues is None else queues)
        self._shutdown_timeout = check_seconds(shutdown_timeout, "shutdown_timeout")
        self._lease_ms = check_duration_ms(lease_duration, "lease_duration")
        self._heartbeat_interval = check_seconds(heartbeat_interval, "heartbeat_interval")
        if not 0 < self._heartbeat_interval * 1000 < self._lease_ms:
            raise ValueError("heartbeat_interval must be positive and shorter than lease_duration")
        check_int(archive_max_size, "archive_max_size", 0)
        check_int(max_result_bytes, "max_result_bytes", 1)
        check_callable(retry_delay, "retry_delay")
        check_callable(error_handler, "error_handler")
        check_callable(health_check, "health_check")
        self._url = url
        self._redis = redis
        self.namespace = namespace
        if autoscale is not None and not isinstance(autoscale, Autoscale):
            raise TypeError(f"autoscale must be a tickr.Autoscale, not {autoscale!r}")
        self.autoscale = autoscale
        self.concurrency = concurrency if autoscale is None else autoscale.clamp(concurrency)
        self._processor: Processor | None = None
        self.strict_priority = strict_priority
        self._retry_delay = retry_delay or exponential_backoff()
        self._error_handler = error_handler
        self._health_check = health_check
        self._archive_max_size = archive_max_size
        self._max_result_bytes = max_result_bytes
        self._archive_max_age_ms = check_duration_ms(archive_max_age, "archive_max_age")
        if scheduler is not None and not isinstance(scheduler, Scheduler):
            raise TypeError("scheduler must be a tickr.Scheduler")
        self.scheduler = scheduler
        observe.ensure_tracing()

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
        mux = handler if isinstance(handler, ServeMux) else None
        await self._serve_once(lambda run: self._serve(run, resolve, burst, mux))

    async def wait_ready(self) -> None:
        """Return once `serve()` has every loop running and listens for work.

        It waits for the `serve()` call running now, or else for the next one to start
        (for example in a task of its own).

        Raises:
            RuntimeError: If that `serve()` call ended before it was ready (it failed to
                start, or was shut down first).
        """
        await self._wait_ready()

    async def set_concurrency(self, concurrency: int) -> None:
        """Run up to `concurrency` tasks at once from now on, without a restart.

        Growing starts workers at once; shrinking lets running handlers finish (no task
        is stopped), and the workers beyond the new size end as they become free.  Not
        serving, it sets the concurrency of the next `serve()`.
        `Inspector.set_server_concurrency` does the same from another process.

        Raises:
            TypeError, ValueError: For a concurrency that is not an int from 1 to
                `MAX_CONCURRENCY`.
        """
        check_int(concurrency, "concurrency", 1, MAX_CONCURRENCY)
        self._resize(concurrency)

    def _resize(self, concurrency: int) -> None:
        if concurrency == self.concurrency:
            return
        logger.info("server %s: concurrency %d -> %d", self.id, self.concurrency, concurrency)
        self.concurrency = concurrency
        if self._processor is not None:
            self._processor.resize(concurrency)

    async def shutdown(self) -> None:
        """Stop fetching, give running handlers `shutdown_timeout`, requeue the rest.

        Returns once `serve()` has finished shutting down (at once if not serving).
        """
        run = self._request_stop()
        if run is not None:
            await run.ended.wait()

    # ------------------------------------------------------------------ serving

    async def _serve(
        self,
        run: Run,
        resolve: Callable[[str], CallNext | None],
        burst: bool,
        mux: ServeMux | None,
    ) -> None:
        supervisor = Supervisor(lambda _failure: run.stop.set(), run.stop.is_set)
        ctx = self._context(Broker.connect(self._url, self._redis, self.namespace))
        parts = self._build(ctx, resolve, supervisor, run, burst)
        cancelled = False
        try:
            parts.listener.start(supervisor)
            if await self._start_up(ctx.broker, parts.listener, run.stop):
                for part in parts.start_order():
                    part.start(supervisor)
                logger.info(
                    "server %s serving %s with concurrency %d",
                    self.id,
                    ", ".join(f"{q}={w}" for q, w in self._queues.items()),
                    self.concurrency,
                )
                observe.register_server(self._gauges(parts, mux))
                run.set_ready()
                await run.stop.wait()
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
            observe.unregister_server(self.id)
            run.stop.set()  # from now on the parts may end: the supervisor lets them
            await self._shut_down(run, ctx, parts)
            self._processor = None
        if cancelled:
            raise asyncio.CancelledError
        if supervisor.gave_up is not None:
            raise supervisor.gave_up

    def _gauges(self, parts: _Parts, mux: ServeMux | None) -> observe.ServerGauges:
        """What a metrics collector reads of this server while it serves."""
        processor, leases = parts.processor, parts.leases
        no_types: frozenset[str] = frozenset()
        return observe.ServerGauges(
            server_id=self.id,
            concurrency=lambda: self.concurrency,
            busy=lambda: len(processor.running),
            loop_lag=(lambda: 0.0) if leases is None else leases.loop_lag,
            task_types=(lambda: no_types) if mux is None else lambda: frozenset(mux.patterns),
        )

    async def _start_up(self, broker: Broker, listener: Listener, stop: asyncio.Event) -> bool:
        """Register the queues, migrate their 0.1 data, and wait for the subscription.

        Returns False if stopped first.
        """
        backoff = Backoff()
        while not stop.is_set():
            try:
                await check_redis(broker)
                await broker.read_clock()
                await broker.register_queues(self._queues)
                for queue in self._queues:
                    moved = await broker.migrate(queue)
                    if moved:
                        logger.info("moved %d pending tasks of %r from 0.1's layout", moved, queue)
                break
            except RedisUnavailable as exc:
                delay = backoff.next()
                logger.warning("cannot reach Redis to start (%s); retrying in %.2fs", exc, delay)
                await first_of(stop.wait(), asyncio.sleep(delay))
        await first_of(stop.wait(), listener.connected.wait())
        return not stop.is_set()

    def _context(self, broker: Broker) -> ServerContext:
        queues = self._queues
        return ServerContext(
            broker=broker,
            owner=self.id,
            queues=queues,
            heaviest_first=tuple(sorted(queues, key=lambda name: (-queues[name], name))),
            lease_ms=self._lease_ms,
            interval=self._heartbeat_interval,
            archive_max_size=self._archive_max_size,
            archive_max_age_ms=self._archive_max_age_ms,
            waiter=Broker.waiter_name(self.id, self._lease_ms),
            waiter_ttl_ms=int(self._heartbeat_interval * 3000) + 1000,
            held={},
        )

    def _build(
        self,
        ctx: ServerContext,
        resolve: Callable[[str], CallNext | None],
        supervisor: Supervisor,
        run: Run,
        burst: bool,
    ) -> _Parts:
        finisher = Finisher(ctx)
        processor = Processor(
            ctx,
            concurrency=self.concurrency,
            resolve=resolve,
            finisher=finisher,
            retry_delay=self._retry_delay,
            error_handler=self._error_handler,
            max_result_bytes=self._max_result_bytes,
        )
        fetcher = Fetcher(ctx, processor, strict_priority=self.strict_priority)
        forwarder = Forwarder(ctx)
        renewer = ctx.broker.sync_renewer()
        leases = None if renewer is None else LeaseKeeper(ctx, renewer, processor)
        heartbeat = Heartbeat(
            ctx,
            processor,
            health_check=self._health_check,
            renew=leases is None,
            record=lambda: self._registry_record(ctx, supervisor, run),
            other_failure=lambda: (
                supervisor.take_failure() or (None if leases is None else leases.failure)
            ),
        )
        self._processor = processor
        return _Parts(
            listener=Listener(ctx, fetcher, forwarder, processor, resize=self._resize),
            finisher=finisher,
            processor=processor,
            leases=leases,
            heartbeat=heartbeat,
            forwarder=forwarder,
            inbox=Inbox(ctx, processor, fetcher.handoff),
            fetcher=fetcher,
            burst=BurstWatcher(ctx, lambda: self._empty(run)) if burst else None,
            scheduler=None if self.scheduler is None else _SchedulerPart(self.scheduler),
            autoscaler=(
                None
                if self.autoscale is None
                else Autoscaler(self.autoscale, processor, fetcher, self._resize)
            ),
        )

    def _registry_record(self, ctx: ServerContext, supervisor: Supervisor, run: Run) -> bytes:
        return self._record(
            queues=self._queues,
            concurrency=self.concurrency,
            strict_priority=self.strict_priority,
            started_ms=run.started_ms,
            active=[[queue, task_id] for queue, task_id in tuple(ctx.held)],
            workers_alive=supervisor.alive.get("worker", 0),
            restarts=dict(supervisor.restarts),
            heartbeat_ms=now_ms(),
        )

    def _empty(self, run: Run) -> None:
        logger.info("server %s: queues are empty, stopping (burst mode)", self.id)
        run.stop.set()

    async def _shut_down(self, run: Run, ctx: ServerContext, parts: _Parts) -> None:
        """Stop the parts in the order of the module docstring."""
        for part in _present(
            parts.autoscaler, parts.scheduler, parts.burst, parts.fetcher, parts.inbox
        ):
            await part.stop()  # 1. take nothing new...
        await parts.forwarder.stop()
        await parts.processor.drain(self._shutdown_timeout, run.force)  # 2. to 4.
        if not await parts.finisher.flush(_FINAL_FLUSH_LIMIT):  # 5.
            logger.warning(
                "could not record every outcome before shutting down; their leases will "
                "expire and other servers will recover those tasks"
            )
        for part in _present(parts.heartbeat, parts.leases, parts.finisher, parts.listener):
            await part.stop()  # 6.
        await parts.processor.stop()
        await ctx.broker.aclose()
        logger.info("server %s stopped", self.id)


@dataclass(frozen=True, slots=True)
class _Parts:
    """The parts of one serving server."""

    listener: Listener
    finisher: Finisher
    processor: Processor
    leases: LeaseKeeper | None
    """None when the connection cannot be reproduced for a thread (the heartbeat renews)."""
    heartbeat: Heartbeat
    forwarder: Forwarder
    inbox: Inbox
    fetcher: Fetcher
    burst: BurstWatcher | None
    scheduler: _SchedulerPart | None
    autoscaler: Autoscaler | None

    def start_order(self) -> list[Part]:
        """The parts to start once subscribed: nothing is fetched before what handles it."""
        return _present(
            self.finisher,
            self.processor,
            self.leases,
            self.heartbeat,
            self.forwarder,
            self.inbox,
            self.fetcher,
            self.burst,
            self.scheduler,
            self.autoscaler,
        )


class _SchedulerPart(Loop):
    """A Scheduler run by the server: it starts last and stops first."""

    kind = "scheduler"

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler

    def start(self, supervisor: Supervisor) -> None:
        """Serve the scheduler (unsupervised: it retries Redis by itself)."""
        self._task = asyncio.create_task(self._scheduler.serve(), name="tickr-scheduler")

    async def stop(self) -> None:
        """Shut the scheduler down, waiting up to `FETCH_GRACE` for it."""
        if self.started:
            await self._scheduler.shutdown()
            await self._end(FETCH_GRACE)


def _present(*parts: Part | None) -> list[Part]:
    return [part for part in parts if part is not None]


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
