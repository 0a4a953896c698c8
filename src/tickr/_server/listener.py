"""The listener: one subscription to each queue's events, routed to the parts they wake."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tickr._broker import Event, EventKind
from tickr._server.context import ServerContext
from tickr._server.fetcher import Fetcher
from tickr._server.forwarder import Forwarder
from tickr._server.job import StopReason
from tickr._server.part import Loop
from tickr._server.processor import Processor

__all__ = ["Listener"]


class Listener(Loop):
    """Routes the events of the server's queues.

    New work wakes the fetcher, an earlier due time the forwarder, a published
    cancellation stops its task; a (re)confirmed subscription wakes both loops.
    """

    kind = "listener"

    def __init__(
        self,
        ctx: ServerContext,
        fetcher: Fetcher,
        forwarder: Forwarder,
        processor: Processor,
        *,
        resize: Callable[[int], None],
    ) -> None:
        self._owner = ctx.owner
        self._resize = resize
        self._fetcher = fetcher
        self._forwarder = forwarder
        self._processor = processor
        self._events = ctx.broker.listener(self._on_event)
        for queue in ctx.queues:
            self._events.add_events(queue)

    @property
    def connected(self) -> asyncio.Event:
        """Set once every subscription is confirmed."""
        return self._events.connected

    async def run(self) -> None:
        """Listen until cancelled."""
        await self._events.run()

    def _on_event(self, event: Event) -> None:
        kind = event.kind
        if kind is EventKind.PENDING:
            self._fetcher.wake()
        elif kind is EventKind.SCHEDULE:
            self._forwarder.wake()
        elif kind is EventKind.CANCEL:
            self._processor.stop_job(event.queue, event.task_id, StopReason.CANCELLED)
        elif kind is EventKind.RESYNC:
            self._fetcher.release_all()
            self._fetcher.wake()
            self._forwarder.wake()
        elif kind is EventKind.LIMITS:
            self._fetcher.release(event.queue)
        elif kind is EventKind.SLOT:
            self._fetcher.slot_freed(event.queue, event.task_id)
        elif kind is EventKind.RESIZE:
            server, _, size = event.task_id.partition(" ")
            if server == self._owner and size.isdigit() and int(size) > 0:
                self._resize(int(size))
