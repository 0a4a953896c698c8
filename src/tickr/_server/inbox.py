"""The inbox: receives the tasks handed to this server while it is idle.

An idle server registers as a waiter (see handoff.py); an enqueue that finds it then
makes the task active under its lease and pushes it on the server's inbox list in the
same script.  This loop waits on the inboxes of all its queues with BLPOP, on a
connection of its own, so the task arrives in the reply: no wake-up, no dequeue.  On a
Cluster one BLPOP cannot span slots, so there is one BLPOP per group of queues that
share a slot (`Broker.slot_groups`), each on its node.

BLPOP waits at most WAIT_SECONDS, and the loop is never cancelled while one is in flight
(a task it popped would be dropped): `stop()` pushes an empty element on the inbox, so
that the BLPOP returns at once and the loop ends.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from tickr._aio import Backoff
from tickr._broker import Broker
from tickr._log_fields import task_fields
from tickr._server.context import ServerContext
from tickr._server.failures import log_failure
from tickr._server.fetcher import FETCH_GRACE
from tickr._server.handoff import HandOff
from tickr._server.part import Loop
from tickr._server.processor import Processor

__all__ = ["Inbox"]

logger = logging.getLogger("tickr.server.inbox")

WAIT_SECONDS: Final = 5.0


class Inbox(Loop):
    """Takes handed tasks off this server's inboxes.

    Args:
        ctx: The server's context.
        processor: Where handed tasks go.
        handoff: Told when the BLPOP returns (a registration as a waiter may be used).
    """

    kind = "inbox"

    def __init__(self, ctx: ServerContext, processor: Processor, handoff: HandOff) -> None:
        self._broker: Broker = ctx.broker
        self._processor = processor
        self._handoff = handoff
        self._owner = ctx.owner
        self._groups = ctx.broker.slot_groups(ctx.names)
        self._stopping = asyncio.Event()

    async def stop(self) -> None:
        """Stop receiving handed tasks without dropping one.

        The BLPOP in flight is woken and the loop ends once it returns; then the
        registrations end, and what was handed meanwhile goes to the processor (to be
        requeued with the other unstarted jobs).
        """
        if not self.started:
            return
        self._stopping.set()
        woken = await asyncio.gather(
            *(self._broker.wake_inbox(group[0], self._owner) for group in self._groups),
            return_exceptions=True,
        )
        for failure in woken:
            if isinstance(failure, Exception):  # then its BLPOP ends by its timeout
                logger.info("could not wake the inbox (%s)", failure)
        await self._end(WAIT_SECONDS + FETCH_GRACE)
        try:
            await self._handoff.leave()
        except Exception as exc:  # noqa: BLE001 - registrations expire by themselves
            logger.info("could not leave the waiters of the queues (%s)", exc)

    async def run(self) -> None:
        """Receive handed tasks until stopped."""
        if len(self._groups) == 1:
            await self._receive(0, self._groups[0])
            return
        async with asyncio.TaskGroup() as group_tasks:
            for index, queues in enumerate(self._groups):
                group_tasks.create_task(self._receive(index, queues))

    async def _receive(self, group: int, queues: list[str]) -> None:
        """Receive the tasks handed in one slot group's queues until stopped."""
        backoff = Backoff()
        while not self._stopping.is_set():
            try:
                handed = await self._broker.take_handed(queues, self._owner, WAIT_SECONDS)
                backoff.reset()
            except Exception as exc:  # noqa: BLE001 - the inbox must outlive any failure
                self._handoff.inbox_replied(group, None)
                delay = backoff.next()
                log_failure(logger, "read the inbox", exc, delay)
                await asyncio.sleep(delay)
                continue
            if handed is None:
                self._handoff.inbox_replied(group, None)
                continue
            queue, task = handed
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "task %s of %r handed to this server",
                    task[0],
                    queue,
                    extra=task_fields(task[0], queue),
                )
            self._processor.submit(queue, [task])
            self._handoff.inbox_replied(group, queue)
            await asyncio.sleep(0)  # let a worker start the task before the next BLPOP
