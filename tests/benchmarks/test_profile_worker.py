"""benchmarks/profile_worker.py: its summary of py-spy's output, and (with py-spy) a run."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "profile_worker.py"
LOOP = (
    "thread (1): MainThread;<module> (<string>:10);run (asyncio/runners.py:190);"
    "BaseEventLoop._run_once (asyncio/base_events.py:1922)"
)


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("profile_worker", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_summary_ranks_the_event_loop_functions_and_counts_the_rest_apart(
    tmp_path: Path,
) -> None:
    raw = tmp_path / "profile.txt"
    raw.write_text(
        "\n".join(
            [
                f"{LOOP};Processor._work (/x/src/tickr/_server/processor.py:170);"
                "Processor._run (/x/src/tickr/_server/processor.py:240) 6",
                f"{LOOP};Processor._work (/x/src/tickr/_server/processor.py:170);"
                "decode_message (/x/src/tickr/serialization.py:150) 3",
                f"{LOOP};EpollSelector.select (selectors.py:468) 1",
                "thread (1): MainThread;<module> (<string>:2);"
                "_find_and_load (<frozen importlib._bootstrap>:1176) 4",
                "thread (2): tickr-leases;Condition.wait (threading.py:331) 5",
            ]
        )
        + "\n"
    )

    summary = load_script().summarise(raw, top=2, root="/x")

    lines = summary.splitlines()
    assert lines[0] == (
        "19 samples in 2 threads: event loop 10, imports 4, other threads (lease renewal) 5"
    )
    assert "| 1 | 60.0 | `tickr/_server/processor.py:Processor._run` |" in lines
    assert "| 2 | 30.0 | `tickr/serialization.py:decode_message` |" in lines
    assert "| 1 | 90.0 | `tickr/_server/processor.py:Processor._work` |" in lines
    assert not any("Condition.wait" in line or "importlib" in line for line in lines)


@pytest.mark.skipif(
    shutil.which("py-spy") is None and not Path(sys.executable).with_name("py-spy").exists(),
    reason="py-spy is not installed",
)
def test_a_small_profile_run_drains_every_task(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--tasks", "2000", "--raw", str(tmp_path / "raw.txt")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if run.returncode != 0 and "Permission" in run.stderr:
        pytest.skip("py-spy may not trace processes here")
    assert run.returncode == 0, run.stderr[-4000:]
    assert run.stdout.startswith("drained 2000 tasks at ")
    assert "| 1 |" in run.stdout
    assert (tmp_path / "raw.txt").stat().st_size > 0
