"""The public surface is exactly what the contract (shared/spec/API.md) names, plus additions."""

import importlib
import inspect
import pkgutil

import pytest

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
    "AuditEntry",
    "Autoscale",
    "ServerNotFound",
    "RateLimit",
    "TaskSearch",
    "CallNext",
    "SyncClient",
    "DailyStats",
    "MinuteStats",
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


def test_the_package_namespace_holds_nothing_but_the_exported_names() -> None:
    public = {
        name
        for name, value in vars(tickr).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(tickr.__all__) - {"__version__"}


PUBLIC_MODULES = {
    "tickr.backoff": {"RetryDelay", "SecondsDelay", "constant_delay", "exponential_backoff"},
    "tickr.cli": {"main"},
    "tickr.client": {"Client"},
    "tickr.clock": {"Clock", "SystemClock"},
    "tickr.autoscale": {"Autoscale"},
    "tickr.errors": {
        "DuplicateTask", "EntryNotFound", "QueueNotEmpty", "QueueNotFound", "RedisUnavailable",
        "ServerNotFound", "SkipRetry", "TaskFailed", "TaskIDConflict", "TaskNotFound",
        "TaskStateConflict", "TickrError",
    },
    "tickr.inspector": {
        "AUDIT_KEEP", "BULK_STATES", "MAX_PAGE", "MAX_PAGE_SIZE", "SEARCH_SCAN", "Inspector",
    },
    "tickr.mux": {"CallNext", "Handler", "Middleware", "ServeMux"},
    "tickr.options": {"TaskSpec"},
    "tickr.schedule": {
        "CronSchedule", "IntervalSchedule", "Schedule", "parse_duration", "parse_schedule", "zone",
    },
    "tickr.scheduler": {"CatchUp", "PeriodicTask", "Scheduler"},
    "tickr.serialization": {"MessageDecodeError", "decode_value", "encode_value"},
    "tickr.server": {"Server"},
    "tickr.sync_client": {"SyncClient"},
    "tickr.task": {"Task", "current_task"},
    "tickr.tracing": {"CHILD_WITHIN", "disable", "enable"},
    "tickr.web": {
        "MAX_BODY_BYTES", "MAX_RESULT_WAIT", "SCOPES", "FailedAuthLimiter", "Token", "TokenStore",
        "create_app", "load_token_file",
    },
    "tickr.web.app": {"create_app"},
    "tickr.web.jsonform": {"from_json", "to_json"},
    "tickr.web.tokens": {"SCOPES", "Token", "TokenStore", "load_token_file"},
    "tickr.logs": {"TASK_FIELDS", "TaskLogFilter", "current_task"},
    "tickr.metrics": {
        "DURATION_BUCKETS", "OTHER_TYPE", "WAIT_BUCKETS", "Metrics", "QueueCollector",
        "install", "queue_families", "serve", "uninstall",
    },
    "tickr.testing": {"ManualClock", "RedisServer", "drain", "find_redis_server"},
    "tickr.testing.topology": {"ClusterServers", "SentinelServers", "find_valkey_server"},
    "tickr.testing.pytest_plugin": {
        "tickr_client", "tickr_namespace", "tickr_redis_server", "tickr_redis_url",
    },
    "tickr.values": {
        "TASK_STATES", "AuditEntry", "DailyStats", "MinuteStats", "QueueInfo", "RateLimit",
        "SchedulerEntry",
        "SchedulerEvent", "ServerInfo", "TaskInfo", "TaskSearch", "TaskState",
    },
}  # fmt: skip
"""Every public module and exactly what it exports; the rest of the package is private."""


@pytest.mark.parametrize("module_name", sorted(PUBLIC_MODULES))
def test_public_modules_export_exactly_the_intended_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == PUBLIC_MODULES[module_name]
    assert len(module.__all__) == len(set(module.__all__))
    for name in module.__all__:
        assert hasattr(module, name), name
    for name, value in vars(module).items():  # nothing public is defined but unexported
        if name.startswith("_") or not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        if value.__module__ == module_name:
            assert name in module.__all__, f"{module_name}.{name} is public but not exported"


@pytest.mark.parametrize("module_name", ["tickr.options", "tickr.serialization"])
def test_modules_that_re_export_hold_nothing_else(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert {name for name in vars(module) if not name.startswith("_")} == set(module.__all__)


def test_every_module_of_the_package_is_public_or_private_by_name() -> None:
    names = {
        info.name
        for info in pkgutil.walk_packages(tickr.__path__, "tickr.")
        if not any(part.startswith("_") for part in info.name.split(".")[1:])
    }
    assert names == set(PUBLIC_MODULES)


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
