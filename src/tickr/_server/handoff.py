"""The hand-off: an idle server registers as a waiter, and is handed the next task.

After a round that found every queue empty, the fetcher registers this server as a
waiter of up to as many queues as it has free workers (`join`).  An enqueue that finds
the registration makes its task active under this server's lease and pushes it on the
server's inbox (read by the Inbox loop, inbox.py): one round trip sooner than a wake-up
followed by a dequeue.  At its next round the fetcher ends the registrations and takes
what was handed meanwhile (`leave`).

Each registration holds one free worker, so a server never holds more tasks than it has
workers: a registration used up whose task neither came back from `leave` nor reached
the inbox loop was taken by a BLPOP whose reply is still on its way, and its worker is
owed to that task until the BLPOP returns (`available`).  On a Cluster there is one
BLPOP per slot group of queues (see inbox.py), and the workers owed are counted per group.
"""

from __future__ import annotations

from collections.abc import Callable

from tickr._server.context import ServerContext
from tickr._server.processor import Processor

__all__ = ["HandOff"]


class HandOff:
    """This server's registrations as a waiter, and the workers owed to handed tasks.

    Args:
        ctx: The server's context (the heaviest queues are joined first; a registration
            lasts `ctx.waiter_ttl_ms` unless a heartbeat extends it).
        processor: Where handed tasks go.
        wake: Makes the fetcher look for tasks again.
    """

    def __init__(self, ctx: ServerContext, processor: Processor, wake: Callable[[], None]) -> None:
        self._broker = ctx.broker
        self._processor = processor
        self._owner = ctx.owner
        self._queues = list(ctx.heaviest_first)
        self._waiter_ttl_ms = ctx.waiter_ttl_ms
        self._wake = wake
        self.waiter = ctx.waiter
        self.registered: list[str] = []
        """The queues where this server is registered as a waiter."""
        self._group_of = {
            queue: index
            for index, group in enumerate(ctx.broker.slot_groups(ctx.names))
            for queue in group
        }
        self._inbox_replies = [0] * (max(self._group_of.values(), default=0) + 1)
        self._owed: dict[int, tuple[int, int]] = {}  # group -> (workers owed, replies then)

    def available(self) -> int:
        """Free workers, less those owed to handed tasks still on their way."""
        for group, (_count, replies_then) in list(self._owed.items()):
            if self._inbox_replies[group] != replies_then:
                del self._owed[group]  # the BLPOP that carried them has returned
        return self._processor.free - sum(count for count, _ in self._owed.values())

    def inbox_replied(self, group: int, queue: str | None) -> None:
        """A BLPOP of the inbox returned, with a task of `queue` or with nothing (None).

        `group` is the index of its slot group.  A task uses up this server's
        registration in its queue; an error counts as nothing.
        """
        self._inbox_replies[group] += 1
        if queue in self.registered:
            self.registered.remove(queue)
        if queue is not None or group in self._owed:
            self._wake()

    async def join(self) -> None:
        """Register as a waiter of as many queues as there are available workers."""
        slots = self.available()
        if slots <= 0:
            return
        queues = self._queues[:slots]
        self.registered = list(queues)  # before the call: a task may be handed during it
        failed = await self._broker.join_waiters(
            queues, self.waiter, self._broker.clock.now_ms() + self._waiter_ttl_ms
        )
        for queue in failed:
            if queue in self.registered:
                self.registered.remove(queue)

    async def leave(self) -> None:
        """End the registrations, and run what was handed over meanwhile."""
        if not self.registered:
            return
        registered = list(self.registered)  # `inbox_replied()` may shrink it meanwhile
        replies_before = list(self._inbox_replies)
        handed, used, _failed = await self._broker.leave_waiters(
            registered, self.waiter, self._owner
        )
        # A registration used up, whose task neither came back here nor reached the
        # inbox loop yet, was handed a task that a BLPOP took and is still replying with
        # (or it had lapsed).  Until that BLPOP returns, its worker is spoken for.
        on_their_way: dict[int, int] = {}
        for queue in used:
            group = self._group_of[queue]
            if queue in self.registered and self._inbox_replies[group] == replies_before[group]:
                on_their_way[group] = on_their_way.get(group, 0) + 1
        for group, count in on_their_way.items():
            self._owed[group] = (count, replies_before[group])
        self.registered = []
        for queue, task in handed:
            self._processor.submit(queue, [task])
