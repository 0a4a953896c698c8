"""Pub/sub notifications: how servers and clients learn of work without polling.

Scripts publish on two channels per queue (see keys.py): ``events`` (``p`` new pending
work, ``s`` an earlier due time, ``c<id>`` cancel a running task) and ``done`` (the id of
a finished task that somebody waits on).  An `EventListener` holds one subscription and
hands each message to a sink as an `Event`.

Messages published while the subscription is down are lost, so each confirmation of a
subscription (the first one, and every one after a reconnect) is reported as a RESYNC
event for that queue: the consumer re-reads whatever it waits on.

The subscription runs on its own connection, over the same lean RESP protocol as the
broker's commands (`WireTransport`), or through redis-py's PubSub for clients given to
Tickr that the wire cannot reproduce (`RedisPyTransport`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from asyncio import FIRST_COMPLETED
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, NamedTuple, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tickr._aio import Backoff
from tickr._broker.keys import QueueKeys
from tickr._broker.wire import Protocol as WireProtocol
from tickr._broker.wire import pack

__all__ = [
    "Event",
    "EventKind",
    "EventListener",
    "EventSink",
    "RedisPyTransport",
    "Subscriber",
    "Transport",
    "WireTransport",
]

logger = logging.getLogger("tickr.broker.events")

_CONNECTION_ERRORS: Final = (RedisConnectionError, RedisTimeoutError, OSError)
IDLE_PING_SECONDS: Final = 30.0
"""A silent subscription is checked with a PING this often."""
PONG_TIMEOUT_SECONDS: Final = 10.0
"""A subscription that does not answer a PING this fast is dropped and re-made."""


class EventKind(enum.Enum):
    """What an event says."""

    PENDING = "pending"
    SCHEDULE = "schedule"
    CANCEL = "cancel"
    DONE = "done"
    RESYNC = "resync"
    LIMITS = "limits"
    SLOT = "slot"
    RESIZE = "resize"


class Event(NamedTuple):
    """One notification about a queue (and, for CANCEL and DONE, one task).

    For SLOT, `task_id` holds the id of the server a concurrency slot freed for; for
    RESIZE, "<server id> <concurrency>".
    """

    kind: EventKind
    queue: str
    task_id: str = ""


EventSink = Callable[[Event], None]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Subscriber(Protocol):
    """What a transport feeds: confirmations of subscriptions and messages."""

    def on_subscribed(self, channel: str) -> None:
        """The subscription to `channel` is confirmed (again)."""

    def on_message(self, channel: str, data: bytes) -> None:
        """A message arrived on `channel`."""


class Transport(Protocol):
    """Carries one subscription for an `EventListener`."""

    async def serve(self, listener: Subscriber, channels: Sequence[str]) -> None:
        """Connect, subscribe to `channels` and feed the listener.

        Raises a connection error when the connection fails; never returns otherwise.
        """

    async def subscribe(self, channels: Sequence[str]) -> None:
        """Subscribe to more channels on the live connection, if there is one."""


class EventListener:
    """One pub/sub subscription, kept alive across connection failures.

    `run()` is the listening loop; it reconnects with backoff and never returns until
    cancelled.  Channels are added with `add_events` before it starts, or with
    `watch_events` / `watch_done` at any time.
    """

    def __init__(
        self, transport: Transport, sink: EventSink, keys_of: Callable[[str], QueueKeys]
    ) -> None:
        self._transport = transport
        self._sink = sink
        self._keys_of = keys_of
        self._channels: dict[str, tuple[bool, str]] = {}  # channel -> (is done channel, queue)
        self._confirmed: set[str] = set()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self.connected = asyncio.Event()
        """Set while every channel's subscription is confirmed."""
        self._subscribed_since_failure = False

    def add_events(self, queue: str) -> None:
        """Register the events channel of `queue` before `run()` starts."""
        self._channels[self._keys_of(queue).events_channel] = (False, queue)

    async def watch_events(self, queue: str) -> None:
        """Receive the events of `queue`; returns once the subscription is confirmed."""
        await self._watch(self._keys_of(queue).events_channel, False, queue)

    async def watch_done(self, queue: str) -> None:
        """Receive the done notices of `queue`; returns once the subscription is confirmed."""
        await self._watch(self._keys_of(queue).done_channel, True, queue)

    async def _watch(self, channel: str, is_done: bool, queue: str) -> None:
        if channel in self._confirmed:
            return
        self._channels[channel] = (is_done, queue)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(channel, []).append(waiter)
        # On a connection error run() reconnects and subscribes to every channel.
        with contextlib.suppress(*_CONNECTION_ERRORS):
            await self._transport.subscribe([channel])
        await waiter

    async def run(self) -> None:
        """Listen until cancelled, reconnecting with backoff when the connection drops.

        The backoff starts over once a subscription has been confirmed again.
        """
        backoff = Backoff()
        while True:
            self._subscribed_since_failure = False
            try:
                await self._transport.serve(self, list(self._channels))
            except Exception as exc:
                self.connected.clear()
                self._confirmed.clear()
                if self._subscribed_since_failure:
                    backoff.reset()
                pause = backoff.next()
                if isinstance(exc, _CONNECTION_ERRORS):
                    logger.warning(
                        "lost the pub/sub connection (%s); reconnecting in %.2fs", exc, pause
                    )
                else:
                    logger.error(
                        "the pub/sub listener failed; reconnecting in %.2fs", pause, exc_info=exc
                    )
                await asyncio.sleep(pause)

    def on_subscribed(self, channel: str) -> None:
        """The subscription to `channel` is confirmed (again)."""
        known = self._channels.get(channel)
        if known is None:
            return
        self._confirmed.add(channel)
        self._subscribed_since_failure = True
        if self._confirmed.issuperset(self._channels):
            self.connected.set()
        for waiter in self._waiters.pop(channel, []):
            if not waiter.done():
                waiter.set_result(None)
        self._sink(Event(EventKind.RESYNC, known[1]))

    def on_message(self, channel: str, data: bytes) -> None:
        """A message arrived on `channel`."""
        known = self._channels.get(channel)
        if known is None:
            return
        is_done, queue = known
        if is_done:
            self._sink(Event(EventKind.DONE, queue, data.decode()))
        elif data == b"p":
            self._sink(Event(EventKind.PENDING, queue))
        elif data == b"s":
            self._sink(Event(EventKind.SCHEDULE, queue))
        elif data[:1] == b"c":
            self._sink(Event(EventKind.CANCEL, queue, data[1:].decode()))
        elif data == b"l":
            self._sink(Event(EventKind.LIMITS, queue))
        elif data[:1] == b"w":
            self._sink(Event(EventKind.SLOT, queue, data[1:].decode()))
        elif data[:1] == b"n":
            self._sink(Event(EventKind.RESIZE, queue, data[1:].decode()))


