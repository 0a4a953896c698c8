"""Where the core reports what happens, for the optional metrics (`tickr.metrics`).

The core calls the functions of this module where an event happens: an enqueue, the
start and the end of an attempt.  They do nothing until an observer is added, so that
Tickr without metrics pays one truth test per event.  Running servers also list
themselves here, so that a collector can read their workers and event-loop lag.

This module imports nothing from the package.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final, Literal, NamedTuple, Protocol

__all__ = [
    "OUTCOMES",
    "Observer",
    "Outcome",
    "ServerGauges",
    "add_observer",
    "attempt_ended",
    "attempt_started",
    "enqueued",
    "observers",
    "register_server",
    "remove_observer",
    "running_servers",
    "servers_changed",
    "unregister_server",
]

Outcome = Literal["completed", "failed", "retried", "archived", "cancelled", "lost"]
OUTCOMES: Final[tuple[Outcome, ...]] = (
    "completed",
    "failed",
    "retried",
    "archived",
    "cancelled",
    "lost",
)
"""How an attempt ended: its handler returned (completed); it raised, timed out or hit
its deadline with no retry left (failed: archived) or with one (retried); the task was
archived without its handler failing (archived: undecodable, no handler, deadline
passed before the start, a result that cannot be stored); its cancellation stopped it
(cancelled); or this server lost its lease, and another one took it back (lost)."""


class Observer(Protocol):
    """What the core tells an observer; called on the event loop, so keep it short."""

    def task_enqueued(self, queue: str, task_type: str) -> None:
        """A task was stored (pending or scheduled)."""

    def attempt_started(self, queue: str, task_type: str, wait_seconds: float | None) -> None:
        """A handler is about to run; the seconds since the task became runnable."""

    def attempt_ended(
        self, queue: str, task_type: str, outcome: Outcome, duration_seconds: float | None
    ) -> None:
        """An attempt ended; the seconds its handler ran (None when it did not run)."""


_observers: list[Observer] = []
_lock = threading.Lock()


def add_observer(observer: Observer) -> None:
    """Start telling `observer` of every event."""
    with _lock:
        if observer not in _observers:
            _observers.append(observer)


def remove_observer(observer: Observer) -> None:
    """Stop telling `observer`; nothing happens if it was not added."""
    with _lock:
        if observer in _observers:
            _observers.remove(observer)


def observers() -> list[Observer]:
    """The observers added, in order."""
    return list(_observers)


def enqueued(queue: str, task_type: str) -> None:
    """Report a stored task."""
    for observer in _observers:
        observer.task_enqueued(queue, task_type)


def attempt_started(queue: str, task_type: str, wait_seconds: float | None) -> None:
    """Report the start of an attempt."""
    for observer in _observers:
        observer.attempt_started(queue, task_type, wait_seconds)


def attempt_ended(
    queue: str, task_type: str, outcome: Outcome, duration_seconds: float | None
) -> None:
    """Report the end of an attempt."""
    for observer in _observers:
        observer.attempt_ended(queue, task_type, outcome, duration_seconds)


class ServerGauges(NamedTuple):
    """A running server as a collector reads it (from any thread)."""

    server_id: str
    concurrency: Callable[[], int]
    busy: Callable[[], int]
    loop_lag: Callable[[], float]
    task_types: Callable[[], frozenset[str]]
    """The task types (and ``prefix:`` patterns) its handler is registered for."""


_servers: dict[str, ServerGauges] = {}
_servers_changed = 0


def register_server(gauges: ServerGauges) -> None:
    """List a server that started."""
    global _servers_changed
    with _lock:
        _servers[gauges.server_id] = gauges
        _servers_changed += 1


def unregister_server(server_id: str) -> None:
    """Forget a server that stopped."""
    global _servers_changed
    with _lock:
        _servers.pop(server_id, None)
        _servers_changed += 1


def servers_changed() -> int:
    """A number that changes whenever a server starts or stops."""
    return _servers_changed


def running_servers() -> list[ServerGauges]:
    """The servers of this process that run now."""
    with _lock:
        return list(_servers.values())
