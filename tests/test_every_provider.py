"""One interface over every provider: the same CLI call works against each wire protocol's
fake, makes exactly one provider request (no model-list or key-check calls on the way),
and reports the same JSON shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.anthropic import AnthropicFake
from tests.fakes.base import FakeServer
from tests.fakes.bedrock import BedrockFake
from tests.fakes.gemini import GeminiFake
from tests.fakes.ollama import OllamaFake
from tests.fakes.openai import OpenAIFake

CASES = [
    ("claude-sonnet-4-5", "anthropic", lambda: AnthropicFake(), "/v1/messages"),
    ("gpt-4.1", "openai", lambda: OpenAIFake(flavour="openai"), "/v1/chat/completions"),
    ("grok-4", "xai", lambda: OpenAIFake(flavour="xai"), "/v1/chat/completions"),
    ("deepseek-chat", "deepseek", lambda: OpenAIFake(flavour="deepseek"), "/chat/completions"),
    ("oaic.meta-llama/Llama-3.3-70B-Instruct-Turbo", "oaic", lambda: OpenAIFake(flavour="together"), "/v1/chat/completions"),
    ("locv1.qwen2.5-7b-instruct", "locv1", lambda: OpenAIFake(flavour="local"), "/v1/chat/completions"),
    ("gemini-2.5-flash", "gemini", lambda: GeminiFake(), "generateContent"),
    ("bedrock.us.anthropic.claude-sonnet-4-5-20250929-v1:0", "bedrock", lambda: BedrockFake(), "/converse"),
    ("llama3.2", "ollama", lambda: OllamaFake(), "/api/chat"),
]


@pytest.fixture(params=CASES, ids=[c[1] for c in CASES])
def case(request: pytest.FixtureRequest, configure: Any) -> Iterator[tuple[str, str, FakeServer, str]]:
    model, provider, make, path = request.param
    fake = make().start()
    try:
        configure(**fake.settings())
        yield model, provider, fake, path
    finally:
        fake.stop()


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no-stream"])
def test_one_chat_is_one_provider_request(case: Any, cli: Any, stream: bool) -> None:
    model, provider, fake, path = case
    args = ["chat", "-m", model, "--json", "Say hello"] + ([] if stream else ["--no-stream"])
    result = cli(*args)
    assert result.code == 0, result.err
    out = json.loads(result.out)
    assert set(out) == {"text", "model", "provider", "stop_reason", "tool_calls", "usage"}
    assert out["model"] == model and out["provider"] == provider
    assert out["text"] and out["stop_reason"] == "end_turn" and out["tool_calls"] == []
    assert set(out["usage"]) == {
        "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"
    }
    assert out["usage"]["input_tokens"] > 0 and out["usage"]["output_tokens"] > 0
    assert len(fake.requests) == 1, [r.path for r in fake.requests]
    assert path.lower() in fake.requests[0].path.lower()


def test_models_lists_every_configured_provider(configure: Any, cli: Any) -> None:
    fakes = [AnthropicFake().start(), OpenAIFake(flavour="openai").start(), GeminiFake().start(), OllamaFake().start()]
    try:
        settings: dict[str, Any] = {}
        for fake in fakes:
            settings.update(fake.settings())
        configure(**settings)
        result = cli("models", "--json")
        assert result.code == 0, result.err
        listed = {p["provider"]: p for p in json.loads(result.out)}
        assert set(listed) == {"anthropic", "openai", "gemini", "ollama"}
        assert all(p.get("models") for p in listed.values()), listed
        assert any(m.startswith("claude-") for m in listed["anthropic"]["models"])
        assert any(m.startswith("gemini-") for m in listed["gemini"]["models"])
    finally:
        for fake in fakes:
            fake.stop()
