"""Pub/sub notifications: how servers and clients learn of work without polling.

Scripts publish on two channels per queue (see keys.py): ``events`` (``p`` new pending
work, ``s`` an earlier due time, ``c<id>`` cancel a running task) and ``done`` (the id of
a finished task that somebody waits on).  An `EventListener` holds one subscription and
hands each message to a sink as an `Event`.

Messages published while the subscription is down are lost, so each confirmation of a
subscription (the first one, and every one after a reconnect) is reported as a RESYNC
event for that queue: the consumer re-reads whatever it waits on.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tickr._broker.keys import QueueKeys

__all__ = ["Event", "EventKind", "EventListener", "EventSink"]

logger = logging.getLogger("tickr.broker.events")

_CONNECTION_ERRORS: Final = (RedisConnectionError, RedisTimeoutError, OSError)
_IDLE_PING_SECONDS: Final = 30.0
_BACKOFF_START: Final = 0.05
_BACKOFF_CAP: Final = 2.0


class EventKind(enum.Enum):
    """What an event says."""

    PENDING = "pending"
    SCHEDULE = "schedule"
    CANCEL = "cancel"
    DONE = "done"
    RESYNC = "resync"


class Event(NamedTuple):
    """One notification about a queue (and, for CANCEL and DONE, one task)."""

    kind: EventKind
    queue: str
    task_id: str = ""


EventSink = Callable[[Event], None]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class EventListener:
    """One pub/sub subscription, kept alive across connection failures.

    `run()` is the listening loop; it reconnects with backoff and never returns until
    cancelled.  Channels are added with `watch_events` / `watch_done`, before or while
    `run()` is running.
    """

    def __init__(
        self,
        redis: Redis,
        sink: EventSink,
        keys_of: Callable[[str], QueueKeys],
    ) -> None:
        self._redis = redis
        self._sink = sink
        self._keys_of = keys_of
        self._channels: dict[str, tuple[bool, str]] = {}  # channel -> (is done channel, queue)
        self._confirmed: set[str] = set()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._pubsub: PubSub | None = None
        self.connected = asyncio.Event()
        """Set while every channel's subscription is confirmed."""

    async def watch_events(self, queue: str) -> None:
        """Receive the events of `queue`; returns once the subscription is confirmed."""
        await self._watch(self._keys_of(queue).events_channel, False, queue)

    async def watch_done(self, queue: str) -> None:
        """Receive the done notices of `queue`; returns once the subscription is confirmed."""
        await self._watch(self._keys_of(queue).done_channel, True, queue)

    def add_events(self, queue: str) -> None:
        """Register the events channel of `queue` before `run()` starts."""
        self._channels[self._keys_of(queue).events_channel] = (False, queue)

    async def _watch(self, channel: str, is_done: bool, queue: str) -> None:
        if channel in self._confirmed:
            return
        self._channels[channel] = (is_done, queue)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(channel, []).append(waiter)
        if self._pubsub is not None:
            # On a connection error run() reconnects and subscribes to every channel.
            with contextlib.suppress(*_CONNECTION_ERRORS):
                await self._pubsub.subscribe(channel)
        await waiter

    async def run(self) -> None:
        """Listen until cancelled, reconnecting with backoff when the connection drops."""
        backoff = _BACKOFF_START
        while True:
            pubsub = self._redis.pubsub()
            try:
                self._pubsub = pubsub
                if self._channels:
                    await pubsub.subscribe(*self._channels)
                backoff = _BACKOFF_START
                await self._read(pubsub)
            except _CONNECTION_ERRORS as exc:
                self.connected.clear()
                self._confirmed.clear()
                logger.warning(
                    "lost the pub/sub connection (%s); reconnecting in %.2fs", exc, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_CAP)
            finally:
                self._pubsub = None
                await _close_quietly(pubsub)

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            if not self._channels:
                # Nothing subscribed yet: PubSub refuses to read, so wait for a channel.
                await asyncio.sleep(0.05)
                continue
            message = await pubsub.get_message(timeout=_IDLE_PING_SECONDS)
            if message is None:
                await pubsub.ping()
                continue
            self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = _text(message["type"])
        channel = _text(message["channel"]) if message.get("channel") is not None else ""
        known = self._channels.get(channel)
        if known is None:
            return
        is_done, queue = known
        if kind == "subscribe":
            self._confirmed.add(channel)
            if self._confirmed.issuperset(self._channels):
                self.connected.set()
            for waiter in self._waiters.pop(channel, []):
                if not waiter.done():
                    waiter.set_result(None)
            self._sink(Event(EventKind.RESYNC, queue))
        elif kind == "message":
            data = message["data"]
            payload = data if isinstance(data, bytes) else str(data).encode()
            if is_done:
                self._sink(Event(EventKind.DONE, queue, payload.decode()))
            elif payload == b"p":
                self._sink(Event(EventKind.PENDING, queue))
            elif payload == b"s":
                self._sink(Event(EventKind.SCHEDULE, queue))
            elif payload[:1] == b"c":
                self._sink(Event(EventKind.CANCEL, queue, payload[1:].decode()))


async def _close_quietly(pubsub: PubSub) -> None:
    with contextlib.suppress(*_CONNECTION_ERRORS):
        await pubsub.aclose()
