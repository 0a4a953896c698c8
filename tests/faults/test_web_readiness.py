"""/readyz follows Redis: 503 at once while it is down, 200 again when it is back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.web_support import TOKENS, Running
from tickr.testing import RedisServer
from tickr.web import create_app


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def _ready(base: str) -> tuple[int, float]:
    began = time.monotonic()
    status = httpx.get(f"{base}/readyz", timeout=10).status_code
    return status, time.monotonic() - began


def test_readyz_turns_503_while_redis_is_stopped_and_200_when_it_returns(
    redis_server: RedisServer,
) -> None:
    with Running(create_app(redis_server.url, tokens=TOKENS)) as base:
        assert _ready(base)[0] == 200
        redis_server.kill()
        status, took = _ready(base)
        assert status == 503
        assert took < 2, "answered within its bound, not after the client's retries"
        redis_server.start()
        deadline = time.monotonic() + 15
        while _ready(base)[0] != 200:
            assert time.monotonic() < deadline, "/readyz stayed 503 after Redis came back"
            time.sleep(0.1)
        assert httpx.get(f"{base}/healthz").status_code == 200
