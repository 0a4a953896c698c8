"""The public surface is exactly what the contract (shared/spec/API.md) names, plus additions."""

import inspect

import tickr
import tickr.errors

CONTRACT_NAMES = {
    "Client",
    "TaskSpec",
    "ServeMux",
    "Task",
    "Server",
    "Inspector",
    "Scheduler",
    "exponential_backoff",
    "TaskInfo",
    "TickrError",
    "TaskIDConflict",
    "DuplicateTask",
    "TaskNotFound",
    "QueueNotFound",
    "TaskFailed",
    "SkipRetry",
}
ADDITIONS = {
    "CallNext",
    "DailyStats",
    "EntryNotFound",
    "Handler",
    "Middleware",
    "PeriodicTask",
    "QueueInfo",
    "QueueNotEmpty",
    "RedisUnavailable",
    "RetryDelay",
    "SchedulerEntry",
    "SchedulerEvent",
    "ServerInfo",
    "TaskState",
    "TaskStateConflict",
    "__version__",
    "constant_delay",
}


def test_exported_names_are_exactly_the_intended_ones() -> None:
    assert set(tickr.__all__) == CONTRACT_NAMES | ADDITIONS
    assert tickr.__all__ == sorted(tickr.__all__)
    for name in tickr.__all__:
        assert hasattr(tickr, name), name


def test_every_error_derives_from_tickr_error() -> None:
    for name in tickr.errors.__all__:
        error = getattr(tickr.errors, name)
        assert issubclass(error, tickr.TickrError), name
    assert issubclass(tickr.RedisUnavailable, ConnectionError)


def test_every_public_name_has_a_docstring() -> None:
    for name in tickr.__all__:
        obj = getattr(tickr, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{name} has no docstring"
            for member_name, member in vars(obj).items() if inspect.isclass(obj) else []:
                if member_name.startswith("_") or not callable(member):
                    continue
                assert inspect.getdoc(member), f"{name}.{member_name} has no docstring"


def test_constructors_take_the_contract_connection_arguments() -> None:
    for entry_point in (tickr.Client, tickr.Server):
        parameters = inspect.signature(entry_point).parameters
        assert next(iter(parameters)) == "url"
        assert parameters["redis"].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters["namespace"].default == "tickr"


def test_enqueue_options_match_the_contract() -> None:
    parameters = inspect.signature(tickr.Client.enqueue).parameters
    assert list(parameters)[:3] == ["self", "type", "payload"]
    assert {
        name: parameters[name].default
        for name in (
            "queue", "priority", "delay", "at", "max_retry", "timeout",
            "deadline", "task_id", "unique", "retention",
        )
    } == {
        "queue": "default", "priority": 0, "delay": None, "at": None, "max_retry": 25,
        "timeout": 1800, "deadline": None, "task_id": None, "unique": None, "retention": 0,
    }  # fmt: skip
    spec = inspect.signature(tickr.TaskSpec).parameters
    assert set(spec) == {"type", "payload"} | (set(parameters) - {"self", "type", "payload"})


def test_server_defaults_match_the_contract() -> None:
    parameters = inspect.signature(tickr.Server).parameters
    assert parameters["concurrency"].default == 10
    assert parameters["strict_priority"].default is False
    assert parameters["shutdown_timeout"].default == 8.0
    for name in ("queues", "retry_delay", "error_handler", "health_check"):
        assert name in parameters
