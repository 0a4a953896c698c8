"""Log records about a task name it: task_id, task_type and queue as record attributes."""

import asyncio
import logging
from collections.abc import Iterator

import msgpack
import pytest
import redis.asyncio as aredis

import tickr
from tests.conftest import ServerFactory
from tests.helpers import FAST_RETRY, eventually
from tests.helpers.redis_clients import pending_record
from tickr._broker.keys import QueueKeys
from tickr.logs import TaskLogFilter


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def collected() -> Iterator[list[logging.LogRecord]]:
    handler = Collect()
    handler.addFilter(TaskLogFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler.records
    root.removeHandler(handler)
    root.setLevel(level)


def fields(record: logging.LogRecord) -> tuple[object, object, object] | None:
    if not hasattr(record, "task_id"):
        return None
    return (record.task_id, getattr(record, "task_type", None), getattr(record, "queue", None))


async def test_tickrs_records_about_a_task_carry_its_fields(
    client: tickr.Client, running_server: ServerFactory, collected: list[logging.LogRecord]
) -> None:
    async def flaky(task: tickr.Task) -> None:
        if task.retry_count == 0:
            raise ValueError("first attempt fails")

    info = await client.enqueue("report:build", queue="reports", retention=60)
    async with running_server(flaky, queues={"reports": 1}, retry_delay=FAST_RETRY):
        await client.result(info.id, queue="reports", timeout=10)
    about_task = [r for r in collected if r.name.startswith("tickr") and info.id in r.getMessage()]
    assert len(about_task) >= 3, "started, failed, completed at least"
    assert {fields(r) for r in about_task} == {(info.id, "report:build", "reports")}


async def test_an_undecodable_task_is_logged_with_its_id_and_queue(
    client: tickr.Client,
    running_server: ServerFactory,
    collected: list[logging.LogRecord],
    raw_redis: aredis.Redis,
    namespace: str,
) -> None:
    info = await client.enqueue("t")
    bucket, record = await pending_record(raw_redis, QueueKeys(namespace, "default"), info.id)
    assert record is not None
    await raw_redis.hset(
        bucket, info.id, msgpack.packb([b"\xc1 garbage", 0, 25], use_bin_type=False)
    )

    async def handler(task: tickr.Task) -> None:
        return None

    async with running_server(handler):

        async def archived() -> bool:
            return (await client.get_task(info.id)).state == "archived"

        await eventually(archived)
    [logged] = [r for r in collected if "cannot be decoded" in r.getMessage()]
    assert logged.levelno == logging.ERROR
    assert fields(logged) == (info.id, "", "default")


async def test_the_filter_names_the_task_in_handler_records_and_their_child_tasks(
    client: tickr.Client, running_server: ServerFactory, collected: list[logging.LogRecord]
) -> None:
    app_logger = logging.getLogger("myapp.email")

    async def send(task: tickr.Task) -> None:
        app_logger.info("sending")

        async def child() -> None:
            app_logger.info("in a child task")

        await asyncio.create_task(child())

    infos = [await client.enqueue("email:send", n, retention=60) for n in range(3)]
    async with running_server(send):
        for info in infos:
            await client.result(info.id, timeout=10)
    app_logger.info("outside any task")
    mine = [r for r in collected if r.name == "myapp.email"]
    by_task = {info.id: [r.getMessage() for r in mine if getattr(r, "task_id", None) == info.id]
               for info in infos}  # fmt: skip
    assert all(messages.count("sending") == 1 for messages in by_task.values())
    assert all("in a child task" in messages for messages in by_task.values())
    [outside] = [r for r in mine if r.getMessage() == "outside any task"]
    assert fields(outside) is None
    assert {r.task_type for r in mine if hasattr(r, "task_type")} == {"email:send"}


def test_the_filter_keeps_given_fields_and_can_always_set_them() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert TaskLogFilter(always=True).filter(record)
    assert fields(record) == ("", "", "")
    given = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    given.task_id = "mine"
    assert TaskLogFilter(always=True).filter(given)
    assert fields(given) == ("mine", "", "")
    untouched = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert TaskLogFilter().filter(untouched) and fields(untouched) is None
