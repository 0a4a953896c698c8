"""Turning a task's hash, as read from Redis, into a `TaskInfo`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tickr._checks import check_task
from tickr._serialization import MessageDecodeError, decode_message, decode_value
from tickr._time import datetime_from_ms, now_ms
from tickr.errors import TaskNotFound
from tickr.values import TASK_STATES, TaskInfo, TaskState

if TYPE_CHECKING:
    from tickr._broker import Broker

__all__ = ["read_task", "task_info"]


def _int(value: bytes | None, default: int = 0) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode(errors="replace")


def task_info(queue: str, task_id: str, fields: dict[str, bytes]) -> TaskInfo:
    """Decode a task hash; an undecodable message yields type "" and the decode error."""
    state_text = (_text(fields.get("state")) or "pending").lower()
    state: TaskState = "pending"
    for known in TASK_STATES:
        if known == state_text:
            state = known
    last_error = _text(fields.get("err"))
    try:
        message = decode_message(fields.get("msg"))
    except MessageDecodeError as exc:
        return TaskInfo(
            id=task_id, type="", payload=None, queue=queue, state=state,
            priority=_int(fields.get("pri")), retried=_int(fields.get("retried")),
            last_error=last_error or str(exc),
        )  # fmt: skip
    next_process_at = None
    if state == "pending":
        next_process_at = datetime_from_ms(now_ms())
    elif state in ("scheduled", "retry"):
        next_process_at = datetime_from_ms(_int(fields.get("due")))
    result: Any = None
    raw_result = fields.get("result")
    if state == "completed" and raw_result:
        try:
            result = decode_value(raw_result)
        except MessageDecodeError:
            result = None
    done = fields.get("done")
    return TaskInfo(
        id=task_id,
        type=message.type,
        payload=message.payload,
        queue=queue,
        state=state,
        priority=_int(fields.get("pri")),
        max_retry=message.max_retry,
        retried=_int(fields.get("retried")),
        last_error=last_error,
        timeout=None if message.timeout_ms is None else message.timeout_ms / 1000,
        deadline=None if message.deadline_ms is None else datetime_from_ms(message.deadline_ms),
        next_process_at=next_process_at,
        completed_at=datetime_from_ms(_int(done)) if done and state == "completed" else None,
        result=result,
        enqueued_at=datetime_from_ms(message.enqueued_ms),
        retention=message.retention_ms / 1000,
        headers=message.headers,
        last_failed_at=datetime_from_ms(_int(failed))
        if (failed := fields.get("failed_at"))
        else None,
        lane=_text(fields.get("ln")) or None,
    )


async def read_task(broker: Broker, task_id: str, queue: str) -> TaskInfo:
    """Read one task's record and decode it (`Client.get_task`, `Inspector.get_task`).

    Raises:
        TaskNotFound: If the queue has no task with this id.
        TypeError, ValueError: For an invalid task id or queue name.
        RedisUnavailable: If Redis cannot be reached.
    """
    check_task(task_id, queue)
    fields = await broker.get_task(queue, task_id)
    if fields is None:
        raise TaskNotFound(task_id, queue)
    return task_info(queue, task_id, fields)
