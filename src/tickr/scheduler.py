"""`Scheduler`: enqueues periodic tasks, each tick exactly once across all schedulers.

Every entry's last enqueued tick is kept in Redis next to the queue it feeds, and a tick
is enqueued by one atomic script only if it is later than that (lua/cron_tick.lua).  So
any number of schedulers can run the same entries for high availability: each tick is
enqueued once, by whichever comes first.

When every scheduler was down for a while, the ticks missed are handled by the catch-up
policy: "latest" (the default) enqueues the latest missed tick once, "none" skips them,
and "all" enqueues each of them in order (at most `max_catch_up`).  A tick is missed
when it is more than `misfire_grace` seconds late.

Entries come from `register()` and, optionally, from a `config_provider` that is read
again every `config_interval` seconds: entries it adds start, entries it drops stop, and
entries that did not change keep their schedule.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import timedelta, tzinfo
from typing import Any, Final, Literal

from tickr import _observe as observe
from tickr._aio import call_hook, first_of
from tickr._broker import Broker, EnqueueOutcome, RedisClient
from tickr._checks import (
    check_callable,
    check_int,
    check_name,
    check_positive_seconds,
    check_seconds,
    check_url,
)
from tickr._options import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    TaskSpec,
    prepare_task,
)
from tickr._serialization import canonical_bytes
from tickr._service import Run, Service
from tickr.clock import Clock, SystemClock
from tickr.errors import DuplicateTask, TaskIDConflict
from tickr.schedule import CronSchedule, Schedule, parse_schedule, zone

__all__ = ["CatchUp", "PeriodicTask", "Scheduler"]

logger = logging.getLogger("tickr.scheduler")

CatchUp = Literal["latest", "none", "all"]
"""What to do with ticks missed while no scheduler ran: see the module docstring."""

STATE_TTL_MS: Final = 30 * 24 * 3600 * 1000
"""An entry's last tick and history outlive the last scheduler running it by this long."""
_FORBIDDEN_OPTIONS: Final = ("at", "task_id")
_RETRY_SECONDS: Final = 1.0

ErrorHandler = Callable[["PeriodicTask", BaseException], Any]
"""``(periodic_task, exc) -> None``, sync or async: told of every tick that failed."""

ConfigProvider = Callable[[], "Iterable[PeriodicTask] | Awaitable[Iterable[PeriodicTask]]"]
"""Returns the current periodic tasks (sync or async)."""


class PeriodicTask:
    """A task to enqueue on a schedule: the spec, and what `Client.enqueue` would take.

    Args:
        spec: A cron expression, a descriptor or ``@every <duration>`` (see
            `tickr.schedule`).
        type: The task type.
        payload: The task payload, the same for every tick.
        entry_id: A stable name for the entry; by default a digest of everything else, so
            that schedulers running the same entries agree on it.
        timezone: The timezone of a cron spec; default the scheduler's.
        **enqueue_options: Any option of `Client.enqueue` but `at` and `task_id`
            (`delay` counts from when the tick is enqueued, normally the tick itself).
    """

    __slots__ = ("entry_id", "options", "payload", "spec", "timezone", "type")

    def __init__(
        self,
        spec: str,
        type: str,
        payload: Any = None,
        *,
        entry_id: str | None = None,
        timezone: str | None = None,
        **enqueue_options: Any,
    ) -> None:
        self.spec = spec
        self.type = type
        self.payload = payload
        self.entry_id = entry_id
        self.timezone = timezone
        self.options = enqueue_options

    def __repr__(self) -> str:
        return f"PeriodicTask({self.spec!r}, {self.type!r}, entry_id={self.entry_id!r})"


