"""On a phone the Chat page's session list and the Agents page's agent list are a drawer:
reachable from a toggle, by keyboard, with a visible close, and out of the way after a choice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser.helpers import ApiClient, ServeProcess
from tests.browser.test_chat_page import fake, serve  # noqa: F401  (the same server set-up: fixtures)
from tests.fakes.anthropic import AnthropicFake

PHONE = {"width": 390, "height": 844}


def drawer_open(page: Any) -> bool:
    return bool(page.evaluate("document.querySelector('#side').classList.contains('open')"))


IN_VIEW = """(sel) => { const n = document.querySelector(sel); if (!n) return false;
    const r = n.getBoundingClientRect(); const s = getComputedStyle(n);
    return s.visibility !== 'hidden' && s.display !== 'none' && r.left >= 0 && r.right <= innerWidth && r.width > 0; }"""


def in_view(page: Any, selector: str) -> bool:
    """The element is visible and wholly inside the viewport (a closed drawer is off to the left)."""
    return bool(page.evaluate(IN_VIEW, selector))


def wait_in_view(page: Any, selector: str) -> None:
    """Once the drawer has slid in."""
    page.wait_for_function(IN_VIEW, arg=selector)


def test_the_chat_list_is_a_drawer_on_a_phone(page: Any, serve: ServeProcess, fake: AnthropicFake,
                                              screenshots: Path) -> None:
    fake.reset()
    api = ApiClient(serve.url)
    first = api.post("/api/v1/chat", {"message": "Drawer chat one"}).json()["session_id"]
    api.post("/api/v1/chat", {"message": "Drawer chat two"})
    page.set_viewport_size(PHONE)
    page.goto(serve.url + "/chat")
    page.wait_for_selector(".side-item", state="attached")
    assert not in_view(page, "#side") and not in_view(page, "#new-chat")
    assert page.locator("#side-toggle").is_visible()
    assert page.locator("#side-toggle").get_attribute("aria-expanded") == "false"

    # keyboard: focus the toggle, Enter opens; focus lands in the drawer, the page behind is inert
    page.focus("#side-toggle")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'new-chat'")
    wait_in_view(page, "#side")
    assert drawer_open(page) and in_view(page, "#side-close")
    assert page.locator("#side-toggle").get_attribute("aria-expanded") == "true"
    assert page.evaluate("document.querySelector('.topbar').inert && document.querySelector('.chat').inert")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "session-search"
    # Tab goes round inside the drawer: past the last chat's Delete back to the close button, and back
    stops = page.evaluate("[...document.querySelectorAll('#side button, #side input, #side a[href]')].length")
    for _ in range(stops - 3):  # from the search box (the third stop) to the last one
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Delete Drawer chat one"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "side-close"
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Delete Drawer chat one"
    page.screenshot(path=str(screenshots / "chat-drawer-phone.png"))
    page.keyboard.press("Escape")
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'side-toggle'")
    assert not drawer_open(page)
    assert not page.evaluate("document.querySelector('.topbar').inert || document.querySelector('.chat').inert")

    # the visible close button, and a tap on the dimmed page, close it too
    page.click("#side-toggle")
    page.click("#side-close")
    assert not drawer_open(page)
    page.click("#side-toggle")
    page.mouse.click(370, 400)  # outside the drawer (at most 86% of the width)
    assert not drawer_open(page)

    # choosing a chat opens it and closes the drawer
    page.click("#side-toggle")
    page.click(".side-item .side-link >> text=Drawer chat one")
    page.wait_for_function(f"() => location.hash === '#{first}'")
    page.wait_for_selector(".msg-user >> text=Drawer chat one")
    assert not drawer_open(page)
    assert page.locator("#chat-title").inner_text() == "Drawer chat one"

    # New chat from the drawer
    page.click("#side-toggle")
    page.click("#new-chat")
    assert not drawer_open(page) and page.locator("#chat-title").inner_text() == "New chat"
    assert page.locator("#welcome").is_visible()

    # wider again while open: the list is a column of the page, the toggle is gone
    page.click("#side-toggle")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.wait_for_function("() => !document.querySelector('#side').classList.contains('open')")
    wait_in_view(page, "#side")
    assert not page.locator("#side-toggle").is_visible()
    assert not page.locator("#side-close").is_visible()
    assert not page.evaluate("document.querySelector('.topbar').inert")


def test_the_agent_list_is_a_drawer_on_a_phone(page: Any, serve: ServeProcess, screenshots: Path) -> None:
    api = ApiClient(serve.url)
    r = api.post("/api/v1/agents", {"name": "Drawer agent with a name long enough to be cut in the list"})
    assert r.status == 201, r
    page.set_viewport_size(PHONE)
    page.goto(serve.url + "/agents")
    page.wait_for_selector(".side-item", state="attached")
    assert not in_view(page, "#agents") and not in_view(page, "#new-agent")
    page.focus("#side-toggle")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'new-agent'")
    wait_in_view(page, "#agents")
    page.screenshot(path=str(screenshots / "agents-drawer-phone.png"))
    page.click(".side-item .side-link >> text=Drawer agent with a name")
    page.wait_for_function("() => document.querySelector('#f-name').value.startsWith('Drawer agent')")
    assert not drawer_open(page)
    assert page.evaluate("document.activeElement.id") == "side-toggle"
    # New agent from the drawer: the empty form, its name field focused
    page.click("#side-toggle")
    page.click("#new-agent")
    assert not drawer_open(page)
    assert page.locator("#form-title").inner_text() == "New agent"
    assert page.evaluate("document.activeElement.id") == "f-name"
