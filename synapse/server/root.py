"""What `synapse serve` runs: /v1/* goes to the gateway (plain ASGI), everything else to
the web app (FastAPI: pages, /api). One port, one process per worker.

The gateway (and with it the call path's HTTP client) is imported on the first /v1
request, so the pages come up as fast as before.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

__all__ = ["HOST_ENV", "NoGatewayAccessLines", "Root", "create_root", "from_env"]

#: `synapse serve --workers N` hands the bind host to each worker process in this variable.
HOST_ENV = "SYNAPSE_SERVE_HOST"


class Root:
    """Dispatch by path: the gateway never pays for FastAPI's routing or middleware."""

    def __init__(self, web: Any, loopback: bool) -> None:
        self.web = web
        self.loopback = loopback
        self._gateway: Any = None

    @property
    def gateway(self) -> Any:
        if self._gateway is None:
            from ..gateway.app import Gateway

            self._gateway = Gateway(loopback=self.loopback)
        return self._gateway

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            await (self._gateway or self.gateway)(scope, receive, send)
        else:
            await self.web(scope, receive, send)


class NoGatewayAccessLines(logging.Filter):
    """Keeps /v1 requests out of the access log: the usage ledger records every one of
    them, and at thousands a second the log line was a quarter of a request's cost."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (isinstance(args, tuple) and len(args) > 2 and str(args[2]).startswith("/v1/"))


def create_root(host: str = "127.0.0.1", *, on_ready: Callable[[], None] | None = None, **web_kwargs: Any) -> Root:
    from .app import create_app
    from .auth import is_loopback

    return Root(create_app(host, on_ready=on_ready, **web_kwargs), is_loopback(host))


def from_env() -> Root:
    """The app of one `--workers` process (uvicorn imports it by name in each process)."""
    return create_root(os.environ.get(HOST_ENV, "127.0.0.1"))
