"""The throughput chart: an SVG of completed and failed attempts per minute.

Drawn on the server, so that it shows without JavaScript; it is markup of the page
(presentation attributes, no inline style), escaped like the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from tickr.values import MinuteStats

__all__ = ["Bar", "Chart", "throughput_chart"]

WIDTH: Final = 1000
HEIGHT: Final = 150
_LEFT: Final = 44
_BOTTOM: Final = 20


@dataclass(frozen=True, slots=True)
class Bar:
    """One minute: where its bars go and what its tooltip says."""

    x: float
    width: float
    processed_y: float
    processed_height: float
    failed_y: float
    failed_height: float
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    """What the chart template draws."""

    width: int
    height: int
    left: int
    bottom: float
    bars: list[Bar]
    peak: int
    ticks: list[tuple[float, str]]
    total_processed: int
    total_failed: int


def _merge(series: Sequence[Sequence[MinuteStats]]) -> list[tuple[datetime, int, int]]:
    minutes: dict[datetime, list[int]] = {}
    for stats in series:
        for minute in stats:
            totals = minutes.setdefault(minute.minute, [0, 0])
            totals[0] += minute.processed
            totals[1] += minute.failed
    return [(at, totals[0], totals[1]) for at, totals in sorted(minutes.items())]


def throughput_chart(series: Sequence[Sequence[MinuteStats]]) -> Chart:
    """The chart of the minutes of every queue in `series`, summed minute by minute.

    Processed counts every finished attempt; the failed part of each bar is drawn over it.
    """
    minutes = _merge(series)
    peak = max((processed for _, processed, _ in minutes), default=0)
    scale = max(peak, 1)
    plot_width = WIDTH - _LEFT
    plot_height = HEIGHT - _BOTTOM - 8
    step = plot_width / max(len(minutes), 1)
    bars = []
    ticks: list[tuple[float, str]] = []
    for index, (at, processed, failed) in enumerate(minutes):
        x = _LEFT + index * step
        done_height = plot_height * processed / scale
        failed_height = plot_height * min(failed, processed) / scale
        bars.append(
            Bar(
                x=round(x + 0.5, 1),
                width=round(max(step - 1, 1), 1),
                processed_y=round(HEIGHT - _BOTTOM - done_height, 1),
                processed_height=round(done_height, 1),
                failed_y=round(HEIGHT - _BOTTOM - failed_height, 1),
                failed_height=round(failed_height, 1),
                title=f"{at:%H:%M} UTC: {processed:,} processed, {failed:,} failed",
            )
        )
        if index % 15 == 0:
            ticks.append((round(x, 1), f"{at:%H:%M}"))
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        left=_LEFT,
        bottom=HEIGHT - _BOTTOM,
        bars=bars,
        peak=peak,
        ticks=ticks,
        total_processed=sum(processed for _, processed, _ in minutes),
        total_failed=sum(failed for _, _, failed in minutes),
    )
