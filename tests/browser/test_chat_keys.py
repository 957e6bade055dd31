"""Keys on the Chat page: Escape stops a streaming reply; on a touch screen (no Shift key)
Enter is a new line and the Send button sends."""

from __future__ import annotations

from typing import Any

from tests.browser.helpers import ServeProcess
from tests.browser.test_chat_page import chat, fake, posts, serve  # noqa: F401  (the same server set-up: fixtures)
from tests.browser.test_chat_page import start_a_long_reply, stopped_within_a_second
from tests.fakes.anthropic import AnthropicFake, AnthropicReply


def test_escape_stops_a_streaming_reply(chat: Any, fake: AnthropicFake) -> None:  # noqa: F811
    page = chat
    start_a_long_reply(page, fake)
    assert page.locator("#stop").get_attribute("title") == "Stop the reply (Esc)"
    page.keyboard.press("Escape")
    stopped_within_a_second(page, fake)
    page.keyboard.press("Escape")  # nothing streaming: nothing happens
    assert page.locator(".meta-line .stopped").count() == 1


def test_on_a_touch_screen_enter_is_a_new_line(page: Any, serve: ServeProcess, fake: AnthropicFake) -> None:  # noqa: F811
    fake.reset()
    cdp = page.context.new_cdp_session(page)
    cdp.send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 1})
    page.goto(serve.url + "/chat")
    page.wait_for_selector("#agent-picker option", state="attached")
    assert page.evaluate("matchMedia('(pointer: coarse)').matches")
    assert page.get_attribute("#prompt", "placeholder") == "Message the agent"
    page.click("#prompt")
    page.keyboard.type("First line")
    page.keyboard.press("Enter")
    page.keyboard.type("second line")
    assert page.input_value("#prompt") == "First line\nsecond line" and posts(fake) == []
    page.click("#send")
    page.wait_for_selector(".meta-line")
    assert posts(fake)[-1]["messages"][-1]["content"][0]["text"] == "First line\nsecond line"
    cdp.send("Emulation.setTouchEmulationEnabled", {"enabled": False})


def test_a_message_sent_while_the_page_still_loads_stays_on_screen(page: Any, serve: ServeProcess,  # noqa: F811
                                                                    fake: AnthropicFake) -> None:
    """The session list arrives after the reply has started: the page does not reopen the new
    session from storage over the reply it is streaming."""
    fake.reset()
    held: list[Any] = []
    release = False

    def hold(route: Any) -> None:
        route.continue_() if release else held.append(route)

    page.route("**/api/v1/sessions", hold)
    page.goto(serve.url + "/chat")
    page.wait_for_selector("#agent-picker option", state="attached")
    while not held:
        page.wait_for_timeout(20)
    fake.reply(AnthropicReply(text="A slow answer " * 80, event_delay=0.01))
    page.fill("#prompt", "Quick question")
    page.keyboard.press("Enter")
    page.wait_for_function("() => location.hash.length > 1 && document.querySelector('.reply .md')?.textContent.includes('slow')")
    release = True
    for route in held:
        route.continue_()
    page.wait_for_selector(".meta-line")
    assert page.locator(".msg-user").inner_text() == "Quick question"
    assert page.locator(".reply .md").inner_text().startswith("A slow answer") and page.locator("#welcome").count() == 0
