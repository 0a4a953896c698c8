"""The argparse parser of the ``tickr`` command.

``--url`` and ``--namespace`` are accepted before the subcommand and after it: every
subparser declares them again with a suppressed default, so a value given after the
subcommand wins and one given before it is kept otherwise.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from tickr import __version__
from tickr._checks import check_name
from tickr._cli.commands import COMMANDS
from tickr._cli.web import run_web
from tickr._cli.worker import run_worker
from tickr._options import MAX_CONCURRENCY
from tickr.inspector import MAX_PAGE, MAX_PAGE_SIZE
from tickr.values import TASK_STATES

__all__ = ["build_parser"]

_URL_HELP = "Redis URL (default: $TICKR_REDIS_URL, else redis://127.0.0.1:6379/0)"
_NAMESPACE_HELP = "prefix of every key (default: tickr)"

STATS_LEGEND = """\
columns: SCHED scheduled, DONE completed tasks still kept, PROC and FAILED attempts
processed and failed today (UTC), LATENCY age of the task that runs next."""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _at_most(limit: int, what: str) -> Callable[[str], int]:
    def check(text: str) -> int:
        value = _positive(text)
        if value > limit:
            raise argparse.ArgumentTypeError(f"{what} must be at most {limit}, not {value}")
        return value

    check.__name__ = what
    return check


_page = _at_most(MAX_PAGE, "page")
_page_size = _at_most(MAX_PAGE_SIZE, "page size")
_concurrency = _at_most(MAX_CONCURRENCY, "concurrency")


def _days(text: str) -> int:
    value = _positive(text)
    if value > 90:
        raise argparse.ArgumentTypeError(f"history is kept for 90 days, not {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0.1 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"must be between 0.1 and 86400 seconds, not {value}")
    return value


def _url(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("must not be empty (leave --url out for the default)")
    return text


def _name(what: str) -> Callable[[str], str]:
    """An argument type that checks a queue name or task id as the library does."""

    def check(text: str) -> str:
        try:
            return check_name(text, what)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    check.__name__ = what  # argparse names the type in its messages
    return check


_queue = _name("queue")
_task_id = _name("task_id")


def _queue_weight(text: str) -> tuple[str, int]:
    name, equals, weight = text.partition("=")
    try:
        check_name(name, "queue name")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not equals:
        return name, 1
    try:
        return name, _positive(weight)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"weight of {name!r}: {exc}") from None


class _QueueWeights(argparse.Action):
    """Collects ``--queue NAME=WEIGHT`` options into one dict, in order."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        assert isinstance(values, tuple)
        queues = dict(getattr(namespace, self.dest, None) or {})
        name, weight = values
        queues[name] = weight
        setattr(namespace, self.dest, queues)


def _common(*, read: bool) -> list[argparse.ArgumentParser]:
    """Parents of a subparser: the connection options, and --json for read commands."""
    connection = argparse.ArgumentParser(add_help=False)
    group = connection.add_argument_group("connection")
    group.add_argument("--url", type=_url, default=argparse.SUPPRESS, help=_URL_HELP)
    group.add_argument("--namespace", default=argparse.SUPPRESS, help=_NAMESPACE_HELP)
    if not read:
        return [connection]
    json = argparse.ArgumentParser(add_help=False)
    json.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return [connection, json]


Adder = Callable[..., argparse.ArgumentParser]


def _command(
    adder: Adder, name: str, key: str, help: str, *, read: bool
) -> argparse.ArgumentParser:
    parser = adder(name, help=help, description=help, parents=_common(read=read))
    parser.set_defaults(run=COMMANDS[key])
    return parser


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {port}")
    return port


