"""The dashboard benchmark kept from rotting: a small backlog, every page rendered.

Nothing here is timed: the run must finish and report every page.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_dashboard.py"
PAGES = ("| overview |", "| queue, first page |", "| queue, last page |", "| task |",
         "| archived, error filter |")  # fmt: skip


def test_every_page_renders_on_a_small_backlog(tmp_path: Path) -> None:
    output = tmp_path / "dashboard.md"
    run = subprocess.run(
        [sys.executable, str(BENCH), "--tasks", "3000", "--repeat", "2", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    report = output.read_text()
    for page in PAGES:
        assert page in report, report
