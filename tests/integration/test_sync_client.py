"""SyncClient: the Client's calls for synchronous code, shared by threads, fork-aware."""

from __future__ import annotations

import asyncio
import gc
import inspect
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

import tickr
from tests.conftest import ServerFactory


@pytest.fixture
def sync_client(url: str, namespace: str) -> Iterator[tickr.SyncClient]:
    with tickr.SyncClient(url, namespace=namespace) as client:
        yield client


async def test_the_client_calls_block_and_return_what_the_client_returns(
    sync_client: tickr.SyncClient, client: tickr.Client, running_server: ServerFactory
) -> None:
    async def double(task: tickr.Task) -> int:
        return int(task.payload) * 2

    info = await asyncio.to_thread(sync_client.enqueue, "t", 21, retention=60)
    assert isinstance(info, tickr.TaskInfo) and info.state == "pending"
    assert (await client.get_task(info.id)).payload == 21, "the async Client sees it"
    async with running_server(double):
        assert await asyncio.to_thread(sync_client.result, info.id, timeout=10) == 42
    stored = await asyncio.to_thread(sync_client.get_task, info.id)
    assert (stored.state, stored.result) == ("completed", 42)
    later = await asyncio.to_thread(sync_client.enqueue, "t", 1, delay=60)
    assert await asyncio.to_thread(sync_client.cancel, later.id) is True
    batch = await asyncio.to_thread(
        sync_client.enqueue_many, [tickr.TaskSpec("t", n) for n in range(3)]
    )
    assert [i.payload for i in batch if isinstance(i, tickr.TaskInfo)] == [0, 1, 2]


def test_errors_are_the_clients(sync_client: tickr.SyncClient) -> None:
    sync_client.enqueue("t", task_id="order-17")
    with pytest.raises(tickr.TaskIDConflict):
        sync_client.enqueue("t", task_id="order-17")
    with pytest.raises(ValueError, match="priority"):
        sync_client.enqueue("t", priority=2**31)
    with pytest.raises(tickr.TaskNotFound):
        sync_client.get_task("nothing-here")
    with pytest.raises(TimeoutError):
        sync_client.result(sync_client.enqueue("t").id, timeout=0.05)


def test_bad_settings_are_refused_at_once() -> None:
    with pytest.raises(ValueError, match="namespace"):
        tickr.SyncClient(namespace="a b")
    with pytest.raises(TypeError):
        tickr.SyncClient(wait_replicas="1")  # type: ignore[arg-type]


def test_many_threads_share_one_sync_client(sync_client: tickr.SyncClient) -> None:
    ids: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def producer(number: int) -> None:
        try:
            for n in range(50):
                info = sync_client.enqueue("t", [number, n])
                with lock:
                    ids.append(info.id)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=producer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not failures
    assert len(ids) == len(set(ids)) == 400
    assert {tuple(sync_client.get_task(i).payload) for i in ids[:5]} <= {
        (t, n) for t in range(8) for n in range(50)
    }


def _enqueue_in_child(client: tickr.SyncClient, reply: object) -> None:
    info = client.enqueue("from-child", "x")
    reply.send((info.id, client.get_task(info.id).type))  # type: ignore[attr-defined]
    client.close()


def test_a_forked_child_gets_connections_of_its_own(sync_client: tickr.SyncClient) -> None:
    first = sync_client.enqueue("before-fork")
    context = multiprocessing.get_context("fork")
    parent_end, child_end = context.Pipe()
    child = context.Process(target=_enqueue_in_child, args=(sync_client, child_end))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    task_id, task_type = parent_end.recv()
    assert task_type == "from-child"
    assert sync_client.get_task(task_id).payload == "x", "the parent sees the child's task"
    assert sync_client.get_task(first.id).type == "before-fork", "the parent still works"


def test_a_forked_child_that_drops_it_exits(url: str, namespace: str) -> None:
    client = tickr.SyncClient(url, namespace=namespace)
    client.enqueue("t")  # the parent's loop thread runs
    pid = os.fork()
    if pid == 0:  # the child: drop the inherited client, as a normal exit does
        code = 1
        try:
            del client
            gc.collect()
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 20
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    client.close()
    assert done[0] == pid, "the child hung on its parent's loop thread"
    assert os.waitstatus_to_exitcode(done[1]) == 0


def test_close_ends_calls_and_later_calls_raise(url: str, namespace: str) -> None:
    client = tickr.SyncClient(url, namespace=namespace)
    info = client.enqueue("t")
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            client.result(info.id, timeout=60)
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    threading.Event().wait(0.3)
    client.close()
    waiter.join(10)
    assert not waiter.is_alive(), "close did not wait for the 60 s result"
    assert len(outcome) == 1 and isinstance(outcome[0], RuntimeError)
    with pytest.raises(RuntimeError, match="closed"):
        client.enqueue("t")
    client.close()  # again: nothing happens


def test_the_methods_read_like_the_clients() -> None:
    for name in ("enqueue", "enqueue_many", "get_task", "result", "cancel"):
        method = getattr(tickr.SyncClient, name)
        assert "blocking" in (method.__doc__ or "")
        client_parameters = list(inspect.signature(getattr(tickr.Client, name)).parameters)
        assert list(inspect.signature(method).parameters) == client_parameters
