"""Settings → Usage, server side: the page route, its static files, the nav between the
settings pages, and the `ledger` overview the page's empty state uses (report() and
GET /api/usage). The page itself is tested in a browser: tests/browser/test_usage_page.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from synapse import settings as settings_mod
from synapse.server.app import create_app
from synapse.server.auth import UserStore
from synapse.usage.report import report
from tests.browser.helpers import ApiClient, ServerThread
from tests.test_usage_report import NOW, seed

pytestmark = pytest.mark.database

KEY = "sk-ant-api03-usagePageSECRET0123456789abcdQRST"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    srv = ServerThread(create_app("127.0.0.1")).start()
    yield srv
    srv.stop()


@pytest.fixture
def api(server: ServerThread, synapse_env: Path) -> ApiClient:
    return ApiClient(server.url)


def test_the_usage_page_is_served_with_the_page_security_headers(api: ApiClient) -> None:
    r = api.get("/settings/usage")
    assert r.status == 200 and r.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["Cache-Control"] == "no-store"
    page = r.text
    assert "{{csrf}}" not in page and re.search(r'<meta name="csrf-token" content="[^"]{16,}">', page)
    assert '<script src="/static/usage.js" defer></script>' in page
    assert '<link rel="stylesheet" href="/static/usage.css">' in page
    assert "<script>" not in page and " style=" not in page  # the CSP allows neither inline
    for path in ("/static/usage.js", "/static/usage.css", "/static/app.css"):
        assert api.get(path).status == 200, path


@pytest.mark.parametrize(("path", "current", "other"), [
    ("/settings/usage", "/settings/usage", "/settings/models"),
    ("/settings/models", "/settings/models", "/settings/usage"),
])
def test_both_settings_pages_have_the_nav_with_the_current_page_marked(api: ApiClient, path: str, current: str,
                                                                      other: str) -> None:
    page = api.get(path).text
    nav = re.search(r'<nav aria-label="Main".*?</nav>', page, re.S)
    assert nav, path
    links = dict(re.findall(r'<a class="tab[^"]*" href="([^"]+)"([^>]*)>', nav.group(0)))
    assert set(links) == {current, other, "/chat", "/agents", "/memory", "/settings/keys"}  # Chat, Agents, Memory first
    assert 'aria-current="page"' in links[current]
    assert not any("aria-current" in attrs for href, attrs in links.items() if href != current)


def test_the_page_needs_a_login_off_loopback(synapse_env: Path, tmp_path: Path) -> None:
    srv = ServerThread(create_app("0.0.0.0", users=UserStore(tmp_path / "users.json"))).start()
    try:
        api = ApiClient(srv.url)
        r = api.get("/settings/usage")
        assert r.status == 303 and r.headers["location"] == "/login?next=%2Fsettings%2Fusage"
        assert api.get("/api/usage").status == 401
    finally:
        srv.stop()


def test_no_key_in_the_page(api: ApiClient, synapse_env: Path) -> None:
    settings_mod.update({"anthropic_key": KEY})
    for path in ("/settings/usage", "/static/usage.js", "/api/usage?since=all"):
        body = api.get(path).text
        assert KEY not in body and KEY[-8:] not in body, path


# --- the ledger overview (for the empty state) ---------------------------------------------------


def test_ledger_overview_of_an_empty_ledger(synapse_env: Path, api: ApiClient) -> None:
    assert report()["ledger"] == {"calls": 0, "first": None, "last": None}
    data = api.get("/api/usage").json()
    assert data["ledger"] == {"calls": 0, "first": None, "last": None}
    assert data["totals"]["calls"] == 0


def test_ledger_overview_ignores_the_period(synapse_env: Path, api: ApiClient) -> None:
    t = seed()  # six calls, one of them 40 days old

    def iso(ts: float) -> str:
        return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")

    expected = {"calls": 6, "first": iso(t["old"]), "last": iso(max(t.values()))}
    assert report(since="24h")["ledger"] == expected
    assert report(since="2000-01-01", until="2000-01-02")["ledger"] == expected
    data = api.get("/api/usage?since=2000-01-01&until=2000-01-02").json()
    assert data["totals"]["calls"] == 0 and data["ledger"] == expected  # "no calls in this period"
    assert max(t.values()) <= NOW


@pytest.mark.parametrize(("value", "shown"), [
    (0.0, "$0.00"),
    (0.000042, "$0.000042"),
    (0.00004249, "$0.000042"),
    (0.0012, "$0.0012"),
    (0.004, "$0.004"),
    (0.0123, "$0.0123"),
    (12.3456, "$12.3456"),
    (1234.5, "$1,234.50"),
    (-0.0011, "-$0.0011"),
])
def test_money_shows_significant_digits_below_a_cent(value: float, shown: str) -> None:
    from synapse.usage.report import cost_label, money

    assert money(value) == shown
    assert cost_label(value, 2) == f"{shown} + price unknown for 2 calls"
