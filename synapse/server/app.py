"""The web app: pages, the /api JSON API behind them, and the security around both.

`create_app(host=...)` builds it. Bound to loopback it needs no login; on any other
address every page and API call needs a logged-in session. Either way:

* state-changing requests need the session's CSRF token (`X-CSRF-Token`) and, when
  the browser sends one, an Origin equal to this server;
* on loopback the Host header must be a loopback name (no DNS rebinding);
* pages get a strict Content-Security-Policy; API answers are never cached.
"""

from __future__ import annotations

import asyncio
import functools

import hmac
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from ..errors import SettingsError
from ..agents.access import is_api_client
from .auth import CSRF_HEADER, SESSION_COOKIE, SESSION_TTL, Session, SessionStore, UserStore, is_loopback
from .status import AdapterFactory, StatusBoard

__all__ = ["create_app"]

HERE = Path(__file__).parent
STATIC = HERE / "static"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Reachable without a login when one is required.
_PUBLIC = ("/login", "/api/session", "/api/login", "/static/", "/favicon.ico")
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def create_app(
    host: str = "127.0.0.1",
    *,
    adapter_factory: AdapterFactory | None = None,
    check_timeout: float | None = None,
    users: UserStore | None = None,
    require_login: bool | None = None,
    on_ready: Callable[[], None] | None = None,
) -> FastAPI:
    loopback = is_loopback(host)
    login_required = (not loopback) if require_login is None else require_login
    board = StatusBoard(adapter_factory) if check_timeout is None else StatusBoard(adapter_factory, check_timeout)

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
    app.state.sessions = SessionStore()
    app.state.users = users or UserStore()
    app.state.login_required = login_required
    app.state.loopback = loopback

    @app.middleware("http")
    async def security(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        host_header = request.headers.get("host", "")
        if loopback and not is_loopback(urlsplit("//" + host_header).hostname or ""):
            return error(400, f"this server answers only to loopback names, not Host {host_header[:100]!r}")
        sessions: SessionStore = app.state.sessions
        session = sessions.get(request.cookies.get(SESSION_COOKIE))
        fresh = session is None
        if session is None:
            session = sessions.new()
        request.state.session = session
        # Programs calling /api/v1 (no cookie, or an API key) are judged by its own access check.
        api_client = is_api_client(request)

        if login_required and session.user is None and not path.startswith(_PUBLIC) and not api_client:
            if path.startswith("/api/"):
                response: Response = error(401, "log in first", kind="login")
            else:
                response = RedirectResponse("/login", status_code=303)
            return _finish(response, session, fresh, path)

        if request.method not in _SAFE_METHODS and not api_client:
            problem = _csrf_problem(request, session, fresh)
            if problem:
                return _finish(error(403, problem, kind="csrf"), session, fresh, path)
        try:
            response = await call_next(request)
        except SettingsError as exc:
            response = error(500, str(exc), kind="settings")
        return _finish(response, request.state.session, fresh or request.state.session is not session, path)

    def _finish(response: Response, session: Session, set_cookie: bool, path: str) -> Response:
        if set_cookie:
            response.set_cookie(
                SESSION_COOKIE, session.id, max_age=SESSION_TTL, httponly=True, samesite="strict",
                secure=False, path="/",
            )
        h = response.headers
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "no-referrer")
        h.setdefault("X-Frame-Options", "DENY")
        if path.startswith("/api/"):
            h["Cache-Control"] = "no-store"
        elif not path.startswith("/static/"):
            h.setdefault("Content-Security-Policy", _CSP)
            h["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(SettingsError)
    async def settings_error(request: Request, exc: SettingsError) -> JSONResponse:
        return error(500, str(exc), kind="settings")

    # --- pages -----------------------------------------------------------------------

    def page(name: str, request: Request) -> HTMLResponse:
        session: Session = request.state.session
        slug = name.removesuffix(".html")
        return HTMLResponse(_templates().get_template(name).render(csrf=session.csrf, user=session.user or "", page=slug))

    @app.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        return RedirectResponse("/chat", status_code=303)

    @app.get("/chat", include_in_schema=False)
    async def chat_page(request: Request) -> HTMLResponse:
        return page("chat.html", request)

    @app.get("/agents", include_in_schema=False)
    async def agents_page(request: Request) -> HTMLResponse:
        return page("agents.html", request)

    @app.get("/settings", include_in_schema=False)
    async def settings_index() -> RedirectResponse:
        return RedirectResponse("/settings/models", status_code=303)

    @app.get("/settings/models", include_in_schema=False)
    async def models_page(request: Request) -> HTMLResponse:
        return page("models.html", request)

    @app.get("/settings/usage", include_in_schema=False)
    async def usage_page(request: Request) -> HTMLResponse:
        return page("usage.html", request)

    @app.get("/settings/keys", include_in_schema=False)
    async def keys_page(request: Request) -> HTMLResponse:
        return page("keys.html", request)

    @app.get("/login", include_in_schema=False)
    async def login_page(request: Request) -> Response:
        if not login_required or request.state.session.user:
            return RedirectResponse("/settings/models", status_code=303)
        return page("login.html", request)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(_FAVICON, media_type="image/svg+xml")

    from .api import router

    app.include_router(router)
    from ..usage.api import router as usage_router

    app.include_router(usage_router)
    from ..agents.api import router as agents_router

    app.include_router(agents_router)
    from ..gateway.api import router as keys_router

    app.include_router(keys_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _csrf_problem(request: Request, session: Session, fresh: bool) -> str:
    origin = request.headers.get("origin")
    if origin and origin != "null":
        want = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin.rstrip("/") != want:
            return f"cross-site request refused (Origin {origin[:100]} is not this server)"
    elif origin == "null":
        return "cross-site request refused (opaque Origin)"
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return "cross-site request refused"
    token = request.headers.get(CSRF_HEADER, "")
    if fresh or not token or not hmac.compare_digest(token.encode(), session.csrf.encode()):
        return "missing or stale CSRF token: reload the page and try again"
    return ""


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
