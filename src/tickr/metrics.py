"""Prometheus metrics (extra ``metrics``: ``pip install 'tickr-queue[metrics]'``).

Two parts, both optional:

- `install()` counts, in this process and where each event happens, the tasks enqueued
  and the attempts run (with their duration and their wait), and reports the workers
  and the event-loop lag of the servers running here.  Nothing is read from Redis.
- `QueueCollector` reads each queue's sizes, latency and pause flag from Redis at
  scrape time: a fixed number of commands per queue in three round trips, cached for
  `cache_seconds`, so that a scrape costs Redis next to nothing whatever the backlog.
  Register it in one process only (the one that serves ``/metrics`` for the queues).

::

    import prometheus_client
    import tickr.metrics

    tickr.metrics.install()                               # the default registry
    prometheus_client.REGISTRY.register(tickr.metrics.QueueCollector(url))
    tickr.metrics.serve(9108)                             # or your app's own /metrics

``tickr worker --metrics-port 9108`` does all three.  Task ids never become labels; a
task type that no ServeMux of this process registers (and that is not listed in
``task_types``) is counted as ``_other``, a type matched by a ``prefix:`` pattern as that
pattern.  docs/monitoring.md lists every metric, multiprocess mode and alert rules.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

from tickr import _observe as observe
from tickr._observe import Outcome
from tickr.values import QueueInfo

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = [
    "DURATION_BUCKETS",
    "OTHER_TYPE",
    "WAIT_BUCKETS",
    "Metrics",
    "QueueCollector",
    "install",
    "queue_families",
    "serve",
    "uninstall",
]

OTHER_TYPE: Final = "_other"
"""The `type` label of task types that are not registered (label sets stay bounded)."""

DURATION_BUCKETS: Final = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 900.0, 1800.0,
)  # fmt: skip
"""Upper bounds (s) of `tickr_task_duration_seconds`."""

WAIT_BUCKETS: Final = (
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
    21600.0,
)  # fmt: skip
"""Upper bounds (s) of `tickr_task_wait_seconds`."""

QUEUE_STATES: Final = ("pending", "active", "scheduled", "retry", "archived", "completed")

_TYPES_REFRESH: Final = 5.0  # seconds between two reads of the servers' registered types
_LABEL_CACHE_MAX: Final = 10_000


def _prometheus() -> Any:
    """The prometheus_client module.

    Raises:
        ImportError: Naming the extra to install, when prometheus-client is missing.
    """
    try:
        import prometheus_client
        import prometheus_client.core
    except ImportError as exc:
        raise ImportError(
            "tickr.metrics needs prometheus-client: pip install 'tickr-queue[metrics]'"
        ) from exc
    return prometheus_client


class _TypeLabels:
    """Task type -> its `type` label: itself, its ``prefix:`` pattern, or `OTHER_TYPE`."""

    def __init__(self, task_types: Iterable[str]) -> None:
        self._given = frozenset(task_types)
        self._exact: frozenset[str] = self._given
        self._prefixes: tuple[str, ...] = ()
        self._cache: dict[str, str] = {}
        self._read_at = -_TYPES_REFRESH
        self._servers_seen = -1

    def __call__(self, task_type: str) -> str:
        now = time.monotonic()
        if now - self._read_at >= _TYPES_REFRESH or observe.servers_changed() != self._servers_seen:
            self._refresh(now)
        label = self._cache.get(task_type)
        if label is None:
            label = self._label(task_type)
            if len(self._cache) < _LABEL_CACHE_MAX:
                self._cache[task_type] = label
        return label

    def _refresh(self, now: float) -> None:
        self._servers_seen = observe.servers_changed()
        patterns = set(self._given)
        for server in observe.running_servers():
            patterns.update(server.task_types())
        exact = frozenset(p for p in patterns if not p.endswith(":"))
        prefixes = tuple(sorted((p for p in patterns if p.endswith(":")), key=len, reverse=True))
        if exact != self._exact or prefixes != self._prefixes:
            self._exact, self._prefixes, self._cache = exact, prefixes, {}
        self._read_at = now

    def _label(self, task_type: str) -> str:
        if task_type in self._exact:
            return task_type
        for prefix in self._prefixes:  # the longest first, as ServeMux matches
            if task_type.startswith(prefix):
                return prefix
        return OTHER_TYPE


class Metrics:
    """The in-process metrics: counters and histograms fed by Tickr's events.

    Made by `install()`; use that rather than this class.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        task_types: Iterable[str] = (),
        duration_buckets: Sequence[float] = DURATION_BUCKETS,
        wait_buckets: Sequence[float] = WAIT_BUCKETS,
    ) -> None:
        prometheus = _prometheus()
        self.registry = registry
        task_types = frozenset(task_types)
        self.settings = (task_types, tuple(duration_buckets), tuple(wait_buckets))
        """What `install` was given: (task types, duration buckets, wait buckets)."""
        self._label = _TypeLabels(task_types)
        self.enqueued = prometheus.Counter(
            "tickr_tasks_enqueued",
            "Tasks enqueued by this process (pending or scheduled).",
            ("queue", "type"),
            registry=registry,
        )
        self.processed = prometheus.Counter(
            "tickr_tasks_processed",
            "Attempts that ended in this process, by outcome: completed, failed (no retry "
            "left), retried, archived (without the handler failing), cancelled, lost "
            "(the lease was lost).",
            ("queue", "type", "outcome"),
            registry=registry,
        )
        self.duration = prometheus.Histogram(
            "tickr_task_duration_seconds",
            "Seconds a handler ran, per attempt.",
            ("queue", "type"),
            buckets=tuple(duration_buckets),
            registry=registry,
        )
        self.wait = prometheus.Histogram(
            "tickr_task_wait_seconds",
            "Seconds from when a task became runnable (enqueue, or its due time) to the "
            "start of its attempt.",
            ("queue",),
            buckets=tuple(wait_buckets),
            registry=registry,
        )
        self.held = prometheus.Counter(
            "tickr_queue_limited_seconds",
            "Seconds this process' servers left a queue alone because its rate or "
            "concurrency limit held its tasks back (counted when the hold ends).",
            ("queue", "limit"),
            registry=registry,
        )
        self._servers = _ServerCollector(prometheus)
        registry.register(self._servers)
        self._children: dict[tuple[str, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # The observer (see tickr._observe): called on the event loop of the event.

    def task_enqueued(self, queue: str, task_type: str) -> None:
        """Count an enqueued task."""
        self._child(self.enqueued, queue, self._label(task_type)).inc()

    def attempt_started(self, queue: str, task_type: str, wait_seconds: float | None) -> None:
        """Observe how long the task waited to start."""
        if wait_seconds is not None:
            self._child(self.wait, queue).observe(wait_seconds)

    def attempt_ended(
        self, queue: str, task_type: str, outcome: Outcome, duration_seconds: float | None
    ) -> None:
        """Count the attempt by outcome, and observe its handler's duration."""
        label = self._label(task_type) if task_type else OTHER_TYPE
        self._child(self.processed, queue, label, outcome).inc()
        if duration_seconds is not None:
            self._child(self.duration, queue, label).observe(duration_seconds)

    def queue_held(self, queue: str, limit: str, seconds: float) -> None:
        """Count the time a limit held a queue back."""
        self._child(self.held, queue, limit).inc(seconds)

    def close(self) -> None:
        """Stop counting and take the metrics out of the registry."""
        uninstall(self)


class _ServerCollector:
    """`tickr_workers` and `tickr_event_loop_lag_seconds` of the servers running here."""

    def __init__(self, prometheus: Any) -> None:
        self._family = prometheus.core.GaugeMetricFamily

    def describe(self) -> Iterator[Any]:
        """Nothing at registration: the metrics are made at each scrape."""
        return iter(())

    def collect(self) -> Iterator[Any]:
        """One sample per running server and state."""
        workers = self._family(
            "tickr_workers",
            "Worker coroutines of each server, busy or idle.",
            labels=("server", "state"),
        )
        lag = self._family(
            "tickr_event_loop_lag_seconds",
            "How late each server's event loop ran its timers (blocked loops show here).",
            labels=("server",),
        )
        for server in observe.running_servers():
            busy = server.busy()
            workers.add_metric((server.server_id, "busy"), busy)
            workers.add_metric((server.server_id, "idle"), max(0, server.concurrency() - busy))
            lag.add_metric((server.server_id,), server.loop_lag())
        yield workers
        yield lag


_installed: dict[int, Metrics] = {}
_install_lock = threading.Lock()


def install(
    registry: CollectorRegistry | None = None,
    *,
    task_types: Iterable[str] = (),
    duration_buckets: Sequence[float] = DURATION_BUCKETS,
    wait_buckets: Sequence[float] = WAIT_BUCKETS,
) -> Metrics:
    """Start counting Tickr's events of this process into `registry`.

    Installing again into the same registry returns the metrics installed there, if
    the arguments are the same.

    Args:
        registry: Where the metrics live; default prometheus_client's global REGISTRY.
        task_types: Task types to label by name besides those the ServeMuxes of this
            process register (a producer without a server names its types here).
        duration_buckets: Histogram bounds of the handlers' durations (s).
        wait_buckets: Histogram bounds of the tasks' waits (s).

    Raises:
        ImportError: If prometheus-client is not installed (the ``metrics`` extra).
        ValueError: If metrics are installed in `registry` with other arguments
            (uninstall them first).
    """
    prometheus = _prometheus()
    target = prometheus.REGISTRY if registry is None else registry
    settings = (frozenset(task_types), tuple(duration_buckets), tuple(wait_buckets))
    with _install_lock:
        metrics = _installed.get(id(target))
        if metrics is not None and metrics.settings != settings:
            raise ValueError(
                "tickr metrics are installed in this registry with other settings; "
                "uninstall them first"
            )
        if metrics is None:
            metrics = Metrics(
                target,
                task_types=task_types,
                duration_buckets=duration_buckets,
                wait_buckets=wait_buckets,
            )
            _installed[id(target)] = metrics
            observe.add_observer(metrics)
    return metrics


def uninstall(metrics: Metrics) -> None:
    """Stop counting into `metrics` and unregister its metrics from their registry."""
    with _install_lock:
        observe.remove_observer(metrics)
        if _installed.get(id(metrics.registry)) is metrics:
            del _installed[id(metrics.registry)]
            for collector in (
                metrics.enqueued,
                metrics.processed,
                metrics.duration,
                metrics.wait,
                metrics.held,
                metrics._servers,
            ):
                metrics.registry.unregister(collector)


class QueueCollector:
    """Queue gauges read from Redis at scrape time, for prometheus_client.

    `tickr_queue_size{queue,state}`, `tickr_queue_latency_seconds{queue}` (the age of
    the task that runs next), `tickr_queue_paused{queue}`, and
    `tickr_queue_collector_up` (0 when the last read failed; the sizes are then left
    out).  A scrape reads Redis at most once per `cache_seconds`, with a fixed number of
    commands per queue (`Inspector.queue_infos`); the reads run on an event loop of the
    collector's own, in a thread, so that it works from prometheus_client's HTTP server
    or any other thread.

    Args:
        url: Redis URL; default $TICKR_REDIS_URL, else ``redis://127.0.0.1:6379/0``.
        namespace: The namespace of the queues.
        queues: The queues to report; default every queue of the namespace.
        cache_seconds: How long a reading serves scrapes.
        timeout: Seconds a reading may take before the scrape goes without it.

    Raises:
        ImportError: If prometheus-client is not installed (the ``metrics`` extra).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        namespace: str = "tickr",
        queues: Iterable[str] | None = None,
        cache_seconds: float = 5.0,
        timeout: float = 2.0,
    ) -> None:
        _prometheus()
        from tickr.inspector import Inspector

        self._inspector = Inspector(url, namespace=namespace)
        self._queues = None if queues is None else list(queues)
        self.cache_seconds = cache_seconds
        self.timeout = timeout
        self._lock = threading.Lock()
        self._read_at = -float("inf")
        self._infos: list[QueueInfo] = []
        self._up = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self.reads = 0
        """How many times Redis was read (for tests and curiosity)."""

    def describe(self) -> Iterator[Any]:
        """Nothing at registration: registering must not read Redis."""
        return iter(())

    def collect(self) -> Iterator[Any]:
        """The gauges, from a reading at most `cache_seconds` old (none once closed)."""
        with self._lock:
            if self._closed:
                self._infos, self._up = [], False
            elif time.monotonic() - self._read_at >= self.cache_seconds:
                self._read()
            infos, up = self._infos, self._up
        return iter(queue_families(infos, up))

    def _read(self) -> None:
        loop = self._ensure_loop()
        reading = asyncio.run_coroutine_threadsafe(self._inspector.queue_infos(self._queues), loop)
        try:
            self._infos, self._up = reading.result(self.timeout), True
        except Exception:  # noqa: BLE001 - a scrape reports the failure as up == 0
            reading.cancel()
            self._infos, self._up = [], False
        self._read_at = time.monotonic()
        self.reads += 1

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=loop.run_forever, name="tickr-metrics", daemon=True
            )
            self._thread.start()
            self._loop = loop
        return self._loop

    def close(self) -> None:
        """Close the connections and stop the collector's thread.

        A scrape after that reports ``tickr_queue_collector_up 0`` and reads nothing;
        unregister the collector from its registry to drop it.
        """
        with self._lock:
            self._closed = True
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._inspector.aclose(), loop).result(self.timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(self.timeout)
        loop.close()
        self._loop = self._thread = None


def queue_families(infos: Iterable[QueueInfo], up: bool) -> list[Any]:
    """The queue gauges of `QueueCollector` (prometheus_client metric families) for `infos`.

    `up` is reported as ``tickr_queue_collector_up``: False when `infos` could not be read.

    Raises:
        ImportError: If prometheus-client is not installed (the ``metrics`` extra).
    """
    family = _prometheus().core.GaugeMetricFamily
    sizes = family("tickr_queue_size", "Tasks in each queue, by state.", labels=("queue", "state"))
    latency = family(
        "tickr_queue_latency_seconds",
        "Age of the task that runs next in each queue (0 when none is pending).",
        labels=("queue",),
    )
    paused = family("tickr_queue_paused", "1 while the queue is paused.", labels=("queue",))
    for info in infos:
        for state in QUEUE_STATES:
            sizes.add_metric((info.queue, state), getattr(info, state))
        latency.add_metric((info.queue,), info.latency)
        paused.add_metric((info.queue,), 1 if info.paused else 0)
    up_family = family(
        "tickr_queue_collector_up", "1 when the last read of the queues worked.", value=up
    )
    return [sizes, latency, paused, up_family]


def serve(port: int, addr: str = "127.0.0.1", registry: CollectorRegistry | None = None) -> Any:
    """Serve ``/metrics`` of `registry` over HTTP from a thread; returns the server.

    Call ``shutdown()`` on the result to stop it.

    Raises:
        ImportError: If prometheus-client is not installed (the ``metrics`` extra).
        OSError: If the address cannot be bound.
    """
    prometheus = _prometheus()
    server, _thread = prometheus.start_http_server(
        port, addr=addr, registry=prometheus.REGISTRY if registry is None else registry
    )
    return server