def _add_worker(commands: Adder) -> None:
    worker = commands(
        "worker",
        help="run a Server for an application's handlers",
        description="Run a Server until SIGINT/SIGTERM (or, with --burst, until the "
        "queues are empty).  TARGET is module:attribute naming a ServeMux, an async "
        "handler function, or a configured tickr.Server (whose settings the options "
        "given here replace).",
        parents=_common(read=False),
    )
    worker.add_argument("target", metavar="TARGET", help="module:attribute, e.g. app.tasks:mux")
    worker.add_argument(
        "--concurrency",
        metavar="N",
        type=_concurrency,
        help=f"tasks run at once (default 10, at most {MAX_CONCURRENCY})",
    )
    worker.add_argument(
        "--queue",
        dest="queues",
        metavar="NAME[=WEIGHT]",
        type=_queue_weight,
        action=_QueueWeights,
        help="serve this queue with this weight (default weight 1); repeat for more "
        "queues (default: default=1)",
    )
    worker.add_argument(
        "--strict-priority",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="always drain heavier queues first",
    )
    worker.add_argument("--burst", action="store_true", help="exit once the queues are empty")
    worker.add_argument(
        "--handler",
        metavar="ATTRIBUTE",
        help="with a Server target: the module attribute that handles the tasks "
        "(default: the module's only ServeMux)",
    )
    worker.add_argument(
        "--metrics-port",
        metavar="PORT",
        type=_port,
        help="serve Prometheus metrics at http://ADDR:PORT/metrics (extra 'metrics')",
    )
    worker.add_argument(
        "--metrics-addr",
        metavar="ADDR",
        default="127.0.0.1",
        help="address of the metrics endpoint (default 127.0.0.1)",
    )
    worker.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="logging level on stderr (default info)",
    )
    worker.set_defaults(run=run_worker)


def _add_web(commands: Adder) -> None:
    web = commands(
        "web",
        help="serve the HTTP API (extra 'web')",
        description="Serve the HTTP API (docs/http-api.md) until SIGINT/SIGTERM.  SIGHUP "
        "reads the token file again.  Without tokens it serves only on a loopback "
        "address, where every request may do everything.",
        parents=_common(read=False),
    )
    web.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    web.add_argument("--port", type=_port, default=8080, help="port (default 8080)")
    web.add_argument("--token-file", metavar="FILE", help="the tokens, as TOML ([[token]] tables)")
    web.add_argument("--read-only", action="store_true", help="refuse every change (403)")
    web.add_argument(
        "--session-secret-file",
        metavar="FILE",
        help="the key (32 bytes or more) that signs dashboard sessions, shared by every "
        "process behind one address (default: a random key per process)",
    )
    web.add_argument(
        "--root-path",
        default="",
        metavar="PATH",
        help="the path prefix a reverse proxy serves the API under, e.g. /tickr",
    )
    web.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        metavar="IPS",
        help="proxies whose X-Forwarded-For/-Proto are trusted, comma-separated, or '*' "
        "(default 127.0.0.1)",
    )
    web.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="log every request on stderr (default on)",
    )
    web.add_argument(
        "--shutdown-timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="how long requests in flight may finish at shutdown (default 10)",
    )
    web.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="logging level on stderr (default info)",
    )
    web.set_defaults(run=run_web)


def _add_queue(commands: Adder) -> None:
    queue = commands(
        "queue", help="list, inspect, pause and delete queues", parents=_common(read=False)
    )
    sub = queue.add_subparsers(title="commands", dest="action", metavar="COMMAND", required=True)
    _command(sub.add_parser, "ls", "queue ls", "list the queues", read=True)
    inspect = _command(sub.add_parser, "inspect", "queue inspect", "show a queue", read=True)
    inspect.add_argument("queue", metavar="QUEUE", type=_queue)
    history = _command(
        sub.add_parser, "history", "queue history", "daily processed/failed counts", read=True
    )
    history.add_argument("queue", metavar="QUEUE", type=_queue)
    history.add_argument("--days", type=_days, default=7, help="days to show, 1-90 (default 7)")
    for name, help in (
        ("pause", "stop servers from taking the queue's tasks"),
        ("unpause", "let servers take the queue's tasks again"),
    ):
        _command(sub.add_parser, name, f"queue {name}", help, read=False).add_argument(
            "queue", metavar="QUEUE", type=_queue
        )
    limit = _command(
        sub.add_parser,
        "limit",
        "queue limit",
        "show, set or remove a queue's rate and concurrency limits (for every server)",
        read=False,
    )
    limit.add_argument("queue", metavar="QUEUE", type=_queue)
    limit.add_argument("--rate", type=_positive, metavar="N", help="at most N starts per period")
    limit.add_argument(
        "--period", type=_seconds, default=1.0, metavar="SECONDS", help="of --rate (default 1)"
    )
    limit.add_argument(
        "--burst", type=_positive, default=1, metavar="B", help="starts at once (default 1)"
    )
    limit.add_argument(
        "--concurrency", type=_positive, metavar="N", help="at most N of its tasks active at once"
    )
    limit.add_argument("--per-lane", action="store_true", help="apply the limits to each lane")
    limit.add_argument("--clear-rate", action="store_true", help="remove the rate limit")
    limit.add_argument(
        "--clear-concurrency", action="store_true", help="remove the concurrency limit"
    )
    rm = _command(sub.add_parser, "rm", "queue rm", "delete a queue", read=False)
    rm.add_argument("queue", metavar="QUEUE", type=_queue)
    rm.add_argument("--force", action="store_true", help="delete its tasks too")


