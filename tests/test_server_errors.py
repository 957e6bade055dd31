"""One error shape on /api (`{"detail": "<message>", ...}`), and a 404 page for browsers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synapse.server.app import create_app
from tests.browser.helpers import ApiClient, ServerThread


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    srv = ServerThread(create_app("127.0.0.1", trusted_proxies="")).start()
    yield srv
    srv.stop()


@pytest.fixture
def api(server: ServerThread, synapse_env: Path) -> ApiClient:
    return ApiClient(server.url)


BAD_REQUESTS: list[tuple[str, str, Any, int]] = [
    ("GET", "/api/nope", None, 404),
    ("DELETE", "/api/session", None, 405),
    ("GET", "/api/providers/nope", None, 404),
    ("PUT", "/api/providers/nope", {}, 404),
    ("POST", "/api/providers/openai/verify", None, 400),
    ("PUT", "/api/providers/openai", {"openai_key": "has space"}, 400),
    ("PUT", "/api/settings/model", {"model": "gpt-5"}, 400),
    ("PUT", "/api/settings", {"mode": "turbo"}, 400),
    ("GET", "/api/usage?since=yesterday-ish", None, 400),
    ("GET", "/api/usage?recent=-1", None, 422),
    ("GET", "/api/usage/breakdown/colour", None, 404),
    ("POST", "/api/login", {"username": "x"}, 400),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), BAD_REQUESTS, ids=[f"{m} {p}" for m, p, _, _ in BAD_REQUESTS])
def test_every_api_error_is_a_detail_message(api: ApiClient, method: str, path: str, body: Any, status: int) -> None:
    r = api.request(method, path, body)
    assert r.status == status, r
    data = r.json()
    assert isinstance(data.get("detail"), str) and data["detail"], data
    assert "error" not in data
    assert r.headers["Content-Type"] == "application/json"


def test_api_error_messages_say_what_is_wrong(api: ApiClient) -> None:
    assert api.get("/api/nope").json() == {"detail": "no such API endpoint: /api/nope"}
    assert api.delete("/api/session").json() == {"detail": "DELETE is not allowed on /api/session"}
    r = api.get("/api/usage?recent=-1").json()
    assert r == {"detail": "recent: input should be greater than or equal to 0", "field": "recent"}
    r = api.post("/api/providers/openai/verify").json()
    assert r["detail"] == "OpenAI is not set up yet: fill in its fields and Save" and r["id"] == "openai"


@pytest.mark.parametrize("path", ["/nope", "/docs", "/redoc", "/openapi.json", "/settings/nope"])
def test_a_browser_gets_a_404_page(api: ApiClient, path: str) -> None:
    r = api.get(path, headers={"Accept": "text/html"})
    assert r.status == 404 and r.headers["Content-Type"].startswith("text/html")
    assert "<h1>This page does not exist</h1>" in r.text and f"<code class=\"not-found-path\">{path}</code>" in r.text
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert 'href="/settings/models"' in r.text and '<meta name="csrf-token"' in r.text


def test_the_404_page_escapes_the_path(api: ApiClient) -> None:
    r = api.get("/%3Cscript%3Ealert(1)%3C/script%3E")
    assert r.status == 404 and "<script>alert" not in r.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text


def test_a_missing_static_file_is_a_404(api: ApiClient) -> None:
    assert api.get("/static/nope.js").status == 404
