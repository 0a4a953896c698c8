"""The HTTP API, black-box over a real socket, with a real Redis and a real Server."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import tickr
from tests.conftest import ServerFactory
from tests.integration.web_support import (
    ADMIN,
    EMAIL_READER,
    SUBMIT,
    TOKENS,
    Running,
    auth,
)
from tickr.web import Token, TokenStore, create_app, load_token_file


@pytest.fixture
def base_url(url: str, namespace: str) -> Iterator[str]:
    with Running(create_app(url, namespace=namespace, tokens=TOKENS)) as base:
        yield base


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        yield client


async def test_health_needs_no_token(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


async def test_readyz_answers_503_when_redis_is_away() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(f"redis://127.0.0.1:{port}/0", tokens=TOKENS)
    with Running(app) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            reply = await client.get("/readyz")
    assert reply.status_code == 503
    assert reply.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("headers", "status", "detail"),
    [
        ({}, 401, "a bearer token is required"),
        ({"Authorization": "Basic abc"}, 401, "a bearer token is required"),
        (auth("not-a-known-secret-at-all"), 401, "unknown token"),
        (auth(EMAIL_READER), 403, "lacks 'tasks:submit'"),
    ],
    ids=["none", "basic", "unknown", "scope"],
)
async def test_submitting_needs_a_token_with_the_scope(
    http: httpx.AsyncClient, headers: dict[str, str], status: int, detail: str
) -> None:
    reply = await http.post("/api/v1/queues/email/tasks", json={"type": "t"}, headers=headers)
    assert reply.status_code == status
    assert reply.headers["content-type"] == "application/problem+json"
    document = reply.json()
    assert document["status"] == status and detail in document["detail"]
    if status == 401:
        assert reply.headers["www-authenticate"].startswith("Bearer")


async def test_queue_patterns_limit_a_token(http: httpx.AsyncClient) -> None:
    created = await http.post(
        "/api/v1/queues/email-eu/tasks", json={"type": "t", "payload": 1}, headers=auth(ADMIN)
    )
    other = await http.post("/api/v1/queues/reports/tasks", json={"type": "t"}, headers=auth(ADMIN))
    task = created.json()["id"]
    mine = await http.get(f"/api/v1/queues/email-eu/tasks/{task}", headers=auth(EMAIL_READER))
    assert mine.status_code == 200 and mine.json()["payload"] == 1
    theirs = await http.get(
        f"/api/v1/queues/reports/tasks/{other.json()['id']}", headers=auth(EMAIL_READER)
    )
    assert theirs.status_code == 403 and "on queue 'reports'" in theirs.json()["detail"]


async def test_submit_then_read_the_task_and_its_result(
    http: httpx.AsyncClient, running_server: ServerFactory
) -> None:
    async def echo(task: tickr.Task) -> Any:
        return {"got": task.payload}

    body = {"type": "echo", "payload": {"raw": {"$bytes": "AAEC"}}, "retention": 60}
    created = await http.post("/api/v1/queues/default/tasks", json=body, headers=auth(SUBMIT))
    assert created.status_code == 201
    task = created.json()
    assert created.headers["location"] == f"/api/v1/queues/default/tasks/{task['id']}"
    assert task["state"] == "pending" and "payload" not in task, "no payload:read"
    read = await http.get(f"/api/v1/queues/default/tasks/{task['id']}", headers=auth(ADMIN))
    assert read.json()["payload"] == {"raw": {"$bytes": "AAEC"}}
    path = f"/api/v1/queues/default/tasks/{task['id']}/result"
    not_yet = await http.get(path, headers=auth(SUBMIT))
    assert not_yet.status_code == 202 and not_yet.json() == {"state": "pending"}
    async with running_server(echo):
        done = await http.get(path, params={"wait": 10}, headers=auth(ADMIN))
    assert done.status_code == 200
    assert done.json() == {"result": {"got": {"raw": {"$bytes": "AAEC"}}}}


async def test_a_long_poll_returns_as_soon_as_the_task_completes(
    http: httpx.AsyncClient, running_server: ServerFactory
) -> None:
    async def slow(task: tickr.Task) -> str:
        await asyncio.sleep(0.3)
        return "late"

    task = (
        await http.post(
            "/api/v1/queues/default/tasks", json={"type": "t", "retention": 60}, headers=auth(ADMIN)
        )
    ).json()
    async with running_server(slow):
        began = asyncio.get_running_loop().time()
        reply = await http.get(
            f"/api/v1/queues/default/tasks/{task['id']}/result",
            params={"wait": 30},
            headers=auth(ADMIN),
        )
        waited = asyncio.get_running_loop().time() - began
    assert reply.json() == {"result": "late"}
    assert waited < 10, "answered at the completion, not at the end of the wait"


async def test_a_failed_task_answers_409_with_its_error(
    http: httpx.AsyncClient, running_server: ServerFactory
) -> None:
    async def broken(task: tickr.Task) -> None:
        raise RuntimeError("boom")

    task = (
        await http.post(
            "/api/v1/queues/default/tasks", json={"type": "t", "max_retry": 0}, headers=auth(ADMIN)
        )
    ).json()
    async with running_server(broken):
        reply = await http.get(
            f"/api/v1/queues/default/tasks/{task['id']}/result",
            params={"wait": 10},
            headers=auth(ADMIN),
        )
    assert reply.status_code == 409
    assert reply.json()["last_error"] == "RuntimeError: boom"


async def test_idempotency_keys_replay_or_conflict(http: httpx.AsyncClient) -> None:
    path = "/api/v1/queues/default/tasks"
    body = {"type": "charge", "payload": {"cents": 500}}
    key = {"Idempotency-Key": "order-17-charge", **auth(SUBMIT)}
    first = await http.post(path, json=body, headers=key)
    again = await http.post(path, json=body, headers=key)
    other = await http.post(path, json={**body, "payload": {"cents": 900}}, headers=key)
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert first.json()["id"] == again.json()["id"] == "order-17-charge"
    assert "different body" in other.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (b"{not json", 400, "not JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"payload": 1}', 400, "type is required"),
        (b'{"type": "t", "colour": "red"}', 400, "unknown field(s): colour"),
        (b'{"type": "t", "priority": 4294967296}', 400, "priority"),
        (b'{"type": "t", "payload": {"$bytes": "%%%"}}', 400, "base64"),
        (b'{"type": "t", "task_id": "a b"}', 400, "task_id"),
        (b'{"type": "t", "payload": "' + b"x" * (1024 * 1024) + b'"}', 413, "over"),
    ],
    ids=["json", "array", "type", "field", "priority", "bytes", "task-id", "size"],
)
async def test_bad_requests_get_a_problem_and_write_nothing(
    http: httpx.AsyncClient, body: bytes, status: int, detail: str, client: tickr.Client
) -> None:
    reply = await http.post(
        "/api/v1/queues/default/tasks",
        content=body,
        headers={"Content-Type": "application/json", **auth(SUBMIT)},
    )
    assert reply.status_code == status, reply.text
    assert detail in reply.json()["detail"]


async def test_unknown_tasks_are_404(http: httpx.AsyncClient) -> None:
    for path in ("/api/v1/queues/default/tasks/nope", "/api/v1/queues/default/tasks/nope/result"):
        reply = await http.get(path, headers=auth(ADMIN))
        assert reply.status_code == 404 and reply.json()["title"] == "Not Found"


async def test_a_read_only_app_refuses_changes(url: str, namespace: str) -> None:
    app = create_app(url, namespace=namespace, tokens=TOKENS, read_only=True)
    with Running(app) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            reply = await http.post(
                "/api/v1/queues/default/tasks", json={"type": "t"}, headers=auth(ADMIN)
            )
    assert reply.status_code == 403 and "read-only" in reply.json()["detail"]


def test_a_token_file_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    digest = hashlib.sha256(b"deploy-secret-0123456789").hexdigest()
    path.write_text(
        "[[token]]\n"
        'name = "deploy-bot"\n'
        f'sha256 = "{digest}"\n'
        'scopes = ["tasks:submit", "tasks:read"]\n'
        'queues = ["email*", "reports"]\n'
    )
    [token] = load_token_file(path)
    assert (token.name, token.queues) == ("deploy-bot", ("email*", "reports"))
    assert TokenStore([token]).find("deploy-secret-0123456789") is token
    assert TokenStore([token]).find("deploy-secret-0123456780") is None
    for bad, message in [
        ('[[token]]\nname = "x"\n', "secret or its sha256"),
        ('[[token]]\nname = "x"\nsha256 = "abc"\n', "64 hex digits"),
        (f'[[token]]\nname = "x"\nsha256 = "{digest}"\nscopes = ["root"]\n', "unknown scope"),
        (f'[[token]]\nname = "x"\nsha256 = "{digest}"\ncolour = 1\n', "unknown key"),
        ("not toml at all [", "not valid TOML"),
    ]:
        path.write_text(bad)
        with pytest.raises(ValueError, match=message):
            load_token_file(path)


def test_tokens_are_checked() -> None:
    with pytest.raises(ValueError, match="16 characters"):
        Token("x", secret="short")
    with pytest.raises(ValueError, match="same name"):
        TokenStore([Token("x", secret=ADMIN), Token("x", secret=SUBMIT)])
    with pytest.raises(ValueError, match="same secret"):
        TokenStore([Token("x", secret=ADMIN), Token("y", secret=ADMIN)])
    assert "secret" not in repr(Token("x", secret=ADMIN)).lower() or ADMIN not in repr(
        Token("x", secret=ADMIN)
    )


MANAGER = "manager-secret-0123456789"
MANAGERS = [*TOKENS, Token("ops-mgr", secret=MANAGER, scopes=["tasks:read", "tasks:manage"])]


@pytest.fixture
def manage_url(url: str, namespace: str) -> Iterator[str]:
    with Running(create_app(url, namespace=namespace, tokens=MANAGERS)) as base:
        yield base


async def test_queues_and_pages_of_tasks_with_totals(manage_url: str, client: tickr.Client) -> None:
    await client.enqueue_many([tickr.TaskSpec("t", n, queue="email") for n in range(5)])
    await client.enqueue("t", queue="reports")
    async with httpx.AsyncClient(base_url=manage_url) as http:
        everything = (await http.get("/api/v1/queues", headers=auth(ADMIN))).json()
        mine = (await http.get("/api/v1/queues", headers=auth(EMAIL_READER))).json()
        one = (await http.get("/api/v1/queues/email", headers=auth(ADMIN))).json()
        page = await http.get(
            "/api/v1/queues/email/tasks",
            params={"state": "pending", "page": 2, "page_size": 2},
            headers=auth(EMAIL_READER),
        )
        bad_state = await http.get(
            "/api/v1/queues/email/tasks", params={"state": "lost"}, headers=auth(ADMIN)
        )
        nowhere = await http.get("/api/v1/queues/nowhere", headers=auth(ADMIN))
    assert [q["queue"] for q in everything["queues"]] == ["email", "reports"]
    assert [q["queue"] for q in mine["queues"]] == ["email"], "only the token's queues"
    assert (one["pending"], one["paused"]) == (5, False)
    listed = page.json()
    assert (listed["total"], listed["page"], listed["page_size"]) == (5, 2, 2)
    assert [task["payload"] for task in listed["tasks"]] == [2, 3]
    assert bad_state.status_code == 400 and "state must be one of" in bad_state.json()["detail"]
    assert nowhere.status_code == 404


async def test_task_actions_need_tasks_manage_and_answer_409_in_the_wrong_state(
    manage_url: str, client: tickr.Client
) -> None:
    scheduled = await client.enqueue("t", delay=3600)
    pending = await client.enqueue("t")
    base = "/api/v1/queues/default/tasks"
    async with httpx.AsyncClient(base_url=manage_url) as http:
        refused = await http.post(f"{base}/{pending.id}/archive", headers=auth(SUBMIT))
        archived = await http.post(f"{base}/{scheduled.id}/archive", headers=auth(MANAGER))
        again = await http.post(f"{base}/{scheduled.id}/archive", headers=auth(MANAGER))
        ran = await http.post(f"{base}/{scheduled.id}/run", headers=auth(MANAGER))
        wrong = await http.post(f"{base}/{pending.id}/run", headers=auth(MANAGER))
        deleted = await http.delete(f"{base}/{pending.id}", headers=auth(MANAGER))
        gone = await http.delete(f"{base}/{pending.id}", headers=auth(MANAGER))
        cancelled = await http.post(f"{base}/{scheduled.id}/cancel", headers=auth(MANAGER))
        unknown = await http.post(f"{base}/{scheduled.id}/explode", headers=auth(MANAGER))
    assert refused.status_code == 403
    assert archived.status_code == 200 and archived.json()["done"] == "archive"
    assert again.status_code == 409 and "it is archived" in again.json()["detail"]
    assert ran.status_code == 200
    assert wrong.status_code == 409
    assert (deleted.status_code, gone.status_code) == (200, 404)
    assert cancelled.status_code == 200
    assert unknown.status_code == 404
    with pytest.raises(tickr.TaskNotFound):
        await client.get_task(scheduled.id)


async def test_pausing_needs_queues_manage(manage_url: str, client: tickr.Client) -> None:
    await client.enqueue("t", queue="email")
    async with httpx.AsyncClient(base_url=manage_url) as http:
        refused = await http.post("/api/v1/queues/email/pause", headers=auth(MANAGER))
        paused = await http.post("/api/v1/queues/email/pause", headers=auth(ADMIN))
        info = (await http.get("/api/v1/queues/email", headers=auth(ADMIN))).json()
        resumed = await http.post("/api/v1/queues/email/unpause", headers=auth(ADMIN))
    assert refused.status_code == 403 and "queues:manage" in refused.json()["detail"]
    assert paused.json() == {"queue": "email", "paused": True} and info["paused"] is True
    assert resumed.json() == {"queue": "email", "paused": False}


async def test_rate_and_concurrency_limits_are_set_and_removed(
    manage_url: str, client: tickr.Client
) -> None:
    await client.enqueue("t", queue="email")
    path = "/api/v1/queues/email"
    async with httpx.AsyncClient(base_url=manage_url) as http:
        refused = await http.put(f"{path}/rate-limit", json={"limit": 5}, headers=auth(MANAGER))
        rate = await http.put(
            f"{path}/rate-limit",
            json={"limit": 100, "period": 60, "burst": 10},
            headers=auth(ADMIN),
        )
        cap = await http.put(f"{path}/concurrency-limit", json={"limit": 4}, headers=auth(ADMIN))
        bad = await http.put(f"{path}/concurrency-limit", json={"limit": 0}, headers=auth(ADMIN))
        odd = await http.put(f"{path}/rate-limit", json={"limit": "5"}, headers=auth(ADMIN))
        cleared = await http.delete(f"{path}/rate-limit", headers=auth(ADMIN))
    assert refused.status_code == 403
    assert rate.json()["rate_limit"] == {
        "limit": 100,
        "period": 60.0,
        "burst": 10,
        "per_lane": False,
    }
    assert cap.json()["concurrency_limit"] == 4 and cap.json()["rate_limit"] is not None
    assert bad.status_code == 400 and "limit" in bad.json()["detail"]
    assert odd.status_code == 400 and "limit must be int" in odd.json()["detail"]
    assert cleared.json()["rate_limit"] is None and cleared.json()["concurrency_limit"] == 4


async def test_history_servers_and_schedulers(
    manage_url: str, client: tickr.Client, running_server: ServerFactory, url: str, namespace: str
) -> None:
    async def handler(task: tickr.Task) -> None:
        return None

    info = await client.enqueue("t", retention=60)
    scheduler = tickr.Scheduler(url, namespace=namespace, heartbeat_interval=0.2)
    scheduler.register("@every 1h", "report:hourly", {"secret": "x"}, entry_id="hourly")
    serving = asyncio.create_task(scheduler.serve())
    try:
        await scheduler.wait_ready()
        async with running_server(handler), httpx.AsyncClient(base_url=manage_url) as http:
            await client.result(info.id, timeout=10)
            history = await http.get(
                "/api/v1/queues/default/history", params={"days": 3}, headers=auth(ADMIN)
            )
            servers = (await http.get("/api/v1/servers", headers=auth(SUBMIT))).json()
            entries = (await http.get("/api/v1/schedulers", headers=auth(SUBMIT))).json()
            with_payload = (await http.get("/api/v1/schedulers", headers=auth(ADMIN))).json()
            bad_days = await http.get(
                "/api/v1/queues/default/history", params={"days": 0}, headers=auth(ADMIN)
            )
    finally:
        await scheduler.shutdown()
        await serving
    days = history.json()["history"]
    assert len(days) == 3 and days[-1]["processed"] == 1
    [server] = servers["servers"]
    assert server["queues"] == {"default": 1} and server["concurrency"] == 10
    [entry] = entries["entries"]
    assert (entry["id"], entry["type"]) == ("hourly", "report:hourly")
    assert "payload" not in entry, "no payload:read"
    assert with_payload["entries"][0]["payload"] == {"secret": "x"}
    assert bad_days.status_code == 400
