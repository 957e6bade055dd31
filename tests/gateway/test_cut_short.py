"""A gateway client that leaves mid-stream: the upstream request is cancelled and the ledger
row carries the usage known so far, what the provider had not reported yet estimated
(marked `estimated`). Both the same-protocol relay (bytes passed through, usage read on
the way) and the canonical path (another API's shape), against the loopback fakes; the
fakes send each text event only when the test has the one before (`FakeReply.step`), so
what was streamed when the client left is exact."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx2 as httpx
import pytest

from tests.fakes.base import FakeReply
from tests.gateway.conftest import ledger_rows

pytestmark = pytest.mark.database

#: 400 characters: 100 tokens at the estimate's 4 characters a token.
PROMPT = "Tell me a long story please. " + "x" * 371
PROMPT_TOKENS = 100
WORDS = " ".join(f"word{i}" for i in range(40))
REPORTED_INPUT = 777  # what Anthropic's message_start says


def tokens(chars: int) -> int:
    return -(-chars // 4)


@pytest.fixture
def both(anthropic: Any, openai: Any, configure: Any) -> tuple[Any, Any]:
    configure(**anthropic.settings(), **openai.settings(), max_retries=0)
    return anthropic, openai


def text_of(line: str) -> str:
    """The text an SSE data line carries, in either API's shape ("" for any other event)."""
    if not line.startswith("data: {"):
        return ""
    obj = json.loads(line[6:])
    if obj.get("type") == "content_block_delta":
        return obj["delta"].get("text") or ""
    choices = obj.get("choices") or []
    return (choices[0].get("delta") or {}).get("content") or "" if choices else ""


def leave_after(gateway: Any, key: str, path: str, model: str, texts: int) -> str:
    """Stream PROMPT through the gateway and hang up after `texts` text events; the text read."""
    body: dict[str, Any] = {"model": model, "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
    if path == "/v1/messages":
        body["max_tokens"] = 200
    got, seen = "", 0
    with httpx.stream("POST", gateway.url + path, json=body, headers={"authorization": f"Bearer {key}"},
                      timeout=10) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            piece = text_of(line)
            if piece:
                got += piece
                seen += 1
                if seen == texts:
                    break  # hang up: the connection closes
                STEP.release()  # the fake may send the next text event
    return got


STEP = threading.Semaphore(1)


def wait_for(check: Any) -> Any:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    return check()


@pytest.mark.parametrize("path,model", [
    ("/v1/chat/completions", "gpt-4o-mini"),
    ("/v1/messages", "claude-sonnet-4-5"),
    ("/v1/chat/completions", "claude-sonnet-4-5"),
    ("/v1/messages", "gpt-4o-mini"),
], ids=["relay-openai", "relay-anthropic", "canonical-openai-shape", "canonical-anthropic-shape"])
def test_a_client_that_leaves_mid_stream_is_recorded_with_estimates(
        gateway: Any, both: Any, make_key: Any, path: str, model: str) -> None:
    global STEP
    claude, oai = both
    fake = claude if model.startswith("claude") else oai
    STEP = threading.Semaphore(1)  # the first text event may go; each next one when the test has read one
    fake.reply(FakeReply(text=WORDS, input_tokens=REPORTED_INPUT, output_tokens=500, step=STEP))
    got = leave_after(gateway, make_key(), path, model, 3)
    assert wait_for(lambda: fake.aborted) == 1  # the upstream request was cancelled, not read to the end
    (row,) = wait_for(ledger_rows)
    assert (row["outcome"], row["stream"], row["estimated"]) == ("cancelled", True, True)
    if model.startswith("claude"):
        assert row["input_tokens"] == REPORTED_INPUT  # message_start's count is kept
    else:
        assert row["input_tokens"] == PROMPT_TOKENS  # OpenAI reports only at the end: estimated
    assert row["output_tokens"] == tokens(len(got)) > 0  # the three words streamed, not the 500 of the end
    assert row["cost_usd"] > 0


@pytest.mark.parametrize("path,model", [("/v1/chat/completions", "gpt-4o-mini"), ("/v1/messages", "claude-sonnet-4-5")],
                         ids=["relay-openai", "relay-anthropic"])
def test_a_relayed_stream_read_to_the_end_is_not_estimated(gateway: Any, both: Any, make_key: Any, path: str,
                                                           model: str) -> None:
    claude, oai = both
    fake = claude if model.startswith("claude") else oai
    fake.reply(FakeReply(text=WORDS, input_tokens=REPORTED_INPUT, output_tokens=55))
    body: dict[str, Any] = {"model": model, "stream": True, "max_tokens": 200,
                            "messages": [{"role": "user", "content": PROMPT}]}
    r = httpx.post(gateway.url + path, json=body, headers={"authorization": f"Bearer {make_key()}"}, timeout=10)
    assert r.status_code == 200 and WORDS.split()[-1] in r.text
    (row,) = ledger_rows()
    assert (row["outcome"], row["estimated"], row["input_tokens"], row["output_tokens"]) == \
        ("ok", False, REPORTED_INPUT, 55)


def test_a_relayed_stream_that_breaks_midway_is_estimated(gateway: Any, both: Any, make_key: Any) -> None:
    _, oai = both
    oai.reply(FakeReply(text=WORDS, break_after_events=6))
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
    got = ""
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body,
                      headers={"authorization": f"Bearer {make_key()}"}, timeout=10) as r:
        for line in r.iter_lines():
            got += text_of(line)
    (row,) = wait_for(ledger_rows)
    assert (row["outcome"], row["estimated"]) == ("unavailable", True)
    assert (row["input_tokens"], row["output_tokens"]) == (PROMPT_TOKENS, tokens(len(got)))
