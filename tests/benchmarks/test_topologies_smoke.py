"""The topology benchmark kept from rotting: a tiny run on one Redis, a Cluster, Sentinel.

Nothing here is timed: the run must finish and report every topology and failover.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_topologies.py"
ROWS = (
    "| one Redis |",
    "| Cluster |",
    "| Sentinel |",
    "| Cluster primary SIGKILL |",
    "| SENTINEL FAILOVER |",
    "| Sentinel primary SIGKILL |",
)


def test_a_quick_run_reports_every_topology_and_failover(tmp_path: Path) -> None:
    output = tmp_path / "topologies.md"
    run = subprocess.run(
        [sys.executable, str(BENCH), "--tasks", "300", "--samples", "12", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    report = output.read_text()
    for row in ROWS:
        assert row in report, report
