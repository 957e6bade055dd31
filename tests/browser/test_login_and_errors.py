"""Browser: the login page off loopback, the 404 page, and a malformed settings.json shown on the page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synapse.server.auth import UserStore
from tests.browser.helpers import ServeProcess


@pytest.fixture(scope="module")
def public_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    from tests.browser.conftest import _require_browser

    _require_browser()
    data = tmp_path_factory.mktemp("public") / "data"
    data.mkdir()
    UserStore(data / "users.json").set("admin", "correct horse battery")
    server = ServeProcess(data, host="0.0.0.0").start()
    yield server
    server.stop()


def test_login_with_the_keyboard(public_server: ServeProcess, page: Any, screenshots: Path) -> None:
    page.goto(public_server.url + "/settings/models")
    assert page.url.endswith("/login")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_label("Password").press("Enter")
    page.wait_for_function("() => document.querySelector('#login-msg').textContent.length > 0")
    assert page.locator("#login-msg").inner_text() == "wrong username or password"
    page.screenshot(path=str(screenshots / "login-failed.png"))
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_label("Password").press("Enter")
    page.wait_for_url("**/settings/models")
    page.wait_for_selector("#card-anthropic")
    assert page.locator("#account-name").inner_text() == "admin"
    cookies = {c["name"]: c for c in page.context.cookies(public_server.url)}
    assert cookies["synapse_session"]["httpOnly"] is True and cookies["synapse_session"]["sameSite"] == "Strict"
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login")


def log_in(page: Any, server: ServeProcess) -> None:
    """A fresh login from the login page (no cookie before), landing on Models."""
    page.context.clear_cookies()
    page.goto(server.url + "/login")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/settings/models")


def test_login_returns_to_the_page_asked_for(public_server: ServeProcess, page: Any, screenshots: Path) -> None:
    page.context.clear_cookies()
    page.goto(public_server.url + "/settings/usage?since=7d")
    assert page.url == public_server.url + "/login?next=%2Fsettings%2Fusage%3Fsince%3D7d"
    page.wait_for_selector("#login-form")
    page.screenshot(path=str(screenshots / "login-1280.png"))
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/settings/usage?since=7d")
    page.wait_for_selector("body[data-loaded]")
    assert page.locator("#p-7d").is_checked()
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login")


def test_a_lost_login_comes_back_to_the_same_page(public_server: ServeProcess, page: Any) -> None:
    """The page's API call gets a 401 (the server restarted, the session expired): to /login and back."""
    log_in(page, public_server)
    page.goto(public_server.url + "/settings/usage?since=24h")
    page.wait_for_selector("body[data-loaded]")
    page.context.clear_cookies()  # as if the session ended
    page.locator('label[for="p-all"]').click()
    page.wait_for_url("**/login?next=**")
    assert page.url.endswith("/login?next=%2Fsettings%2Fusage%3Fsince%3Dall")


def test_the_404_page(public_server: ServeProcess, page: Any, screenshots: Path) -> None:
    log_in(page, public_server)
    for path in ("/docs", "/no/such/page"):
        response = page.goto(public_server.url + path)
        assert response is not None and response.status == 404
        assert page.get_by_role("heading", level=1).inner_text() == "This page does not exist"
        assert page.locator(".not-found-path").inner_text() == path
    assert page.locator("#account-name").inner_text() == "admin"  # the usual top bar, signed in
    page.screenshot(path=str(screenshots / "not-found-1280.png"))
    page.get_by_role("link", name="Go to Usage").click()
    page.wait_for_url("**/settings/usage")


def test_malformed_settings_file_is_shown_not_overwritten(tmp_path: Path, page: Any, screenshots: Path) -> None:
    from tests.browser.conftest import _require_browser

    _require_browser()
    data = tmp_path / "data"
    data.mkdir()
    bad = '{"model": "gpt-5",,}\n'
    (data / "settings.json").write_text(bad)
    server = ServeProcess(data).start()
    try:
        page.goto(server.url + "/settings/models")
        banner = page.locator("#banner")
        banner.wait_for()
        text = banner.inner_text()
        assert "settings.json: line 1, column 19" in text and "will not overwrite" in text
        assert text.startswith("Synapse cannot read its settings file.")
        assert not page.locator(".providers").is_visible() and not page.locator(".general").is_visible()
        page.screenshot(path=str(screenshots / "models-settings-error.png"))
        assert (data / "settings.json").read_text() == bad
        # fixing the file brings the page back without a reload
        (data / "settings.json").write_text('{"model": "gpt-5"}\n')
        page.wait_for_selector("#card-anthropic", state="visible", timeout=10_000)
        assert not banner.is_visible()
        bad = '{"model": "gpt-5"}\n'
    finally:
        server.stop()
    assert (data / "settings.json").read_text() == bad