def _add_task(commands: Adder) -> None:
    task = commands("task", help="list, show and steer tasks", parents=_common(read=False))
    sub = task.add_subparsers(title="commands", dest="action", metavar="COMMAND", required=True)
    ls = _command(
        sub.add_parser, "ls", "task ls", "list the tasks of a queue in a state", read=True
    )
    ls.add_argument("queue", metavar="QUEUE", nargs="?", default="default", type=_queue)
    ls.add_argument("--state", choices=TASK_STATES, default="pending", help="default pending")
    ls.add_argument("--page", type=_page, default=1, help="page number (default 1)")
    ls.add_argument(
        "--size", type=_page_size, default=30, help="tasks per page (default 30, at most 10000)"
    )
    get = _command(sub.add_parser, "get", "task get", "show a task", read=True)
    get.add_argument("task_id", metavar="ID", type=_task_id)
    get.add_argument("--queue", default="default", type=_queue, help="its queue (default: default)")
    cancel = _command(
        sub.add_parser,
        "cancel",
        "task cancel",
        "cancel a task: delete it while it waits, stop its handler while it runs",
        read=False,
    )
    cancel.add_argument("task_id", metavar="ID", type=_task_id)
    cancel.add_argument(
        "--queue", default="default", type=_queue, help="its queue (default: default)"
    )
    for operation, help in (
        ("delete", "delete a task that is not active"),
        ("run", "make a scheduled, retry or archived task pending now"),
        ("archive", "archive a pending, scheduled or retry task"),
    ):
        manage = _command(sub.add_parser, operation, "task manage", help, read=False)
        manage.add_argument("task_id", metavar="ID", nargs="?", type=_task_id)
        manage.add_argument(
            "--queue", default="default", type=_queue, help="its queue (default: default)"
        )
        manage.add_argument("--all", action="store_true", help="every task in --state")
        manage.add_argument("--state", choices=TASK_STATES, help="the state, with --all")
        manage.set_defaults(operation=operation)


def build_parser() -> argparse.ArgumentParser:
    """The parser of the whole command line; each command sets ``run``."""
    parser = argparse.ArgumentParser(
        prog="tickr",
        description="Run workers and inspect the queues of Tickr, the asyncio task queue.",
    )
    parser.add_argument("--url", type=_url, default=None, help=_URL_HELP)
    parser.add_argument("--namespace", default=None, help=_NAMESPACE_HELP)
    parser.add_argument("--version", action="version", version=f"tickr {__version__}")
    commands = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", required=True
    ).add_parser
    _add_worker(commands)
    _add_web(commands)
    stats = commands(
        "stats",
        help="one table of every queue",
        description="One table of every queue.",
        epilog=STATS_LEGEND,
        parents=_common(read=True),
    )
    stats.add_argument(
        "--watch",
        nargs="?",
        const=2.0,
        type=_seconds,
        metavar="SECONDS",
        help="refresh every SECONDS (default 2) until Ctrl-C",
    )
    stats.set_defaults(run=COMMANDS["stats"])
    _add_queue(commands)
    _add_task(commands)
    server = commands("server", help="list the running servers", parents=_common(read=False))
    sub = server.add_subparsers(title="commands", dest="action", metavar="COMMAND", required=True)
    _command(sub.add_parser, "ls", "server ls", "list the running servers", read=True)
    cron = commands("cron", help="periodic tasks of the schedulers", parents=_common(read=False))
    sub = cron.add_subparsers(title="commands", dest="action", metavar="COMMAND", required=True)
    _command(sub.add_parser, "ls", "cron ls", "list the periodic tasks", read=True)
    history = _command(
        sub.add_parser, "history", "cron history", "latest ticks of a periodic task", read=True
    )
    history.add_argument("entry_id", metavar="ENTRY")
    history.add_argument("--limit", type=_positive, default=20, help="ticks shown (default 20)")
    return parser
