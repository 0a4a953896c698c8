"""A lean RESP2 connection with automatic pipelining, for the broker's hot path.

The first command of a turn of the event loop is written at once (no added latency);
the commands issued after it in the same turn are written together, in one write, at
the end of the turn.  The replies resolve the callers' futures in order.  A hundred
coroutines that enqueue at once thus share two system calls instead of paying a round
trip each, and the server's fetcher, finisher and heartbeat share the connection the
same way.  Parsing is done by hiredis.

The connection is opened lazily and re-opened after a failure.  When it breaks, every
command in flight fails with `redis.exceptions.ConnectionError`; whether such a command
ran is unknown, which the broker's scripts are written to tolerate (see broker.py).
Error replies surface as `redis.exceptions.ResponseError` (`NoScriptError` for NOSCRIPT).

Why not redis-py's own connections: its per-command machinery costs more CPU than a
task's whole handling, it defaults to RESP3 (a handshake round trip per connection), and
it enforces socket timeouts with `asyncio.wait_for`, which creates a task per command
and can lose a cancellation on Python 3.11.  Here the broker bounds each call with
`asyncio.timeout`, and TCP keepalive notices a peer gone silent.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import hiredis
from redis.asyncio.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, NoScriptError, ResponseError

__all__ = ["Protocol", "Wire", "WireSettings", "open_connection", "pack", "ssl_context_for"]

CONNECT_TIMEOUT: Final = 5.0
_CRLF: Final = b"\r\n"
_pack_in_c: Final = hiredis.pack_command


class WireSettings:
    """Where and how to connect: parsed from a URL or a redis-py connection's settings."""

    __slots__ = ("db", "host", "password", "path", "port", "ssl_context", "ssl_options", "username")

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 6379,
        path: str | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        ssl_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.path = path
        self.db = db
        self.username = username
        self.password = password
        self.ssl_context = ssl_context
        self.ssl_options = dict(ssl_options or {})
        """The TLS options of the URL (ssl_ca_certs, ssl_certfile...), to open more
        connections like this one."""

    @classmethod
    def from_url(cls, url: str) -> WireSettings:
        """Settings for a ``redis://``, ``rediss://`` or ``unix://`` URL.

        Raises:
            ValueError: If the URL is not a redis URL.
        """
        options = parse_url(url)
        context = None
        tls = {name: value for name, value in options.items() if str(name).startswith("ssl_")}
        if url.startswith("rediss://"):
            context = ssl_context_for(tls)
        return cls(
            host=options.get("host") or "127.0.0.1",
            port=int(options.get("port") or 6379),
            path=options.get("path"),
            db=int(options.get("db") or 0),
            username=options.get("username"),
            password=options.get("password"),
            ssl_context=context,
            ssl_options=tls if context is not None else None,
        )


