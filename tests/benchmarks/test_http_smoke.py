"""The HTTP submit benchmark kept from rotting: a quick run must report every rate.

Nothing here is timed: the run must finish, report the submit rate of each side, and
find every answered submit pending in its queue.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_http.py"
NUMBER = r"[\d,]+(?:\.\d+)?"
RATES = re.compile(
    rf"^\| submits/s, 32 in flight \| ({NUMBER}) \| ({NUMBER}) \| ({NUMBER}) \| "
    rf"({NUMBER})x \| ({NUMBER})x \|$",
    re.MULTILINE,
)
LATENCY = re.compile(rf"^\| one submit's round trip, p(50|99) \(ms\) \| {NUMBER} \|", re.MULTILINE)
PENDING = re.compile(r"^Pending after the run, .*: nothing lost\.$", re.MULTILINE)


def test_a_quick_run_reports_both_rates_and_loses_nothing(tmp_path: Path) -> None:
    output = tmp_path / "http.md"
    run = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    report = output.read_text()
    assert report == run.stdout
    rates = RATES.search(report)
    assert rates, report
    assert all(float(rate.replace(",", "")) > 0 for rate in rates.groups()[:3]), report
    assert sorted(LATENCY.findall(report)) == ["50", "99"], report
    assert PENDING.search(report), report
    # 300 submits at once and 50 one at a time, per side: each counted back as pending.
    for queue in ("httpx-burst", "raw-burst", "client-burst"):
        assert f"{queue} 300 of 300;" in report, report
    for queue in ("httpx-sequential", "raw-sequential", "client-sequential"):
        assert f"{queue} 50 of 50;" in report, report
