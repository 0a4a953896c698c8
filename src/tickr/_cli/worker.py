"""`tickr worker`: import the application's handler (or Server) and serve.

The target ``module:attribute`` (the attribute may be dotted) names one of:

- a `ServeMux` or an async handler function: a Server is built from the command-line
  options (defaults: concurrency 10, queue "default");
- a configured `tickr.Server`: its settings are kept and the options given on the
  command line replace only theirs.  Its handler is the module attribute named by
  ``--handler``, or else the module's only `ServeMux`.

The module is imported with the current directory first on sys.path, as ``python -m``
does.  Redis is checked once before serving so that a wrong URL or a Redis that is down
fails at once; once serving, the Server rides out Redis outages by itself.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
from argparse import Namespace
from types import ModuleType
from typing import Any

from tickr._broker.connection import resolve_url
from tickr._checks import check_name, is_async_callable
from tickr._cli.commands import DEFAULT_NAMESPACE
from tickr._cli.errors import CLIError, UsageError
from tickr._cli.output import masked_url
from tickr.errors import RedisUnavailable
from tickr.inspector import Inspector
from tickr.mux import Handler, ServeMux
from tickr.server import Server

__all__ = ["check_redis", "run_worker"]

logger = logging.getLogger("tickr.cli")

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def load_target(target: str) -> tuple[Any, ModuleType]:
    """Import ``module:attribute``; returns the object and its module.

    Raises:
        UsageError: If the target is not of that form.
        CLIError: If the module cannot be imported or has no such attribute.
    """
    module_name, colon, attribute = target.partition(":")
    if not colon or not module_name or not attribute:
        raise UsageError(f"the worker target must be 'module:attribute', not {target!r}")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise CLIError(f"cannot import {module_name!r}: no module named {missing!r}") from None
        raise CLIError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any failure of the application's import
        raise CLIError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    except SystemExit as exc:
        raise CLIError(
            f"importing {module_name!r} failed: it exited (SystemExit: {exc.code!r})"
        ) from None
    found: Any = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise CLIError(f"module {module_name!r} has no attribute {attribute!r}") from None
    return found, module


def _handler_of(module: ModuleType, name: str | None, target: str) -> ServeMux | Handler:
    """The handler that goes with a Server target."""
    if name is not None:
        found, _ = load_target(f"{module.__name__}:{name}")
        if not isinstance(found, ServeMux) and not is_async_callable(found):
            raise CLIError(f"--handler {name!r} is neither a ServeMux nor an async function")
        handler: ServeMux | Handler = found
        return handler
    muxes = sorted(key for key, value in vars(module).items() if isinstance(value, ServeMux))
    if len(muxes) == 1:
        mux: ServeMux = getattr(module, muxes[0])
        return mux
    if not muxes:
        raise CLIError(
            f"{target!r} is a Server and module {module.__name__!r} has no ServeMux: "
            "name its handler with --handler ATTRIBUTE"
        )
    raise CLIError(
        f"module {module.__name__!r} has several ServeMux objects ({', '.join(muxes)}): "
        "choose one with --handler ATTRIBUTE"
    )


def _configured(server: Server, args: Namespace) -> Server:
    """The application's Server, with the settings given on the command line replaced.

    Server offers no public way to change its settings, so the few that the command line
    can set are replaced in place (after the same checks as the constructor's).
    """
    if args.url is not None:
        server._url, server._redis = args.url, None
    if args.namespace is not None:
        server.namespace = args.namespace
    if args.concurrency is not None:
        server.concurrency = args.concurrency
    if args.queues is not None:
        server._queues = dict(args.queues)
    if args.strict_priority is not None:
        server.strict_priority = args.strict_priority
    return server


def build(args: Namespace) -> tuple[Server, ServeMux | Handler]:
    """The Server to run and its handler, from the target and the options."""
    target, module = load_target(args.target)
    if isinstance(target, Server):
        return _configured(target, args), _handler_of(module, args.handler, args.target)
    if args.handler is not None:
        raise UsageError("--handler goes with a target that names a tickr.Server")
    if not isinstance(target, ServeMux) and not is_async_callable(target):
        raise CLIError(
            f"{args.target!r} ({type(target).__name__}) is not a ServeMux, an async "
            "handler function or a tickr.Server"
        )
    try:
        server = Server(
            args.url,
            namespace=args.namespace or DEFAULT_NAMESPACE,
            concurrency=10 if args.concurrency is None else args.concurrency,
            queues=args.queues,
            strict_priority=bool(args.strict_priority),
        )
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return server, target


async def check_redis(url: str | None, namespace: str) -> None:
    """Fail now if the URL is invalid, or Redis cannot be reached or lacks the scripts.

    Raises:
        UsageError: For an invalid URL.
        CLIError: If Redis cannot be reached.
    """
    try:
        inspector = Inspector(url, namespace=namespace)
    except ValueError as exc:
        raise UsageError(f"invalid Redis URL: {exc}") from None
    async with inspector:
        try:
            await inspector.check_ready()
        except RedisUnavailable as exc:
            raise CLIError(f"{exc} (url: {masked_url(resolve_url(url))})") from None


async def _check_redis(server: Server) -> None:
    if server._redis is not None:
        return  # the application's own client; checking it here would bind it to this loop
    await check_redis(server._url, server.namespace)


def _serve_metrics(server: Server, addr: str, port: int) -> None:
    """Count this worker's events and serve them, with its queues' gauges, on /metrics."""
    try:
        import prometheus_client

        import tickr.metrics as metrics
    except ImportError:
        raise CLIError(
            "--metrics-port needs prometheus-client: pip install 'tickr-queue[metrics]'"
        ) from None
    metrics.install()
    if server._redis is None:
        collector = metrics.QueueCollector(
            server._url, namespace=server.namespace, queues=list(server._queues)
        )
        prometheus_client.REGISTRY.register(collector)
    else:
        logger.warning("the queue gauges need a Redis URL; serving the worker's metrics only")
    try:
        metrics.serve(port, addr)
    except OSError as exc:
        raise CLIError(f"cannot serve metrics on {addr}:{port}: {exc}") from None
    logger.info("metrics on http://%s:%d/metrics", addr, port)


def run_worker(args: Namespace) -> int:
    """Serve until SIGINT/SIGTERM, or with --burst until the queues are empty."""
    if args.namespace is not None:
        try:
            check_name(args.namespace, "namespace")
        except ValueError as exc:
            raise UsageError(f"invalid --namespace: {exc}") from None
    server, handler = build(args)
    asyncio.run(_check_redis(server))
    level = args.log_level.upper()
    logging.basicConfig(level=level, format=_LOG_FORMAT, stream=sys.stderr)  # unless configured
    logging.getLogger("tickr").setLevel(level)
    if isinstance(handler, ServeMux) and not handler.patterns:
        logger.warning("the ServeMux of %s has no handlers: every task will fail", args.target)
    url = resolve_url(server._url) if server._redis is None else "the application's client"
    logger.info("worker for %s on %s, namespace %r", args.target, masked_url(url), server.namespace)
    if args.metrics_port is not None:
        _serve_metrics(server, args.metrics_addr, args.metrics_port)
    if args.burst:
        server.run(handler, burst=True)
    else:
        server.run(handler)
    return 0
