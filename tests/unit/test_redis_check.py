"""Which Redis versions a server accepts (the check runs at `serve()` start)."""

from __future__ import annotations

import pytest

from tickr._server.redis_check import version_problem


@pytest.mark.parametrize("version", ["6.2.0", "6.2.14", "7.0.15", "7.4.1", "10.0.0"])
def test_redis_6_2_and_newer_is_accepted(version: str) -> None:
    assert version_problem(version) is None


@pytest.mark.parametrize("version", ["5.0.14", "6.0.20", "6.1.9"])
def test_older_redis_is_refused_with_the_version_named(version: str) -> None:
    problem = version_problem(version)
    assert problem is not None
    assert "6.2 or newer" in problem
    assert version in problem


@pytest.mark.parametrize("version", ["unknown", "", "dragonfly"])
def test_an_unreadable_version_is_not_held_against_redis(version: str) -> None:
    assert version_problem(version) is None
