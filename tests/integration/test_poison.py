"""Bad records in Redis are archived with a clear error; the server keeps serving."""

import msgpack
import pytest
import redis.asyncio as aredis

import tickr
from tests.conftest import ServerFactory
from tests.helpers import eventually
from tests.helpers.redis_clients import pending_record
from tickr._broker.keys import QueueKeys


async def archived_error(client: tickr.Client, task_id: str) -> str | None:
    async def archived() -> bool:
        try:
            return (await client.get_task(task_id)).state == "archived"
        except tickr.TaskNotFound:
            return False

    await eventually(archived)
    return (await client.get_task(task_id)).last_error


async def echo(task: tickr.Task) -> object:
    return task.payload


@pytest.mark.parametrize(
    ("msg", "error"),
    [
        (b"\xc1 not msgpack", "undecodable task data"),
        (msgpack.packb({"a": "map"}), "undecodable task data: not a task message"),
        (msgpack.packb([9, "t", None, 0, None, None, 0, 0]), "unknown message version 9"),
    ],
)
async def test_an_undecodable_record_is_archived_and_others_still_run(
    client: tickr.Client,
    raw_redis: aredis.Redis,
    namespace: str,
    running_server: ServerFactory,
    msg: bytes,
    error: str,
) -> None:
    bad = await client.enqueue("t", "will be damaged")
    bucket, record = await pending_record(raw_redis, QueueKeys(namespace, "default"), bad.id)
    assert record is not None
    damaged = msgpack.packb([msg, *msgpack.unpackb(record, raw=True)[1:]], use_bin_type=False)
    await raw_redis.hset(bucket, bad.id, damaged)
    good = await client.enqueue("t", "fine", retention=60)
    async with running_server(echo):
        assert await client.result(good.id, timeout=10) == "fine"
        last_error = await archived_error(client, bad.id)
    assert last_error is not None and error in last_error
    info = await client.get_task(bad.id)
    assert (info.type, info.payload) == ("", None)


async def test_a_missing_pending_record_is_archived_with_an_error(
    client: tickr.Client,
    raw_redis: aredis.Redis,
    namespace: str,
    running_server: ServerFactory,
) -> None:
    lost = await client.enqueue("t", "record deleted")
    bucket, _ = await pending_record(raw_redis, QueueKeys(namespace, "default"), lost.id)
    assert await raw_redis.hdel(bucket, lost.id) == 1
    good = await client.enqueue("t", "fine", retention=60)
    async with running_server(echo):
        assert await client.result(good.id, timeout=10) == "fine"
        assert await archived_error(client, lost.id) == "task data is missing"


async def test_a_scheduled_task_whose_hash_vanished_is_archived_not_dropped(
    client: tickr.Client,
    raw_redis: aredis.Redis,
    namespace: str,
    running_server: ServerFactory,
) -> None:
    lost = await client.enqueue("t", delay=0.1)
    await raw_redis.delete(QueueKeys(namespace, "default").task(lost.id))
    async with running_server(echo):
        assert await archived_error(client, lost.id) == "task data is missing"


class _ResultThatBreaksEncoding(dict[str, int]):
    def items(self) -> object:  # type: ignore[override]
        raise RuntimeError("items() exploded")


async def test_a_result_whose_encoding_raises_is_archived_as_unstorable_and_serving_goes_on(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    async def handler(task: tickr.Task) -> object:
        if task.payload == "bad":
            return _ResultThatBreaksEncoding(a=1)
        return "fine"

    bad = await client.enqueue("t", "bad", retention=60)
    good = await client.enqueue("t", "good", retention=60)
    async with running_server(handler):
        assert await client.result(good.id, timeout=10) == "fine"
        error = await archived_error(client, bad.id)
    assert error == "result cannot be stored: RuntimeError: items() exploded"
    stored = await client.get_task(bad.id)
    assert stored.retried == 0


async def test_an_error_message_with_undecodable_characters_is_retried_normally(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    name = b"report-\xff.csv".decode(errors="surrogateescape")  # as os.listdir() gives it
    attempts: list[int] = []

    async def handler(task: tickr.Task) -> str:
        attempts.append(task.retry_count)
        if task.retry_count == 0:
            raise RuntimeError(f"cannot parse {name}")
        return "parsed"

    info = await client.enqueue("t", max_retry=3, retention=60)
    async with running_server(handler, retry_delay=tickr.constant_delay(0.05)):
        assert await client.result(info.id, timeout=10) == "parsed"
    assert attempts == [0, 1]
    stored = await client.get_task(info.id)
    assert stored.last_error == "RuntimeError: cannot parse report-\\udcff.csv"


async def test_an_endless_retry_delay_is_cut_and_other_outcomes_still_get_written(
    client: tickr.Client, running_server: ServerFactory
) -> None:
    async def handler(task: tickr.Task) -> str:
        if task.payload == "fails":
            raise RuntimeError("broken")
        return "done"

    failing = await client.enqueue("t", "fails", max_retry=3)
    async with running_server(handler, retry_delay=lambda *_: float("inf")):
        await eventually(lambda: _in_state(client, failing.id, "retry"))
        later = await client.enqueue("t", "fine", retention=60)
        assert await client.result(later.id, timeout=10) == "done"
    stored = await client.get_task(failing.id)
    assert stored.next_process_at is not None and stored.enqueued_at is not None
    days = (stored.next_process_at - stored.enqueued_at).total_seconds() / 86400
    assert 365 < days < 367


async def _in_state(client: tickr.Client, task_id: str, state: str) -> bool:
    return (await client.get_task(task_id)).state == state