class WireTransport:
    """A subscription on a connection of Tickr's own (see wire.py).

    Args:
        connect: Opens the connection, anew for each `serve` (one Redis's settings, a
            cluster's nodes in turn, Sentinel's current primary).
    """

    def __init__(self, connect: Callable[[], Awaitable[WireProtocol]]) -> None:
        self._connect = connect
        self._write: Callable[[bytes], None] | None = None
        self._heard: asyncio.Future[None] | None = None

    async def serve(self, listener: Subscriber, channels: Sequence[str]) -> None:
        """Subscribe and dispatch until the connection fails (see `Transport`)."""
        protocol = await self._connect()
        loop = asyncio.get_running_loop()

        def on_reply(reply: Any) -> None:
            if self._heard is not None and not self._heard.done():
                self._heard.set_result(None)
            if not isinstance(reply, list) or len(reply) < 2:
                return
            kind = reply[0]
            if kind == b"message":
                listener.on_message(reply[1].decode(), reply[2])
            elif kind == b"subscribe":
                listener.on_subscribed(reply[1].decode())

        protocol.push_to(on_reply)
        self._write = protocol.write
        try:
            if channels:
                protocol.write(pack(("SUBSCRIBE", *channels)))
            while True:
                self._heard = loop.create_future()
                either = {protocol.closed, self._heard}
                await asyncio.wait(either, timeout=IDLE_PING_SECONDS, return_when=FIRST_COMPLETED)
                if not self._heard.done() and not protocol.closed.done():
                    protocol.write(pack(("PING",)))
                    await asyncio.wait(
                        either, timeout=PONG_TIMEOUT_SECONDS, return_when=FIRST_COMPLETED
                    )
                    if not self._heard.done() and not protocol.closed.done():
                        raise RedisConnectionError("the pub/sub connection stopped answering")
                if protocol.closed.done():
                    raise protocol.lost or RedisConnectionError("pub/sub connection closed")
        finally:
            self._write = None
            protocol.abort()

    async def subscribe(self, channels: Sequence[str]) -> None:
        """Subscribe to more channels now, if connected (see `Transport`)."""
        if self._write is not None:
            self._write(pack(("SUBSCRIBE", *channels)))


class RedisPyTransport:
    """A subscription through redis-py's PubSub, for clients the wire cannot reproduce."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._pubsub: PubSub | None = None

    async def serve(self, listener: Subscriber, channels: Sequence[str]) -> None:
        """Subscribe and dispatch until the connection fails (see `Transport`)."""
        pubsub = self._redis.pubsub()
        self._pubsub = pubsub
        try:
            if channels:
                await pubsub.subscribe(*channels)
            while True:
                if not pubsub.subscribed:
                    await asyncio.sleep(0.05)  # PubSub cannot read before a subscription
                    continue
                message = await pubsub.get_message(timeout=IDLE_PING_SECONDS)
                if message is None:
                    await pubsub.ping()
                    continue
                kind = _text(message["type"])
                channel = message.get("channel")
                if channel is None:
                    continue
                if kind == "subscribe":
                    listener.on_subscribed(_text(channel))
                elif kind == "message":
                    data = message["data"]
                    listener.on_message(
                        _text(channel), data if isinstance(data, bytes) else str(data).encode()
                    )
        finally:
            self._pubsub = None
            with contextlib.suppress(*_CONNECTION_ERRORS):
                await pubsub.aclose()

    async def subscribe(self, channels: Sequence[str]) -> None:
        """Subscribe to more channels now, if connected (see `Transport`)."""
        if self._pubsub is not None:
            await self._pubsub.subscribe(*channels)
