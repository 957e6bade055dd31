"""The web app: pages, the /api JSON API behind them, and the security around both.

`create_app(host=...)` builds it. Bound to loopback it needs no login; on any other
address (or through a trusted proxy) every page and API call needs a logged-in session.
Either way (see security.py):

* state-changing requests need the CSRF token (`X-CSRF-Token`) and, when the browser
  sends one, an Origin equal to this server;
* on loopback the Host header must be a loopback name (no DNS rebinding);
* pages get a strict Content-Security-Policy; API answers are never cached;
* request bodies are limited per path prefix (limits.py), 1 MiB on /api.

Every /api error is `{"detail": "<message>", ...}` (plus `kind` or `field` where they
help); a browser asking for a page that does not exist gets a 404 page.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import SettingsError
from .auth import SessionStore, UserStore, is_loopback, user_store
from .limits import KiB, MiB, BodyLimit
from .proxies import TrustedProxies, from_settings
from .security import Security, local_path
from .status import AdapterFactory, StatusBoard
from .throttle import LoginThrottle

__all__ = ["BODY_LIMITS", "create_app", "error"]

HERE = Path(__file__).parent
STATIC = HERE / "static"
#: Request body limits by path prefix (the longest match wins). A login is a few dozen bytes
#: and is reachable before one; a chat turn may carry images (the Chat page takes 10 MB
#: each, 13.4 MB as base64); the pages send no other bodies.
BODY_LIMITS: dict[str, int] = {"/api/": 1 * MiB, "/api/login": 4 * KiB, "/api/v1/": 32 * MiB, "/": 64 * KiB}


def error(status: int, message: str, headers: Mapping[str, str] | None = None, /, **extra: Any) -> JSONResponse:
    """The one error shape of /api: `{"detail": message, **extra}`."""
    return JSONResponse({"detail": message, **extra}, status_code=status, headers=headers)


def create_app(
    host: str = "127.0.0.1",
    *,
    adapter_factory: AdapterFactory | None = None,
    check_timeout: float | None = None,
    users: UserStore | None = None,
    require_login: bool | None = None,
    on_ready: Callable[[], None] | None = None,
    trusted_proxies: TrustedProxies | str | None = None,
    body_limits: Mapping[str, int] | None = None,
    sessions: SessionStore | None = None,
    throttle: LoginThrottle | None = None,
) -> FastAPI:
    """The web app for a server bound to `host`.

    `trusted_proxies` defaults to the setting of that name (read once, here);
    `body_limits` replaces BODY_LIMITS. The others exist for tests.
    """
    loopback = is_loopback(host)
    login_required = (not loopback) if require_login is None else require_login
    shared = _shared_parts()
    board = StatusBoard(adapter_factory) if check_timeout is None else StatusBoard(adapter_factory, check_timeout)
    board.shared = shared["link"]
    if trusted_proxies is None:
        trusted_proxies = from_settings()
    proxies = trusted_proxies if isinstance(trusted_proxies, TrustedProxies) else TrustedProxies.parse(trusted_proxies)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        if on_ready is not None:
            on_ready()
        yield
        await board.close()
        from ..providers.transport import close_session
        from ..usage.ledger import ledger

        await close_session()
        # uvicorn re-raises SIGTERM after shutdown, so no atexit hook runs: write the usage now
        await asyncio.to_thread(ledger.drain)

    app = FastAPI(title="Synapse", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.board = board
    app.state.sessions = sessions or _sessions(shared)
    app.state.throttle = throttle or _throttle(shared)
    app.state.users = users or user_store()
    app.state.login_required = login_required
    app.state.loopback = loopback
    app.state.proxies = proxies
    app.add_middleware(
        Security, loopback=loopback, login_required=login_required, sessions=app.state.sessions, proxies=proxies
    )
    app.add_middleware(BodyLimit, limits=BODY_LIMITS if body_limits is None else body_limits)
    _error_handlers(app)

    # --- pages -----------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        return RedirectResponse("/chat", status_code=303)

    @app.get("/chat", include_in_schema=False)
    async def chat_page(request: Request) -> HTMLResponse:
        return render(request, "chat.html")

    @app.get("/agents", include_in_schema=False)
    async def agents_page(request: Request) -> HTMLResponse:
        return render(request, "agents.html")

    @app.get("/memory", include_in_schema=False)
    async def memory_page(request: Request) -> HTMLResponse:
        return render(request, "memory.html")

    @app.get("/settings", include_in_schema=False)
    async def settings_index() -> RedirectResponse:
        return RedirectResponse("/settings/models", status_code=303)

    @app.get("/settings/models", include_in_schema=False)
    async def models_page(request: Request) -> HTMLResponse:
        return render(request, "models.html")

    @app.get("/settings/usage", include_in_schema=False)
    async def usage_page(request: Request) -> HTMLResponse:
        return render(request, "usage.html")

    @app.get("/settings/keys", include_in_schema=False)
    async def keys_page(request: Request) -> HTMLResponse:
        return render(request, "keys.html")

    @app.get("/login", include_in_schema=False)
    async def login_page(request: Request) -> Response:
        target = local_path(request.query_params.get("next"))
        if not request.state.login_required or request.state.session.user:
            return RedirectResponse(target, status_code=303)
        return render(request, "login.html", next=target)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(_FAVICON, media_type="image/svg+xml")

    from .api import router

    app.include_router(router)
    from ..usage.api import router as usage_router

    app.include_router(usage_router)
    from ..agents.api import router as agents_router

    app.include_router(agents_router)
    from ..memory.api import router as memory_router, scopes_router as memory_scopes_router

    app.include_router(memory_router)
    app.include_router(memory_scopes_router)
    from ..gateway.api import router as keys_router

    app.include_router(keys_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _shared_parts() -> dict[str, Any]:
    """Scale mode's Redis link and shared CSRF key, when these settings have them."""
    from .. import settings as settings_mod

    try:
        file_settings = settings_mod.file_settings()
    except SettingsError:
        return {"link": None, "csrf_secret": None}
    from ..scale.shared import redis_url

    if not redis_url(file_settings) and not os.environ.get("SYNAPSE_SECRET_KEY"):
        return {"link": None, "csrf_secret": None}
    from ..scale import web_state

    return web_state(file_settings)


