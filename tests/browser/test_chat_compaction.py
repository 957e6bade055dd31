"""The Chat page says when a turn compacted the conversation, live and after a reload: a
server whose `context_window` is tiny, so the second question already does not fit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.helpers import ApiClient, ServeProcess
from tests.browser.test_chat_page import fake, serve_with  # noqa: F401  (the fake: a fixture)
from tests.fakes.anthropic import AnthropicFake, AnthropicReply


@pytest.fixture(scope="module")
def serve(fake: AnthropicFake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    yield from serve_with(tmp_path_factory, {**fake.settings(), "model": "claude-sonnet-4-5", "context_window": 1000,
                                             "reply_reserve_tokens": 200})


def test_a_compacted_turn_says_so_live_and_after_a_reload(page: Any, serve: ServeProcess, fake: AnthropicFake,
                                                         screenshots: Path) -> None:
    fake.reset()
    page.goto(serve.url + "/chat")
    page.wait_for_selector("#agent-picker option", state="attached")
    fake.reply(AnthropicReply(text="First answer: " + "beta " * 400))
    page.fill("#prompt", "First question: " + "alpha " * 300)
    page.keyboard.press("Enter")
    page.wait_for_selector(".meta-line")
    assert page.locator(".event-note").count() == 0  # it fitted

    fake.reply(AnthropicReply(text="NOTES: the user asked about alpha; the answer was beta."),
               AnthropicReply(text="Second answer."))
    page.fill("#prompt", "Second question")
    page.keyboard.press("Enter")
    page.wait_for_selector(".msg-assistant >> nth=1 >> .meta-line")
    note = page.locator(".event-note.compacted")
    assert note.count() == 1
    text = note.inner_text()
    assert "compacted" in text and "2 older messages summarised" in text and "originals are kept" in text
    # between the question and the reply it was made for
    order = page.evaluate("""() => [...document.querySelectorAll('#conversation > *')].map(n =>
        n.classList.contains('event-note') ? 'note' : n.classList.contains('msg-user') ? 'user' : 'reply')""")
    assert order == ["user", "reply", "user", "note", "reply"]
    posts = [r.json() for r in fake.requests if r.method == "POST" and r.path == "/v1/messages"]
    assert "Summarise the conversation" in json.dumps(posts[-2])
    assert "NOTES: the user asked about alpha" in json.dumps(posts[-1]) and "alpha alpha" not in json.dumps(posts[-1])
    page.screenshot(path=str(screenshots / "chat-compacted.png"))

    session = page.evaluate("location.hash.slice(1)")
    stored = ApiClient(serve.url).get(f"/api/v1/sessions/{session}").json()["messages"]
    assert [m["kind"] for m in stored].count("summary") == 1
    assert stored[-2]["meta"]["compacted"]["summarised_messages"] == 2

    page.reload()
    page.wait_for_selector(".msg-assistant >> nth=1 >> .meta-line")
    assert page.locator(".event-note.compacted").inner_text() == text
    assert page.evaluate("""() => [...document.querySelectorAll('#conversation > *')].map(n =>
        n.classList.contains('event-note') ? 'note' : n.classList.contains('msg-user') ? 'user' : 'reply')""") == order
    assert page.locator(".msg-user").first.inner_text().startswith("First question")  # the original is still shown
