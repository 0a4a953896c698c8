"""The backlog benchmark kept from rotting: a tiny backlog, enqueued, inspected, drained.

Nothing here is timed: the run must finish and report every figure.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_backlog.py"
FIGURES = (
    "| enqueue |",
    "| Redis memory per pending task |",
    "| floor: LPUSH of the msgpack payload |",
    "| queue_info |",
    "| queue_info(memory=True) |",
    "| list_tasks first page |",
    "| list_tasks last page |",
    "| drain, one worker (concurrency 100) |",
    "| Redis CPU per task in the drain |",
    "| worker peak RSS |",
)


def test_a_small_backlog_reports_every_figure(tmp_path: Path) -> None:
    output = tmp_path / "backlog.md"
    run = subprocess.run(
        [sys.executable, str(BENCH), "--tasks", "2000", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    report = output.read_text()
    for figure in FIGURES:
        assert figure in report, report
