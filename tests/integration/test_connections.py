"""Connecting: passwords, ACL users, databases, given clients, concurrent commands."""

import asyncio
from collections.abc import Iterator

import pytest
import redis.asyncio as aredis
from redis.asyncio.connection import Connection, ConnectionPool

import tickr
from tickr.testing import RedisServer


@pytest.fixture(scope="module")
def locked_redis() -> Iterator[RedisServer]:
    with RedisServer(extra_args=["--requirepass", "s3cret"]) as server:
        yield server


async def test_password_in_the_url(locked_redis: RedisServer, namespace: str) -> None:
    url = f"redis://:s3cret@127.0.0.1:{locked_redis.port}/0"
    async with tickr.Client(url, namespace=namespace) as client:
        info = await client.enqueue("t", "secret work")
        assert (await client.get_task(info.id)).payload == "secret work"


async def test_a_wrong_password_is_a_clear_connection_error(
    locked_redis: RedisServer, namespace: str
) -> None:
    url = f"redis://:wrong@127.0.0.1:{locked_redis.port}/0"
    async with tickr.Client(url, namespace=namespace) as client:
        with pytest.raises(tickr.RedisUnavailable, match="refused"):
            await client.enqueue("t")


async def test_an_acl_user_in_the_url(locked_redis: RedisServer, namespace: str) -> None:
    admin = aredis.Redis(port=locked_redis.port, password="s3cret")
    await admin.execute_command("ACL", "SETUSER", "worker", "on", ">pw", "~*", "&*", "+@all")
    await admin.aclose()
    url = f"redis://worker:pw@127.0.0.1:{locked_redis.port}/0"
    async with tickr.Client(url, namespace=namespace) as client:
        info = await client.enqueue("t", 1)
        assert (await client.get_task(info.id)).payload == 1


@pytest.mark.single_redis
async def test_the_database_number_in_the_url_is_used(url: str, namespace: str) -> None:
    db3 = url.rsplit("/", 1)[0] + "/3"
    async with tickr.Client(db3, namespace=namespace) as client:
        info = await client.enqueue("t")
    other = aredis.Redis.from_url(db3)
    default = aredis.Redis.from_url(url)
    try:
        assert await other.keys(f"{namespace}:*")
        assert not await default.keys(f"{namespace}:*")
    finally:
        await other.aclose()
        await default.aclose()
    assert info.id


@pytest.mark.single_redis
async def test_a_given_client_that_decodes_responses_still_works(
    url: str, namespace: str, running_server: object
) -> None:
    decoding = aredis.Redis.from_url(url, decode_responses=True)
    try:
        async with tickr.Client(redis=decoding, namespace=namespace) as client:
            info = await client.enqueue("t", b"\x00\xffbinary", retention=60)
            assert (await client.get_task(info.id)).payload == b"\x00\xffbinary"
    finally:
        await decoding.aclose()


class CustomConnection(Connection):
    """A connection class Tickr cannot reproduce: it must use the client as given."""


@pytest.mark.single_redis
async def test_a_client_with_a_custom_connection_class_is_used_as_given(
    url: str, namespace: str
) -> None:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    pool = ConnectionPool(connection_class=CustomConnection, host="127.0.0.1", port=port)
    custom = aredis.Redis(connection_pool=pool)
    try:
        async with tickr.Client(redis=custom, namespace=namespace) as client:
            results = await client.enqueue_many([tickr.TaskSpec("t", n) for n in range(10)])
            info = results[3]
            assert isinstance(info, tickr.TaskInfo)
            assert (await client.get_task(info.id)).payload == 3
            with pytest.raises(tickr.TaskNotFound):
                await client.get_task("missing")
        assert await custom.ping(), "a given client is not closed"
    finally:
        await custom.aclose()
        await pool.disconnect()


async def test_many_concurrent_commands_get_their_own_replies(client: tickr.Client) -> None:
    results = await client.enqueue_many([tickr.TaskSpec("t", n) for n in range(500)])
    infos = [result for result in results if isinstance(result, tickr.TaskInfo)]
    fetched = await asyncio.gather(*(client.get_task(info.id) for info in infos))
    assert [task.payload for task in fetched] == list(range(500))
    singles = await asyncio.gather(*(client.enqueue("u", n) for n in range(300)))
    fetched = await asyncio.gather(*(client.get_task(info.id) for info in singles))
    assert [task.payload for task in fetched] == list(range(300))


async def test_an_enqueue_survives_a_dropped_connection(
    client: tickr.Client, raw_redis: aredis.Redis
) -> None:
    await client.enqueue("t", "before")
    await raw_redis.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    info = await client.enqueue("t", "after")
    assert (await client.get_task(info.id)).payload == "after"
