"""Sentinel: the primary that the sentinels name, followed through failovers.

A `SentinelLocator` asks the sentinels which node is the service's primary, checks with
``ROLE`` on every connection it opens that the node really is one, and listens on every
sentinel for ``+switch-master`` and for ``+promoted-slave`` (which the sentinel leading a
failover sends as soon as the replica is promoted, before the switch).  When the primary
changes, every connection it opened to the old one is dropped at once: a primary
demoted by a graceful ``SENTINEL FAILOVER`` keeps accepting writes for seconds until it
is reconfigured as a replica, and writes sent there in that time are lost.  The
commands in flight on a dropped connection fail as a lost connection, which the broker
retries on the new primary (every script tolerates being sent twice).

`SentinelWire` is Tickr's lean wire (wire.py) on the located primary; the pub/sub
listener and the lease thread follow the same locator.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections.abc import Sequence
from typing import Any, Final

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from tickr._aio import Backoff
from tickr._broker.connection import SentinelTarget
from tickr._broker.events import WireTransport
from tickr._broker.wire import Protocol, Wire, WireSettings, open_connection, pack, ssl_context_for

__all__ = ["PROMOTED_CHANNEL", "SWITCH_CHANNEL", "SentinelLocator", "SentinelWire"]

logger = logging.getLogger("tickr.broker.sentinel")

SWITCH_CHANNEL: Final = "+switch-master"
PROMOTED_CHANNEL: Final = "+promoted-slave"
WATCHED_CHANNELS: Final = (SWITCH_CHANNEL, PROMOTED_CHANNEL)
_SENTINEL_TIMEOUT: Final = 2.0
_ROLE_ATTEMPTS: Final = 5
_ROLE_RETRY_SECONDS: Final = 0.2


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class SentinelLocator:
    """Where the primary of one Sentinel service is, kept current.

    Args:
        target: The sentinels, the service name and the data nodes' settings.
    """

    def __init__(self, target: SentinelTarget) -> None:
        self.target = target
        self._sentinels = list(target.sentinels)
        self._address: tuple[str, int] | None = None
        self._opened: weakref.WeakSet[Protocol] = weakref.WeakSet()
        self._watcher: asyncio.Task[None] | None = None
        self._refresh: asyncio.Task[None] | None = None
        self._ssl_context = ssl_context_for(target.ssl_options) if target.tls else None

    @property
    def address(self) -> tuple[str, int] | None:
        """The primary's (host, port) last learned, or None before the first lookup."""
        return self._address

    def settings(self) -> WireSettings:
        """The connection settings of the primary last learned.

        Raises:
            redis.exceptions.ConnectionError: Before the primary has been located once.
        """
        if self._address is None:
            raise RedisConnectionError(
                f"the primary of Sentinel service {self.target.service!r} is not located yet"
            )
        host, port = self._address
        target = self.target
        return WireSettings(
            host=host,
            port=port,
            db=target.db,
            username=target.username,
            password=target.password,
            ssl_context=self._ssl_context,
            ssl_options=target.ssl_options if target.tls else None,
        )

    def _sentinel_settings(self, host: str, port: int) -> WireSettings:
        return WireSettings(
            host=host,
            port=port,
            username=self.target.sentinel_username,
            password=self.target.sentinel_password,
        )

    async def locate(self) -> tuple[str, int]:
        """Ask the sentinels, in turn, for the primary's address and remember it.

        The sentinel that answers goes first next time.

        Raises:
            redis.exceptions.ConnectionError: If no sentinel answers or none knows the
                service.
        """
        problems: list[str] = []
        for host, port in list(self._sentinels):
            try:
                async with asyncio.timeout(_SENTINEL_TIMEOUT):
                    sentinel = await open_connection(self._sentinel_settings(host, port))
                    try:
                        reply = await sentinel.send(
                            pack(("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.target.service))
                        )
                    finally:
                        sentinel.abort()
            except (RedisConnectionError, ResponseError, TimeoutError, OSError) as exc:
                problems.append(f"{host}:{port}: {exc or 'no answer'}")
                continue
            if not reply:
                problems.append(f"{host}:{port}: does not know {self.target.service!r}")
                continue
            self._sentinels.remove((host, port))
            self._sentinels.insert(0, (host, port))
            self._switch_to((_text(reply[0]), int(reply[1])))
            assert self._address is not None
            return self._address
        raise RedisConnectionError(
            f"no sentinel names a primary for {self.target.service!r}: " + "; ".join(problems)
        )

    async def connect(self) -> Protocol:
        """A connection to the primary, checked with ROLE, dropped when it is demoted.

        Raises:
            redis.exceptions.ConnectionError: If no primary can be reached.
        """
        self._ensure_watcher()
        last: Exception | None = None
        for attempt in range(_ROLE_ATTEMPTS):
            if attempt:
                await asyncio.sleep(_ROLE_RETRY_SECONDS)
            if self._address is None or attempt:
                try:
                    await self.locate()
                except RedisConnectionError as exc:
                    last = exc
                    continue
            address = self._address
            try:
                protocol = await open_connection(self.settings())
            except RedisConnectionError as exc:
                last = exc
                continue
            try:
                role = await self._role(protocol)
            except (RedisConnectionError, ResponseError) as exc:
                protocol.abort()
                last = exc
                continue
            if role == "master" and address == self._address:
                self._opened.add(protocol)
                return protocol
            protocol.abort()
            last = RedisConnectionError(
                f"{address[0]}:{address[1]} is not the primary of {self.target.service!r} "
                f"(its role: {role})"
                if address is not None
                else "the primary changed while connecting"
            )
        assert last is not None
        raise RedisConnectionError(f"cannot reach the Sentinel primary: {last}") from last

    @staticmethod
    async def _role(protocol: Protocol) -> str:
        """What the node says it is; "master" when its ACL forbids ROLE to this user.

        Without ROLE, the sentinels' word stands: a demoted primary then shows itself
        by its READONLY replies, on which the broker reconnects.

        Raises:
            redis.exceptions.ConnectionError: If the node does not answer in time.
            redis.exceptions.ResponseError: If it refuses ROLE for another reason.
        """
        try:
            async with asyncio.timeout(_SENTINEL_TIMEOUT):
                reply = await protocol.send(pack(("ROLE",)))
        except TimeoutError as exc:
            raise RedisConnectionError("the primary did not answer ROLE in time") from exc
        except ResponseError as exc:
            if str(exc).startswith("NOPERM"):
                return "master"
            raise
        return _text(reply[0])

    def _switch_to(self, address: tuple[str, int]) -> None:
        """Remember the primary's address; drop every connection to an earlier one."""
        if address == self._address:
            return
        previous, self._address = self._address, address
        if previous is None:
            return
        logger.info(
            "Sentinel service %r moved from %s:%d to %s:%d; reconnecting",
            self.target.service,
            *previous,
            *address,
        )
        opened, self._opened = list(self._opened), weakref.WeakSet()
        for protocol in opened:
            protocol.abort(f"the primary moved to {address[0]}:{address[1]}")

    # ------------------------------------------------------------ the watcher

    def _ensure_watcher(self) -> None:
        loop = asyncio.get_running_loop()
        watcher = self._watcher
        if watcher is not None and not watcher.done() and watcher.get_loop() is loop:
            return
        self._watcher = loop.create_task(self._watch(), name="tickr-sentinel-watch")

    async def _watch(self) -> None:
        """Listen to every sentinel at once, for ever: the first to tell wins."""
        await asyncio.gather(*(self._watch_one(host, port) for host, port in self.target.sentinels))

    async def _watch_one(self, host: str, port: int) -> None:
        backoff = Backoff()
        transport = WireTransport(
            functools.partial(open_connection, self._sentinel_settings(host, port))
        )
        while True:
            try:
                await transport.serve(self, WATCHED_CHANNELS)
            except (RedisConnectionError, OSError) as exc:
                logger.debug("the Sentinel watch on %s:%d stopped: %s", host, port, exc)
            await asyncio.sleep(backoff.next())

    def on_subscribed(self, channel: str) -> None:
        """Subscribed to switch-master: look the primary up, in case a switch was missed."""
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.get_running_loop().create_task(self._relocate())

    async def _relocate(self) -> None:
        try:
            await self.locate()
        except RedisConnectionError as exc:
            logger.warning("could not ask the sentinels for the primary: %s", exc)

    def on_message(self, channel: str, data: bytes) -> None:
        """A switch (or, from the sentinel that leads a failover, a promotion).

        ``+switch-master <service> <old ip> <old port> <new ip> <new port>``;
        ``+promoted-slave slave <name> <ip> <port> @ <service> <old ip> <old port>``.
        The promotion comes first: the switch follows once the other replicas are
        reconfigured, and the demoted primary takes writes until then.
        """
        fields = data.decode(errors="replace").split()
        if channel == SWITCH_CHANNEL:
            if len(fields) == 5 and fields[0] == self.target.service and fields[4].isdigit():
                self._switch_to((fields[3], int(fields[4])))
        elif (
            len(fields) == 8
            and fields[0] == "slave"
            and fields[4] == "@"
            and fields[5] == self.target.service
            and fields[3].isdigit()
        ):
            self._switch_to((fields[2], int(fields[3])))

    async def aclose(self) -> None:
        """Stop watching the sentinels."""
        for task in (self._watcher, self._refresh):
            if task is None or task.done():
                continue
            if task.get_loop() is asyncio.get_running_loop():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            else:
                task.get_loop().call_soon_threadsafe(task.cancel)
        self._watcher = self._refresh = None


class SentinelWire(Wire):
    """Tickr's wire on the primary that a `SentinelLocator` names, following failovers."""

    def __init__(self, locator: SentinelLocator, *, owns_locator: bool = True) -> None:
        super().__init__(WireSettings())
        self.locator = locator
        self._owns_locator = owns_locator

    @property
    def settings(self) -> WireSettings:
        """The current primary's settings (see `SentinelLocator.settings`)."""
        return self.locator.settings()

    async def _open(self) -> Protocol:
        return await self.locator.connect()

    def sibling(self) -> SentinelWire:
        """Another connection to the same primary, following the same locator."""
        return SentinelWire(self.locator, owns_locator=False)

    async def aclose(self) -> None:
        """Close the connection, and stop the locator's watch if this wire made it."""
        await super().aclose()
        if self._owns_locator:
            await self.locator.aclose()


def sentinel_hosts(sentinels: Sequence[Any]) -> tuple[tuple[str, int], ...]:
    """The (host, port) of redis-py Sentinel's clients (`Sentinel.sentinels`)."""
    hosts = []
    for client in sentinels:
        kwargs = client.connection_pool.connection_kwargs
        hosts.append((kwargs.get("host") or "127.0.0.1", int(kwargs.get("port") or 26379)))
    return tuple(hosts)
