"""`ServeMux`: routes task types to handlers, through middleware."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

from tickr._checks import check_text, is_async_callable
from tickr.task import Task

__all__ = ["CallNext", "Handler", "Middleware", "ServeMux"]

Handler = Callable[[Task], Awaitable[Any]]
"""An async function taking a `Task`; its return value becomes the task's result."""

CallNext = Callable[[Task], Awaitable[Any]]
"""What a middleware calls to run the rest of the chain."""

Middleware = Callable[[Task, CallNext], Awaitable[Any]]
"""``async def middleware(task, call_next): return await call_next(task)``."""

HandlerT = TypeVar("HandlerT", bound=Handler)


def _no_handler_message(task_type: str) -> str:
    """The error recorded on a task whose type no handler matches."""
    return f"no handler for task type {task_type!r}"


def _chain(middleware: Middleware, call_next: CallNext) -> CallNext:
    async def call(task: Task) -> Any:
        return await middleware(task, call_next)

    return call


class ServeMux:
    """Routes each task to the handler registered for its type.

    An exact type match wins; a pattern ending in ``:`` (such as ``"email:"``) matches
    every type with that prefix, and the longest matching prefix wins.  Middleware added
    with `use` wraps every handler, the first added being the outermost.

    A ServeMux is itself a handler: awaiting ``mux(task)`` runs the matching handler and
    raises `LookupError` when none matches.
    """

    def __init__(self) -> None:
        self._exact: dict[str, Handler] = {}
        self._prefixes: list[tuple[str, Handler]] = []
        self._middleware: list[Middleware] = []
        self._resolved: dict[str, CallNext | None] = {}

    @overload
    def handle(self, pattern: str) -> Callable[[HandlerT], HandlerT]: ...

    @overload
    def handle(self, pattern: str, handler: HandlerT) -> HandlerT: ...

    def handle(
        self, pattern: str, handler: HandlerT | None = None
    ) -> HandlerT | Callable[[HandlerT], HandlerT]:
        """Register `handler` for `pattern`; without a handler, return a decorator.

        Raises:
            TypeError: If the pattern is not a str or the handler is not async.
            ValueError: If the pattern is empty or already registered.
        """
        check_text(pattern, "pattern")
        if pattern in self._exact or any(p == pattern for p, _ in self._prefixes):
            raise ValueError(f"a handler is already registered for {pattern!r}")

        def register(function: HandlerT) -> HandlerT:
            if not is_async_callable(function):
                raise TypeError(f"the handler for {pattern!r} must be an async function")
            if pattern in self._exact or any(p == pattern for p, _ in self._prefixes):
                raise ValueError(f"a handler is already registered for {pattern!r}")
            if pattern.endswith(":"):
                self._prefixes.append((pattern, function))
                self._prefixes.sort(key=lambda entry: len(entry[0]), reverse=True)
            else:
                self._exact[pattern] = function
            self._resolved.clear()
            return function

        return register if handler is None else register(handler)

    def use(self, middleware: Middleware) -> Middleware:
        """Add a middleware; usable as a decorator.

        Raises:
            TypeError: If the middleware is not async.
        """
        if not is_async_callable(middleware):
            raise TypeError("middleware must be an async function (task, call_next)")
        self._middleware.append(middleware)
        self._resolved.clear()
        return middleware

    @property
    def patterns(self) -> list[str]:
        """Every registered pattern, exact ones first."""
        return [*self._exact, *(pattern for pattern, _ in self._prefixes)]

    def handler_for(self, task_type: str) -> CallNext | None:
        """The handler for a task type wrapped in the middleware, or None if none matches."""
        try:
            return self._resolved[task_type]
        except KeyError:
            pass
        handler = self._exact.get(task_type)
        if handler is None:
            handler = next(
                (h for prefix, h in self._prefixes if task_type.startswith(prefix)), None
            )
        chained: CallNext | None = None
        if handler is not None:
            chained = handler
            for middleware in reversed(self._middleware):
                chained = _chain(middleware, chained)
        self._resolved[task_type] = chained
        return chained

    async def __call__(self, task: Task) -> Any:
        """Run the handler for `task`.

        Raises:
            LookupError: If no handler matches the task's type.
        """
        handler = self.handler_for(task.type)
        if handler is None:
            raise LookupError(_no_handler_message(task.type))
        return await handler(task)
