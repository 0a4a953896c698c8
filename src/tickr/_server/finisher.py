"""The finisher: records the outcomes of tasks in Redis, batched per queue.

Workers hand it an outcome and move on; the finisher sends everything that accumulated
while its previous write was in flight in one round trip.  Under load this batches
hundreds of outcomes per script call, and when idle it writes at once.  Each queue's
outcomes go in a script call of their own, all at once.  A write that failed because Redis was
unavailable is retried with backoff, per queue (on a Cluster a failing node delays only
its own queues): the outcomes stay buffered, and the tasks stay held (their leases
renewed) until Redis has recorded them.
A write Redis refused (a result too large for it, say) is retried one outcome at a
time, so that only the outcome at fault is lost: a refused success becomes an archive
with the error, and an outcome refused even then is dropped, leaving its task to
recovery once its lease runs out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Final

from tickr._aio import wait_event, within
from tickr._broker import OP_ARCHIVE, OP_COMPLETE, OP_REQUEUE, OP_RETRY, Broker, FinishOp
from tickr._log_fields import task_fields
from tickr._server.context import ServerContext
from tickr._server.failures import log_failure
from tickr._server.job import Job
from tickr._server.part import Loop
from tickr._server.quarantine import Quarantine
from tickr._time import utc_day
from tickr.errors import RedisUnavailable, TickrError

__all__ = ["Finisher"]

logger = logging.getLogger("tickr.server.finisher")

MAX_ERROR_BYTES: Final = 4096
"""Error messages are stored cut to this many bytes, and a marker."""
_APPLIED: Final = 1
_DAMAGED: Final = 2


class Finisher(Loop):
    """Buffers outcomes and writes them to Redis.

    A job stops being held (it leaves `ServerContext.held`) once Redis has its outcome,
    or has refused it because the lease was lost.
    """

    kind = "finisher"

    def __init__(self, ctx: ServerContext) -> None:
        self._broker: Broker = ctx.broker
        self._owner = ctx.owner
        self._archive_max_size = ctx.archive_max_size
        self._archive_max_age_ms = ctx.archive_max_age_ms
        self._held = ctx.held
        self._buffers: dict[str, list[FinishOp]] = {}
        self._pending = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._sick = Quarantine()

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
        self._add(job, FinishOp(OP_COMPLETE, job.id, retention_ms, result, job.retried))

    def retry(self, job: Job, due_ms: int, error: str) -> None:
        """The attempt failed; run the task again at `due_ms`."""
        self._add(job, FinishOp(OP_RETRY, job.id, due_ms, error_text(error), job.retried))

    def archive(self, job: Job, error: str) -> None:
        """The task failed for good."""
        self._add(job, FinishOp(OP_ARCHIVE, job.id, 0, error_text(error), job.retried))

    def requeue(self, job: Job) -> None:
        """Give the task back to the front of pending, without counting an attempt."""
        self._add(job, FinishOp(OP_REQUEUE, job.id, 0, b"", job.retried))

    # Writing --------------------------------------------------------------

    async def run(self) -> None:
        """Write outcomes as they come, until cancelled."""
        while True:
            await wait_event(self._pending, self._sick.next_ready_in())
            await self._write_once()

    async def _write_once(self) -> None:
        """Write the buffered outcomes of every queue not set aside, each queue at once.

        A queue whose write failed because Redis is unavailable (on a Cluster: its node)
        keeps its outcomes and is set aside for its own backoff; the other queues'
        writes go on.
        """
        self._pending.clear()
        due = {q: ops for q, ops in self._buffers.items() if self._sick.ready(q)}
        if not due:
            if not self._buffers:
                self._idle.set()
            return
        for queue in due:
            del self._buffers[queue]
        now = self._broker.clock.now_ms()
        try:
            if len(due) == 1:  # the common case: no task needed to run it
                await self._write_or_set_aside(*next(iter(due.items())), now)
            else:
                await asyncio.gather(
                    *(self._write_or_set_aside(queue, ops, now) for queue, ops in due.items())
                )
        finally:
            for queue, ops in due.items():  # what is left unwritten goes back, oldest first
                if ops:
                    self._buffers[queue] = ops + self._buffers.get(queue, [])
        if not self._buffers:
            self._idle.set()

    async def _write_or_set_aside(self, queue: str, ops: list[FinishOp], now: int) -> None:
        """Write one queue's outcomes; if that fails, set the queue aside for its backoff."""
        try:
            await self._write(queue, ops, now)
        except Exception as exc:  # noqa: BLE001 - the outcomes are kept and written later
            log_failure(logger, f"record task outcomes of {queue!r}", exc, self._sick.failed(queue))
        else:
            self._sick.recovered(queue)

    async def _write(self, queue: str, ops: list[FinishOp], now: int) -> None:
        """Write one queue's outcomes; those written leave `ops` (emptied on success)."""
        day = utc_day(now)
        try:
            applied = await self._finish(queue, ops, now, day)
        except RedisUnavailable:
            raise
        except TickrError as exc:
            logger.error(
                "Redis refused %d outcome(s) of %r (%s); writing them one by one",
                len(ops),
                queue,
                exc,
            )
            await self._write_one_by_one(queue, ops, now, day)
            return
        for op, code in zip(ops, applied, strict=True):
            self._recorded(queue, op, code)
        ops.clear()

    async def _finish(self, queue: str, ops: Sequence[FinishOp], now: int, day: str) -> list[int]:
        return await self._broker.finish(
            queue,
            ops,
            now_ms=now,
            owner=self._owner,
            day=day,
            archive_max_size=self._archive_max_size,
            archive_max_age_ms=self._archive_max_age_ms,
        )

    def _fields(self, queue: str, task_id: str) -> Mapping[str, str]:
        job = self._held.get((queue, task_id))
        return job.log_fields if job is not None else task_fields(task_id, queue)

    async def _write_one_by_one(self, queue: str, ops: list[FinishOp], now: int, day: str) -> None:
        """Write a queue's refused batch an outcome at a time, isolating the bad ones.

        Written outcomes leave `ops` as they go, so that a retry after Redis went away
        re-sends only the rest.
        """
        while ops:
            op = ops[0]
            try:
                code = (await self._finish(queue, [op], now, day))[0]
            except RedisUnavailable:
                raise
            except TickrError as exc:
                code = await self._write_refused(queue, op, now, day, exc)
            ops.pop(0)
            self._recorded(queue, op, code)

    async def _write_refused(
        self, queue: str, op: FinishOp, now: int, day: str, exc: TickrError
    ) -> int:
        """Archive the task of an outcome Redis refused alone; 0 when even that fails."""
        kind, task_id, _, _, retried = op
        logger.error(
            "Redis refused outcome %r of task %s in %r: %s; archiving the task",
            kind.decode(),
            task_id,
            queue,
            exc,
            extra=self._fields(queue, task_id),
        )
        what = "result cannot be stored" if kind == OP_COMPLETE else "outcome cannot be stored"
        error = error_text(f"{what}: Redis refused it: {exc}")
        try:
            archive = FinishOp(OP_ARCHIVE, task_id, 0, error, retried)
            return (await self._finish(queue, [archive], now, day))[0]
        except RedisUnavailable:
            raise
        except TickrError as again:
            logger.error(
                "Redis refused to archive task %s in %r too (%s); leaving it to recovery",
                task_id,
                queue,
                again,
                extra=self._fields(queue, task_id),
            )
            return 0

    def _recorded(self, queue: str, op: FinishOp, code: int) -> None:
        kind, task_id = op[0], op[1]
        if code == _DAMAGED:
            logger.error(
                "task %s in %r archived instead of recording outcome %r: its record is damaged",
                task_id,
                queue,
                kind.decode(),
                extra=self._fields(queue, task_id),
            )
        elif code != _APPLIED:
            logger.info(
                "outcome %r of task %s in %r ignored: this server no longer holds it",
                kind.decode(),
                task_id,
                queue,
                extra=self._fields(queue, task_id),
            )
        self._held.pop((queue, task_id), None)

    async def flush(self, limit: float) -> bool:
        """Wait up to `limit` seconds until every buffered outcome is written.

        Writes are retried as `run` does.  Returns whether all were written (True if the
        finisher never ran).
        """
        return not self.started or await within(self._idle.wait(), limit)


def error_text(error: str) -> bytes:
    """An error message as stored, in UTF-8.

    Lone surrogates (undecodable file names) are escaped, and a message longer than
    `MAX_ERROR_BYTES` is cut there, with a marker giving its full size.
    """
    encoded = error.encode(errors="backslashreplace")
    if len(encoded) <= MAX_ERROR_BYTES:
        return encoded
    kept = encoded[:MAX_ERROR_BYTES].decode(errors="ignore").encode()
    return kept + f"... [truncated, {len(encoded)} bytes]".encode()