class _Entry:
    """A validated periodic task and its state in this scheduler."""

    __slots__ = (
        "definition",
        "id",
        "next_due",
        "queue",
        "retry_at",
        "schedule",
        "task",
        "timezone_name",
    )

    def __init__(self, task: PeriodicTask, default_timezone: str, max_payload: int) -> None:
        timezone_name = task.timezone or default_timezone
        timezone: tzinfo = zone(timezone_name)
        schedule = parse_schedule(task.spec, timezone)
        for option in _FORBIDDEN_OPTIONS:
            if option in task.options:
                raise ValueError(f"{option!r} cannot be given to a periodic task")
        spec = TaskSpec(task.type, task.payload, **task.options)  # TypeError on unknown options
        prepare_task(spec, now_ms=0, max_payload_bytes=max_payload)  # every other check
        self.task = task
        self.schedule: Schedule = schedule
        self.timezone_name = timezone_name
        self.queue = spec.queue
        self.definition = _digest(task, schedule)
        self.id = check_name(task.entry_id, "entry_id") if task.entry_id else self.definition
        self.next_due = 0.0
        """The next tick to enqueue."""
        self.retry_at = 0.0
        """After a failed tick: when to try it again."""


_DURATION_OPTIONS: Final = ("delay", "timeout", "unique", "retention")


def _option_digest(name: str, value: Any) -> Any:
    """What an option adds to an entry's digest, whatever the order of its headers."""
    if name in _DURATION_OPTIONS and value is not None:
        return check_seconds(value, name)
    if name == "headers" and isinstance(value, Mapping):
        return sorted((str(key), repr(text)) for key, text in value.items())
    return repr(value)


def _digest(task: PeriodicTask, schedule: Schedule) -> str:
    """A stable id from what the entry does, the same in every process.

    The spec's whitespace, the spelling of its timezone and of durations (seconds or
    timedelta) do not matter, nor the timezone of an ``@every`` spec.
    """
    if isinstance(schedule, CronSchedule):
        when = [schedule.expression, str(schedule.timezone)]
    else:
        when = [" ".join(task.spec.split())]
    options = {name: _option_digest(name, value) for name, value in task.options.items()}
    hasher = hashlib.blake2b(digest_size=10)
    hasher.update(canonical_bytes([*when, task.type, task.payload, options]))
    return hasher.hexdigest()


