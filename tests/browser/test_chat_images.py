"""Image attachments on the Chat page, end to end in Chromium: attached by keyboard, sent to a
model that reads images (the Anthropic fake receives the exact bytes), and refused in the page
for a model known to read none (DeepSeek's fake, which fails on images like the real API)."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.helpers import ApiClient, ServeProcess
from tests.browser.test_chat_page import serve_with
from tests.fakes.anthropic import AnthropicFake, AnthropicReply
from tests.fakes.openai import OpenAIFake



def png(rows: list[list[tuple[int, int, int]]]) -> bytes:
    """A real PNG of these RGB pixels (8-bit, no filter)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\0" + bytes(c for px in row for c in px) for row in rows)
    head = struct.pack(">IIBBBBB", len(rows[0]), len(rows), 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


PNG = png([[(255, 0, 0), (0, 160, 0)], [(0, 0, 255), (255, 255, 255)]])  # four coloured squares


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[AnthropicFake, OpenAIFake]]:
    claude, deepseek = AnthropicFake().start(), OpenAIFake(flavour="deepseek").start()
    yield claude, deepseek
    claude.stop()
    deepseek.stop()


@pytest.fixture(scope="module")
def serve(fakes: tuple[AnthropicFake, OpenAIFake], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    claude, deepseek = fakes
    yield from serve_with(tmp_path_factory, {**claude.settings(), **deepseek.settings(), "model": "claude-sonnet-4-5"})


@pytest.fixture
def chat(page: Any, serve: ServeProcess, fakes: tuple[AnthropicFake, OpenAIFake]) -> Any:
    for f in fakes:
        f.reset()
    # file choosers are caught from the start: Playwright turns the catching on without
    # waiting for the browser, so turning it on just before a key press can come too late
    page.choosers = []
    page.on("filechooser", lambda chooser: page.choosers.append(chooser))
    page.goto(serve.url + "/chat")
    page.wait_for_selector("#model-picker option[value='deepseek-chat']", state="attached")
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'prompt'")  # set up
    return page


def attach_by_keyboard(page: Any, name: str = "dots.png") -> None:
    page.focus("#prompt")
    page.keyboard.press("Shift+Tab")  # the + button before the message box
    assert page.evaluate("document.activeElement.id") == "attach-btn"
    before = len(page.choosers)
    page.keyboard.press("Enter")
    for _ in range(100):
        if len(page.choosers) > before:
            break
        page.wait_for_timeout(50)
    assert len(page.choosers) == before + 1, "Enter on the + button opens the file chooser"
    page.choosers[-1].set_files(files=[{"name": name, "mimeType": "image/png", "buffer": PNG}])
    page.wait_for_selector(f".attachment img[alt='{name}']")


def chat_posts(fake: OpenAIFake) -> list[Any]:
    return [r for r in fake.requests if r.method == "POST" and r.path.endswith("/chat/completions")]


def test_an_attached_png_reaches_a_model_that_reads_images(chat: Any, serve: ServeProcess,
                                                          fakes: tuple[AnthropicFake, OpenAIFake], screenshots: Path) -> None:
    page, (claude, _) = chat, fakes
    attach_by_keyboard(page)
    assert page.locator("#attach-note").is_hidden()
    page.screenshot(path=str(screenshots / "chat-attached.png"))
    claude.reply(AnthropicReply(text="Four **coloured** squares."))
    page.fill("#prompt", "What is in this picture?")
    page.keyboard.press("Enter")
    page.wait_for_selector(".meta-line")
    assert page.locator(".reply .md").inner_text() == "Four coloured squares."
    content = [r.json() for r in claude.requests if r.method == "POST"][-1]["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "What is in this picture?"}
    assert content[1]["type"] == "image"
    assert content[1]["source"] == {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()}
    thumb = page.locator(".msg-user .thumbs img")
    assert thumb.count() == 1 and thumb.evaluate("img => img.complete && img.naturalWidth") == 2
    assert page.locator("#attachments").is_hidden()
    page.screenshot(path=str(screenshots / "chat-image-sent.png"))
    # after a reload the question says it had an image (the bytes stay on the server)
    page.reload()
    page.wait_for_selector(".meta-line")
    assert page.locator(".msg-user .note").inner_text() == "1 image attached"
    session = page.evaluate("location.hash.slice(1)")
    assert ApiClient(serve.url).get(f"/api/v1/sessions/{session}").json()["messages"][0]["images"] == 1


def test_a_model_known_to_read_no_images_is_said_before_sending(chat: Any, fakes: tuple[AnthropicFake, OpenAIFake],
                                                                screenshots: Path) -> None:
    page, (claude, deepseek) = chat, fakes
    listed = {m["id"]: m for g in ApiClient(page.url.split("/chat")[0]).get("/api/models").json()["groups"] for m in g["models"]}
    assert listed["deepseek-chat"]["images"] is False and "images" not in listed.get("gpt-4.1", {})
    page.select_option("#model-picker", "deepseek-chat")
    attach_by_keyboard(page)
    note = page.locator("#attach-note")
    assert note.is_visible()
    assert note.inner_text() == "deepseek-chat does not read images. Choose a model that does in Model above, or remove the image."
    page.fill("#prompt", "Describe it")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "model-picker"
    page.screenshot(path=str(screenshots / "chat-image-refused.png"))
    assert chat_posts(deepseek) == [] and page.locator(".msg-user").count() == 0
    assert page.input_value("#prompt") == "Describe it" and page.locator(".attachment").count() == 1

    # back to a model that reads images: the note goes; then remove the image and ask DeepSeek in words
    page.select_option("#model-picker", "")
    assert note.is_hidden()
    page.select_option("#model-picker", "deepseek-chat")
    assert note.is_visible()
    page.click(".attachment button")
    assert note.is_hidden() and page.locator(".attachment").count() == 0
    page.focus("#prompt")
    page.keyboard.press("Enter")
    page.wait_for_selector(".meta-line")
    assert "deepseek-chat" in page.locator(".meta-line").inner_text() and len(chat_posts(deepseek)) == 1


def test_a_turn_refused_before_it_starts_gives_the_message_back(chat: Any, fakes: tuple[AnthropicFake, OpenAIFake]) -> None:
    """A chat with an image in it cannot go on with DeepSeek: the server refuses before anything
    is stored or sent, and the page puts the message back into the composer."""
    page, (claude, deepseek) = chat, fakes
    attach_by_keyboard(page)
    page.fill("#prompt", "Look")
    page.keyboard.press("Enter")
    page.wait_for_selector(".meta-line")
    page.select_option("#model-picker", "deepseek-chat")
    page.fill("#prompt", "And in words only?")
    page.keyboard.press("Enter")
    page.wait_for_selector("#banner:visible")
    assert page.locator("#banner").inner_text().startswith("this chat has images in it and deepseek-chat does not read images")
    assert page.input_value("#prompt") == "And in words only?"
    assert page.locator(".msg-user").count() == 1 and page.locator(".msg-assistant").count() == 1
    assert chat_posts(deepseek) == [] and page.locator("#send").is_visible()
