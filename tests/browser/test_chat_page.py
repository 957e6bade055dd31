"""The Chat and Agents pages in Chromium, against the real `synapse serve` and the Anthropic fake.

The fake runs in this process (its own thread and loop); the server is a subprocess
pointed at it. Each test scripts the fake's next answers and reads its request log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.helpers import ApiClient, ServeProcess
from tests.fakes.anthropic import AnthropicFake, AnthropicReply
from tests.fakes.base import FakeToolCall

HAIKU = "claude-haiku-4-5-20251001"


@pytest.fixture(scope="module")
def fake() -> Iterator[AnthropicFake]:
    server = AnthropicFake().start()
    yield server
    server.stop()


def serve_with(tmp_path_factory: pytest.TempPathFactory, settings: dict[str, Any]) -> Iterator[ServeProcess]:
    """`synapse serve` on a fresh data folder with these settings (for a module's fixture)."""
    data = tmp_path_factory.mktemp("chat") / "data"
    data.mkdir()
    (data / "settings.json").write_text(json.dumps(settings))
    srv = ServeProcess(data).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def serve(fake: AnthropicFake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    yield from serve_with(tmp_path_factory, {**fake.settings(), "model": "claude-sonnet-4-5"})


@pytest.fixture
def chat(page: Any, serve: ServeProcess, fake: AnthropicFake) -> Any:
    fake.reset()
    page.goto(serve.url + "/")
    page.wait_for_selector("#agent-picker option", state="attached")
    return page


def send(page: Any, text: str) -> None:
    page.fill("#prompt", text)
    page.keyboard.press("Enter")


def posts(fake: AnthropicFake) -> list[dict[str, Any]]:
    return [r.json() for r in fake.requests if r.method == "POST" and r.path == "/v1/messages"]


def test_slash_opens_the_chat_page_first_in_the_nav(chat: Any) -> None:
    assert chat.url.endswith("/chat")
    tabs = chat.locator(".main-nav .tab").all_inner_texts()
    assert tabs[:2] == ["Chat", "Agents"]
    assert chat.locator("#setup").is_hidden()


def test_agent_with_its_own_model_streams_text_a_tool_block_and_the_cost(
    chat: Any, serve: ServeProcess, fake: AnthropicFake, screenshots: Path
) -> None:
    page = chat
    page.click(".main-nav >> text=Agents")
    page.wait_for_selector("#f-name")
    page.click("#new-agent")
    page.fill("#f-name", "Pirate")
    page.fill("#f-system", "You are a pirate. Say arr.")
    page.wait_for_selector(f"#f-model option[value='{HAIKU}']", state="attached")
    page.select_option("#f-model", HAIKU)
    page.click("#save")
    page.wait_for_selector(".side-item.current >> text=Pirate")
    assert page.locator("#form-msg").inner_text() == "Saved."
    page.screenshot(path=str(screenshots / "agents-page.png"), full_page=True)

    fake.reply(
        AnthropicReply(reasoning="Arr, a sum.", text="Let me count, matey.",
                       tool_calls=[FakeToolCall("toolu_p1", "calculator", {"expression": "6*7"})]),
        AnthropicReply(text="Arr! It be **42**. " + "Yo ho ho. " * 60, event_delay=0.01),
    )
    page.click("#chat-with")
    page.wait_for_selector("#agent-picker option", state="attached")
    assert page.locator("#agent-picker option:checked").inner_text() == "Pirate"
    send(page, "What is 6*7?")
    page.wait_for_selector("#stop:visible")
    page.wait_for_function("() => document.querySelectorAll('.reply .md').length >= 2 && "
                           "document.querySelectorAll('.reply .md')[1].textContent.includes('Yo ho')")
    streaming = page.locator(".reply .md").nth(1).inner_text()
    assert page.locator("#stop").is_visible(), "the reply is visible while it still streams"
    page.wait_for_selector(".meta-line .cost")
    final = page.locator(".reply .md").nth(1).inner_text()
    assert len(final) > len(streaming) and final.startswith("Arr! It be 42.")
    tool = page.locator("details.tool")
    assert "calculator" in tool.inner_text() and tool.locator(".state").inner_text() == "done"
    tool.locator("summary").click()
    assert "42" in tool.locator("pre").nth(1).inner_text()
    assert page.locator("details.thinking").count() == 1
    meta = page.locator(".meta-line").inner_text()
    assert "claude-haiku-4-5" in meta and "$" in meta and "out" in meta
    bodies = posts(fake)
    assert [b["model"] for b in bodies] == [HAIKU, HAIKU]
    assert bodies[0]["system"][0]["text"] == "You are a pirate. Say arr."
    page.screenshot(path=str(screenshots / "chat-page.png"), full_page=False)

    # reload, pick the session from the list, continue it
    page.reload()
    page.wait_for_selector(".side-item")
    page.goto(serve.url + "/chat")
    page.wait_for_selector(".side-item")
    page.click(".side-item .side-link >> text=What is 6*7?")
    page.wait_for_selector("details.tool")
    assert "Arr! It be 42." in page.locator(".reply .md").nth(1).inner_text()
    fake.reply(AnthropicReply(text="Still 42, arr."))
    send(page, "Are you sure?")
    page.wait_for_selector(".msg-assistant >> nth=1 >> .meta-line")
    last = posts(fake)[-1]
    assert "What is 6*7?" in json.dumps(last) and last["messages"][-1]["content"][0]["text"] == "Are you sure?"
    assert page.locator(".msg-assistant").nth(1).locator(".md").inner_text() == "Still 42, arr."


def start_a_long_reply(page: Any, fake: AnthropicFake) -> None:
    fake.reply(AnthropicReply(text="word " * 2000, event_delay=0.03))
    send(page, "Talk for a long time")
    page.wait_for_function("() => (document.querySelector('.reply .md') || {}).textContent?.split('word').length > 10")


def stopped_within_a_second(page: Any, fake: AnthropicFake) -> None:
    """After Stop: the upstream stream closed within a second, the reply marked stopped, Send back."""
    t0 = time.monotonic()
    while not fake.aborted and time.monotonic() - t0 < 5:
        time.sleep(0.02)
    assert fake.aborted == 1 and time.monotonic() - t0 < 1.0
    page.wait_for_selector(".meta-line .stopped")
    assert page.locator("#send").is_visible()


def test_stop_closes_a_long_reply_within_a_second_and_keeps_it(chat: Any, fake: AnthropicFake, serve: ServeProcess) -> None:
    page = chat
    start_a_long_reply(page, fake)
    page.click("#stop")
    stopped_within_a_second(page, fake)
    session = page.evaluate("location.hash.slice(1)")
    stored = ApiClient(serve.url).get(f"/api/v1/sessions/{session}").json()["messages"][-1]
    assert stored["meta"]["stopped"] is True and stored["text"].startswith("word word")


XSS = ('<img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> '
       '[click](javascript:window.__xss=3) <a href="javascript:window.__xss=4">a</a>')


def test_what_a_model_tool_or_upstream_says_cannot_run_script(chat: Any, fake: AnthropicFake, screenshots: Path) -> None:
    page = chat
    fake.reply(AnthropicReply(text=XSS, tool_calls=[FakeToolCall("toolu_x", "calculator", {"expression": XSS})]),
               AnthropicReply(reasoning=XSS, text="Here: " + XSS))
    send(page, "Say something dangerous")
    page.wait_for_selector(".meta-line .cost")
    assert page.evaluate("window.__xss") is None
    reply = page.locator(".reply")
    assert reply.locator("img, script, iframe").count() == 0
    assert '<img src=x onerror="window.__xss=1">' in reply.inner_text()
    for link in reply.locator("a").all():
        assert not (link.get_attribute("href") or "").lower().startswith("javascript")
    page.locator("details.tool summary").click()
    assert "calculator failed" in page.locator("details.tool pre").nth(1).inner_text() and "<img src=x" in page.locator("details.tool pre").nth(1).inner_text()
    page.locator("details.thinking summary").click()
    assert "<script>" in page.locator("details.thinking").inner_text()
    # an upstream error's text
    fake.fail_next_error(400, "invalid_request_error", XSS)
    send(page, "Again")
    page.wait_for_selector(".error-box")
    assert "window.__xss=1" in page.locator(".error-box").inner_text()
    assert page.evaluate("window.__xss") is None and page.locator("img").count() == 0
    page.screenshot(path=str(screenshots / "chat-xss.png"))


def test_sessions_search_rename_and_delete(chat: Any, fake: AnthropicFake) -> None:
    page = chat
    send(page, "Trip to Lisbon")
    page.wait_for_selector(".meta-line")
    page.click("#new-chat")
    send(page, "Recipe for soup")
    page.wait_for_selector(".meta-line")
    page.fill("#session-search", "lisbon")
    page.wait_for_function("() => document.querySelectorAll('.side-item').length === 1")
    item = page.locator(".side-item")
    assert "Trip to Lisbon" in item.inner_text()
    item.hover()
    item.locator("button[title=Rename]").click()
    page.fill(".rename-input", "Lisbon in May")
    page.keyboard.press("Enter")
    page.wait_for_selector(".side-item >> text=Lisbon in May")
    page.fill("#session-search", "")
    page.wait_for_function("() => document.querySelectorAll('.side-item').length >= 2")
    soup = page.locator(".side-item", has_text="Recipe for soup")
    soup.hover()
    soup.locator("button[title=Delete]").click()
    soup.locator("button[title=Delete]").click()  # confirm
    page.wait_for_function("() => ![...document.querySelectorAll('.side-item')].some(li => li.textContent.includes('soup'))")


def test_with_no_provider_the_page_says_which_card_to_fill(page: Any, tmp_path: Path, screenshots: Path) -> None:
    data = tmp_path / "empty"
    data.mkdir()
    srv = ServeProcess(data).start()
    try:
        page.goto(srv.url + "/")
        page.wait_for_selector("#setup:visible")
        text = page.locator("#setup").inner_text()
        assert "Settings → Models" in text and "Anthropic" in text
        assert page.locator("#setup a").get_attribute("href") == "/settings/models"
        page.screenshot(path=str(screenshots / "chat-no-provider.png"))
    finally:
        srv.stop()
