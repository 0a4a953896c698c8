"""Every key a Lua script touches carries the hash tag of the keys its caller passed.

On a Redis Cluster a script may only touch keys of one slot; Redis 7 and Valkey refuse a
cross-slot access at run time, Redis 6.2 only when the key lives on another node.  So
this is checked on one Redis, where nothing would fail: a workload that runs every
script is watched with MONITOR, which shows each EVALSHA and then each command its
script ran; COMMAND GETKEYS names the keys of each.  Multi-key commands sent outside
scripts must stay within one hash tag too (but the inbox's BLPOP, which spans queues on
one Redis only).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aredis
from redis.exceptions import ResponseError

import tickr
from tests.helpers import eventually
from tickr._broker import Broker
from tickr._broker.scripts import load_script
from tickr.testing import ManualClock, RedisServer

LUA_DIR = Path(tickr.__file__).parent / "_broker" / "lua"
SCRIPTS = sorted(path.stem for path in LUA_DIR.glob("*.lua"))
START = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC).timestamp() + 0.5
_QUOTED = re.compile(rb'"((?:[^"\\]|\\.)*)"')
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"a": b"\a", b"b": b"\b"}


def _unquote(text: bytes) -> bytes:
    out = bytearray()
    index = 0
    while index < len(text):
        char = text[index : index + 1]
        if char != b"\\":
            out += char
            index += 1
            continue
        escaped = text[index + 1 : index + 2]
        if escaped == b"x":
            out.append(int(text[index + 2 : index + 4], 16))
            index += 4
        else:
            out += _ESCAPES.get(escaped, escaped)
            index += 2
    return bytes(out)


def parse_monitor_line(line: bytes) -> tuple[bool, list[bytes]] | None:
    """(sent by a script, the command's arguments) of one MONITOR line."""
    head, _, rest = line.partition(b"] ")
    if not rest:
        return None
    return head.endswith(b"lua"), [_unquote(arg) for arg in _QUOTED.findall(rest)]


def hash_tag(key: bytes) -> bytes:
    """What Redis Cluster hashes: the text between the first { and the next }, if any."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


@contextlib.asynccontextmanager
async def monitoring(port: int) -> AsyncIterator[list[bytes]]:
    """Collect MONITOR's lines while the block runs."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"MONITOR\r\n")
    assert await reader.readline() == b"+OK\r\n"
    lines: list[bytes] = []

    async def read() -> None:
        while line := await reader.readline():
            lines.append(line[1:].rstrip(b"\r\n"))

    reading = asyncio.create_task(read())
    try:
        yield lines
    finally:
        await asyncio.sleep(0.2)  # the last lines arrive
        reading.cancel()
        writer.close()


async def workload(url: str, namespace: str) -> None:
    """Use every part of Tickr that runs a script."""
    release = asyncio.Event()

    async def handler(task: tickr.Task) -> str:
        if task.type == "fail":
            raise ValueError("boom")
        if task.type == "slow":
            await release.wait()
        if task.type == "block":  # the lease thread renews for the stuck loop
            time.sleep(1.5)  # noqa: ASYNC251 - blocks the loop on purpose
        return "ok"

    async with tickr.Client(url, namespace=namespace) as client:
        await client.enqueue("ok", 1, retention=60, unique=60)
        await client.enqueue("ok", 2, delay=0.2, task_id="later")
        await client.enqueue_many([tickr.TaskSpec("ok", n, queue="other") for n in range(5)])
        await client.enqueue("fail", max_retry=1)
        await client.enqueue("fail", max_retry=0)
        slow = await client.enqueue("slow")
        server = tickr.Server(
            url,
            namespace=namespace,
            queues={"default": 2, "other": 1},
            lease_duration=1,
            heartbeat_interval=0.2,
            retry_delay=tickr.constant_delay(0.1),
        )
        serving = asyncio.create_task(server.serve(handler))
        await server.wait_ready()
        await asyncio.sleep(1.0)  # retries come due and are forwarded; leases renewed
        handed = await client.enqueue("ok", 3, retention=60)  # handed to the idle server
        assert await client.result(handed.id, timeout=5) == "ok"
        blocking = await client.enqueue("block", retention=60)
        assert await client.result(blocking.id, timeout=5) == "ok"
        assert await client.cancel(slow.id)
        release.set()
        await server.shutdown()
        await serving

    async with Broker.connect(url, None, namespace) as broker:  # lost leases and replies
        async with tickr.Client(url, namespace=namespace) as client:
            await client.enqueue("ok", queue="orphans")
        now = await broker.time_ms()
        taken = await broker.dequeue("orphans", 1, now + 50, "ghost")
        assert taken
        await broker.reclaim("orphans", "ghost", now + 50)
    recovering = tickr.Server(
        url, namespace=namespace, queues={"orphans": 1}, lease_duration=1, heartbeat_interval=0.2
    )
    serving = asyncio.create_task(recovering.serve(handler, burst=True))
    await asyncio.wait_for(serving, 20)

    async with tickr.Inspector(url, namespace=namespace) as inspector:
        archived = await inspector.list_tasks("default", "archived")
        assert archived
        await inspector.run_task(archived[0].id)
        await inspector.pause("other")
        await inspector.unpause("other")
        await inspector.set_rate_limit("other", 100)
        await inspector.set_concurrency_limit("other", 10)
        await inspector.clear_rate_limit("other")
        await inspector.clear_concurrency_limit("other")
        await inspector.archive_all("default", "pending")
        await inspector.delete_all("default", "archived")
        await inspector.delete_queue("other", force=True)

    clock = ManualClock(START)
    scheduler = tickr.Scheduler(url, namespace=namespace, clock=clock)
    scheduler.register("@every 10s", "tick")
    ticking = asyncio.create_task(scheduler.serve())
    await scheduler.wait_ready()
    await clock.advance(10)

    async def ticked() -> bool:
        async with tickr.Inspector(url, namespace=namespace) as inspector:
            return bool(await inspector.list_tasks("default", "pending"))

    await eventually(ticked)
    await scheduler.shutdown()
    await ticking
    async with tickr.Inspector(url, namespace=namespace) as inspector:
        (tick,) = await inspector.list_tasks("default", "pending")
        assert (await inspector.get_task(tick.id)).state == "pending"


async def keys_of(raw: aredis.Redis, commands: list[list[bytes]]) -> list[list[bytes]]:
    """The keys of each command, as COMMAND GETKEYS names them ([] for none)."""
    pipe = raw.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command("COMMAND GETKEYS", *command)
    replies = await pipe.execute(raise_on_error=False)
    return [
        [] if isinstance(reply, ResponseError) else [_bytes(key) for key in reply]
        for reply in replies
    ]


def _bytes(key: bytes | str) -> bytes:
    return key if isinstance(key, bytes) else key.encode()


Call = tuple[str, list[bytes], list[list[bytes]]]
"""A script's name, the keys it was passed, and the commands it ran."""


def split_calls(
    lines: list[bytes], names: dict[bytes, str]
) -> tuple[list[Call], list[list[bytes]]]:
    """MONITOR's lines as script calls, and the commands sent outside scripts."""
    calls: list[Call] = []
    plain: list[list[bytes]] = []
    for line in lines:
        parsed = parse_monitor_line(line)
        if parsed is None or not parsed[1]:
            continue
        by_script, args = parsed
        name = args[0].upper()
        if by_script:
            assert calls, f"a script command before any script: {args}"
            calls[-1][2].append(args)
        elif name == b"EVALSHA":
            count = int(args[2])
            calls.append((names.get(args[1], args[1].decode()), args[3 : 3 + count], []))
        elif name not in (b"MONITOR", b"COMMAND"):
            plain.append(args)
    return calls, plain


def tag_problems(calls: list[Call], script_keys: list[list[bytes]]) -> list[str]:
    """Each key a script touched outside the hash tag of the keys it was passed."""
    problems: list[str] = []
    touched = iter(script_keys)
    for name, declared, commands in calls:
        tags = {hash_tag(key) for key in declared}
        if len(tags) > 1:
            problems.append(f"{name} was passed keys of several tags: {declared!r}")
        for command in commands:
            for key in next(touched):
                if not tags:
                    problems.append(f"{name}, passed no key, touched {key!r}")
                elif hash_tag(key) not in tags:
                    problems.append(f"{name} touched {key!r} ({command[0]!r}), not in {tags}")
    return problems


@pytest.mark.single_redis
async def test_every_key_a_script_touches_carries_its_callers_hash_tag(namespace: str) -> None:
    names = {load_script(name).sha.encode(): name for name in SCRIPTS}
    with RedisServer() as redis_server:
        async with monitoring(redis_server.port) as lines:
            await workload(redis_server.url, namespace)
        calls, plain = split_calls(lines, names)
        raw = aredis.Redis(port=redis_server.port, protocol=2)
        try:
            script_keys = await keys_of(raw, [cmd for _, _, cmds in calls for cmd in cmds])
            plain_keys = await keys_of(raw, plain)
        finally:
            await raw.aclose()

    seen = {name for name, _, _ in calls}
    assert seen >= set(SCRIPTS), f"the workload ran no {sorted(set(SCRIPTS) - seen)}"
    problems = tag_problems(calls, script_keys)
    for command, keys in zip(plain, plain_keys, strict=True):
        # On one Redis the inbox's BLPOP waits on every queue at once; on a Cluster it
        # is one BLPOP per slot (tests/integration/test_cluster.py).
        if command[0].upper() != b"BLPOP" and len({hash_tag(key) for key in keys}) > 1:
            problems.append(f"{command[0]!r} spans several hash tags: {keys!r}")
    assert not problems, "\n".join(sorted(set(problems))[:30])
