"""Small asyncio helpers that never swallow a cancellation.

Python 3.11's `asyncio.wait_for` returns normally when the awaited future finishes in
the same loop iteration as the caller is cancelled, losing the cancellation.  These
helpers are built on `asyncio.timeout` instead, which keeps it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, ClassVar, Self

__all__ = [
    "Backoff",
    "ClosedOnExit",
    "call_hook",
    "cancel_and_wait",
    "detach",
    "first_of",
    "forget_cancellation",
    "wait_event",
    "within",
]


class Backoff:
    """The pause between two failed rounds of a loop: it doubles from START up to CAP.

    `next()` gives the pause to take now; `reset()`, after a round that succeeded,
    starts over from START.
    """

    START: ClassVar[float] = 0.05
    CAP: ClassVar[float] = 2.0
    __slots__ = ("_delay",)

    def __init__(self) -> None:
        self._delay = self.START

    def reset(self) -> None:
        """Start over from START (a round succeeded)."""
        self._delay = self.START

    def next(self) -> float:
        """The pause to take now; the next one is twice as long, at most CAP."""
        delay = self._delay
        self._delay = min(delay * 2, self.CAP)
        return delay


class ClosedOnExit:
    """Makes a class with `aclose()` an async context manager that calls it on exit."""

    async def aclose(self) -> None:
        """Release what the object holds (each class says what)."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


async def call_hook(
    hook: Callable[..., object] | None,
    args: tuple[Any, ...],
    logger: logging.Logger,
    failure: str,
    *failure_args: object,
) -> None:
    """Call a user's callback, sync or async, if there is one; log what it raises.

    `failure` and `failure_args` make the log message.  Whatever the hook raises is
    logged and ignored, `SystemExit` and `KeyboardInterrupt` included, except a
    cancellation while the calling task is being cancelled: that one propagates.
    """
    if hook is None:
        return
    try:
        outcome = hook(*args)
        if inspect.isawaitable(outcome):
            await outcome
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        logger.exception(failure, *failure_args)  # the hook raised it of its own accord
    except BaseException:  # a hook's SystemExit must not stop a server either
        logger.exception(failure, *failure_args)


def forget_cancellation() -> None:
    """Reset the current task's count of cancellation requests to zero.

    For code that deliberately ends a cancellation: afterwards `cancelling()` is 0, so
    `asyncio.timeout` and task groups in the task work as if it never happened.
    """
    current = asyncio.current_task()
    while current is not None and current.uncancel() > 0:
        pass


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until `event` is set or `timeout` seconds pass; returns whether it was set."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def within(awaitable: Awaitable[object], timeout: float | None) -> bool:
    """Await `awaitable` for at most `timeout` seconds; returns whether it finished."""
    try:
        async with asyncio.timeout(timeout):
            await awaitable
    except TimeoutError:
        return False
    return True


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]], patience: float | None = None
) -> set[asyncio.Task[Any]]:
    """Cancel tasks and wait for them to end; returns those still running after `patience`.

    The cancellation is repeated until each task ends, because code a task awaits may
    lose one (redis-py's use of `asyncio.wait_for` on Python 3.11 can).  With
    `patience` None this waits as long as it takes.
    """
    loop = asyncio.get_running_loop()
    deadline = None if patience is None else loop.time() + patience
    pending = {task for task in tasks if not task.done()}
    while pending and (deadline is None or loop.time() < deadline):
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)
    return pending


async def first_of(*waits: Coroutine[Any, Any, Any]) -> None:
    """Run the coroutines until the first one finishes; cancel the others."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


_detached: set[asyncio.Task[Any]] = set()


def detach(coro: Coroutine[Any, Any, Any]) -> None:
    """Run a coroutine in a task that is kept alive until it ends (fire and forget)."""
    task = asyncio.get_running_loop().create_task(coro)
    _detached.add(task)
    task.add_done_callback(_detached.discard)
