"""The serving path: what clients, servers and schedulers send while tasks flow.

Enqueueing (`enqueue`, `enqueue_many`, `cron_tick`), taking work (`dequeue`, the
hand-off's waiters and inboxes, `reclaim`), recording outcomes (`finish`), moving due
tasks (`forward`), keeping leases (`heartbeat`) and the process registry.  Each method
builds one call (or one round trip of calls) and reads its reply; how it is sent is
`Calls`' business.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from tickr._broker.calls import Calls, ScriptCall, pack_list, text
from tickr._broker.keys import HANDED_WINDOW_LEASES, INBOX_TTL_MS
from tickr._broker.scripts import Script, load_script
from tickr._broker.types import (
    CronTick,
    Dequeued,
    DequeuedTask,
    Enqueued,
    EnqueueItem,
    FinishOp,
    HandedTask,
    HeartbeatReport,
    LeftWaiters,
    WatchedTask,
    enqueued,
)
from tickr._log_fields import task_fields
from tickr.errors import TickrError

__all__ = ["RECOVER_BATCH", "STATS_TTL_SECONDS", "Serving"]

logger = logging.getLogger("tickr.broker")

STATS_TTL_SECONDS: Final = 90 * 24 * 3600
MS_PER_HOUR: Final = 3_600_000
"""Daily counters are kept this long."""
RECOVER_BATCH: Final = 500
"""Most expired leases taken back per queue and heartbeat."""

_ENQUEUE_CHUNK: Final = 500
_INBOX_TAKE: Final = 1000

_ENQUEUE = load_script("enqueue")
_DEQUEUE = load_script("dequeue")
_RECLAIM = load_script("reclaim")
_FINISH = load_script("finish")
_FORWARD = load_script("forward")
_RENEW = load_script("renew")
_RECOVER = load_script("recover")
_REGISTER = load_script("register_process")
_CRON_TICK = load_script("cron_tick")
_CANCEL = load_script("cancel")
_WATCH = load_script("watch")


def _handed(element: bytes) -> DequeuedTask:
    """A task from an inbox: "<id> <msg>", never retried yet."""
    task_id, _, msg = bytes(element).partition(b" ")
    return DequeuedTask(task_id.decode(), msg, 0)


def _dequeued(reply: Sequence[Any], queue: str) -> list[DequeuedTask]:
    """Flat (id, msg, retried, ready) rows as tasks, each parsed alone.

    A row that cannot be parsed is left out with an error logged: its lease runs out
    and recover.lua archives the task with what is wrong with its record.
    """
    tasks: list[DequeuedTask] = []
    for i in range(0, len(reply), 4):
        row = reply[i : i + 4]
        try:
            tasks.append(DequeuedTask(text(row[0]), row[1], int(row[2]), int(row[3])))
        except (ValueError, TypeError, IndexError, UnicodeDecodeError) as exc:
            logger.error(
                "a task of %r cannot be read (%s): %r; leaving it to recovery", queue, exc, row[:1]
            )
    return tasks


def _log_set_aside(queue: str, pairs: Sequence[bytes]) -> None:
    """Log the tasks a script archived for their damaged records ({id, error, ...})."""
    for i in range(0, len(pairs), 2):
        task_id = text(pairs[i])
        logger.error(
            "task %s in %r archived: %s",
            task_id,
            queue,
            pairs[i + 1].decode(errors="replace"),
            extra=task_fields(task_id, queue),
        )


class Serving(Calls):
    """The broker's serving path (see the module docstring)."""

    # ------------------------------------------------------------------ enqueue

    def _enqueue_call(
        self, queue: str, items: Sequence[EnqueueItem]
    ) -> tuple[Script, Sequence[str], list[Any]]:
        keys = self.keys(queue)
        args = [
            keys.task_prefix,
            keys.unique_prefix,
            keys.events_channel,
            pack_list(items),
            keys.inbox_prefix,
            self.clock.now_ms(),
            INBOX_TTL_MS,
            HANDED_WINDOW_LEASES,
            keys.pending_prefix,
        ]
        key_names = (
            keys.pending,
            keys.scheduled,
            keys.idle,
            keys.waiters,
            keys.active,
            keys.paused,
        )
        return _ENQUEUE, key_names, args

    async def enqueue(
        self, queue: str, item: EnqueueItem, *, replicas: int = 0, timeout_ms: int = 0
    ) -> Enqueued:
        """Add one task to `queue` (see lua/enqueue.lua for the outcome).

        With `replicas`, returns only once that many replicas have it.

        Raises:
            RedisUnavailable: If Redis cannot be reached, or fewer replicas confirmed
                the task within `timeout_ms`.
        """
        script, keys, args = self._enqueue_call(queue, (item,))
        if replicas:
            (replies,) = await self._eval_replicated([(script, keys, args)], replicas, timeout_ms)
        else:
            replies = await self._eval(script, keys, args)
        return enqueued(replies[0])

    async def enqueue_many(
        self,
        batches: Sequence[tuple[str, Sequence[EnqueueItem]]],
        *,
        replicas: int = 0,
        timeout_ms: int = 0,
    ) -> list[list[Enqueued]]:
        """Add batches of tasks, each batch to one queue, in one round trip.

        Returns the outcomes per batch, in order; with `replicas`, once that many
        replicas have them.

        Raises:
            RedisUnavailable: As `enqueue`.
        """
        calls = []
        shape: list[tuple[int, int]] = []  # (batch index, items in this call)
        for batch_index, (queue, items) in enumerate(batches):
            for start in range(0, len(items), _ENQUEUE_CHUNK):
                chunk = items[start : start + _ENQUEUE_CHUNK]
                calls.append(self._enqueue_call(queue, chunk))
                shape.append((batch_index, len(chunk)))
        outcomes: list[list[Enqueued]] = [[] for _ in batches]
        if replicas:
            stored = await self._eval_replicated(calls, replicas, timeout_ms)
        else:
            stored = await self._eval_many(calls)
        for (batch_index, _size), replies in zip(shape, stored, strict=True):
            outcomes[batch_index].extend(map(enqueued, replies))
        return outcomes

    # ------------------------------------------------------------------ periodic tasks

    async def cron_tick(
        self,
        queue: str,
        entry_id: str,
        tick_ms: int,
        item: EnqueueItem,
        *,
        now_ms: int,
        history: int,
        state_ttl_ms: int,
    ) -> CronTick:
        """Enqueue one tick unless a scheduler did (see lua/cron_tick.lua)."""
        keys = self.keys(queue)
        claimed, outcome, last = await self._eval(
            _CRON_TICK,
            (
                keys.pending,
                keys.scheduled,
                keys.idle,
                keys.cron_last(entry_id),
                keys.cron_history(entry_id),
                keys.waiters,
                keys.active,
                keys.paused,
            ),
            (
                keys.task_prefix,
                keys.unique_prefix,
                keys.events_channel,
                tick_ms,
                now_ms,
                history,
                state_ttl_ms,
                pack_list(item),
                keys.inbox_prefix,
                self.clock.now_ms(),  # leases run on Redis' time, whatever the scheduler's clock
                INBOX_TTL_MS,
                HANDED_WINDOW_LEASES,
                keys.pending_prefix,
            ),
        )
        if not claimed:
            return CronTick(False, None, int(last))
        return CronTick(True, enqueued(outcome), int(last))

    async def cron_last_ticks(self, entries: Sequence[tuple[str, str]]) -> list[int | None]:
        """The last enqueued tick (ms) of each (queue, entry id), None for a new entry."""
        if not entries:
            return []
        replies = await self._pipeline(
            [("GET", self.keys(queue).cron_last(entry_id)) for queue, entry_id in entries]
        )
        return [None if reply is None else int(reply) for reply in replies]

    async def cron_start(self, queue: str, entry_id: str, tick_ms: int, state_ttl_ms: int) -> None:
        """Mark `tick_ms` as the last tick of a new entry (nothing before it will run)."""
        key = self.keys(queue).cron_last(entry_id)
        await self._command("SET", key, tick_ms, "NX", "PX", state_ttl_ms)

    # ------------------------------------------------------------------ taking work

    async def dequeue(self, queue: str, count: int, lease_expiry_ms: int, owner: str) -> Dequeued:
        """Take up to `count` pending tasks of `queue` under a lease held by `owner`.

        Sent once, never re-sent: when the connection fails, whether the call ran is
        unknown, and `reclaim` with the same `lease_expiry_ms` finds what it took.

        Raises:
            RedisUnavailable: If the call failed (it may have run: see `reclaim`).
        """
        keys = self.keys(queue)
        taken, rejected, hold = await self._eval(
            _DEQUEUE,
            (
                keys.pending,
                keys.active,
                keys.paused,
                keys.idle,
                keys.archived,
                keys.limits,
                keys.tat,
                keys.capwait,
            ),
            (
                keys.task_prefix,
                count,
                lease_expiry_ms,
                owner,
                self.clock.now_ms(),
                keys.pending_prefix,
            ),
            attempts=1,
        )
        _log_set_aside(queue, rejected)
        return Dequeued(_dequeued(taken, queue), int(hold))

    @staticmethod
    def waiter_name(owner: str, lease_ms: int) -> str:
        """How a server is registered as a waiter: its lease length and its id."""
        return f"{lease_ms} {owner}"

    async def join_waiters(self, queues: Sequence[str], waiter: str, until_ms: int) -> list[str]:
        """Register an idle server as a waiter in each queue, until `until_ms`.

        Heartbeats extend the registration.  The next task enqueued to an empty queue is
        handed to the server directly (see lua/lib/enqueue_task.lua).  Returns the
        queues where it failed (on a Cluster, those of a node that cannot be reached).

        Raises:
            RedisUnavailable: If Redis cannot be reached at all.
        """
        replies = await self._pipeline_partial(
            [("ZADD", self.keys(queue).waiters, until_ms, waiter) for queue in queues]
        )
        return [q for q, reply in zip(queues, replies, strict=True) if isinstance(reply, Exception)]

    async def leave_slot_waits(self, queues: Sequence[str], owner: str) -> None:
        """Stop waiting for a concurrency slot in these queues (a server stops)."""
        await self._pipeline_partial([("ZREM", self.keys(q).capwait, owner) for q in queues])

    async def leave_waiters(self, queues: Sequence[str], waiter: str, owner: str) -> LeftWaiters:
        """End a server's registrations, and take what was handed to it meanwhile."""
        commands: list[tuple[Any, ...]] = [("ZREM", self.keys(q).waiters, waiter) for q in queues]
        commands += [("LPOP", self.keys(q).inbox(owner), _INBOX_TAKE) for q in queues]
        replies = await self._pipeline_partial(commands)
        handed: list[HandedTask] = []
        used: list[str] = []
        failed: list[str] = []
        for queue, removed, elements in zip(
            queues, replies[: len(queues)], replies[len(queues) :], strict=True
        ):
            if isinstance(removed, Exception) or isinstance(elements, Exception):
                failed.append(queue)
                continue
            taken = [element for element in elements or () if element]
            handed.extend(HandedTask(queue, _handed(element)) for element in taken)
            if not removed and not taken:
                used.append(queue)
        return LeftWaiters(handed, used, failed)

    async def take_handed(
        self, queues: Sequence[str], owner: str, timeout_s: float
    ) -> HandedTask | None:
        """Wait up to `timeout_s` for a task handed to `owner`; (queue, task) or None.

        Blocks on a connection of its own (BLPOP), never on the commands' connection.
        """
        inboxes = {self.keys(queue).inbox(owner): queue for queue in queues}
        reply = await self._call_blocking(timeout_s, "BLPOP", *inboxes, timeout_s)
        if reply is None or not reply[1]:
            return None  # timed out, or woken by `wake_inbox`
        return HandedTask(inboxes[text(reply[0])], _handed(reply[1]))

    async def wake_inbox(self, queue: str, owner: str) -> None:
        """Make a `take_handed` of `owner` waiting now return at once (with nothing)."""
        inbox = self.keys(queue).inbox(owner)
        await self._pipeline([("RPUSH", inbox, b""), ("PEXPIRE", inbox, INBOX_TTL_MS)])

    async def reclaim(self, queue: str, owner: str, lease_expiry_ms: int) -> list[DequeuedTask]:
        """The tasks a `dequeue` call with this lease expiry gave `owner` (see reclaim.lua)."""
        keys = self.keys(queue)
        reply = await self._eval(
            _RECLAIM, (keys.active,), (keys.task_prefix, owner, lease_expiry_ms)
        )
        return _dequeued(reply, queue)

    # ------------------------------------------------------------------ outcomes and leases

    async def finish(
        self,
        queue: str,
        ops: Sequence[FinishOp],
        *,
        now_ms: int,
        owner: str,
        day: str,
        archive_max_size: int,
        archive_max_age_ms: int,
    ) -> list[int]:
        """Record outcomes of tasks held by `owner` (see lua/finish.lua).

        Returns per op 1 applied, 0 ignored because the lease was lost, or 2 when the
        task's record was damaged and the task archived with that error instead.
        """
        keys = self.keys(queue)
        args: list[Any] = [
            keys.task_prefix,
            keys.unique_prefix,
            keys.events_channel,
            keys.done_channel,
            now_ms,
            owner,
            STATS_TTL_SECONDS,
            archive_max_size,
            archive_max_age_ms,
            pack_list(ops),
            keys.pending_prefix,
        ]
        reply = await self._eval(
            _FINISH,
            (
                keys.active,
                keys.pending,
                keys.retry,
                keys.archived,
                keys.completed,
                keys.processed,
                keys.failed,
                keys.processed_on(day),
                keys.failed_on(day),
                keys.idle,
                keys.minutes(now_ms // MS_PER_HOUR),
                keys.capwait,
            ),
            args,
        )
        return [int(applied) for applied in reply]

    async def forward(
        self, queues: Sequence[str], now_ms: int, limit: int
    ) -> dict[str, tuple[int, int | None]]:
        """Move due scheduled and retry tasks of each queue to pending.

        Returns per queue (tasks moved, earliest due time left in ms or None).
        """
        calls = []
        for queue in queues:
            keys = self.keys(queue)
            calls.append(
                (
                    _FORWARD,
                    (
                        keys.scheduled,
                        keys.retry,
                        keys.pending,
                        keys.idle,
                        keys.archived,
                    ),
                    (keys.task_prefix, now_ms, limit, keys.events_channel, keys.pending_prefix),
                )
            )
        replies = await self._eval_many(calls)
        report = {}
        for queue, (moved, earliest, set_aside) in zip(queues, replies, strict=True):
            _log_set_aside(queue, set_aside)
            report[queue] = (int(moved), None if earliest < 0 else int(earliest))
        return report

    async def heartbeat(
        self,
        owner: str,
        lease_expiry_ms: int,
        held: Mapping[str, Sequence[str]],
        queues: Sequence[str],
        *,
        now_ms: int,
        day: str,
        archive_max_size: int,
        archive_max_age_ms: int,
        waiter: str = "",
        wait_until_ms: int = 0,
    ) -> HeartbeatReport:
        """Renew `owner`'s leases and take back expired ones, in one round trip.

        `held` maps queue -> ids of tasks `owner` holds (see lua/renew.lua); every queue
        of `queues` is searched for expired leases (see lua/recover.lua).  A queue whose
        calls failed is named in the report's `failed` (its leases stand as they were).

        Raises:
            RedisUnavailable: If Redis cannot be reached at all.
        """
        calls: list[ScriptCall] = []
        renewed = [queue for queue, ids in held.items() if ids]
        for queue in renewed:
            keys = self.keys(queue)
            args = (keys.task_prefix, owner, lease_expiry_ms, *held[queue])
            calls.append((_RENEW, (keys.active,), args))
        recover_args = (now_ms, day, archive_max_size, archive_max_age_ms, waiter, wait_until_ms)
        calls.extend(self._recover_call(queue, *recover_args) for queue in queues)
        replies = await self._eval_many(calls, partial=True)
        report = HeartbeatReport()
        for queue, reply in zip(renewed, replies, strict=False):
            if isinstance(reply, TickrError):
                report.failed[queue] = reply
                continue
            lost, cancelled = reply
            report.lost[queue] = [text(task_id) for task_id in lost]
            report.cancelled[queue] = [text(task_id) for task_id in cancelled]
        for queue, reply in zip(queues, replies[len(renewed) :], strict=True):
            if isinstance(reply, TickrError):
                report.failed[queue] = reply
                continue
            retried, archived, earliest, unreceived = reply
            report.recovered[queue] = (int(retried), int(archived))
            report.unreceived[queue] = int(unreceived)
            if earliest >= 0 and (
                report.earliest_lease_ms is None or earliest < report.earliest_lease_ms
            ):
                report.earliest_lease_ms = int(earliest)
        return report

    def _recover_call(
        self,
        queue: str,
        now_ms: int,
        day: str,
        archive_max_size: int,
        archive_max_age_ms: int,
        waiter: str,
        wait_until_ms: int,
    ) -> ScriptCall:
        """One recover.lua call (see lua/recover.lua)."""
        keys = self.keys(queue)
        return (
            _RECOVER,
            (
                keys.active,
                keys.retry,
                keys.archived,
                keys.processed,
                keys.failed,
                keys.processed_on(day),
                keys.failed_on(day),
                keys.pending,
                keys.waiters,
                keys.idle,
                keys.completed,
                keys.minutes(now_ms // MS_PER_HOUR),
            ),
            (
                keys.task_prefix,
                keys.unique_prefix,
                keys.events_channel,
                keys.done_channel,
                now_ms,
                STATS_TTL_SECONDS,
                archive_max_size,
                archive_max_age_ms,
                RECOVER_BATCH,
                keys.inbox_prefix,
                waiter,
                wait_until_ms,
                keys.pending_prefix,
            ),
        )

    # ------------------------------------------------------------------ registry

    async def register(
        self,
        kind: str,
        process_id: str,
        record: bytes,
        now_ms: int,
        ttl_ms: int,
        queues: Iterable[str] = (),
    ) -> None:
        """Record a running "server" or "scheduler" for `ttl_ms`, and its queues.

        See lua/register_process.lua.
        """
        record_key, registry = self._registry(kind, process_id)
        await self._eval(
            _REGISTER,
            (record_key, registry, self.namespace_keys.queues),
            (process_id, record, now_ms, ttl_ms, *queues),
        )

    async def unregister(self, kind: str, process_id: str) -> None:
        """Remove a "server" or "scheduler" record at once."""
        record_key, registry = self._registry(kind, process_id)
        await self._pipeline([("DEL", record_key), ("ZREM", registry, process_id)])

    async def register_queues(self, queues: Iterable[str]) -> None:
        """Record queue names in the namespace's queue registry."""
        names = list(queues)
        if names:
            await self._command("SADD", self.namespace_keys.queues, *names)

    # ------------------------------------------------------------------ single tasks

    async def cancel(self, queue: str, task_id: str) -> bool:
        """Cancel a task; whether it was deleted or its cancellation requested.

        See lua/cancel.lua; its other codes mean there was nothing to cancel.
        """
        keys = self.keys(queue)
        code = await self._eval(
            _CANCEL,
            (keys.task(task_id), keys.pending, keys.scheduled, keys.retry),
            (
                task_id,
                keys.unique_prefix,
                keys.events_channel,
                keys.done_channel,
                keys.pending_prefix,
            ),
        )
        return int(code) > 0

    async def watch_result(self, queue: str, task_id: str) -> WatchedTask | None:
        """Mark a waiter on the task and read its state and outcome; None if missing."""
        keys = self.keys(queue)
        reply = await self._eval(
            _WATCH, (keys.task(task_id), keys.pending), (task_id, keys.pending_prefix)
        )
        if reply is None:
            return None
        state, result, error = reply
        return WatchedTask(text(state or b""), result, error)
