"""What the benchmark programs read about processes and the checkout (stdlib only: the
peers' environments import it too)."""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def peak_rss_kib() -> int:
    """This process's peak RSS in KiB: VmHWM, which exec resets.

    Not ``ru_maxrss`` (the fallback off Linux): Linux carries it over exec from the
    forked parent, so a child of a 40 MB parent reports at least 40 MB however small it
    is.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def git_revision(dirty_suffix: str) -> str:
    """The short commit of this checkout, plus `dirty_suffix` when src/ has uncommitted
    edits; "unknown" outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (dirty_suffix if dirty else "")
