"""Settings → API Keys in a real browser, against the real `synapse serve` with the OpenAI
fake behind its /v1 gateway: make a key (shown once, copied with the button), use it
with the official SDK, see its spend and last use, revoke it, and watch it stop working."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.helpers import ApiClient, ServeProcess


@pytest.fixture(scope="module")
def world() -> Iterator[dict[str, Any]]:
    import json

    from tests.fakes.openai import OpenAIFake

    root = Path(tempfile.mkdtemp(prefix="synapse-keys-page-"))
    fake = OpenAIFake().start()
    data = root / "data"
    data.mkdir()
    (data / "settings.json").write_text(json.dumps(fake.settings()))
    server = ServeProcess(data, log_path=root / "serve.log").start()
    try:
        yield {"url": server.url, "fake": fake, "server": server}
    finally:
        server.stop()
        fake.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_make_use_and_revoke_a_key(world: dict[str, Any], page: Any, screenshots: Path) -> None:
    import openai as openai_sdk

    url = world["url"]
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    page.goto(url + "/settings/keys")
    page.wait_for_selector("body[data-loaded]")
    assert page.locator("#empty").is_visible()
    assert page.locator("nav a[aria-current=page]").inner_text() == "API Keys"

    page.fill("#name", "bad name")
    page.click("#create")
    page.wait_for_selector("#name[aria-invalid=true]")
    assert "key name" in page.locator("#create-msg").inner_text()

    page.fill("#name", "laptop")
    page.fill("#models", "gpt-*")
    page.fill("#budget", "5")
    page.fill("#rpm", "600")
    page.click("#create")
    page.wait_for_selector("#secret:not([hidden])")
    key = page.input_value("#secret-value")
    assert key.startswith("sk-syn-") and len(key) > 40
    page.click("#copy")
    page.wait_for_function("() => document.querySelector('#copy-msg').textContent.length > 0")
    assert page.evaluate("navigator.clipboard.readText()") == key
    row = page.locator('tr[data-name="laptop"]')
    assert row.locator('[data-col="prefix"]').inner_text() == key[:12] + "…"
    assert row.locator('[data-col="models"]').inner_text() == "gpt-*"
    assert row.locator('[data-col="budget"]').inner_text() == "$5.0000"
    assert row.locator('[data-col="rpm"]').inner_text() == "600/min"
    assert row.locator('[data-col="status"]').inner_text() == "active"
    page.screenshot(path=str(screenshots / "keys-created.png"), full_page=True)

    client = openai_sdk.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])
    assert reply.choices[0].message.content == "You said: hello"

    page.reload()
    page.wait_for_selector("body[data-loaded]")
    assert key not in page.content()  # shown once: never again
    row = page.locator('tr[data-name="laptop"]')
    assert row.locator('[data-col="last_used"]').inner_text() != "—"
    assert row.locator('[data-col="spend"]').inner_text().startswith("$0.0")
    assert float(row.locator('[data-col="spend"]').inner_text()[1:]) > 0

    button = row.get_by_role("button", name="Revoke laptop")
    button.click()
    assert button.inner_text() == "Revoke: sure?"
    button.click()
    page.wait_for_selector('tr[data-name="laptop"] .status-revoked')
    page.screenshot(path=str(screenshots / "keys-revoked.png"), full_page=True)
    with pytest.raises(openai_sdk.AuthenticationError):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])


def test_the_api_never_returns_a_key_after_it_was_made(world: dict[str, Any]) -> None:
    api = ApiClient(world["url"])
    made = api.post("/api/keys", {"name": "api-made", "expires_days": "2"})
    assert made.status == 201, made
    key = made.json()["key"]
    listed = api.get("/api/keys")
    assert key not in listed.text and any(k["name"] == "api-made" and k["expires"] for k in listed.json())
    assert api.post("/api/keys", {"name": "x", "budget_usd": "lots"}).json()["field"] == "budget_usd"
    assert api.post("/api/keys", {"name": "x", "rpm": 1.5}).json()["field"] == "rpm"
    assert api.post("/api/keys", {"name": "x", "rpm": 0}).json()["field"] == "rpm"
    limited = api.post("/api/keys", {"name": "limited", "rpm": 2})
    assert limited.status == 201 and limited.json()["info"]["rpm"] == 2
    assert api.post("/api/keys", {"name": "api-made"}).status == 400  # names are unique
    assert api.delete("/api/keys/nobody").status == 404
    assert ApiClient(world["url"], origin=False).post("/api/keys", {"name": "csrf"}, csrf=False).status == 403
