"""The flow-control benchmark kept from rotting: tiny drains and a short precision run.

Nothing here is timed: the run must finish and report every figure.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_flow.py"


def test_a_short_run_reports_overhead_and_precision(tmp_path: Path) -> None:
    output = tmp_path / "flow.md"
    run = subprocess.run(
        [sys.executable, str(BENCH), "--tasks", "300", "--repeat", "1", "--starts", "100",
         "--rate", "500", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    report = output.read_text()
    for figure in ("| no limit |", "| rate limit far above |", "| concurrency limit far above |",
                   "| 1 |", "| 10 |"):  # fmt: skip
        assert figure in report, report
