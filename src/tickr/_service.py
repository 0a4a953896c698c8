"""The lifecycle a Server and a Scheduler share.

That is: their id, one `serve()` at a time, readiness that can be awaited, and `run()`
until SIGINT or SIGTERM.

Each `serve()` call keeps its state in one `Run`, created when it starts; the service
holds it only while the call runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from tickr._aio import ClosedOnExit
from tickr._signals import serve_until_signalled
from tickr._time import now_ms
from tickr.serialization import encode_value

__all__ = ["Run", "Service"]


class Run:
    """The state of one `serve()` call."""

    __slots__ = ("ended", "force", "ready", "settled", "started_ms", "stop")

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        """Set to make `serve()` shut down."""
        self.force = asyncio.Event()
        """Set to shut down at once, without waiting for running work."""
        self.ready = False
        """Whether `serve()` reported readiness."""
        self.settled = asyncio.Event()
        """Set once `serve()` is ready, or has ended without being ready."""
        self.ended = asyncio.Event()
        """Set once `serve()` has returned."""
        self.started_ms = now_ms()

    def set_ready(self) -> None:
        """`serve()` runs everything and listens for work: `wait_ready()` returns."""
        self.ready = True
        self.settled.set()


class Service(ClosedOnExit):
    """The lifecycle of a long-running Tickr process part (a Server, a Scheduler)."""

    _noun: ClassVar[str]
    """"server" or "scheduler", for messages."""

    def __init__(self) -> None:
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._run: Run | None = None
        self._awaiting_run: list[asyncio.Future[Run]] = []

    async def _serve_once(self, body: Callable[[Run], Awaitable[None]]) -> None:
        """Run `body` with a new `Run`, unless a `serve()` call runs already.

        Raises:
            RuntimeError: If this service is already serving.
        """
        if self._run is not None:
            raise RuntimeError(f"this {self._noun.capitalize()} is already serving")
        run = self._run = Run()
        awaiting, self._awaiting_run = self._awaiting_run, []
        for waiter in awaiting:
            if not waiter.done():
                waiter.set_result(run)
        try:
            await body(run)
        finally:
            self._run = None
            run.stop.set()
            run.ended.set()
            run.settled.set()

    async def _wait_ready(self) -> None:
        """Wait until the `serve()` call running now, or else the next one, is ready.

        Raises:
            RuntimeError: If that call ended before it was ready.
        """
        run = self._run
        if run is None:
            waiter: asyncio.Future[Run] = asyncio.get_running_loop().create_future()
            self._awaiting_run.append(waiter)
            try:
                run = await waiter
            finally:
                if waiter in self._awaiting_run:
                    self._awaiting_run.remove(waiter)
        await run.settled.wait()
        if not run.ready:
            raise RuntimeError(f"the {self._noun} stopped before it was ready")

    def _request_stop(self) -> Run | None:
        """Ask the running `serve()` call to shut down; returns its run, if any."""
        run = self._run
        if run is not None:
            run.stop.set()
        return run

    def _force_stop(self) -> None:
        """Shut down now, without waiting for running work."""
        run = self._run
        if run is not None:
            run.force.set()
            run.stop.set()

    def _run_until_signalled(
        self, serve: Callable[[], Awaitable[None]], logger: logging.Logger
    ) -> None:
        """Serve in a new event loop until SIGINT or SIGTERM (a second one forces)."""
        asyncio.run(serve_until_signalled(serve, self.shutdown, self._force_stop, logger))

    async def shutdown(self) -> None:
        """Stop serving (each service says how)."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Shut down if serving (see `shutdown`)."""
        await self.shutdown()

    def _record(self, **fields: Any) -> bytes:
        """This process' registry record: its id, host and pid, then `fields`."""
        return encode_value(
            {"id": self.id, "host": socket.gethostname(), "pid": os.getpid(), **fields}
        )
