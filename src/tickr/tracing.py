"""OpenTelemetry traces from the enqueue to the handler (extra ``otel``: opentelemetry-api).

Enabled by itself when opentelemetry-api is installed (set ``TICKR_TRACING=0`` to keep it
off): Tickr only uses the API, so that an application's SDK (or none) decides what
happens to the spans.

- An enqueue makes a PRODUCER span ``send <queue>``, a child of the caller's current
  span, and carries its context in the task's `headers` (``traceparent``,
  ``tracestate``, with the propagator the application configured; W3C by default).
  `Client.enqueue_many` makes one span per queue of the batch, its
  ``messaging.batch.message_count`` the number of tasks, and each of them carries that
  span's context.  A periodic task's tick makes its span in the scheduler.
- Each attempt runs inside a CONSUMER span ``process <queue>``, current while the
  handler runs (the handler's own spans are its children), linked to the producer's
  span, and its child too when the task started within `child_within` seconds of its
  enqueue (else it starts a trace of its own, so that a task that waited for hours does
  not stretch the producer's trace).  A retry is another consumer span, linked to the
  same producer span.  A failed attempt has an error status and the exception as an
  event.

The attributes follow OpenTelemetry's messaging conventions: ``messaging.system``
("tickr"), ``messaging.destination.name`` (the queue), ``messaging.operation.type``
and ``messaging.operation.name`` ("send" / "process"), ``messaging.message.id`` (the
task id); and ``tickr.task.type``, ``tickr.task.retry_count``, ``tickr.task.outcome``.
Without an SDK, OpenTelemetry's spans are non-recording and carry no context: no header
is added, and an attempt costs a few microseconds (docs/performance.md).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from tickr import _observe as observe

__all__ = ["CHILD_WITHIN", "disable", "enable"]

CHILD_WITHIN: Final = 900.0
"""Default `child_within`: an attempt that starts within 15 minutes of its enqueue is a
child of the producer's span (and linked to it in every case)."""

_FAILED: Final[frozenset[str]] = frozenset({"failed", "retried", "archived", "lost"})


def _otel() -> tuple[Any, Any, Any]:
    """Opentelemetry's trace, propagate and context modules.

    Raises:
        ImportError: Naming the extra to install, when opentelemetry-api is missing.
    """
    try:
        from opentelemetry import context, propagate, trace
    except ImportError as exc:
        raise ImportError(
            "tickr.tracing needs opentelemetry-api: pip install 'tickr-queue[otel]'"
        ) from exc
    return trace, propagate, context


class _Tracer:
    """Tickr's OpenTelemetry tracer (see the module docstring)."""

    def __init__(self, child_within: float, tracer_provider: Any) -> None:
        from tickr import __version__

        self._trace, self._propagate, self._context = _otel()
        self._tracer = self._trace.get_tracer("tickr", __version__, tracer_provider)
        self._given_provider = tracer_provider is not None
        self._no_sdk = (self._trace.ProxyTracerProvider, self._trace.NoOpTracerProvider)
        self._producer = self._trace.SpanKind.PRODUCER
        self._consumer = self._trace.SpanKind.CONSUMER
        status, code = self._trace.Status, self._trace.StatusCode.ERROR
        self._error = lambda description: status(code, description)
        self.child_within = child_within

    def _live(self) -> bool:
        """Whether spans may be recorded: a provider was given, or an SDK is set globally."""
        return self._given_provider or not isinstance(
            self._trace.get_tracer_provider(), self._no_sdk
        )

    def send(self, queue: str, count: int) -> observe.SendScope:
        if not self._live():
            return observe.NO_SEND
        attributes: dict[str, Any] = {
            "messaging.system": "tickr",
            "messaging.destination.name": queue,
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
        }
        if count != 1:
            attributes["messaging.batch.message_count"] = count
        span = self._tracer.start_span(f"send {queue}", kind=self._producer, attributes=attributes)
        if not span.is_recording():
            return observe.NO_SEND
        carrier: dict[str, str] = {}
        self._propagate.inject(carrier, context=self._trace.set_span_in_context(span))
        return _Send(span, carrier, self._error)

    def process(
        self, queue: str, task_id: str, task_type: str, retry_count: int,
        headers: Mapping[str, str], enqueued_ms: int,
    ) -> observe.ProcessScope:  # fmt: skip
        if not self._live():
            return observe.NO_PROCESS
        trace = self._trace
        produced = self._propagate.extract(headers) if headers else None
        links = []
        parent = self._context.Context()  # a root span unless the producer is close
        if produced is not None:
            producer = trace.get_current_span(produced).get_span_context()
            if producer.is_valid:
                links.append(trace.Link(producer))
                waited = time.time() - enqueued_ms / 1000
                if waited <= self.child_within:
                    parent = produced
        span = self._tracer.start_span(
            f"process {queue}",
            context=parent,
            kind=self._consumer,
            links=links,
            attributes={
                "messaging.system": "tickr",
                "messaging.destination.name": queue,
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.message.id": task_id,
                "tickr.task.type": task_type,
                "tickr.task.retry_count": retry_count,
            },
        )
        if not span.is_recording():
            return observe.NO_PROCESS
        return _Process(span, trace, self._context, self._error)


class _Send:
    def __init__(self, span: Any, carrier: dict[str, str], error: Any) -> None:
        self._span, self._carrier, self._error = span, carrier, error

    def carry(self, headers: Mapping[str, str] | None) -> Mapping[str, str] | None:
        if not self._carrier or not (headers is None or isinstance(headers, Mapping)):
            return headers  # a bad argument: left for the checks to refuse
        return {**self._carrier, **headers} if headers else self._carrier

    def sent(self, task_ids: Sequence[str]) -> None:
        if len(task_ids) == 1:
            self._span.set_attribute("messaging.message.id", task_ids[0])

    def close(self, error: BaseException | None) -> None:
        if error is not None:
            self._span.record_exception(error)
            self._span.set_status(self._error(str(error)))
        self._span.end()


class _Process:
    def __init__(self, span: Any, trace: Any, context: Any, error: Any) -> None:
        self._span, self._trace, self._context, self._error = span, trace, context, error

    def enter(self) -> object:
        return self._context.attach(self._trace.set_span_in_context(self._span))

    def leave(self, token: object) -> None:
        self._context.detach(token)

    def close(self, outcome: str, error: BaseException | None) -> None:
        span = self._span
        if not span.is_recording():  # ended already
            return
        span.set_attribute("tickr.task.outcome", outcome)
        if outcome in _FAILED or outcome == "cancelled":
            if error is not None:
                span.record_exception(error)
            description = f"{outcome}: {error}" if error is not None else outcome
            span.set_status(self._error(description))
        span.end()


def enable(*, child_within: float = CHILD_WITHIN, tracer_provider: Any = None) -> None:
    """Trace enqueues and attempts with OpenTelemetry from now on (the default).

    Args:
        child_within: Seconds after its enqueue within which an attempt's span is a
            child of the producer's span (it is linked to it either way).
        tracer_provider: The TracerProvider to use; default the global one (as
            ``opentelemetry.trace.set_tracer_provider`` sets it, now or later).

    Raises:
        ImportError: If opentelemetry-api is not installed (the ``otel`` extra).
    """
    observe.set_tracer(_Tracer(child_within, tracer_provider))


def disable() -> None:
    """Stop tracing (``TICKR_TRACING=0`` keeps it from starting)."""
    observe.set_tracer(None)
