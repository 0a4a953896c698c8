"""The fetcher: the one loop of a server that takes tasks from Redis.

It waits for a free worker, then asks for as many tasks as there are free workers,
spreading the request over the queues by weight (or strictly in weight order).  A queue
that returns fewer tasks than asked is empty (or paused) for this round; the dequeue
script then flags it idle, so the next enqueue publishes a wake-up.  When every queue
came back short the fetcher sleeps until such a wake-up: an idle server sends nothing.

A queue whose rate or concurrency limit held tasks back (the dequeue says how long) is
left out of the rounds until then, while the other queues keep flowing; a change of its
limits, or a slot freed for this server, brings it back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Any, Final

from tickr import _observe as observe
from tickr._aio import Backoff, wait_event
from tickr._broker import Broker, Dequeued, DequeuedTask
from tickr._server.context import ServerContext
from tickr._server.failures import log_failure
from tickr._server.handoff import HandOff
from tickr._server.part import Loop
from tickr._server.processor import Processor
from tickr._server.quarantine import Quarantine
from tickr.errors import RedisUnavailable

__all__ = ["Fetcher"]

logger = logging.getLogger("tickr.server.fetcher")

FETCH_GRACE: Final = 12.0
"""Longest wait at shutdown for a dequeue in flight (above the broker's call timeout)."""
STRAGGLER_SECONDS: Final = 0.05
"""A round whose dequeues all take longer leaves them to land by themselves."""
SAFETY_RECHECK_SECONDS: Final = 30.0
"""An idle fetcher looks again this often even without a wake-up (a safety net only)."""


class Fetcher(Loop):
    """Takes tasks for a processor.

    Args:
        ctx: The server's context (its queues and lease length).
        processor: Where tasks go.
        strict_priority: Always drain the heaviest queue first.
    """

    kind = "fetcher"

    def __init__(self, ctx: ServerContext, processor: Processor, *, strict_priority: bool) -> None:
        self._broker: Broker = ctx.broker
        self._processor = processor
        self._owner = ctx.owner
        self._strict = strict_priority
        self._queues = list(ctx.heaviest_first)
        self._weights = dict(ctx.queues)
        self._credit = dict.fromkeys(ctx.queues, 0)
        self._lease_ms = ctx.lease_ms
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._last_expiry = 0
        self._unconfirmed: list[tuple[str, int]] = []
        self._sick = Quarantine()
        self._stragglers: dict[str, tuple[int, asyncio.Future[list[DequeuedTask]]]] = {}
        self._reclaiming: dict[str, asyncio.Future[None]] = {}
        self._held: dict[str, float] = {}
        """Queue -> loop time until which a limit holds it back."""
        self._held_since: dict[str, tuple[float, str]] = {}
        """Queue -> loop time a limit began to hold it back, and which limit."""
        self._released: dict[str, float] = {}
        """Queue -> loop time of its latest release."""
        self._asked: dict[str, float] = {}
        """Queue -> loop time its latest dequeue was sent (a hold counts from then)."""
        self.handoff = HandOff(ctx, processor, self.wake)
        """This server's registrations as a waiter (see handoff.py)."""
        self.backlog = False
        """Whether the latest round filled every free worker with queues left to ask:
        tasks are likely waiting for a worker (the autoscaler reads it)."""
        self.taking = False
        """Whether a round of calls to Redis is in flight (its replies must not be
        dropped: they may carry tasks)."""

    def wake(self) -> None:
        """Look for tasks again now (new work was published, or events may be lost)."""
        self._wake.set()

    def release(self, queue: str) -> None:
        """Ask `queue` again now, though a limit held it back (its limits changed).

        A dequeue sent before this and answered after holds nothing: its hold may be the
        one this release ends.
        """
        self._released[queue] = asyncio.get_running_loop().time()
        if self._held.pop(queue, None) is not None:
            self._wake.set()
        self._hold_ended(queue)

    def release_all(self) -> None:
        """Ask every held queue again (after a resubscription: events may have been lost)."""
        for queue in list(self._held):
            self.release(queue)

    def _hold_ended(self, queue: str) -> None:
        """Report how long a limit held `queue` back since the hold began (or was reported)."""
        since = self._held_since.pop(queue, None)
        if since is not None:
            began, limit = since
            observe.queue_held(queue, limit, asyncio.get_running_loop().time() - began)

    def slot_freed(self, queue: str, server: str) -> None:
        """A task of `queue` finished and freed a concurrency slot for `server`."""
        if server == self._owner:
            self.release(queue)

    def _hold(self, queue: str, tasks: list[DequeuedTask]) -> None:
        hold_ms = tasks.hold_ms if isinstance(tasks, Dequeued) else 0
        self._hold_ended(queue)  # counts the time held up to this dequeue
        now = asyncio.get_running_loop().time()
        asked = self._asked.get(queue, now)
        if hold_ms and self._released.get(queue, -1.0) < asked:
            self._held[queue] = asked + abs(hold_ms) / 1000
            self._held_since[queue] = (now, "rate" if hold_ms > 0 else "concurrency")

    def _is_held(self, queue: str) -> bool:
        until = self._held.get(queue)
        if until is None:
            return False
        if until <= asyncio.get_running_loop().time():
            del self._held[queue]
            return False
        return True

    async def stop(self) -> None:
        """Take nothing more, then end the loop.

        Dequeues in flight get up to `FETCH_GRACE` seconds: their replies may carry tasks.
        """
        self._stopping.set()
        self._wake.set()
        in_flight: list[asyncio.Future[Any]] = [take for _, take in self._stragglers.values()]
        in_flight += self._reclaiming.values()
        if in_flight:
            await asyncio.wait(in_flight, timeout=FETCH_GRACE)
        await self._end(FETCH_GRACE if self.taking else 0)
        if self._held:  # else the wait lapses with the lease of its last dequeue
            with contextlib.suppress(RedisUnavailable):
                await self._broker.leave_slot_waits(list(self._held), self._owner)

    async def run(self) -> None:
        """Fetch until stopped or cancelled."""
        backoff = Backoff()
        while not self._stopping.is_set():
            await self._processor.wait_for_free_worker()
            if self._stopping.is_set():
                return
            self._wake.clear()
            self.taking = True  # a round's replies must not be dropped: see stop()
            try:
                self._reclaim_unconfirmed()
                await self.handoff.leave()
                wanted = self.handoff.available() - self._straggling()
                # The free workers are owed to handed tasks, or to dequeues, on their way.
                if wanted <= 0:
                    await wait_event(self._wake, SAFETY_RECHECK_SECONDS)
                    continue
                exhausted = await self._round(wanted)
                self.backlog = not exhausted
                # Idle, unless dequeues left behind may still bring tasks.
                if exhausted and not self._stopping.is_set() and not self._stragglers:
                    await asyncio.sleep(0)  # workers start what came in before we write again
                    await self.handoff.join()
                backoff.reset()
            except Exception as exc:  # noqa: BLE001 - the fetcher must outlive any failure
                delay = backoff.next()
                log_failure(logger, "fetch tasks", exc, delay)
                await asyncio.sleep(delay)
                continue
            finally:
                self.taking = False
            if exhausted and not self._stopping.is_set():
                await wait_event(self._wake, self._idle_wait())

    async def _take(self, queue: str, count: int) -> list[DequeuedTask]:
        """One dequeue, under a lease expiry no other call of this server uses.

        If its reply is lost, the call is remembered and its tasks reclaimed by the next
        round (see `_reclaim_unconfirmed`): they are never left to expire unrun.
        """
        expiry = max(self._broker.clock.now_ms() + self._lease_ms, self._last_expiry + 1)
        self._last_expiry = expiry
        self._asked[queue] = asyncio.get_running_loop().time()
        try:
            return await self._broker.dequeue(queue, count, expiry, self._owner)
        except RedisUnavailable:
            self._unconfirmed.append((queue, expiry))
            raise

    def _reclaim_unconfirmed(self) -> None:
        """Take back what dequeues whose reply was lost took, in the background.

        One reclaim runs at a time per queue, and not before the queue's backoff has
        passed; the round does not wait for it, so a failing node delays no other
        queue.  What it takes back goes to the workers when it lands.
        """
        left: list[tuple[str, int]] = []
        due: dict[str, list[int]] = {}
        for queue, expiry in self._unconfirmed:
            if queue in self._reclaiming or not self._sick.ready(queue):
                left.append((queue, expiry))
            else:
                due.setdefault(queue, []).append(expiry)
        self._unconfirmed = left
        for queue, expiries in due.items():
            self._reclaiming[queue] = asyncio.ensure_future(self._reclaim(queue, expiries))

    async def _reclaim(self, queue: str, expiries: list[int]) -> None:
        try:
            for index, expiry in enumerate(expiries):
                try:
                    tasks = await self._broker.reclaim(queue, self._owner, expiry)
                except RedisUnavailable as exc:
                    self._unconfirmed.extend((queue, e) for e in expiries[index:])
                    log_failure(
                        logger, f"reclaim tasks of {queue!r}", exc, self._sick.failed(queue)
                    )
                    return
                if tasks:
                    logger.info(
                        "reclaimed %d task(s) of %r taken by a dequeue whose reply was lost",
                        len(tasks),
                        queue,
                    )
                    self._processor.submit(queue, tasks)
        finally:
            del self._reclaiming[queue]
            self.wake()

    async def _round(self, wanted: int) -> bool:
        """Fetch up to `wanted` tasks; returns whether no queue is left to ask now.

        The dequeues of a round go out together, and the round goes on as soon as one
        has answered: the others are left to land by themselves (their tasks go to the
        workers then), so a slow or failing node (on a Cluster) delays no other queue.
        A queue whose dequeue fails for want of Redis is set aside for its own backoff;
        when every queue failed, the error is raised.
        """
        candidates = [
            queue
            for queue in self._queues
            if self._sick.ready(queue)
            and queue not in self._stragglers
            and not self._is_held(queue)
        ]
        remaining = wanted
        failure: RedisUnavailable | None = None
        while remaining > 0 and candidates:
            if self._stopping.is_set():
                return False
            plan = self._plan(candidates, remaining)
            takes = {
                queue: asyncio.ensure_future(self._take(queue, count)) for queue, count in plan
            }
            await asyncio.wait(
                takes.values(), timeout=STRAGGLER_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            for queue, count in plan:
                take = takes[queue]
                if not take.done():
                    self._stragglers[queue] = (count, take)
                    take.add_done_callback(functools.partial(self._straggler_landed, queue))
                    candidates.remove(queue)
                    remaining -= count
                    continue
                try:
                    tasks = take.result()
                except RedisUnavailable as exc:
                    failure = exc
                    delay = self._sick.failed(queue)
                    log_failure(logger, f"fetch tasks of {queue!r}", exc, delay)
                    candidates.remove(queue)
                    continue
                self._sick.recovered(queue)
                self._hold(queue, tasks)
                if tasks:
                    self._processor.submit(queue, tasks)
                    remaining -= len(tasks)
                if len(tasks) < count:
                    candidates.remove(queue)
        if failure is not None and remaining == wanted and not self._healthy():
            raise failure
        return not candidates

    def _straggling(self) -> int:
        """How many tasks the dequeues left behind by their rounds may still bring."""
        return sum(count for count, _ in self._stragglers.values())

    def _straggler_landed(self, queue: str, take: asyncio.Future[list[DequeuedTask]]) -> None:
        """A dequeue left behind by its round answered: its tasks go to the workers."""
        del self._stragglers[queue]
        self.wake()
        if take.cancelled():
            return
        exc = take.exception()
        if exc is None:
            self._sick.recovered(queue)
            tasks = take.result()
            self._hold(queue, tasks)
            if tasks:
                self._processor.submit(queue, tasks)
        elif isinstance(exc, RedisUnavailable):
            log_failure(logger, f"fetch tasks of {queue!r}", exc, self._sick.failed(queue))
        else:
            self._sick.failed(queue)
            logger.error("fetching tasks of %r failed", queue, exc_info=exc)

    def _healthy(self) -> bool:
        """Whether some queue of this server is not set aside."""
        return any(self._sick.ready(queue) for queue in self._queues)

    def _idle_wait(self) -> float:
        """How long an idle fetcher sleeps without a wake-up.

        Until a sick queue's retry, or until a limit stops holding a queue back.
        """
        waits = [SAFETY_RECHECK_SECONDS]
        retry_in = self._sick.next_ready_in()
        if retry_in is not None:
            waits.append(retry_in)
        if self._held:
            now = asyncio.get_running_loop().time()
            waits.append(max(0.0, min(self._held.values()) - now))
        return min(waits)

    def _plan(self, candidates: list[str], wanted: int) -> list[tuple[str, int]]:
        """How many tasks to ask of which queue.

        Weighted queues share the slots by smooth weighted round-robin (as nginx balances
        upstreams): each slot goes to the queue with the highest running credit, which
        then pays the total weight.  Over any run of slots each queue gets its share
        within one slot, and the credits carry over from round to round.
        """
        if self._strict or len(candidates) == 1:
            return [(candidates[0], wanted)]
        weights = self._weights
        credit = self._credit
        total = sum(weights[queue] for queue in candidates)
        counts = dict.fromkeys(candidates, 0)
        for _ in range(wanted):
            best = candidates[0]
            for queue in candidates:
                credit[queue] += weights[queue]
                if credit[queue] > credit[best]:
                    best = queue
            credit[best] -= total
            counts[best] += 1
        return [(queue, count) for queue, count in counts.items() if count]
