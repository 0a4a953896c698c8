"""The HTTP API's OpenAPI document, its /metrics and its readiness check."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis.asyncio as aredis
from openapi_spec_validator import validate
from starlette.routing import Route

import tickr
from tests.integration.web_support import ADMIN, EMAIL_READER, TOKENS, Running, auth
from tickr._broker.scripts import load_script
from tickr.web import create_app


@pytest.fixture
def base_url(url: str, namespace: str) -> Iterator[str]:
    with Running(create_app(url, namespace=namespace, tokens=TOKENS)) as base:
        yield base


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        yield client


async def test_the_openapi_document_is_valid_and_lists_every_route(
    http: httpx.AsyncClient, url: str
) -> None:
    reply = await http.get("/openapi.json")
    assert reply.status_code == 200
    spec = reply.json()
    validate(spec)  # raises for anything that is not OpenAPI 3.1
    assert spec["openapi"].startswith("3.1")
    documented = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    app = create_app(url, tokens=TOKENS, dashboard=False)  # the JSON API: every route
    routed = {
        (method, route.path)
        for route in app.routes
        if isinstance(route, Route) and route.path != "/openapi.json"
        for method in set(route.methods or ()) - {"HEAD"}
    }
    assert routed == documented
    submit = spec["paths"]["/api/v1/queues/{queue}/tasks"]["post"]
    assert {"201", "200", "400", "401", "403", "409", "413"} <= set(submit["responses"])
    assert spec["paths"]["/healthz"]["get"]["security"] == [], "health needs no token"


async def test_behind_a_proxy_the_document_names_the_root_path(url: str, namespace: str) -> None:
    app = create_app(url, namespace=namespace, tokens=TOKENS)
    transport = httpx.ASGITransport(app=app, root_path="/queues-api")
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as http:
        spec = (await http.get("/queues-api/openapi.json")).json()
    assert spec["servers"] == [{"url": "/queues-api"}]


async def test_metrics_show_the_queues_the_token_may_read(
    http: httpx.AsyncClient, client: tickr.Client
) -> None:
    await client.enqueue("send", queue="email")
    await client.enqueue("bill", queue="billing")
    assert (await http.get("/metrics")).status_code == 401
    everything = await http.get("/metrics", headers=auth(ADMIN))
    assert everything.status_code == 200
    assert everything.headers["content-type"].startswith("text/plain")
    assert 'tickr_queue_size{queue="billing",state="pending"} 1.0' in everything.text
    mail_only = (await http.get("/metrics", headers=auth(EMAIL_READER))).text
    assert 'tickr_queue_size{queue="email",state="pending"} 1.0' in mail_only
    assert 'queue="billing"' not in mail_only
    assert "tickr_queue_collector_up 1.0" in mail_only


@pytest.mark.single_redis
async def test_readyz_loads_the_scripts_redis_lost(
    http: httpx.AsyncClient, raw_redis: aredis.Redis
) -> None:
    await raw_redis.script_flush()
    assert (await http.get("/readyz")).status_code == 200
    assert await raw_redis.script_exists(load_script("enqueue").sha) == [True]
