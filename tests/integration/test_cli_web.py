"""`tickr web` as a process: tokens re-read on SIGHUP, access log, root path, refusals."""

from __future__ import annotations

import hashlib
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.processes import WorkerProcess

OLD = "old-secret-0123456789"
NEW = "new-secret-0123456789"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _token_file(path: Path, name: str, secret: str) -> Path:
    digest = hashlib.sha256(secret.encode()).hexdigest()
    path.write_text(f'[[token]]\nname = "{name}"\nsha256 = "{digest}"\nscopes = ["admin"]\n')
    return path


class WebProcess(WorkerProcess):
    """``python -m tickr web`` with its stderr collected."""

    def __init__(self, url: str, namespace: str, *args: str) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "tickr", "web", "--url", url, "--namespace", namespace]
        self._start([*command, "--port", str(self.port), *args])

    def wait_ready(self) -> None:
        self.wait_for_line("Uvicorn running on")


@pytest.fixture
def web(url: str, namespace: str, tmp_path: Path) -> Iterator[WebProcess]:
    tokens = _token_file(tmp_path / "tokens.toml", "ops", OLD)
    process = WebProcess(url, namespace, "--token-file", str(tokens), "--root-path", "/tickr")
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_serves_logs_requests_and_stops_gracefully(web: WebProcess) -> None:
    reply = httpx.get(f"{web.base}/api/v1/queues", headers=_auth(OLD))
    assert reply.status_code == 200
    web.wait_for_line('"GET /tickr/api/v1/queues HTTP/1.1" 200')  # the access log
    spec = httpx.get(f"{web.base}/openapi.json").json()
    assert spec["servers"] == [{"url": "/tickr"}]
    web.signal(signal.SIGTERM)
    assert web.wait(timeout=20) == 0
    assert any("Shutting down" in line for line in web.lines)


def test_sighup_reads_the_token_file_again(web: WebProcess, tmp_path: Path) -> None:
    _token_file(tmp_path / "tokens.toml", "ops", NEW)
    web.signal(signal.SIGHUP)
    web.wait_for_line("SIGHUP: 1 tokens read")
    assert httpx.get(f"{web.base}/api/v1/queues", headers=_auth(OLD)).status_code == 401
    assert httpx.get(f"{web.base}/api/v1/queues", headers=_auth(NEW)).status_code == 200
    (tmp_path / "tokens.toml").write_text("not [ toml")
    web.signal(signal.SIGHUP)
    web.wait_for_line("SIGHUP: kept the 1 tokens in use")
    assert httpx.get(f"{web.base}/api/v1/queues", headers=_auth(NEW)).status_code == 200


def test_without_tokens_only_loopback_is_served(url: str, namespace: str) -> None:
    refused = WebProcess(url, namespace, "--host", "0.0.0.0")
    try:
        assert refused.wait(timeout=30) == 2
        assert any("refusing to serve on 0.0.0.0 without tokens" in x for x in refused.lines)
    finally:
        refused.stop()
    local = WebProcess(url, namespace, "--read-only", "--no-access-log")
    try:
        local.wait_ready()
        assert any("no tokens: every request" in line for line in local.lines)
        assert httpx.get(f"{local.base}/api/v1/queues").status_code == 200
        write = httpx.post(f"{local.base}/api/v1/queues/default/tasks", json={"type": "t"})
        assert write.status_code == 403 and "read-only" in write.json()["detail"]
    finally:
        local.stop()
    assert not any('"GET /api/v1/queues' in line for line in local.lines), "no access log"


def test_a_redis_that_cannot_be_reached_fails_at_once(namespace: str) -> None:
    process = WebProcess(f"redis://127.0.0.1:{_free_port()}/0", namespace)
    try:
        assert process.wait(timeout=60) == 1
        assert any(line.startswith("error: ") for line in process.lines)
    finally:
        process.stop()


def test_a_short_session_secret_is_refused(url: str, namespace: str, tmp_path: Path) -> None:
    secret = tmp_path / "session.key"
    secret.write_bytes(b"too short")
    process = WebProcess(url, namespace, "--session-secret-file", str(secret))
    try:
        assert process.wait(timeout=30) == 2
        assert any("32 bytes or more" in line for line in process.lines)
    finally:
        process.stop()
