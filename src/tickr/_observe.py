"""Where the core reports what happens, for the optional metrics (`tickr.metrics`).

The core calls the functions of this module where an event happens: an enqueue, the
start and the end of an attempt; and it opens the tracing scopes of enqueues and
attempts (filled by `tickr.tracing`).  They do nothing until an observer is added, so that
Tickr without metrics pays one truth test per event.  Running servers also list
themselves here, so that a collector can read their workers and event-loop lag.

This module imports nothing from the package (`ensure_tracing` loads `tickr.tracing`
by name, when opentelemetry-api is installed).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Final, Literal, NamedTuple, Protocol

__all__ = [
    "NO_PROCESS",
    "NO_SEND",
    "OUTCOMES",
    "TRACING_VARIABLE",
    "Observer",
    "Outcome",
    "ProcessScope",
    "SendScope",
    "ServerGauges",
    "Tracer",
    "add_observer",
    "attempt_ended",
    "attempt_started",
    "enqueued",
    "ensure_tracing",
    "observers",
    "processing",
    "register_server",
    "remove_observer",
    "running_servers",
    "sending",
    "servers_changed",
    "set_tracer",
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
(cancelled); or its server stopped renewing its lease and this one took the task back
(lost, counted by the server that took it back, as Redis' counters count it, with the
type unknown)."""


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

    def queue_held(self, queue: str, limit: str, seconds: float) -> None:
        """A server left `queue` alone this long for its "rate" or "concurrency" limit."""


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


def queue_held(queue: str, limit: str, seconds: float) -> None:
    """Report that a limit holds a queue back."""
    for observer in _observers:
        observer.queue_held(queue, limit, seconds)


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


# ---------------------------------------------------------------------- tracing
#
# The core opens a "send" scope around each enqueue call and a "process" scope around
# each attempt; `tickr.tracing` fills them with OpenTelemetry spans when it is enabled
# (by default whenever opentelemetry-api is installed), else they cost a call each.


class SendScope(Protocol):
    """One enqueue call (one task, or one batch of a queue) as a tracer sees it."""

    def carry(self, headers: Mapping[str, str] | None) -> Mapping[str, str] | None:
        """The task's headers with the trace context added (given headers win)."""

    def sent(self, task_ids: Sequence[str]) -> None:
        """The ids of the tasks stored."""

    def close(self, error: BaseException | None) -> None:
        """The call ended (with `error` when it raised)."""


class ProcessScope(Protocol):
    """One attempt as a tracer sees it: entered around the handler, closed at its end."""

    def enter(self) -> object:
        """Make the attempt's span current; returns what `leave` needs."""

    def leave(self, token: object) -> None:
        """Undo `enter`."""

    def close(self, outcome: str, error: BaseException | None) -> None:
        """The attempt ended with an `Outcome` or "requeued" (and `error` if it failed)."""


class Tracer(Protocol):
    """Makes the scopes; `tickr.tracing` is the one implementation."""

    def send(self, queue: str, count: int) -> SendScope:
        """The scope of an enqueue of `count` tasks into `queue`."""

    def process(
        self, queue: str, task_id: str, task_type: str, retry_count: int,
        headers: Mapping[str, str], enqueued_ms: int,
    ) -> ProcessScope:  # fmt: skip
        """The scope of one attempt of a task."""


class _NoSend:
    def carry(self, headers: Mapping[str, str] | None) -> Mapping[str, str] | None:
        return headers

    def sent(self, task_ids: Sequence[str]) -> None:
        return None

    def close(self, error: BaseException | None) -> None:
        return None


class _NoProcess:
    def enter(self) -> object:
        return None

    def leave(self, token: object) -> None:
        return None

    def close(self, outcome: str, error: BaseException | None) -> None:
        return None


NO_SEND: Final = _NoSend()
NO_PROCESS: Final = _NoProcess()
_tracer: Tracer | None = None
_tracing_checked = False
TRACING_VARIABLE: Final = "TICKR_TRACING"
"""Set to 0 to keep Tickr from tracing even with opentelemetry-api installed."""


def set_tracer(tracer: Tracer | None) -> None:
    """Trace with `tracer` from now on (None: stop tracing)."""
    global _tracer, _tracing_checked
    _tracer, _tracing_checked = tracer, True


def ensure_tracing() -> None:
    """Enable `tickr.tracing` once, if opentelemetry-api is installed and not opted out."""
    global _tracing_checked
    if _tracing_checked:
        return
    _tracing_checked = True
    if os.environ.get(TRACING_VARIABLE, "1").strip().lower() in ("0", "false", "no", "off"):
        return
    if importlib.util.find_spec("opentelemetry") is None:
        return
    try:
        importlib.import_module("tickr.tracing").enable()
    except ImportError:  # opentelemetry without its trace API: nothing to trace with
        return


def sending(queue: str, count: int) -> SendScope:
    """The scope of an enqueue call."""
    return NO_SEND if _tracer is None else _tracer.send(queue, count)


def processing(
    queue: str, task_id: str, task_type: str, retry_count: int,
    headers: Mapping[str, str], enqueued_ms: int,
) -> ProcessScope:  # fmt: skip
    """The scope of an attempt."""
    if _tracer is None:
        return NO_PROCESS
    return _tracer.process(queue, task_id, task_type, retry_count, headers, enqueued_ms)
