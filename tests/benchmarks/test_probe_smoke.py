"""The single-enqueue probe kept from rotting: a tiny run must print every figure.

Nothing here is timed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PROBE = Path(__file__).resolve().parents[2] / "benchmarks" / "probe_enqueue.py"
ROUND = re.compile(
    r"^round 1: floor [\d,]+/s \([\d.]+ µs in Redis\), Tickr [\d,]+/s \([\d.]+ µs in Redis\), "
    r"[\d.]+x$"
)


def test_a_tiny_probe_reports_both_rates_and_the_ratio() -> None:
    run = subprocess.run(
        [sys.executable, str(PROBE), "--tasks", "50", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    lines = run.stdout.splitlines()
    assert ROUND.match(lines[0]), run.stdout
    assert re.match(r"^median ratio [\d.]+x$", lines[-1]), run.stdout
