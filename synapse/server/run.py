"""`synapse serve`: bind, refuse an unprotected public address, start uvicorn, print the URL.

`uvicorn_settings()` is the one place the server's connection behaviour is set (timeouts,
limits, logging); every process that serves the app (one, or each of several workers)
builds its `uvicorn.Config` from it.
"""

from __future__ import annotations

import argparse
import errno
import socket
import sys
from typing import Any

__all__ = ["HEADER_TIMEOUT", "KEEP_ALIVE", "max_connections", "serve", "uvicorn_settings"]

#: Seconds a connection has to send a complete request head, from opening and between requests.
HEADER_TIMEOUT = 10.0
#: Seconds an idle keep-alive connection stays open after a response.
KEEP_ALIVE = 5
#: Bytes of request line and headers accepted per request.
MAX_HEAD = 64 * 1024


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise _ServeError(f"port {port} on {host} is already in use: pick another with --port or SYNAPSE_PORT") from None
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(exc, socket.gaierror):
            raise _ServeError(f"cannot listen on {host}: this machine has no such address") from None
        raise _ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


#: uvicorn's own messages at warning level; one access line per request (method, path,
#: status: never headers or bodies, so never a key).
_LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "default": {"format": "%(levelname)s: %(message)s"},
        "access": {"()": "uvicorn.logging.AccessFormatter", "fmt": '%(client_addr)s "%(request_line)s" %(status_code)s', "use_colors": False},
    },
    "filters": {"no_gateway": {"()": "synapse.server.root.NoGatewayAccessLines"}},
    "handlers": {
        "default": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"},
        "access": {"class": "logging.StreamHandler", "formatter": "access", "stream": "ext://sys.stdout",
                   "filters": ["no_gateway"]},
    },
    "loggers": {
        "uvicorn": {"handlers": ["default"], "level": "WARNING", "propagate": False},
        "uvicorn.error": {"level": "WARNING"},
        "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}


class _ServeError(Exception):
    pass


def max_connections() -> int:
    """Open connections allowed: what the file limit leaves after 256 descriptors for the
    rest of the process (database, provider connections, logs), at most 2,048."""
    soft = 1024
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            soft = 65536
    except (ImportError, ValueError, OSError):
        pass
    return max(32, min(2048, soft - 256))


def uvicorn_settings(
    *, header_timeout: float = HEADER_TIMEOUT, keep_alive: int = KEEP_ALIVE, connections: int | None = None,
    max_head: int = MAX_HEAD,
) -> dict[str, Any]:
    """The `uvicorn.Config(app, **uvicorn_settings())` keyword arguments of `synapse serve`."""
    from .connections import guarded

    limit = connections or max_connections()
    return {
        "http": guarded(header_timeout, limit, max_head),
        "timeout_keep_alive": keep_alive,
        # uvicorn's own limit answers 503 to a request once this many connections or
        # requests are open; the guard above already refuses connections past `limit`.
        "limit_concurrency": limit + 1,
        "h11_max_incomplete_event_size": max_head,
        # X-Forwarded-* are the app's business, and only from `trusted_proxies` (uvicorn
        # would believe them from 127.0.0.1, i.e. from any local process).
        "proxy_headers": False,
        "log_config": _LOG_CONFIG,
        "access_log": True,
        "server_header": False,
        "date_header": True,
        "lifespan": "on",
        "timeout_graceful_shutdown": 3,
    }


def url_for(host: str, port: int) -> str:
    shown = host
    if host in ("0.0.0.0", "::", ""):
        shown = "127.0.0.1"
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def _check_scale_mode() -> None:
    """In scale mode, read the shared settings once before serving: a missing secret key or an
    unreachable database stops `serve` with the reason. (A malformed settings.json on a single
    instance does not: the pages show it.)"""
    from .. import settings as settings_mod
    from ..errors import SettingsError
    from ..scale.settings_store import scale_url

    try:
        values = settings_mod.file_settings().file_values
    except SettingsError:
        values = {}
    if scale_url(values):
        settings_mod.load()


def serve(args: argparse.Namespace) -> int:
    from .auth import is_loopback, user_store

    host = str(getattr(args, "host", None) or "127.0.0.1")
    port = getattr(args, "port", None)
    port = 8000 if port is None else int(port)  # 0 asks the system for a free port
    if not 0 <= port <= 65535:
        print(f"synapse: --port must be 0-65535, not {port}", file=sys.stderr)
        return 2
    try:
        _check_scale_mode()  # the shared database and SYNAPSE_SECRET_KEY (refused without it, saying how to make one)
        users = user_store()
        has_users = users.has_users()
    except Exception as exc:
        print(f"synapse: {exc}", file=sys.stderr)
        return 2
    if not is_loopback(host) and not has_users:
        print(
            f"synapse: serving on {host} (not loopback) needs a login: create one with "
            f"`synapse user set USERNAME` (it asks for a password of 8+ characters), then run serve again",
            file=sys.stderr,
        )
        return 2
    try:
        from .proxies import from_settings

        proxies = from_settings()
    except ValueError as exc:
        print(f"synapse: {exc}; fix it with `synapse config set trusted_proxies ...`", file=sys.stderr)
        return 2
    if proxies and not has_users:
        print(
            "synapse: trusted_proxies is set, and requests through a proxy need a login: create one with "
            "`synapse user set USERNAME`, then run serve again",
            file=sys.stderr,
        )
        return 2
    try:
        sock = _bind(host, port)
    except _ServeError as exc:
        print(f"synapse: {exc}", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    url = url_for(host, port)

    def ready() -> None:
        note = "" if is_loopback(host) else " (login required)"
        print(f"Synapse is running at {url}/settings/models{note}  (Ctrl+C to stop)", flush=True)

    import uvicorn

    from .root import HOST_ENV, create_root

    workers = max(1, int(getattr(args, "workers", None) or 1))
    if workers > 1:  # each process imports the app by name (spawned, not forked)
        import os

        os.environ[HOST_ENV] = host
        app: Any = "synapse.server.root:from_env"
    else:
        app = create_root(host, users=users, on_ready=ready, whole_process=True, trusted_proxies=proxies)
    config = uvicorn.Config(app, factory=workers > 1, workers=workers, **uvicorn_settings())
    server = uvicorn.Server(config)
    try:
        if workers > 1:
            from uvicorn.supervisors import Multiprocess

            ready()
            Multiprocess(config, sockets=[sock]).run()
        else:
            server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0

