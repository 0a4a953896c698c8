from typing import Any

import pytest

import tickr
from tickr.mux import ServeMux


def make_task(task_type: str) -> tickr.Task:
    return tickr.Task("id", task_type, None, "default")


async def test_exact_match_wins_over_prefixes() -> None:
    mux = ServeMux()

    @mux.handle("email:")
    async def any_email(task: tickr.Task) -> str:
        return "prefix"

    @mux.handle("email:send")
    async def send(task: tickr.Task) -> str:
        return "exact"

    assert await mux(make_task("email:send")) == "exact"
    assert await mux(make_task("email:bounce")) == "prefix"


async def test_longest_prefix_wins_whatever_the_registration_order() -> None:
    mux = ServeMux()
    mux.handle("a:", _returning("short"))
    mux.handle("a:b:", _returning("long"))
    mux.handle("a:b:c:", _returning("longest"))
    assert await mux(make_task("a:b:c:d")) == "longest"
    assert await mux(make_task("a:b:x")) == "long"
    assert await mux(make_task("a:x")) == "short"
    assert mux.handler_for("b:x") is None
    assert mux.handler_for("a") is None, "a prefix pattern does not match its own stem"


def _returning(value: str) -> Any:
    async def handler(task: tickr.Task) -> str:
        return value

    return handler


async def test_unknown_type_raises_lookup_error_with_the_contract_message() -> None:
    with pytest.raises(LookupError, match="no handler for task type 'x:y'"):
        await ServeMux()(make_task("x:y"))


def test_registering_a_pattern_twice_is_rejected() -> None:
    mux = ServeMux()
    mux.handle("t", _returning("a"))
    with pytest.raises(ValueError, match="already registered"):
        mux.handle("t", _returning("b"))
    mux.handle("p:", _returning("a"))
    with pytest.raises(ValueError, match="already registered"):
        mux.handle("p:")


def test_bad_registrations_are_rejected() -> None:
    mux = ServeMux()
    with pytest.raises(ValueError, match="empty"):
        mux.handle("")
    with pytest.raises(TypeError, match="str"):
        mux.handle(5)  # type: ignore[call-overload]

    def sync_handler(task: tickr.Task) -> None: ...

    with pytest.raises(TypeError, match="async"):
        mux.handle("t", sync_handler)  # type: ignore[type-var]
    with pytest.raises(TypeError, match="async"):
        mux.use(lambda task, call_next: None)  # type: ignore[arg-type,return-value]
    assert mux.patterns == []


async def test_middleware_runs_in_registration_order_outermost_first() -> None:
    mux = ServeMux()
    calls: list[str] = []

    @mux.handle("t")
    async def handler(task: tickr.Task) -> str:
        calls.append("handler")
        return "result"

    @mux.use
    async def outer(task: tickr.Task, call_next: tickr.CallNext) -> Any:
        calls.append("outer in")
        result = await call_next(task)
        calls.append("outer out")
        return f"outer({result})"

    @mux.use
    async def inner(task: tickr.Task, call_next: tickr.CallNext) -> Any:
        calls.append("inner in")
        result = await call_next(task)
        calls.append("inner out")
        return f"inner({result})"

    assert await mux(make_task("t")) == "outer(inner(result))"
    assert calls == ["outer in", "inner in", "handler", "inner out", "outer out"]


async def test_middleware_added_later_applies_to_handlers_resolved_earlier() -> None:
    mux = ServeMux()
    mux.handle("t", _returning("plain"))
    assert await mux(make_task("t")) == "plain"

    @mux.use
    async def wrap(task: tickr.Task, call_next: tickr.CallNext) -> Any:
        return "wrapped " + await call_next(task)

    assert await mux(make_task("t")) == "wrapped plain"


async def test_async_callable_objects_are_accepted() -> None:
    class Handler:
        async def __call__(self, task: tickr.Task) -> str:
            return "object"

    mux = ServeMux()
    mux.handle("t", Handler())
    assert await mux(make_task("t")) == "object"
