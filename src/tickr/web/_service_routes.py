"""The routes around the API: liveness, readiness, Prometheus metrics, the OpenAPI document."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tickr.values import QueueInfo
from tickr.web._context import Context
from tickr.web._problems import Failure, problem

__all__ = ["READY_WITHIN", "healthz", "metrics", "readyz"]

READY_WITHIN: Final = 0.25
"""Seconds `/readyz` waits for Redis before it answers 503."""
_METRICS_CACHE: Final = 5.0  # seconds one reading of the queues serves scrapes


async def healthz(ctx: Context, request: Request) -> Response:
    """Alive: the process answers (Redis is not asked)."""
    return JSONResponse({"status": "ok"})


async def readyz(ctx: Context, request: Request) -> Response:
    """Ready: Redis answers and holds Tickr's scripts, within READY_WITHIN seconds."""
    inspector = ctx.running_inspector
    try:
        if inspector is None:
            raise RuntimeError("the app is starting")
        async with asyncio.timeout(READY_WITHIN):
            await inspector.check_ready()
    except TimeoutError:
        return problem(503, f"Redis did not answer within {READY_WITHIN * 1000:g} ms")
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return problem(503, f"Redis is not ready: {exc}")
    return JSONResponse({"status": "ready"})


class QueueReadings:
    """The queues' infos for /metrics, read at most every few seconds whatever the scrapers."""

    def __init__(self) -> None:
        self._read_at = -float("inf")
        self._infos: list[QueueInfo] = []
        self._up = False
        self._lock = asyncio.Lock()

    async def read(self, ctx: Context) -> tuple[list[QueueInfo], bool]:
        """The latest reading, refreshed when it is older than the cache time."""
        async with self._lock:
            if time.monotonic() - self._read_at >= _METRICS_CACHE:
                try:
                    self._infos, self._up = await ctx.inspector.queue_infos(), True
                except Exception:  # noqa: BLE001 - reported as tickr_queue_collector_up 0
                    self._infos, self._up = [], False
                self._read_at = time.monotonic()
            return self._infos, self._up


async def metrics(ctx: Context, request: Request, readings: QueueReadings) -> Response:
    """This process' Tickr metrics and the queue gauges, in Prometheus' text format."""
    token = ctx.guard.authorize(request, "tasks:read")
    try:
        import prometheus_client
        from prometheus_client.core import CollectorRegistry

        import tickr.metrics
    except ImportError:
        raise Failure(
            501, "/metrics needs the 'metrics' extra: pip install 'tickr-queue[metrics]'"
        ) from None
    infos, up = await readings.read(ctx)
    shown = [info for info in infos if token.may_touch(info.queue)]

    class _Queues:
        def collect(self) -> Any:
            return iter(tickr.metrics.queue_families(shown, up))

    queues = CollectorRegistry(auto_describe=False)
    queues.register(_Queues())
    text = prometheus_client.generate_latest(prometheus_client.REGISTRY)
    text += prometheus_client.generate_latest(queues)
    return Response(text, media_type=prometheus_client.CONTENT_TYPE_LATEST)
