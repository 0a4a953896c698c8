"""The finisher: records the outcomes of tasks in Redis, batched per queue.

Workers hand it an outcome and move on; the finisher sends everything that accumulated
while its previous write was in flight in one round trip.  Under load this batches
hundreds of outcomes per script call, and when idle it writes at once.  A failed write
is retried with backoff: the outcomes stay buffered, and the tasks stay held (their
leases renewed) until Redis has recorded them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from tickr._broker import OP_ARCHIVE, OP_COMPLETE, OP_REQUEUE, OP_RETRY, Broker, FinishOp
from tickr._server.failures import log_failure
from tickr._server.job import Job
from tickr._time import utc_day

__all__ = ["Finisher"]

logger = logging.getLogger("tickr.server.finisher")

_BACKOFF_START: Final = 0.05
_BACKOFF_CAP: Final = 2.0


class Finisher:
    """Buffers outcomes and writes them to Redis.

    Args:
        broker: Where to write.
        owner: The server id that holds the tasks.
        archive_max_size: Most archived tasks kept per queue.
        archive_max_age_ms: Archived tasks older than this are deleted.
        on_recorded: Called with (queue, task id) once Redis has the outcome (or has
            refused it because the lease was lost).
    """

    def __init__(
        self,
        broker: Broker,
        owner: str,
        *,
        archive_max_size: int,
        archive_max_age_ms: int,
        on_recorded: Callable[[str, str], None],
    ) -> None:
        self._broker = broker
        self._owner = owner
        self._archive_max_size = archive_max_size
        self._archive_max_age_ms = archive_max_age_ms
        self._on_recorded = on_recorded
        self._buffers: dict[str, list[FinishOp]] = {}
        self._pending = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    # Outcomes -------------------------------------------------------------

    def _add(self, job: Job, op: FinishOp) -> None:
        job.done = True
        queue = job.queue
        buffer = self._buffers.get(queue)
        if buffer is None:
            buffer = self._buffers[queue] = []
        buffer.append(op)
        self._idle.clear()
        self._pending.set()

    def complete(self, job: Job, retention_ms: int, result: bytes) -> None:
        """The task succeeded; keep it (and its result) for `retention_ms` if positive."""
        self._add(job, (OP_COMPLETE, job.id, retention_ms, result, job.retried))

    def retry(self, job: Job, due_ms: int, error: str) -> None:
        """The attempt failed; run the task again at `due_ms`."""
        self._add(job, (OP_RETRY, job.id, due_ms, _utf8(error), job.retried))

    def archive(self, job: Job, error: str) -> None:
        """The task failed for good."""
        self._add(job, (OP_ARCHIVE, job.id, 0, _utf8(error), job.retried))

    def requeue(self, job: Job) -> None:
        """Give the task back to the front of pending, without counting an attempt."""
        self._add(job, (OP_REQUEUE, job.id, 0, b"", job.retried))

    # Writing --------------------------------------------------------------

    async def run(self) -> None:
        """Write outcomes as they come, until cancelled."""
        backoff = _BACKOFF_START
        while True:
            await self._pending.wait()
            try:
                await self._write_once()
                backoff = _BACKOFF_START
            except Exception as exc:  # noqa: BLE001 - outcomes are kept and written later
                log_failure(logger, "record task outcomes", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_CAP)

    async def _write_once(self) -> None:
        self._pending.clear()
        buffers, self._buffers = self._buffers, {}
        if not buffers:
            self._idle.set()
            return
        now = self._broker.clock.now_ms()
        try:
            await self._write(buffers, now)
        except BaseException:
            for queue, ops in buffers.items():  # keep them, oldest first, for the next try
                self._buffers[queue] = ops + self._buffers.get(queue, [])
            self._pending.set()
            raise
        if not self._buffers:
            self._idle.set()

    async def _write(self, buffers: dict[str, list[FinishOp]], now: int) -> None:
        day = utc_day(now)
        for queue, ops in list(buffers.items()):
            applied = await self._broker.finish(
                queue,
                ops,
                now_ms=now,
                owner=self._owner,
                day=day,
                archive_max_size=self._archive_max_size,
                archive_max_age_ms=self._archive_max_age_ms,
            )
            for (op, task_id, *_), ok in zip(ops, applied, strict=True):
                if not ok:
                    logger.info(
                        "outcome %r of task %s in %r ignored: this server no longer holds it",
                        op.decode(),
                        task_id,
                        queue,
                    )
                self._on_recorded(queue, task_id)
            del buffers[queue]

    async def drain(self) -> None:
        """Wait until every buffered outcome is written (retrying as `run` does)."""
        await self._idle.wait()


def _utf8(error: str) -> bytes:
    """An error message as UTF-8, lone surrogates (undecodable file names) escaped."""
    return error.encode(errors="backslashreplace")
