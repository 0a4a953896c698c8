"""The HTTP API's audit log, its brake on guessed tokens and its anonymous scopes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

import tickr
from tests.integration.web_support import ADMIN, SUBMIT, TOKENS, Running, auth
from tickr.web import FailedAuthLimiter, create_app

TASKS = "/api/v1/queues/default/tasks"


@pytest.fixture
def base_url(url: str, namespace: str) -> Iterator[str]:
    limiter = FailedAuthLimiter(3, 600)
    app = create_app(url, namespace=namespace, tokens=TOKENS, auth_limiter=limiter)
    with Running(app) as base:
        yield base


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        yield client


async def test_every_change_is_audited_with_who_what_and_outcome(
    http: httpx.AsyncClient,
) -> None:
    created = await http.post(TASKS, json={"type": "mail"}, headers=auth(SUBMIT))
    task_id = created.json()["id"]
    refused = await http.post("/api/v1/queues/default/pause", headers=auth(SUBMIT))
    cancelled = await http.post(f"{TASKS}/{task_id}/cancel", headers=auth(ADMIN))
    missing = await http.delete(f"{TASKS}/no-such-task", headers=auth(ADMIN))
    await http.get(f"{TASKS}/{task_id}", headers=auth(ADMIN))  # a read: not audited
    assert (created.status_code, refused.status_code) == (201, 403)
    assert (cancelled.status_code, missing.status_code) == (200, 404)

    log = await http.get("/api/v1/audit", headers=auth(ADMIN))
    assert log.status_code == 200
    entries = log.json()["entries"]
    seen = [(e["action"], e["actor"], e["task_id"], e["status"]) for e in entries]
    assert seen == [
        ("task.delete", "ops", "no-such-task", 404),
        ("task.cancel", "ops", task_id, 200),
        ("queue.pause", "bot", None, 403),
        ("task.submit", "bot", task_id, 201),
    ]
    newest = entries[0]
    assert newest["queue"] == "default" and newest["address"] == "127.0.0.1"
    assert "no task 'no-such-task'" in newest["detail"]
    assert "lacks 'queues:manage'" in entries[2]["detail"]
    stamped_ms = int(newest["id"].partition("-")[0])
    assert datetime.fromisoformat(newest["time"]) == datetime.fromtimestamp(stamped_ms / 1000, UTC)


async def test_the_audit_log_pages_and_needs_admin(http: httpx.AsyncClient) -> None:
    for number in range(5):
        await http.post(TASKS, json={"type": "t", "task_id": f"t{number}"}, headers=auth(SUBMIT))
    first = (await http.get("/api/v1/audit", params={"limit": 2}, headers=auth(ADMIN))).json()
    second = (
        await http.get(
            "/api/v1/audit", params={"limit": 2, "before": first["next"]}, headers=auth(ADMIN)
        )
    ).json()
    ids = [entry["task_id"] for entry in first["entries"] + second["entries"]]
    assert ids == ["t4", "t3", "t2", "t1"]
    assert (await http.get("/api/v1/audit", headers=auth(SUBMIT))).status_code == 403
    bad = await http.get("/api/v1/audit", params={"before": "yesterday"}, headers=auth(ADMIN))
    assert bad.status_code == 400 and "audit entry id" in bad.json()["detail"]


async def test_the_log_is_capped(url: str, namespace: str, inspector: tickr.Inspector) -> None:
    for number in range(300):
        await inspector.record_audit("task.submit", actor="bot", task_id=str(number), keep=100)
    entries = await inspector.audit_log(limit=1000)
    assert 100 <= len(entries) < 300, "trimmed to about keep, never below it"
    assert entries[0].task_id == "299"


async def test_guessing_tokens_gets_an_address_refused_for_a_while(
    http: httpx.AsyncClient, inspector: tickr.Inspector
) -> None:
    for attempt in range(3):
        wrong = await http.get("/api/v1/queues", headers=auth(f"guess-{attempt:02d}-0123456789"))
        assert wrong.status_code == 401
    blocked = await http.get("/api/v1/queues", headers=auth("guess-99-0123456789"))
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["retry-after"]) <= 600
    also_valid = await http.get("/api/v1/queues", headers=auth(ADMIN))
    assert also_valid.status_code == 429, "while refused, a right guess cannot be told apart"
    assert (await http.get("/healthz")).status_code == 200
    assert await inspector.audit_log() == [], "no entry in the name of an unknown token"


async def test_anonymous_scopes_serve_requests_without_a_token(
    url: str, namespace: str, inspector: tickr.Inspector
) -> None:
    app = create_app(
        url, namespace=namespace, tokens=TOKENS, anonymous_scopes=["tasks:submit", "tasks:read"]
    )
    with Running(app) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            created = await http.post(TASKS, json={"type": "t"})
            paused = await http.post("/api/v1/queues/default/pause")
            with_token = await http.get("/api/v1/audit", headers=auth(ADMIN))
    assert (created.status_code, paused.status_code, with_token.status_code) == (201, 403, 200)
    assert [entry.actor for entry in await inspector.audit_log()] == ["anonymous", "anonymous"]
    with pytest.raises(ValueError, match="unknown scope"):
        create_app(url, anonymous_scopes=["everything"])


async def test_times_are_iso_8601_with_an_offset(http: httpx.AsyncClient) -> None:
    later = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    created = await http.post(TASKS, json={"type": "t", "at": later}, headers=auth(SUBMIT))
    assert created.status_code == 201 and created.json()["state"] == "scheduled"
    naive = await http.post(
        TASKS, json={"type": "t", "at": "2030-01-01T00:00"}, headers=auth(SUBMIT)
    )
    assert naive.status_code == 400 and "with an offset" in naive.json()["detail"]


async def test_anonymous_access_refuses_other_sites_and_rebound_names(
    url: str, namespace: str, inspector: tickr.Inspector
) -> None:
    app = create_app(url, namespace=namespace, tokens=(), anonymous_scopes=["admin"])
    with Running(app) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            cross_site = await http.post(
                "/api/v1/queues/default/pause", headers={"Origin": "https://evil.example"}
            )
            rebound = await http.post(
                "/api/v1/queues/default/pause", headers={"Host": "evil.example:8080"}
            )
            plain_form = await http.post(
                TASKS, content=b'{"type": "t"}', headers={"Content-Type": "text/plain"}
            )
            page = await http.get("/", headers={"Host": "evil.example"})
            own = await http.post("/api/v1/queues/default/pause")
    assert (cross_site.status_code, rebound.status_code) == (403, 403)
    assert plain_form.status_code == 415, "a cross-site form cannot send JSON without preflight"
    assert page.status_code == 403
    assert own.status_code == 200
    logged = [(entry.action, entry.status) for entry in await inspector.audit_log()]
    assert logged == [("queue.pause", 200), ("task.submit", 415)], "nothing for other sites"


async def test_bad_input_gets_a_problem_never_a_500(http: httpx.AsyncClient) -> None:
    odd_id = await http.post(TASKS, json={"type": "t", "task_id": "café✓"}, headers=auth(SUBMIT))
    assert odd_id.status_code == 201
    assert odd_id.headers["location"].endswith("/caf%C3%A9%E2%9C%93")
    idempotent = await http.post(
        TASKS, json={"type": "t", "headers": ["x"]},
        headers={"Idempotency-Key": "k-1", **auth(SUBMIT)},
    )  # fmt: skip
    assert idempotent.status_code == 400
    unknown = await http.delete("/api/v1/queues/nowhere/rate-limit", headers=auth(ADMIN))
    assert unknown.status_code == 404
    huge = await http.put(
        "/api/v1/queues/default/rate-limit", json={"limit": 5, "period": 10**400},
        headers=auth(ADMIN),
    )  # fmt: skip
    assert huge.status_code == 400
    deep = b"[" * 100_000 + b"]" * 100_000
    nested = await http.post(
        TASKS, content=deep, headers={"Content-Type": "application/json", **auth(SUBMIT)}
    )
    assert nested.status_code == 400
