"""The security layer in front of every page and /api call (pure ASGI, no per-request task).

For each request, in order:

1. the client and scheme are resolved (X-Forwarded-* only from `trusted_proxies`);
2. on loopback, the Host header must be a loopback name (no DNS rebinding), unless a
   trusted proxy forwarded the request;
3. the cookie's session is looked up; a visitor without one gets a fresh random id
   that is never stored (see `auth.SessionStore`);
4. a login is needed off loopback, and for any request a proxy forwarded: /api answers
   401 `{"detail", "kind": "login"}`, a page redirects to /login?next=<the page>;
5. a state-changing request needs the CSRF token and, when sent, an Origin equal to
   this server (4 and 5 are skipped for a program calling /api/v1: `agents.access`
   judges those, by API key);
6. every answer gets the security headers, and the cookie when it is new or changed
   (HttpOnly, SameSite=Strict, and Secure when the request came over https).

Routes read `request.state.session` (replace it to log in or out), `.client` (the
resolved address) and `.login_required` (for this request).
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import quote, urlsplit

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request

from ..agents.access import API_PREFIX, is_api_client, require_access
from .auth import CSRF_HEADER, SESSION_COOKIE, Session, SessionStore, is_loopback
from .proxies import TrustedProxies

__all__ = ["PUBLIC", "Security", "local_path"]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Reachable without a login when one is required.
PUBLIC = ("/login", "/api/session", "/api/login", "/static/", "/favicon.ico")
#: Where a login lands when it was not sent from a page.
HOME = "/settings/models"
_NO_COOKIE = ("/static/", "/favicon.ico")
_CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)

Scope = dict[str, Any]


class Security:
    def __init__(
        self, app: Any, *, loopback: bool, login_required: bool, sessions: SessionStore, proxies: TrustedProxies
    ) -> None:
        self.app = app
        self.loopback = loopback
        self.login_required = login_required
        self.sessions = sessions
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        path: str = scope["path"]
        peer = scope.get("client") or ("", 0)
        fwd = self.proxies.resolve(peer[0], scope.get("scheme", "http"),
                                   headers.get("x-forwarded-for"), headers.get("x-forwarded-proto"))
        if fwd.proxied:
            scope["client"] = (fwd.client, peer[1])
            scope["scheme"] = fwd.scheme
        host = headers.get("host", "")
        if self.loopback and not fwd.proxied and not is_loopback(urlsplit("//" + host).hostname or ""):
            await _json(send, 400, f"this server answers only to loopback names, not Host {host[:100]!r}")
            return

        cookie_id = _cookie(headers.get("cookie", ""), SESSION_COOKIE)
        session = await self.sessions.aget(cookie_id)
        if session is None:
            session = self.sessions.anonymous(cookie_id)
        fresh = session.id != cookie_id
        login_required = self.login_required or fwd.proxied
        state = scope.setdefault("state", {})
        state.update(session=session, client=fwd.client, login_required=login_required)
        request = Request(scope) if path.startswith(API_PREFIX) else None
        program = request is not None and is_api_client(request)
        finish = _Finisher(scope, send, session, fresh and not program)
        if program:
            try:  # the key is checked before the body (up to BODY_LIMITS["/api/v1/"]) is read
                require_access(request)  # type: ignore[arg-type]
            except HTTPException as exc:
                await _json(finish, exc.status_code, str(exc.detail))
                return
            await self.app(scope, receive, finish)
            return

        if login_required and session.user is None and not path.startswith(PUBLIC):
            if path.startswith("/api/"):
                await _json(finish, 401, "log in first", kind="login")
            else:
                target = "/login"
                if scope["method"] in ("GET", "HEAD"):
                    query = scope.get("query_string", b"").decode("latin-1")
                    page = local_path(path + ("?" + query if query else ""), "")
                    if page and page != HOME:
                        target += "?next=" + quote(page, safe="")
                await _redirect(finish, target)
            return

        if scope["method"] not in _SAFE_METHODS:
            problem = _csrf_problem(headers, scope.get("scheme", "http"), session, fresh)
            if problem:
                await _json(finish, 403, problem, kind="csrf")
                return
        await self.app(scope, receive, finish)


class _Finisher:
    """The `send` the app gets: adds the security headers and the cookie to the response start."""

    def __init__(self, scope: Scope, send: Any, session: Session, fresh: bool) -> None:
        self.scope, self.send, self.session, self.fresh = scope, send, session, fresh

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = self._headers(list(message.get("headers", ())))
        await self.send(message)

    def _headers(self, out: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        path: str = self.scope["path"]
        have = {name.lower() for name, _ in out}

        def default(name: bytes, value: bytes) -> None:
            if name not in have:
                out.append((name, value))

        default(b"x-content-type-options", b"nosniff")
        default(b"referrer-policy", b"no-referrer")
        default(b"x-frame-options", b"DENY")
        if path.startswith("/api/"):
            out[:] = [(n, v) for n, v in out if n.lower() != b"cache-control"]
            out.append((b"cache-control", b"no-store"))
        elif not path.startswith("/static/"):
            default(b"content-security-policy", _CSP)
            out[:] = [(n, v) for n, v in out if n.lower() != b"cache-control"]
            out.append((b"cache-control", b"no-store"))
        current: Session = self.scope["state"].get("session", self.session)
        changed = current is not self.session
        if changed or (self.fresh and not path.startswith(_NO_COOKIE)):
            out.append((b"set-cookie", self._cookie(current).encode("latin-1")))
        return out

    def _cookie(self, session: Session) -> str:
        from .auth import SESSION_TTL

        cookie = f"{SESSION_COOKIE}={session.id}; Max-Age={SESSION_TTL}; Path=/; HttpOnly; SameSite=strict"
        if self.scope.get("scheme") == "https":
            cookie += "; Secure"
        return cookie


def local_path(value: str | None, default: str = HOME) -> str:
    """`value` when it is a path on this server worth returning to after a login, else `default`.

    Refuses anything that leaves the site: a scheme, `//host`, backslashes (browsers read
    `/\\host` as `//host`), control characters; and /login itself or an /api address.
    """
    if not value or len(value) > 2000 or not value.startswith("/") or value.startswith("//"):
        return default
    if "\\" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path == "/login" or parts.path.startswith(("/api/", "/static/")):
        return default
    return value


def _csrf_problem(headers: dict[str, str], scheme: str, session: Session, fresh: bool) -> str:
    origin = headers.get("origin")
    if origin == "null":
        return "cross-site request refused (opaque Origin)"
    if origin:
        want = f"{scheme}://{headers.get('host', '')}"
        if origin.rstrip("/") != want:
            return f"cross-site request refused (Origin {origin[:100]} is not this server)"
    if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return "cross-site request refused"
    token = headers.get(CSRF_HEADER, "")
    if fresh or not token or not hmac.compare_digest(token.encode("utf-8", "replace"), session.csrf.encode()):
        return "missing or stale CSRF token: reload the page and try again"
    return ""


def _headers(scope: Scope) -> dict[str, str]:
    """The request headers we look at, lower-cased names; repeated ones joined with a comma."""
    out: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        if key in out:
            out[key] = out[key] + ("; " if key == "cookie" else ", ") + text
        else:
            out[key] = text
    return out


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return None


async def _json(send: Any, status: int, detail: str, **extra: Any) -> None:
    body = orjson.dumps({"detail": detail, **extra})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Any, location: str) -> None:
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