def _sessions(shared: dict[str, Any]) -> SessionStore:
    if shared["link"] is not None:
        from ..scale.sessions import SharedSessionStore

        return SharedSessionStore(shared["link"], secret=shared["csrf_secret"])
    return SessionStore(secret=shared["csrf_secret"])


def _throttle(shared: dict[str, Any]) -> LoginThrottle:
    if shared["link"] is not None:
        from ..scale.throttle import SharedLoginThrottle

        return SharedLoginThrottle(shared["link"])
    return LoginThrottle()


def render(request: Request, name: str, status: int = 200, **extra: Any) -> HTMLResponse:
    """A page from templates/, with the visitor's CSRF token and user name."""
    session = request.state.session
    slug = name.removesuffix(".html")
    html = _templates().get_template(name).render(csrf=session.csrf, user=session.user or "", page=slug, **extra)
    return HTMLResponse(html, status_code=status)


def _error_handlers(app: FastAPI) -> None:
    """Every /api error as `{"detail": ...}`; a 404 page for browsers everywhere else."""

    @app.exception_handler(SettingsError)
    async def settings_error(request: Request, exc: SettingsError) -> JSONResponse:
        return error(500, str(exc), kind="settings")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        path = request.url.path
        if path.startswith("/api/") or path == "/api":
            message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
            if exc.status_code == 404 and message == "Not Found":
                message = f"no such API endpoint: {path[:200]}"
            elif exc.status_code == 405:
                message = f"{request.method} is not allowed on {path[:200]}"
            return JSONResponse({"detail": message}, status_code=exc.status_code, headers=exc.headers)
        if exc.status_code == 404 and "state" in request.scope and "session" in request.scope["state"]:
            return render(request, "404.html", 404, path=path[:200])
        return Response(str(exc.detail), status_code=exc.status_code, media_type="text/plain; charset=utf-8")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        first = problems[0] if problems else {}
        loc = [str(x) for x in first.get("loc", ()) if x not in ("query", "path", "body")]
        name = ".".join(loc)
        message = str(first.get("msg", "invalid input"))
        message = message[:1].lower() + message[1:]
        return error(422, f"{name}: {message}" if name else message, **({"field": name} if name else {}))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # Starlette re-raises after this answer, so the traceback still reaches the server log.
        if request.url.path.startswith("/api/"):
            return error(500, "Synapse hit an unexpected error; the server log has the details", kind="internal")
        return Response("Synapse hit an unexpected error; the server log has the details.", status_code=500,
                        media_type="text/plain; charset=utf-8")


@functools.cache
def _templates() -> Any:
    """The page templates (Jinja2, autoescaped), loaded once on first use."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, auto_reload=False
    )


_FAVICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="8" fill="#4f46e5"/>'
    b'<circle cx="11" cy="16" r="4" fill="#fff"/><circle cx="21" cy="10" r="3" fill="#c7d2fe"/>'
    b'<circle cx="21" cy="22" r="3" fill="#c7d2fe"/></svg>'
)
