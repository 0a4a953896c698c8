"""Starting and watching worker processes from tests."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """A `tests.helpers.worker_process` child; its stderr is collected line by line."""

    module = "tests.helpers.worker_process"

    def __init__(self, url: str, namespace: str, *args: str) -> None:
        self._start([sys.executable, "-m", self.module, url, namespace, *args])

    def _start(self, command: list[str]) -> None:
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._lines.put(line)

    def wait_for_line(self, fragment: str, timeout: float = 20.0) -> str:
        """Block until stderr shows a line containing `fragment`."""
        for line in self.lines:
            if fragment in line:
                return line
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.05)
            except queue.Empty:
                if self.process.poll() is not None and self._lines.empty():
                    break
                continue
            self.lines.append(line)
            if fragment in line:
                return line
        raise AssertionError(f"no line with {fragment!r} in:\n{''.join(self.lines)}")

    def wait_ready(self) -> None:
        self.wait_for_line(" serving ")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        while not self._lines.empty():
            self.lines.append(self._lines.get())
        return code

    def stop(self) -> None:
        """Kill the process if it still runs, and release its pipe."""
        if self.process.poll() is None:
            self.process.kill()
        self.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()


class SchedulerProcess(WorkerProcess):
    """A `tests.helpers.scheduler_process` child (args: SPEC ENTRY_ID)."""

    module = "tests.helpers.scheduler_process"

    def wait_ready(self) -> None:
        self.wait_for_line("running 1 entries")
