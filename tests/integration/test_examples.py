"""The examples run to completion, as a user would run them."""

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("with_url", [False, True], ids=["embedded-redis", "given-url"])
def test_quickstart_runs_to_completion(with_url: bool, url: str) -> None:
    env = {key: value for key, value in os.environ.items() if key != "TICKR_REDIS_URL"}
    if with_url:
        env["TICKR_REDIS_URL"] = url
    completed = run_example("quickstart.py", env)
    assert completed.returncode == 0, completed.stderr
    output = completed.stdout
    assert ("started a private redis-server" in output) is not with_url
    assert "failed report:build  the database is not ready yet" in output
    assert "result of report:build  'report for 2026-11-22: 42 rows'" in output
    assert "result of email:send    {'sent_to': 'grace@example.com'}" in output
    assert output.rstrip().endswith("all tasks done")


def test_the_http_example_posts_a_task_with_curl_and_reads_its_result(
    url: str, namespace: str
) -> None:
    if shutil.which("curl") is None:
        pytest.skip("examples/http_api.sh needs curl: apt-get install curl")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "TICKR_REDIS_URL": url,
        "TICKR_NAMESPACE": namespace,
        "TICKR_WEB_PORT": str(port),
        "PYTHON": sys.executable,
    }
    completed = subprocess.run(
        ["bash", str(EXAMPLES / "http_api.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert '"id":"greet-ada-1"' in completed.stdout
    assert completed.stdout.rstrip().endswith('result: {"result":{"greeting":"Hello, Ada!"}}')


def test_the_flow_control_example_keeps_its_limits(url: str) -> None:
    completed = run_example("flow_control.py", {**os.environ, "TICKR_REDIS_URL": url})
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    gap = next(line for line in lines if "API calls started" in line)
    assert float(gap.split("started ")[1].split("s apart")[0]) >= 0.1, "0.2 s, less jitter"
    assert any("at most 2 videos encoded at once" in line for line in lines)
    assert lines[-1].endswith("all tasks done")
