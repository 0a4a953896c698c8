"""The peer benchmark kept from rotting: a tiny run of Tickr and the floor.

Nothing here is timed: the run must finish, lose and duplicate no task, reach
concurrency 100, recover a killed worker's tasks, and write a report naming every
workload.  The figures themselves are benchmark output, not assertions.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

COMPARE = Path(__file__).resolve().parents[2] / "benchmarks" / "compare.py"
WORKLOAD_HEADINGS = (
    "### Enqueue: ",
    "### Enqueue in batches",
    "### Drain: ",
    "### Sleep: ",
    "### Latency: ",
    "### Worker resources",
    "### Scaling: ",
    "### Recovery after SIGKILL",
)


def test_a_quick_comparison_runs_every_workload_without_a_problem(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(COMPARE), "--quick", "--tasks", "200", "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert "problems of Tickr or the floor" not in run.stderr
    report = (tmp_path / "RESULTS.md").read_text()
    for heading in WORKLOAD_HEADINGS:
        assert heading in report, heading
    tickr_rows = [line for line in report.splitlines() if line.startswith("| Tickr |")]
    assert len(tickr_rows) >= 7, tickr_rows
    assert not any("—" in row.split("|")[2] for row in tickr_rows), tickr_rows