def ssl_context_for(options: Mapping[str, Any]) -> ssl.SSLContext:
    """A TLS context from a rediss:// URL's query.

    Understood: ssl_ca_certs, ssl_cert_reqs, ssl_check_hostname, and a client
    certificate in ssl_certfile / ssl_keyfile.
    """
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs") or None)
    cert_reqs = options.get("ssl_cert_reqs")
    check_hostname = options.get("ssl_check_hostname")
    if cert_reqs is not None and str(cert_reqs).lower() in ("none", "cert_none"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif check_hostname is not None and str(check_hostname).lower() in ("false", "0", "no"):
        context.check_hostname = False
    if options.get("ssl_certfile"):
        context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile") or None)
    return context


def _keep_alive(transport: asyncio.BaseTransport) -> None:
    """Have the kernel probe an idle TCP connection.

    A peer gone silently (a dropped NAT entry, a dead host) is then noticed within about
    a minute.
    """
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _encode(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, int):
        return b"%d" % value
    if isinstance(value, float):
        return repr(value).encode()
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    raise TypeError(f"cannot send {type(value).__name__} to Redis")


def pack(args: Sequence[Any]) -> bytes:
    """One command in RESP (by hiredis, in C, for the str, bytes, int and float it takes)."""
    try:
        packed: bytes = _pack_in_c(args if isinstance(args, tuple) else tuple(args))
    except TypeError:  # a bool, a bytearray...: packed below, or refused with our message
        return _pack(args)
    return packed


def _pack(args: Sequence[Any]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = _encode(arg)
        parts.append(b"$%d\r\n" % len(data))
        parts.append(data)
        parts.append(_CRLF)
    return b"".join(parts)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a reply's failure as seen (asyncio would log it as never retrieved)."""
    if not future.cancelled():
        future.exception()


def _reply_error(message: str) -> ResponseError:
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    return ResponseError(message)


class Protocol(asyncio.Protocol):
    """Feeds bytes from Redis to hiredis and hands each reply to the oldest waiter.

    In push mode (after `push_to`), every reply goes to the push handler instead: that
    is how a subscribed connection receives its messages.
    """

    def __init__(self) -> None:
        self._parser = hiredis.Reader(protocolError=InvalidResponse, replyError=_reply_error)
        self.waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None
        self.loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self._push: Callable[[Any], None] | None = None
        self._outbox: list[bytes] = []
        self._flush_scheduled = False

    def push_to(self, handler: Callable[[Any], None]) -> None:
        """From now on, hand every reply to `handler`."""
        self._push = handler

    def write(self, packed: bytes) -> None:
        """Write at once, expecting no reply in order (push mode)."""
        if self.lost is None and self.transport is not None:
            self.transport.write(packed)

    def abort(self, reason: str = "connection to Redis closed") -> None:
        """Drop the connection now; commands in flight fail with `reason`."""
        self._fail(RedisConnectionError(reason))
        if self.transport is not None:
            self.transport.abort()

    def forsake(self) -> None:
        """Let go of a connection of another event loop (one `asyncio.run` may have closed).

        Its transport cannot be used, nor closed, from the running loop: it is shut down,
        so that Redis drops the connection, and its loop (if still running) closes it.
        """
        self.lost = self.lost or RedisConnectionError("connection of another event loop")
        if self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.transport.abort)

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        """Send one packed command and return the future of its reply.

        The first command of a loop turn is written at once; the ones that follow in the
        same turn are written together at its end, in one write.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self.lost is not None:
            future.set_exception(self.lost)
            return future
        self.waiters.append(future)
        if self._flush_scheduled:
            self._outbox.append(packed)
            return future
        self._flush_scheduled = True
        loop.call_soon(self._flush)
        if self.transport is not None:
            self.transport.write(packed)
        return future

    def send_many(self, packed: list[bytes]) -> list[asyncio.Future[Any]]:
        """Send several packed commands, written at once in one write.

        Commands of this loop turn still waiting to be written go first: then these join
        them, in order.
        """
        if self._flush_scheduled or self.lost is not None:
            return [self.send(command) for command in packed]
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Any]] = [loop.create_future() for _ in packed]
        self.waiters.extend(futures)
        if self.transport is not None:
            self.transport.write(b"".join(packed))
        return futures

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._outbox:
            return
        outbox, self._outbox = self._outbox, []
        if self.lost is None and self.transport is not None:
            self.transport.write(b"".join(outbox))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        parser.feed(data)
        waiters = self.waiters
        while True:
            try:
                reply = parser.gets()
            except InvalidResponse as exc:
                self._fail(RedisConnectionError(f"garbled reply from Redis: {exc}"))
                assert self.transport is not None
                self.transport.abort()
                return
            if reply is False:
                return
            if self._push is not None:
                self._push(reply)
                continue
            waiter = waiters.popleft()
            if waiter.done():
                continue  # its caller gave up (timeout or cancellation)
            if isinstance(reply, ResponseError):
                waiter.set_exception(reply)
            else:
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError(f"connection to Redis lost: {exc or 'closed by server'}"))

    def _fail(self, exc: BaseException) -> None:
        if self.lost is not None:
            return
        self.lost = exc
        if not self.closed.done():
            self.closed.set_result(None)
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(exc)


async def open_connection(settings: WireSettings) -> Protocol:
    """Connect, authenticate and select the database.

    Raises:
        redis.exceptions.ConnectionError: If Redis cannot be reached or refuses us.
    """
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            if settings.path is not None:
                _, protocol = await loop.create_unix_connection(Protocol, settings.path)
            else:
                _, protocol = await loop.create_connection(
                    Protocol, settings.host, settings.port, ssl=settings.ssl_context
                )
    except (OSError, TimeoutError) as exc:
        raise RedisConnectionError(f"cannot connect to Redis: {exc}") from exc
    assert protocol.transport is not None
    _keep_alive(protocol.transport)
    replies = []
    if settings.password is not None:
        if settings.username:
            replies.append(protocol.send(pack(("AUTH", settings.username, settings.password))))
        else:
            replies.append(protocol.send(pack(("AUTH", settings.password))))
    if settings.db:
        replies.append(protocol.send(pack(("SELECT", settings.db))))
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            for reply in replies:
                await reply
    except (ResponseError, TimeoutError) as exc:  # AUTH or SELECT refused, or no answer
        protocol.abort()
        raise RedisConnectionError(f"Redis refused the connection: {exc}") from exc
    return protocol


class Wire:
    """One pipelined connection to Redis, opened on first use and after failures.

    A connection belongs to the event loop that opened it; used from another loop (a
    second `asyncio.run()`), the Wire opens a new one there.
    """

    def __init__(self, settings: WireSettings) -> None:
        self._settings = settings
        self._protocol: Protocol | None = None
        self._connecting: asyncio.Future[Protocol] | None = None

    @property
    def settings(self) -> WireSettings:
        """Where and how this wire connects."""
        return self._settings

    async def execute(self, *args: Any) -> Any:
        """Send one command and return its reply.

        Raises:
            redis.exceptions.ConnectionError: If the connection fails.
            redis.exceptions.ResponseError: For an error reply.
        """
        protocol = await self._ready()
        return await protocol.send(pack(args))

    async def execute_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send commands in one write; returns each reply or error reply, in order.

        Raises:
            redis.exceptions.ConnectionError: If the connection fails.
        """
        protocol = await self._ready()
        futures = protocol.send_many([pack(command) for command in commands])
        results: list[Any] = []
        try:
            for future in futures:
                try:
                    results.append(await future)
                except ResponseError as exc:
                    results.append(exc)
        except BaseException:
            for future in futures:  # the connection failed them all: nobody reads them now
                future.add_done_callback(_retrieve)
            raise
        return results

    async def execute_replicated(
        self, commands: Sequence[Sequence[Any]], replicas: int, timeout_ms: int
    ) -> tuple[list[Any], int]:
        """Send commands and ``WAIT replicas timeout_ms`` in one write, on this connection.

        WAIT holds the connection until the replicas confirm or the timeout passes, so
        commands that other callers send meanwhile wait behind it.

        Raises:
            redis.exceptions.ConnectionError: If the connection fails.
            redis.exceptions.ResponseError: If WAIT is refused.
        """
        replies = await self.execute_many([*commands, ("WAIT", replicas, timeout_ms)])
        acknowledged = replies.pop()
        if isinstance(acknowledged, Exception):
            raise acknowledged
        return replies, int(acknowledged)

    async def _ready(self) -> Protocol:
        protocol = self._protocol
        if protocol is not None and protocol.loop is not asyncio.get_running_loop():
            protocol.forsake()  # used from a new event loop, e.g. a second asyncio.run()
            self._protocol = protocol = None
            self._connecting = None
        if protocol is not None and protocol.lost is None:
            return protocol
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._connect())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done():
                self._connecting = None

    async def _connect(self) -> Protocol:
        if self._protocol is not None:
            self._protocol.abort()
        self._protocol = await self._open()
        return self._protocol

    async def _open(self) -> Protocol:
        return await open_connection(self._settings)

    async def aclose(self) -> None:
        """Close the connection (commands in flight fail)."""
        protocol, self._protocol = self._protocol, None
        if protocol is None or protocol.transport is None:
            return
        if protocol.loop is asyncio.get_running_loop():
            protocol.transport.close()
        else:
            protocol.forsake()

    def sibling(self) -> Wire:
        """Another connection like this one (for blocking commands)."""
        return Wire(self.settings)

    def reset(self) -> None:
        """Drop the connection, e.g. after a command timed out; the next use reconnects."""
        if self._protocol is not None:
            self._protocol.abort("connection to Redis dropped: a command got no answer in time")
