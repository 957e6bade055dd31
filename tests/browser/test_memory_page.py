"""The Memory page and the Chat page's memory line in Chromium, against the real
`synapse serve` (bundled embedding model) and the Anthropic fake."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.browser.helpers import ApiClient, ServeProcess
from tests.browser.test_chat_page import fake, serve  # noqa: F401  (the same server set-up: fixtures)
from tests.fakes.anthropic import AnthropicFake
from tests.fakes.base import FakeReply

XSS = '<img src=x onerror="window.__xss=1">The user writes <script>window.__xss=2</script> HTML.'


@pytest.fixture(scope="module")
def agent(serve: ServeProcess) -> dict[str, Any]:
    api = ApiClient(serve.url)
    r = api.post("/api/v1/agents", {"name": "Butler", "memory": True, "system_prompt": "Serve well."})
    assert r.status == 201, r
    spec = r.json()
    base = f"/api/v1/agents/{spec['id']}/memories"
    assert api.post(base, {"texts": [
        "The user's sister Claire lives in Lyon.", "The user is allergic to peanuts.",
        "The user's cat Biscuit is twelve years old."]}).status == 201
    return spec


def open_memory(page: Any, serve: ServeProcess, agent: dict[str, Any]) -> None:
    page.goto(f"{serve.url}/memory#{agent['id']}")
    page.wait_for_selector("#memories .memory")


def texts(page: Any) -> list[str]:
    return page.locator("#memories .memory-text").all_inner_texts()


def test_the_memory_page_lists_searches_edits_and_deletes(page: Any, serve: ServeProcess, agent: dict[str, Any],
                                                        screenshots: Path) -> None:
    open_memory(page, serve, agent)
    assert page.locator("nav a[aria-current=page]").inner_text() == "Memory"
    assert page.locator("#scope-title").inner_text() == "Butler’s memories"
    assert sorted(texts(page)) == sorted(["The user's sister Claire lives in Lyon.", "The user is allergic to peanuts.",
                                          "The user's cat Biscuit is twelve years old."])
    assert page.locator("#scopes .current .t").inner_text() == "Butler"
    page.screenshot(path=str(screenshots / "memory-page.png"))

    # search by meaning: no word in common with the answer
    page.fill("#search", "which foods should I avoid")
    page.wait_for_function("() => document.querySelector('#memories .memory-text')?.textContent.includes('peanuts')")
    assert texts(page)[0] == "The user is allergic to peanuts."
    # by words alone
    page.select_option("#search-mode", "keyword")
    page.fill("#search", "Biscuit")
    page.wait_for_function("() => document.querySelectorAll('#memories .memory').length === 1")
    assert texts(page) == ["The user's cat Biscuit is twelve years old."]
    page.screenshot(path=str(screenshots / "memory-search.png"))
    page.fill("#search", "")
    page.wait_for_function("() => document.querySelectorAll('#memories .memory').length === 3")

    # edit in place
    item = page.locator("#memories .memory", has_text="Claire lives in Lyon")
    item.get_by_role("button", name="Edit").click()
    page.fill("#memories textarea.memory-edit", "The user's sister Claire lives in Paris.")
    page.keyboard.press("Enter")
    page.wait_for_selector("#memories .memory-text:text('The user\\'s sister Claire lives in Paris.')")
    api = ApiClient(serve.url)
    base = f"/api/v1/agents/{agent['id']}/memories"
    assert "The user's sister Claire lives in Paris." in [m["text"] for m in api.get(base).json()["memories"]]

    # its history, and restoring the old text
    page.locator("#memories .memory", has_text="Claire lives in Paris").get_by_role("button", name="History").click()
    entry = page.locator("#history .history-entry", has_text="changed by hand")
    assert entry.locator(".history-old").inner_text() == "The user's sister Claire lives in Lyon."
    page.screenshot(path=str(screenshots / "memory-history.png"))
    entry.get_by_role("button", name="Restore this text").click()
    page.get_by_role("tab", name="Memories").click()
    page.wait_for_selector("#memories .memory-text:text('The user\\'s sister Claire lives in Lyon.')")

    # delete asks once more, then the memory is gone
    doomed = page.locator("#memories .memory", has_text="Biscuit")
    doomed.get_by_role("button", name="Delete").click()
    doomed.get_by_role("button", name="Delete for good?").click()
    page.wait_for_function("() => document.querySelectorAll('#memories .memory').length === 2")
    assert all("Biscuit" not in m["text"] for m in api.get(base).json()["memories"])
    page.wait_for_function("() => document.querySelector('#scopes .current .s').textContent.startsWith('2 memories')")


def test_export_reembed_and_forget_everything(page: Any, serve: ServeProcess, screenshots: Path) -> None:
    api = ApiClient(serve.url)
    spec = api.post("/api/v1/agents", {"name": "Scratch", "memory": True}).json()
    base = f"/api/v1/agents/{spec['id']}/memories"
    api.post(base, {"texts": ["The user's boat is called Marlin.", XSS]})
    open_memory(page, serve, spec)
    assert XSS in texts(page)
    assert page.evaluate("window.__xss") is None  # what models and people wrote is text, never HTML
    assert page.locator("#export").get_attribute("href") == base + "/export"
    exported = api.get(base + "/export").json()
    assert sorted(m["text"] for m in exported["memories"]) == sorted([XSS, "The user's boat is called Marlin."])
    assert page.locator("#reembed-bar").is_hidden()  # every memory has a vector in the configured model
    page.click("#reembed")
    page.wait_for_function("() => document.querySelector('#reembed-text').textContent.startsWith('All 2 memories')")

    page.click("#forget-all")
    assert "erases 2 memories of Scratch" in page.locator("#forget-text").inner_text()
    page.screenshot(path=str(screenshots / "memory-forget-dialog.png"))
    page.click("#forget-cancel")
    assert api.get(base).json()["total"] == 2
    page.click("#forget-all")
    page.click("#forget-confirm")
    page.wait_for_selector("#memories-empty:text('No memories yet.')")
    assert api.get(base).json()["total"] == 0


def test_the_chat_page_shows_what_was_recalled_and_written(page: Any, serve: ServeProcess, fake: AnthropicFake,
                                                          agent: dict[str, Any], screenshots: Path) -> None:
    fake.reset()
    fake.reply(FakeReply(text="Then no peanut sauce: try a lemon and herb dressing."),
               FakeReply(text=json.dumps({"operations": [{"op": "add", "text": "The user is cooking for Claire on Sunday."}]})))
    page.goto(f"{serve.url}/chat?agent={agent['id']}")
    page.wait_for_selector("#agent-picker option", state="attached")
    page.fill("#prompt", "I'm cooking for Claire on Sunday. Which foods should I avoid?")
    page.keyboard.press("Enter")
    note = page.locator(".msg-assistant details.memory-note")
    note.locator("summary:text-matches('1 added')").wait_for()
    summary = note.locator("summary").inner_text()
    assert "recalled" in summary and "1 added" in summary
    note.locator("summary").click()
    body = note.inner_text()
    assert "The user is allergic to peanuts." in body and "The user is cooking for Claire on Sunday." in body
    assert page.evaluate("window.__xss") is None
    chat_request = [r.json() for r in fake.requests if r.path == "/v1/messages"][0]
    assert "The user is allergic to peanuts." in json.dumps(chat_request["system"])
    page.screenshot(path=str(screenshots / "chat-memory.png"))

    # a reload shows the same, from the stored session
    page.reload()
    page.wait_for_selector(".msg-assistant details.memory-note")
    assert "1 added" in page.locator(".msg-assistant details.memory-note summary").inner_text()


def test_the_memory_page_fits_a_phone(page: Any, serve: ServeProcess, agent: dict[str, Any], screenshots: Path) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    open_memory(page, serve, agent)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a phone screen"
    assert page.locator("#scope-picker").is_visible()  # the side list is hidden on a phone
    page.select_option("#scope-picker", "*")
    page.wait_for_selector("#scope-title:text('Shared memories')")
    page.screenshot(path=str(screenshots / "memory-phone-390.png"))
