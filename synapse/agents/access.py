"""Who may use REST /api/v1: one swappable check, so API keys plug in without touching routes.

    on loopback, with no API keys configured      open (like the pages)
    a logged-in browser session                   allowed (the pages; CSRF still applies)
    Authorization: Bearer <key>                   a key of the gateway's table (synapse/gateway/keys.py):
                                                  valid, not revoked or expired, budget not spent (429);
                                                  its model patterns and its name go with the turn
    anything else                                 401 {"detail": ...}

`is_api_client` tells the web app's security middleware which /api/v1 requests come
from programs rather than the pages: those skip the login redirect and the CSRF
token (they carry no cookie a cross-site page could ride on) and are judged here.
A browser request from another site is never one: it carries an Origin or
Sec-Fetch-Site that says so.
"""

from __future__ import annotations

from fastapi import HTTPException, Request

__all__ = ["is_api_client", "require_access"]

API_PREFIX = "/api/v1/"
SESSION_COOKIE = "synapse_session"


def _keys_configured() -> bool:
    from ..gateway.keys import any_keys

    return any_keys()


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None


def is_api_client(request: Request) -> bool:
    """An /api/v1 request from a program (see the module docstring)."""
    if not request.url.path.startswith(API_PREFIX):
        return False
    if _bearer(request) is not None:
        return True
    if request.cookies.get(SESSION_COOKIE):
        return False
    if request.headers.get("origin") or request.headers.get("sec-fetch-site", "none") not in ("none", "same-origin"):
        return False
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        # A browser cannot send this cross-site without a CORS preflight, which Synapse never grants.
        return request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"
    return True


def _login_required(request: Request) -> bool:
    """For this request: off loopback, or (on loopback) when a trusted proxy forwarded it."""
    per_request = getattr(request.state, "login_required", None)
    return bool(request.app.state.login_required if per_request is None else per_request)


def require_access(request: Request) -> None:
    """FastAPI dependency of every /api/v1 route. A valid key is left on `request.state.api_key`."""
    key = _bearer(request)
    if key is not None:
        from ..gateway.keys import KeyRejected, check

        try:
            info = check({"authorization": f"Bearer {key}"})
        except KeyRejected as exc:
            if not _keys_configured() and not _login_required(request):
                return  # loopback with no keys at all: open, a stray key changes nothing
            raise HTTPException(401, str(exc)) from None
        if info.over_budget():
            raise HTTPException(429, f"the API key {info.name!r} has spent its budget of ${info.budget_usd:.2f}: "
                                     "raise it or make a new key")
        request.state.api_key = info
        return
    if not is_api_client(request):
        return  # the pages: the middleware has checked the login and the CSRF token
    if not _login_required(request) and not _keys_configured():
        return
    raise HTTPException(401, "this API needs an API key: send Authorization: Bearer <key>")
