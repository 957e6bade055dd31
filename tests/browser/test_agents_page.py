"""The Agents page's Advanced section (provider request fields as JSON, checked on save) and
its guard on unsaved edits, in Chromium against the real `synapse serve` and the Anthropic fake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser.helpers import ApiClient, ServeProcess
from tests.browser.test_chat_page import HAIKU, posts, send
from tests.browser.test_chat_page import fake, serve  # noqa: F401  (the same server set-up: fixtures)
from tests.fakes.anthropic import AnthropicFake, AnthropicReply

THINKING = '{\n  "thinking": {"type": "enabled", "budget_tokens": 2048}\n}'


def agents_named(serve: ServeProcess, name: str) -> list[dict[str, Any]]:
    return [a for a in ApiClient(serve.url).get("/api/v1/agents").json()["agents"] if a["name"] == name]


def save_expecting_error(page: Any) -> str:
    page.click("#save")
    slot = page.locator('.field-error[data-for="extra"]')
    page.wait_for_function("() => document.querySelector('.field-error[data-for=extra]').textContent !== ''")
    assert page.locator("#advanced").get_attribute("open") is not None, "the error is not folded away"
    assert page.evaluate("document.activeElement.id") == "f-extra"
    assert page.locator("#f-extra").get_attribute("aria-invalid") == "true"
    return str(slot.inner_text())


def test_advanced_provider_fields_are_checked_saved_and_sent(page: Any, serve: ServeProcess, fake: AnthropicFake,
                                                             screenshots: Path) -> None:
    fake.reset()
    page.goto(serve.url + "/agents")
    page.wait_for_selector(".side-item")
    page.click("#new-agent")
    page.fill("#f-name", "Thinker")
    page.wait_for_selector(f"#f-model option[value='{HAIKU}']", state="attached")
    page.select_option("#f-model", HAIKU)
    assert page.locator("#advanced").get_attribute("open") is None  # folded while empty
    page.click("#advanced summary")

    # a JSON mistake: where it is and what to write instead, nothing saved
    page.fill("#f-extra", '{\n  "thinking": {"type": "enabled", "budget_tokens": 2048,}\n}')
    message = save_expecting_error(page)
    assert message.startswith("Provider request fields are not valid JSON at line 2, column ") and '{"thinking"' in message
    page.screenshot(path=str(screenshots / "agents-advanced-error.png"), full_page=True)
    # JSON, but not an object
    page.fill("#f-extra", "[1, 2]")
    assert "must be a JSON object" in save_expecting_error(page) and "not a list" in page.locator(".field-error[data-for=extra]").inner_text()
    # an object that would replace what Synapse sends: the server's message, under the field
    page.fill("#f-extra", '{"model": "claude-opus-4-5"}')
    assert save_expecting_error(page) == "extra cannot set 'model': the model is the agent's Model field"
    assert agents_named(serve, "Thinker") == []

    page.fill("#f-extra", THINKING)
    page.click("#save")
    page.wait_for_selector(".side-item.current >> text=Thinker")
    assert page.locator("#form-msg").inner_text() == "Saved."
    assert page.locator("#f-extra").get_attribute("aria-invalid") is None
    (saved,) = agents_named(serve, "Thinker")
    assert saved["extra"] == {"thinking": {"type": "enabled", "budget_tokens": 2048}}

    # shown again, unfolded, when the agent is opened
    page.reload()
    page.wait_for_selector(".side-item.current >> text=Thinker")
    assert page.locator("#advanced").get_attribute("open") is not None
    assert page.input_value("#f-extra") == '{\n  "thinking": {\n    "type": "enabled",\n    "budget_tokens": 2048\n  }\n}'
    page.screenshot(path=str(screenshots / "agents-advanced.png"), full_page=True)

    # every request of the agent carries it
    fake.reply(AnthropicReply(reasoning="Weighing it up.", text="Done thinking."))
    page.click("#chat-with")
    page.wait_for_selector("#agent-picker option", state="attached")
    send(page, "Think first")
    page.wait_for_selector(".meta-line")
    assert posts(fake)[-1]["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert page.locator("details.thinking").count() == 1 and page.locator(".reply .md").inner_text() == "Done thinking."


def test_unsaved_edits_are_not_dropped_without_asking(page: Any, serve: ServeProcess) -> None:
    api = ApiClient(serve.url)
    for name in ("Keeper", "Other"):
        if not agents_named(serve, name):
            assert api.post("/api/v1/agents", {"name": name}).status == 201
    page.goto(serve.url + "/agents")
    page.wait_for_selector(".side-item")
    page.click(".side-item .side-link >> text=Keeper")
    page.wait_for_function("() => document.querySelector('#f-name').value === 'Keeper'")
    page.fill("#f-description", "Half-written description")
    questions: list[str] = []

    def answer(dialog: Any, accept: bool) -> None:
        questions.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda d: answer(d, False))
    page.click(".side-item .side-link >> text=Other")
    assert questions == ["Your changes to Keeper are not saved. Discard them?"]
    assert page.input_value("#f-name") == "Keeper" and page.input_value("#f-description") == "Half-written description"
    page.once("dialog", lambda d: answer(d, True))
    page.click(".side-item .side-link >> text=Other")
    page.wait_for_function("() => document.querySelector('#f-name').value === 'Other'")
    assert len(questions) == 2
    # nothing edited: no question
    page.click(".side-item .side-link >> text=Keeper")
    page.wait_for_function("() => document.querySelector('#f-name').value === 'Keeper'")
    assert len(questions) == 2 and page.input_value("#f-description") == ""
