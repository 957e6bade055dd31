"""Sessions, CSRF tokens, trusted proxies and the cookie's flags.

A probe made 60,000 requests without a cookie and the server kept 60,000 fourteen-day
sessions (+24 MB). Now the server stores a session only at login: a visitor's cookie holds
a random id and the CSRF token is an HMAC of it, checked without any stored state.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from synapse.server.app import create_app
from synapse.server.auth import SessionStore, UserStore
from synapse.server.proxies import TrustedProxies
from synapse.server.security import local_path
from tests.browser.helpers import ApiClient, ServerThread, asgi_request

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> UserStore:
    store = UserStore(tmp_path_factory.mktemp("users") / "users.json")
    store.set("admin", PASSWORD)
    return store


@pytest.fixture(scope="module")
def loopback(users: UserStore) -> Iterator[ServerThread]:
    srv = ServerThread(create_app("127.0.0.1", users=users, trusted_proxies="")).start()
    yield srv
    srv.stop()


def sessions_of(srv: ServerThread) -> SessionStore:
    return srv.server.config.app.state.sessions


# --- no state for visitors ----------------------------------------------------------------------


def test_requests_without_a_cookie_store_nothing(loopback: ServerThread, synapse_env: Path) -> None:
    before = len(sessions_of(loopback))
    cookies = set()
    for i in range(600):
        r = ApiClient(loopback.url).get(("/api/session", "/settings/models", "/api/settings/model")[i % 3])
        assert r.status == 200
        cookies.add(r.headers["Set-Cookie"].split(";")[0])
    assert len(sessions_of(loopback)) == before == 0
    assert len(cookies) == 600  # every visitor got its own id (in its cookie, not in the server)
    assert ApiClient(loopback.url).get("/static/app.css").headers.get("Set-Cookie") is None


def test_a_visitor_token_works_without_a_stored_session(loopback: ServerThread, synapse_env: Path) -> None:
    api = ApiClient(loopback.url)
    token = api.refresh_csrf()
    again = api.get("/api/session").json()["csrf_token"]
    assert again == token  # derived from the cookie, the same on every page load
    assert "Set-Cookie" not in api.get("/api/session").headers  # nothing new to set
    assert api.put("/api/settings", {"prompt_cache_enabled": False}).status == 200
    assert len(sessions_of(loopback)) == 0
    r = api.put("/api/settings", {"prompt_cache_enabled": True}, headers={"X-CSRF-Token": token[:-2] + "xx"})
    assert r.status == 403 and r.json()["kind"] == "csrf"


def test_a_restart_keeps_tokens_and_another_data_folder_refuses_them(
    users: UserStore, synapse_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signing key lives in the data folder (csrf.key): a page open across a restart,
    or served by another worker, keeps working; a server of another folder refuses it."""
    first = create_app("127.0.0.1", users=users, trusted_proxies="")
    restarted = create_app("127.0.0.1", users=users, trusted_proxies="")
    key = synapse_env / "csrf.key"
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_text().strip()) == 64
    monkeypatch.setenv("SYNAPSE_DATA_DIR", str(synapse_env.parent / "elsewhere"))
    other = create_app("127.0.0.1", users=users, trusted_proxies="")
    monkeypatch.setenv("SYNAPSE_DATA_DIR", str(synapse_env))
    body = b'{"prompt_cache_enabled": true}'

    async def run() -> None:
        r = await asgi_request(first, "GET", "/api/session")
        cookie, token = r.all("set-cookie")[0].split(";")[0], r.json()["csrf_token"]
        hdrs = {"cookie": cookie, "x-csrf-token": token, "content-type": "application/json"}
        assert (await asgi_request(first, "PUT", "/api/settings", headers=hdrs, body=body)).status == 200
        assert (await asgi_request(restarted, "PUT", "/api/settings", headers=hdrs, body=body)).status == 200
        stale = await asgi_request(other, "PUT", "/api/settings", headers=hdrs, body=body)
        assert stale.status == 403 and stale.json() == {
            "detail": "missing or stale CSRF token: reload the page and try again", "kind": "csrf"}

    import asyncio

    asyncio.run(run())


def test_the_store_is_bounded_and_expires() -> None:
    store = SessionStore(max_sessions=3, ttl=0.2)
    made = [store.login(f"user{i}") for i in range(5)]
    assert len(store) == 3
    assert store.get(made[0].id) is None and store.get(made[1].id) is None  # the oldest went first
    assert store.get(made[4].id) is made[4]
    time.sleep(0.25)
    assert store.get(made[4].id) is None and len(store) == 2  # expired on read
    store.login("late")
    assert len(store) == 3  # two expired ones are still there...
    later = store.login("later")
    assert len(store) == 2  # ...until the store is full: then the expired ones go first
    assert store.get(later.id) is later
    visitor = store.anonymous()
    assert store.get(visitor.id) is None and len(store) == 2  # a visitor is never stored
    assert store.anonymous(visitor.id).csrf == visitor.csrf  # the same id, the same token
    assert store.anonymous("not a valid id").id != "not a valid id"


