"""`tickr web`: serve the HTTP API with uvicorn.

Tokens come from ``--token-file`` and are read again on SIGHUP (a file that fails to
read keeps the tokens in use, and says why).  Without tokens the API serves only on a
loopback address, where every request may do everything; it warns so.  SIGINT or SIGTERM
shut it down gracefully: no new connections, requests in flight get
``--shutdown-timeout`` seconds to finish.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import logging
import signal
import sys
from argparse import Namespace
from pathlib import Path
from typing import Any

from tickr._broker.connection import resolve_url
from tickr._checks import check_name
from tickr._cli.commands import DEFAULT_NAMESPACE
from tickr._cli.errors import CLIError, UsageError
from tickr._cli.output import masked_url
from tickr._cli.worker import check_redis

__all__ = ["is_loopback", "run_web"]

logger = logging.getLogger("tickr.cli")

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (or ``localhost``), reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tokens(path: str | None) -> list[Any]:
    from tickr.web import load_token_file

    if path is None:
        return []
    try:
        return load_token_file(path)
    except OSError as exc:
        raise CLIError(f"cannot read the token file: {exc}") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _reload(store: Any, path: str, loopback: bool) -> None:
    """Replace the tokens with those of the file, or keep them and say why not."""
    from tickr.web import load_token_file

    try:
        tokens = load_token_file(path)
        if not tokens and not loopback:
            raise ValueError("no tokens in it, and the API is not on a loopback address")
        store.replace(tokens)
    except (OSError, ValueError, TypeError) as exc:
        logger.warning("SIGHUP: kept the %d tokens in use; %s: %s", len(store), path, exc)
        return
    logger.info("SIGHUP: %d tokens read from %s", len(tokens), path)


async def _serve(server: Any, store: Any, args: Namespace, loopback: bool) -> None:
    if args.token_file is not None:
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGHUP, _reload, store, args.token_file, loopback
        )
    await server.serve()


def _graceful_server_class() -> Any:
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """Exits 0 after a graceful shutdown on SIGTERM/SIGINT, as ``tickr worker`` does.

        uvicorn raises the signal again once it has shut down, so that the process ends
        by it; a shutdown that went as planned is not a failure here.
        """

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list):
                captured.clear()

    return GracefulServer


def run_web(args: Namespace) -> int:
    """Serve the HTTP API until SIGINT/SIGTERM."""
    try:
        import uvicorn

        from tickr.web import SCOPES, TokenStore, create_app
    except ImportError:
        raise CLIError("tickr web needs the 'web' extra: pip install 'tickr-queue[web]'") from None
    namespace = args.namespace or DEFAULT_NAMESPACE
    try:
        check_name(namespace, "namespace")
    except ValueError as exc:
        raise UsageError(f"invalid --namespace: {exc}") from None
    if args.token_file is not None and not Path(args.token_file).is_file():
        raise UsageError(f"--token-file {args.token_file!r} is not a file")
    tokens = _tokens(args.token_file)
    loopback = is_loopback(args.host)
    if not tokens and not loopback:
        raise UsageError(
            f"refusing to serve on {args.host} without tokens: give --token-file "
            "(or serve on 127.0.0.1)"
        )
    level = args.log_level.upper()
    logging.basicConfig(level=level, format=_LOG_FORMAT, stream=sys.stderr)
    logging.getLogger("tickr").setLevel(level)
    asyncio.run(check_redis(args.url, namespace))
    store = TokenStore(tokens)
    anonymous: frozenset[str] = frozenset()
    if not tokens:
        anonymous = SCOPES
        logger.warning(
            "no tokens: every request from this machine may do everything (give --token-file)"
        )
    try:
        import tickr.metrics

        tickr.metrics.install()
    except ImportError:
        pass  # /metrics answers 501 and names the extra
    session_secret = None
    if args.session_secret_file is not None:
        try:
            session_secret = Path(args.session_secret_file).read_bytes().strip()
        except OSError as exc:
            raise CLIError(f"cannot read the session secret: {exc}") from None
    try:
        app = create_app(
            args.url,
            namespace=namespace,
            tokens=store,
            read_only=args.read_only,
            anonymous_scopes=anonymous,
            session_secret=session_secret,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["handlers"]["access"]["stream"] = "ext://sys.stderr"  # with the other logs
    config = uvicorn.Config(
        app,
        log_config=log_config,
        host=args.host,
        port=args.port,
        root_path=args.root_path,
        access_log=args.access_log,
        log_level=args.log_level,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
        timeout_graceful_shutdown=args.shutdown_timeout,
    )
    server = _graceful_server_class()(config)
    logger.info(
        "HTTP API on http://%s:%d%s for %s, namespace %r%s",
        args.host,
        args.port,
        args.root_path,
        masked_url(resolve_url(args.url)),
        namespace,
        " (read-only)" if args.read_only else "",
    )
    asyncio.run(_serve(server, store, args, loopback))
    return 0
