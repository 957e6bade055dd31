"""What `synapse serve` runs: /v1/* goes to the gateway (plain ASGI), everything else to
the web app (FastAPI: pages, /api). One port, one process per worker.

The gateway (and with it the call path's HTTP client) is imported by a warm-up thread
once the server is up (or by the first /v1 request, if that comes sooner), so the pages
come up as fast as before.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["GC_THRESHOLD", "HOST_ENV", "NoGatewayAccessLines", "Root", "create_root", "from_env", "quiet_gc",
           "warm_up"]

#: `synapse serve --workers N` hands the bind host to each worker process in this variable.
HOST_ENV = "SYNAPSE_SERVE_HOST"
#: Allocations between young-generation collections in a serving process (Python's default: 700).
GC_THRESHOLD = 10_000


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


def warm_up(whole_process: bool = False) -> None:
    """Pay the gateway's first-request costs (imports, opening and checking the database,
    the price table the usage writer reads) in a background thread once the server is up,
    not in the first /v1 request. `whole_process`: the process does nothing but serve
    (`synapse serve`), so its garbage collector is tuned for that afterwards (`quiet_gc`)."""

    def run() -> None:
        try:
            from .. import settings as settings_mod
            from .. import storage
            from ..gateway import app  # noqa: F401  (the call path: aiohttp, adapters' base)
            from ..providers import anthropic, openai  # noqa: F401  (the relay's two protocols)
            from ..usage import prices

            storage.engine(settings=settings_mod.load())
            prices.model_prices("openai", "gpt-4o-mini")  # loads the price table once
        except Exception:  # a broken settings file or database is reported by the request that meets it
            pass
        if whole_process:
            quiet_gc()

    threading.Thread(target=run, name="synapse-warm-up", daemon=True).start()


def quiet_gc() -> None:
    """Keep the garbage collector off the request path of a serving process.

    What the process holds once it has started (modules, the web app, SQLAlchemy's
    metadata, the price table: hundreds of thousands of objects) lives until it exits, yet
    every full collection walked all of it again: about 100 ms each, one every thousand or
    so /v1 requests at c=64, a third of the gateway's CPU per request (bench/RESULTS.md).
    `gc.freeze()` moves it out of the collector's sight; the larger young-generation
    threshold makes collections (a fixed cost each, a request's in-flight objects
    promoted each time) rarer. Cyclic garbage is still collected, a little later."""
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, second, third)


def create_root(host: str = "127.0.0.1", *, on_ready: Callable[[], None] | None = None, whole_process: bool = False,
                **web_kwargs: Any) -> Root:
    """The app `synapse serve` runs. `whole_process`: this process only serves it (see
    `warm_up`); an app run inside another program (tests) leaves that program's GC alone."""
    from .app import create_app
    from .auth import is_loopback

    def ready() -> None:
        if on_ready is not None:
            on_ready()
        warm_up(whole_process)

    return Root(create_app(host, on_ready=ready, **web_kwargs), is_loopback(host))


def from_env() -> Root:
    """The app of one `--workers` process (uvicorn imports it by name in each process)."""
    from .proxies import from_settings

    return create_root(os.environ.get(HOST_ENV, "127.0.0.1"), whole_process=True, trusted_proxies=from_settings())