def test_login_rotates_the_id_and_logout_forgets_it(users: UserStore, synapse_env: Path) -> None:
    srv = ServerThread(create_app("0.0.0.0", users=users, trusted_proxies="")).start()
    try:
        api = ApiClient(srv.url)
        api.refresh_csrf()
        visitor_id = api.cookies["synapse_session"]
        r = api.post("/api/login", {"username": "admin", "password": PASSWORD})
        assert r.status == 200 and api.cookies["synapse_session"] != visitor_id
        assert len(sessions_of(srv)) == 1
        logged_in_id = api.cookies["synapse_session"]
        api.csrf = r.json()["csrf_token"]
        assert api.post("/api/logout").status == 200
        assert len(sessions_of(srv)) == 0 and api.cookies["synapse_session"] != logged_in_id
        thief = ApiClient(srv.url)
        thief.cookies["synapse_session"] = logged_in_id  # a copied cookie is dead after logout
        assert thief.get("/api/providers").status == 401
    finally:
        srv.stop()


# --- proxies, https and the cookie -----------------------------------------------------------------


def cookie_of(r: object) -> str:
    return next(v for k, v in getattr(r, "header_list") if k == "set-cookie")


async def test_the_cookie_is_secure_over_https(users: UserStore, synapse_env: Path) -> None:
    app = create_app("0.0.0.0", users=users, trusted_proxies="")
    direct_tls = await asgi_request(app, "GET", "/login", scheme="https", client=("203.0.113.9", 4000))
    assert direct_tls.status == 200 and "; Secure" in cookie_of(direct_tls)
    plain = await asgi_request(app, "GET", "/login", client=("203.0.113.9", 4000))
    cookie = cookie_of(plain)
    assert "; Secure" not in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie


async def test_forwarded_headers_count_only_from_a_trusted_proxy(users: UserStore, synapse_env: Path) -> None:
    forwarded = {"x-forwarded-proto": "https", "x-forwarded-for": "198.51.100.7", "host": "synapse.example.com"}
    untrusted = create_app("0.0.0.0", users=users, trusted_proxies="")
    r = await asgi_request(untrusted, "GET", "/login", headers=forwarded, client=("127.0.0.1", 4000))
    assert "; Secure" not in cookie_of(r)  # loopback is not trusted by default: any local process could send it
    trusted = create_app("0.0.0.0", users=users, trusted_proxies="127.0.0.1, 10.0.0.0/8")
    r = await asgi_request(trusted, "GET", "/login", headers=forwarded, client=("10.1.2.3", 4000))
    assert "; Secure" in cookie_of(r)
    r = await asgi_request(trusted, "GET", "/login", headers=forwarded, client=("192.0.2.1", 4000))
    assert "; Secure" not in cookie_of(r)  # a peer outside the list


async def test_a_loopback_server_behind_a_proxy_needs_a_login(users: UserStore, synapse_env: Path) -> None:
    app = create_app("127.0.0.1", users=users, trusted_proxies="127.0.0.1")
    proxied = {"x-forwarded-for": "198.51.100.7", "x-forwarded-proto": "https", "host": "synapse.example.com"}
    r = await asgi_request(app, "GET", "/api/providers", headers=proxied)
    assert r.status == 401 and r.json() == {"detail": "log in first", "kind": "login"}
    r = await asgi_request(app, "GET", "/api/session", headers=proxied)
    assert r.json()["login_required"] is True
    # the public Host name is fine through the proxy; directly, only loopback names are
    page = await asgi_request(app, "GET", "/settings/usage", headers=proxied)
    assert page.status == 303 and page.headers["location"] == "/login?next=%2Fsettings%2Fusage"
    direct = await asgi_request(app, "GET", "/api/providers", headers={"host": "synapse.example.com"})
    assert direct.status == 400 and "loopback" in direct.json()["detail"]
    local = await asgi_request(app, "GET", "/api/session")
    assert local.status == 200 and local.json()["login_required"] is False


async def test_origin_is_compared_with_the_forwarded_scheme(users: UserStore, synapse_env: Path) -> None:
    app = create_app("0.0.0.0", users=users, trusted_proxies="10.0.0.1")
    proxied = {"x-forwarded-for": "198.51.100.7", "x-forwarded-proto": "https", "host": "synapse.example.com"}
    first = await asgi_request(app, "GET", "/api/session", headers=proxied, client=("10.0.0.1", 1))
    cookie = cookie_of(first).split(";")[0]
    body = b'{"username": "admin", "password": "correct horse battery"}'
    hdrs = {**proxied, "cookie": cookie, "x-csrf-token": first.json()["csrf_token"], "content-type": "application/json"}
    r = await asgi_request(app, "POST", "/api/login", headers={**hdrs, "origin": "https://synapse.example.com"},
                           body=body, client=("10.0.0.1", 1))
    assert r.status == 200 and "; Secure" in cookie_of(r)
    r = await asgi_request(app, "POST", "/api/login", headers={**hdrs, "origin": "http://synapse.example.com"},
                           body=body, client=("10.0.0.1", 1))
    assert r.status == 403 and "cross-site" in r.json()["detail"]


