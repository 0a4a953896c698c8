"""Helpers of the fault tests: worker processes with fault settings, and bookkeeping."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

import redis.asyncio as aredis

import tickr
from tests.helpers.processes import WorkerProcess


class FaultWorker(WorkerProcess):
    """A `tests.faults._worker` child (see that module for its options and handlers)."""

    module = "tests.faults._worker"

    def state(self) -> str:
        """The process state letter from /proc (R, S, T when stopped...), "" once gone."""
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        except OSError:
            return ""
        return stat.rsplit(")", 1)[1].split()[0]

    def count_lines(self, fragment: str) -> int:
        """How many stderr lines collected so far contain `fragment`."""
        while not self._lines.empty():
            self.lines.append(self._lines.get())
        return sum(fragment in line for line in self.lines)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def counts(raw_redis: aredis.Redis, key: str) -> dict[str, int]:
    """A counter hash (task id -> count) as a dict."""
    stored = await raw_redis.hgetall(key)
    return {_text(field): int(value) for field, value in stored.items()}


async def runs(raw_redis: aredis.Redis, namespace: str) -> dict[str, int]:
    """Task id -> executions started."""
    return await counts(raw_redis, f"{namespace}:runs")


async def done(raw_redis: aredis.Redis, namespace: str) -> dict[str, int]:
    """Task id -> executions finished."""
    return await counts(raw_redis, f"{namespace}:runs:done")


def ids_of(results: Iterable[object]) -> list[str]:
    """The ids of the enqueue results that are TaskInfo (asserting that all are)."""
    ids = []
    for result in results:
        assert isinstance(result, tickr.TaskInfo), result
        ids.append(result.id)
    return ids


async def queue_info(url: str, namespace: str, queue: str = "default") -> tickr.QueueInfo:
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        return await inspector.queue_info(queue)


async def attempts(url: str, namespace: str, queue: str = "default") -> tuple[int, int]:
    """(processed, failed) attempts of a fresh namespace's queue, all days together."""
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        history = await inspector.history(queue, days=2)  # a test may straddle midnight UTC
    return sum(day.processed for day in history), sum(day.failed for day in history)


class CuttingProxy:
    """A TCP proxy to Redis that can cut the connections that subscribe (pub/sub).

    Arm it with `cut_subscribes = n`: the next n connections that send SUBSCRIBE are
    closed instead (the command never reaches Redis, no reply comes back).
    `drop_subscribers()` closes every connection that has subscribed.
    """

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._server: asyncio.AbstractServer | None = None
        self._pumps: set[asyncio.Task[None]] = set()
        self._subscribers: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self.cut_subscribes = 0
        self.cuts = 0
        self.url = ""

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"redis://127.0.0.1:{port}/0"
        return self.url

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.close()
            return
        pair = (writer, up_writer)
        for pump in (self._client_to_redis(reader, pair), self._pump(up_reader, writer, pair)):
            task = asyncio.create_task(pump)
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    async def _client_to_redis(
        self, reader: asyncio.StreamReader, pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter]
    ) -> None:
        try:
            while data := await reader.read(65536):
                if b"SUBSCRIBE" in data:
                    if self.cut_subscribes > 0:
                        self.cut_subscribes -= 1
                        self.cuts += 1
                        break
                    self._subscribers.append(pair)
                pair[1].write(data)
                await pair[1].drain()
        except OSError:
            pass
        finally:
            _close(pair)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            _close(pair)

    def drop_subscribers(self) -> None:
        for pair in self._subscribers:
            _close(pair)
        self._subscribers.clear()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._pumps):
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()


def _close(pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
    for writer in pair:
        if not writer.is_closing():
            writer.close()