class Scheduler(Service):
    """Enqueues periodic tasks; run one or several for high availability.

    Args:
        url: Redis URL; default $TICKR_REDIS_URL, else ``redis://127.0.0.1:6379/0``.
        redis: An existing `redis.asyncio.Redis` to use instead (never closed by Tickr).
        namespace: Prefix of every key.
        timezone: Default timezone of cron specs (an IANA name such as "Europe/Berlin").
        config_provider: Returns the periodic tasks to run, sync or async; read at start
            and every `config_interval` seconds, on top of the registered ones.
        config_interval: Seconds between two reads of `config_provider`.
        catch_up: What to do with missed ticks: "latest" (default), "none" or "all".
        max_catch_up: Most missed ticks enqueued per entry with catch_up="all".
        misfire_grace: Seconds a tick may be late and still count as on time.
        error_handler: ``(periodic_task, exc)``, sync or async, told of failed ticks.
        heartbeat_interval: Seconds between two refreshes of this scheduler's record in
            Redis (what `Inspector.scheduler_entries()` shows).
        history: Tick events kept per entry.
        clock: Where the time comes from (`tickr.clock.SystemClock` by default; tests
            inject `tickr.testing.ManualClock`).

    Raises:
        TypeError, ValueError: For invalid settings.
    """

    _noun = "scheduler"

    def __init__(
        self,
        url: str | None = None,
        *,
        redis: RedisClient | None = None,
        namespace: str = "tickr",
        timezone: str = "UTC",
        config_provider: ConfigProvider | None = None,
        config_interval: float | timedelta = 60.0,
        catch_up: CatchUp = "latest",
        max_catch_up: int = 100,
        misfire_grace: float | timedelta = 5.0,
        error_handler: ErrorHandler | None = None,
        heartbeat_interval: float | timedelta = 5.0,
        history: int = 100,
        clock: Clock | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        super().__init__()
        check_url(url)
        check_name(namespace, "namespace")
        zone(timezone)
        if catch_up not in ("latest", "none", "all"):
            raise ValueError(f"catch_up must be 'latest', 'none' or 'all', not {catch_up!r}")
        config_seconds = check_positive_seconds(config_interval, "config_interval")
        heartbeat_seconds = check_positive_seconds(heartbeat_interval, "heartbeat_interval")
        grace_seconds = check_positive_seconds(misfire_grace, "misfire_grace")
        for name, count in (("max_catch_up", max_catch_up), ("history", history)):
            check_int(count, name, 1)
        check_int(max_payload_bytes, "max_payload_bytes", 1)
        check_callable(config_provider, "config_provider")
        check_callable(error_handler, "error_handler")
        self._url = url
        self._redis = redis
        self.namespace = namespace
        self.timezone = timezone
        self._provider = config_provider
        self._config_interval = config_seconds
        self._catch_up: CatchUp = catch_up
        self._max_catch_up = max_catch_up
        self._grace = grace_seconds
        self._error_handler = error_handler
        self._heartbeat_interval = heartbeat_seconds
        self._history = history
        self._clock: Clock = clock or SystemClock()
        self._max_payload = max_payload_bytes
        self._registered: dict[str, _Entry] = {}
        self._provided: dict[str, _Entry] = {}
        self._entries: dict[str, _Entry] = {}
        observe.ensure_tracing()
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ entries

    def register(
        self,
        spec: str,
        type: str,
        payload: Any = None,
        *,
        entry_id: str | None = None,
        timezone: str | None = None,
        **enqueue_options: Any,
    ) -> str:
        """Enqueue `type` on every tick of `spec`; returns the entry id.

        Registering the same entry again (same id) replaces it.  See `PeriodicTask` for
        the arguments.

        Raises:
            ValueError: For an invalid spec, timezone or option (`at` and `task_id` are
                not for periodic tasks).
            TypeError: For an argument of the wrong type or an unknown option.
        """
        task = PeriodicTask(
            spec, type, payload, entry_id=entry_id, timezone=timezone, **enqueue_options
        )
        entry = _Entry(task, self.timezone, self._max_payload)
        self._registered[entry.id] = entry
        self._merge()
        return entry.id

    def unregister(self, entry_id: str) -> bool:
        """Stop enqueueing an entry; returns whether it was registered."""
        removed = self._registered.pop(entry_id, None) is not None
        if removed:
            self._merge()
        return removed

    @property
    def entry_ids(self) -> list[str]:
        """Ids of every entry this scheduler runs now (registered and provided)."""
        return sorted(self._entries)

    def _merge(self) -> None:
        merged = {**self._provided, **self._registered}
        for entry_id, entry in merged.items():
            running = self._entries.get(entry_id)
            if running is not None and running.definition == entry.definition:
                merged[entry_id] = running  # unchanged: it keeps its schedule state
        self._entries = merged
        self._changed.set()

    async def _refresh_config(self) -> None:
        if self._provider is None:
            return
        try:
            provided = self._provider()
            if inspect.isawaitable(provided):
                provided = await provided
            entries: dict[str, _Entry] = {}
            for task in provided:
                if not isinstance(task, PeriodicTask):
                    raise TypeError(
                        f"config_provider must return PeriodicTask objects, not {task!r}"
                    )
                entry = _Entry(task, self.timezone, self._max_payload)
                entries[entry.id] = entry
        except Exception as exc:
            logger.error("config_provider failed; keeping the current entries", exc_info=exc)
            return
        added = set(entries) - set(self._provided)
        removed = set(self._provided) - set(entries)
        if added or removed:
            logger.info("config_provider: %d entries added, %d removed", len(added), len(removed))
        self._provided = entries
        self._merge()

    # ------------------------------------------------------------------ running

    def run(self) -> None:
        """Schedule in a new event loop until SIGINT or SIGTERM.

        Raises:
            RuntimeError: If called from a running event loop (use `serve`).
        """
        self._run_until_signalled(self.serve, logger)

    async def wait_ready(self) -> None:
        """Return once `serve()` has loaded its entries and schedules them.

        It waits for the `serve()` call running now, or else for the next one to start.

        Raises:
            RuntimeError: If that `serve()` call ended before it was ready.
        """
        await self._wait_ready()

    async def shutdown(self) -> None:
        """Stop scheduling; `serve()` returns (nothing else needs to finish)."""
        self._request_stop()

    async def serve(self) -> None:
        """Schedule in the running event loop until `shutdown()`.

        Raises:
            RuntimeError: If this scheduler is already serving.
        """
        await self._serve_once(self._serve)

    async def _serve(self, run: Run) -> None:
        broker: Broker | None = None
        try:
            broker = Broker.connect(self._url, self._redis, self.namespace)
            await self._refresh_config()
            await self._start_entries(broker, list(self._entries.values()), run.stop)
            logger.info("scheduler %s running %d entries", self.id, len(self._entries))
            run.set_ready()
            await self._loop(broker, run.stop)
        finally:
            if broker is not None:
                try:
                    await broker.unregister("scheduler", self.id)
                except Exception as exc:  # noqa: BLE001 - the record expires by itself anyway
                    logger.info("could not remove this scheduler from the registry (%s)", exc)
                await broker.aclose()
            logger.info("scheduler %s stopped", self.id)

    async def _loop(self, broker: Broker, stop: asyncio.Event) -> None:
        clock = self._clock
        next_heartbeat = clock.time()
        next_config = clock.time() + self._config_interval
        while not stop.is_set():
            self._changed.clear()
            fresh = [entry for entry in self._entries.values() if entry.next_due == 0.0]
            if fresh:
                await self._start_entries(broker, fresh, stop)
            now = clock.time()
            moved = bool(fresh)
            for entry in list(self._entries.values()):
                if entry.next_due <= now and entry.retry_at <= now:
                    await self._fire(broker, entry, now)
                    moved = True
            now = clock.time()
            if moved or now >= next_heartbeat:
                # The record names each entry's next tick as soon as it changes, so a
                # reader never has to guess it from a clock of its own.
                await self._heartbeat(broker, now)
                next_heartbeat = now + self._heartbeat_interval
            if self._provider is not None and now >= next_config:
                await self._refresh_config()
                next_config = now + self._config_interval
                continue
            wake = min(
                [max(entry.next_due, entry.retry_at) for entry in self._entries.values()]
                + [next_heartbeat, next_config if self._provider is not None else next_heartbeat]
            )
            await first_of(clock.sleep_until(wake), self._changed.wait(), stop.wait())

    async def _start_entries(
        self, broker: Broker, entries: list[_Entry], stop: asyncio.Event
    ) -> None:
        """Resume each entry after its last tick in Redis; start new entries from now."""
        now = self._clock.time()
        while True:
            try:
                await broker.register_queues({entry.queue for entry in entries})
                lasts = await broker.cron_last_ticks([(entry.queue, entry.id) for entry in entries])
                break
            except Exception as exc:  # noqa: BLE001 - retry until Redis answers
                logger.warning("could not read the periodic tasks' state (%s); retrying", exc)
                await first_of(asyncio.sleep(_RETRY_SECONDS), stop.wait())
                if stop.is_set():
                    return
        for entry, last in zip(entries, lasts, strict=True):
            if last is None:
                latest = entry.schedule.latest_at_or_before(now)
                start = int((latest if latest is not None else now) * 1000)
                try:
                    await broker.cron_start(entry.queue, entry.id, start, STATE_TTL_MS)
                except Exception as exc:  # noqa: BLE001 - the first tick claims it anyway
                    logger.warning("could not record the start of %s (%s)", entry.id, exc)
                entry.next_due = entry.schedule.next_after(now)
            else:
                entry.next_due = entry.schedule.next_after(last / 1000)

    def _ticks_to_enqueue(self, entry: _Entry, now: float) -> list[float]:
        """The ticks due by `now`, by the catch-up policy."""
        due = entry.next_due
        latest = entry.schedule.latest_at_or_before(now)
        if latest is None or latest < due:
            return []
        if now - due <= self._grace and entry.schedule.next_after(due) > now:
            return [due]  # on time
        if self._catch_up == "none":
            return [latest] if now - latest <= self._grace else []
        if self._catch_up == "latest":
            return [latest]
        ticks: list[float] = []
        tick: float | None = latest
        while tick is not None and tick >= due and len(ticks) < self._max_catch_up:
            ticks.append(tick)
            tick = entry.schedule.latest_at_or_before(tick - 0.001)
        return ticks[::-1]

    async def _fire(self, broker: Broker, entry: _Entry, now: float) -> None:
        ticks = self._ticks_to_enqueue(entry, now)
        for tick in ticks:
            try:
                await self._enqueue_tick(broker, entry, tick, now)
            except Exception as exc:
                logger.error("could not enqueue tick %s of %s", tick, entry.id, exc_info=exc)
                await self._report(entry.task, exc)
                entry.next_due = tick  # this tick is still to enqueue...
                entry.retry_at = now + _RETRY_SECONDS  # ...soon
                return
        if len(ticks) > 1 or (ticks and now - ticks[0] > self._grace):
            logger.info("entry %s: enqueued %d missed tick(s)", entry.id, len(ticks))
        entry.next_due = entry.schedule.next_after(now)
        entry.retry_at = 0.0

    async def _enqueue_tick(self, broker: Broker, entry: _Entry, tick: float, now: float) -> None:
        task = entry.task
        spec = TaskSpec(task.type, task.payload, **task.options)
        trace = observe.sending(entry.queue, 1)
        try:
            prepared = prepare_task(
                spec,
                now_ms=int(now * 1000),
                max_payload_bytes=self._max_payload,
                headers=trace.carry(spec.headers),
            )
            claim = await broker.cron_tick(
                entry.queue,
                entry.id,
                int(tick * 1000),
                prepared.item,
                now_ms=int(now * 1000),
                history=self._history,
                state_ttl_ms=STATE_TTL_MS,
            )
        except BaseException as exc:
            trace.close(exc)
            raise
        if claim.outcome is not None:
            trace.sent([prepared.item.id])
        trace.close(None)
        enqueued = claim.outcome
        if enqueued is None:
            return  # another scheduler claimed the tick
        outcome = enqueued.outcome
        if outcome is EnqueueOutcome.PENDING or outcome is EnqueueOutcome.SCHEDULED:
            logger.debug("entry %s: enqueued task %s", entry.id, prepared.info.id)
            observe.enqueued(entry.queue, task.type)
        elif outcome is EnqueueOutcome.ID_TAKEN:
            await self._report(task, TaskIDConflict(prepared.info.id, entry.queue))
        else:
            logger.info("entry %s: tick skipped, an equal unique task is live", entry.id)
            live_id = enqueued.live_id
            await self._report(task, DuplicateTask(task.type, entry.queue, live_id))

    async def _heartbeat(self, broker: Broker, now: float) -> None:
        record = self._record(
            entries=[
                {
                    "id": entry.id,
                    "spec": entry.task.spec,
                    "timezone": entry.timezone_name,
                    "type": entry.task.type,
                    "payload": entry.task.payload,
                    "queue": entry.queue,
                    "next_ms": int(entry.next_due * 1000),
                }
                for entry in self._entries.values()
            ]
        )
        ttl_ms = int(self._heartbeat_interval * 3000)
        try:
            # The registry says who is alive: it runs on Redis' time, whatever the clock.
            queues = {entry.queue for entry in self._entries.values()}
            now_ms = await broker.time_ms()
            await broker.register("scheduler", self.id, record, now_ms, ttl_ms, queues)
        except Exception as exc:  # noqa: BLE001 - visibility only
            logger.warning("could not record this scheduler's entries (%s)", exc)

    async def _report(self, task: PeriodicTask, exc: BaseException) -> None:
        await call_hook(
            self._error_handler, (task, exc), logger, "the scheduler's error_handler raised"
        )
