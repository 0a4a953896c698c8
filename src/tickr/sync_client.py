"""`SyncClient`: the Client for synchronous code (Django, Flask, scripts, notebooks).

Each SyncClient runs one event loop in a thread of its own (anyio's blocking portal,
started at the first call) and sends every call to it, so that any number of threads may
share one SyncClient: their calls run concurrently on that loop, over its connections.
After a fork, the child's SyncClients start a loop and connections of their own at their
first call: the parent's belong to a thread that does not exist in the child, and are
left alone (neither used nor closed).
"""

from __future__ import annotations

import functools
import os
import threading
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import CancelledError, Future
from contextlib import AbstractContextManager
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from tickr._broker import RedisClient
from tickr._options import DEFAULT_MAX_PAYLOAD_BYTES
from tickr.client import Client

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

__all__ = ["SyncClient"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

_FORSAKEN: list[object] = []
"""What a forked child inherited of its parent's SyncClients, kept referenced for good:
finalizing the parent's portal would wait for its loop thread, which does not exist in
the child, and hang the child (at its exit at the latest)."""

_LIVE: weakref.WeakSet[SyncClient] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for client in list(_LIVE):
        client._forsake_parent()


def _blocking(
    method: Callable[Concatenate[Client, _P], Awaitable[_R]],
) -> Callable[Concatenate[SyncClient, _P], _R]:
    """`Client.<method>` as a blocking method of SyncClient (same arguments, errors)."""

    def call(self: SyncClient, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return self._call(functools.partial(method, self._running(), *args, **kwargs))

    call.__name__ = method.__name__
    call.__qualname__ = f"SyncClient.{method.__name__}"
    call.__doc__ = f"As `Client.{method.__name__}`, blocking.\n\n{method.__doc__ or ''}"
    setattr(call, "__wrapped__", method)  # noqa: B010 - inspect.signature shows Client's
    return call


class SyncClient:
    """Enqueues tasks and reads their results from synchronous code.

    The methods and errors are the `Client`'s, blocking: `enqueue`, `enqueue_many`,
    `get_task`, `result`, `cancel`.  Safe to share between threads; fork-aware.  Close it
    with `close()` or use it as a context manager.

    Args:
        url: Redis URL; default $TICKR_REDIS_URL, else ``redis://127.0.0.1:6379/0``.
        redis: An existing `redis.asyncio` client to use instead; it is used from the
            SyncClient's own event loop only, and never closed by Tickr.
        namespace: Prefix of every key.
        max_payload_bytes: As `Client`.
        wait_replicas: As `Client`.
        wait_timeout: As `Client`.

    Raises:
        TypeError, ValueError: For an invalid argument, as `Client` (at once, before any
            connection).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        redis: RedisClient | None = None,
        namespace: str = "tickr",
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        wait_replicas: int = 0,
        wait_timeout: float | timedelta = 1.0,
    ) -> None:
        self._make: Callable[[], Client] = functools.partial(
            Client,
            url,
            redis=redis,
            namespace=namespace,
            max_payload_bytes=max_payload_bytes,
            wait_replicas=wait_replicas,
            wait_timeout=wait_timeout,
        )
        self._client = self._make()  # checks every argument now; opens nothing
        self.namespace = namespace
        self._lock = threading.Lock()
        self._portal_context: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._closed = False
        self._calls: set[Future[Any]] = set()
        _LIVE.add(self)

    def _forsake_parent(self) -> None:
        """In a forked child: drop the parent's loop and connections, for new ones."""
        _FORSAKEN.append((self._portal_context, self._portal, self._client, self._calls))
        self._lock = threading.Lock()  # another thread may have held it at the fork
        self._portal_context = self._portal = None
        self._calls = set()
        self._client = self._make()

    def _running(self) -> Client:
        """The client of this process, its portal started now if need be.

        Raises:
            RuntimeError: If the SyncClient is closed.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("this SyncClient is closed")
            if self._portal is None:
                from anyio.from_thread import start_blocking_portal

                context = start_blocking_portal(name="tickr-sync-client")
                self._portal = context.__enter__()
                self._portal_context = context
            return self._client

    def _call(self, work: Callable[[], Awaitable[_R]]) -> _R:
        """Run `work` on the loop thread and wait for it (cancelled by `close`).

        Raises:
            RuntimeError: If the SyncClient is (or gets) closed before it ends.
        """
        with self._lock:
            portal = self._portal
            if portal is None or self._closed:
                raise RuntimeError("this SyncClient is closed")
            future = portal.start_task_soon(work)
            self._calls.add(future)
        try:
            return future.result()
        except CancelledError:
            raise RuntimeError("this SyncClient was closed during the call") from None
        finally:
            with self._lock:
                self._calls.discard(future)

    enqueue = _blocking(Client.enqueue)
    enqueue_many = _blocking(Client.enqueue_many)
    get_task = _blocking(Client.get_task)
    result = _blocking(Client.result)
    cancel = _blocking(Client.cancel)

    def close(self) -> None:
        """Close the connections and stop the loop thread; later calls raise RuntimeError.

        Calls still waiting in other threads (a `result` with a long timeout) are
        cancelled: they raise RuntimeError.  Closing again does nothing.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            portal, context = self._portal, self._portal_context
            self._portal = self._portal_context = None
            calls, self._calls = list(self._calls), set()
        for call in calls:
            call.cancel()
        if portal is not None and context is not None:
            try:
                portal.call(self._client.aclose)
            finally:
                context.__exit__(None, None, None)

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"SyncClient(namespace={self.namespace!r}, {state})"


os.register_at_fork(after_in_child=_after_fork_in_child)