def test_trusted_proxies_parsing_and_resolution() -> None:
    p = TrustedProxies.parse("127.0.0.1, 10.0.0.0/8 ,::1")
    assert p.trusts("10.9.8.7") and p.trusts("::1") and not p.trusts("11.0.0.1") and not p.trusts("garbage")
    # right to left: the last hop a trusted proxy did not add is the client
    f = p.resolve("10.0.0.2", "http", "6.6.6.6, 198.51.100.7, 10.0.0.5", "https")
    assert (f.client, f.scheme, f.proxied) == ("198.51.100.7", "https", True)
    assert p.resolve("10.0.0.2", "http", "[2001:db8::1]:443", None).client == "2001:db8::1"
    assert p.resolve("10.0.0.2", "http", "198.51.100.7:5555", "ftp").scheme == "http"
    assert p.resolve("203.0.113.1", "http", "1.2.3.4", "https") == p.resolve("203.0.113.1", "http", None, None)
    assert not TrustedProxies.parse("") and not TrustedProxies.parse(None)
    assert TrustedProxies.parse(["192.168.0.0/16"]).trusts("192.168.1.1")
    with pytest.raises(ValueError, match=r"trusted_proxies: 'proxy.local' is not an IP address or CIDR"):
        TrustedProxies.parse("127.0.0.1, proxy.local")
    with pytest.raises(ValueError, match="comma-separated list"):
        TrustedProxies.parse(5)


def test_serve_refuses_a_malformed_trusted_proxies(run_synapse, synapse_env: Path) -> None:  # type: ignore[no-untyped-def]
    synapse_env.mkdir(parents=True, exist_ok=True)
    (synapse_env / "settings.json").write_text('{"trusted_proxies": "10.0.0.0/8, nginx"}')
    r = run_synapse("serve", "--port", "0")
    assert r.code == 2 and "trusted_proxies: 'nginx' is not an IP address or CIDR" in r.err
    assert "Traceback" not in r.err
    (synapse_env / "settings.json").write_text('{"trusted_proxies": "127.0.0.1"}')
    r = run_synapse("serve", "--port", "0")
    assert r.code == 2 and "requests through a proxy need a login" in r.err


# --- where a login lands -------------------------------------------------------------------------


@pytest.mark.parametrize(("asked", "lands"), [
    ("/settings/usage?since=7d", "/settings/usage?since=7d"),
    ("/settings/models", "/settings/models"),
    (None, "/settings/models"),
    ("", "/settings/models"),
    ("https://evil.example/", "/settings/models"),
    ("//evil.example/x", "/settings/models"),
    ("/\\evil.example", "/settings/models"),
    ("/\t/evil.example", "/settings/models"),
    ("javascript:alert(1)", "/settings/models"),
    ("/login?next=/x", "/settings/models"),
    ("/api/providers", "/settings/models"),
    ("settings/usage", "/settings/models"),
])
def test_only_local_pages_are_returned_to(asked: str | None, lands: str) -> None:
    assert local_path(asked) == lands


def test_after_login_the_user_lands_on_the_page_asked_for(users: UserStore, synapse_env: Path) -> None:
    srv = ServerThread(create_app("0.0.0.0", users=users, trusted_proxies="")).start()
    try:
        api = ApiClient(srv.url)
        r = api.get("/settings/usage?since=7d")
        assert r.status == 303 and r.headers["Location"] == "/login?next=%2Fsettings%2Fusage%3Fsince%3D7d"
        page = api.get(r.headers["Location"])
        assert page.status == 200 and 'data-next="/settings/usage?since=7d"' in page.text
        evil = api.get("/login?next=%2F%2Fevil.example")
        assert 'data-next="/settings/models"' in evil.text
        quoted = api.get('/login?next=/settings/usage%22%3E%3Cscript%3E')
        assert "<script>" not in quoted.text and 'data-next="/settings/usage&#34;&gt;&lt;script&gt;"' in quoted.text
        assert api.get("/nope").status == 303  # unknown pages need the login too (no probing)
        api.refresh_csrf()
        assert api.post("/api/login", {"username": "admin", "password": PASSWORD}).status == 200
        r = api.get("/login?next=/settings/usage")
        assert r.status == 303 and r.headers["Location"] == "/settings/usage"
    finally:
        srv.stop()
