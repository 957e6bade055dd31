"""Fixtures for the agent tests: every protocol's fake, and helpers to run a turn."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from synapse import storage


@dataclass
class Proto:
    """One protocol under test: its fake, a model name and how to ask for reasoning."""

    name: str
    fake: Any
    model: str
    #: Agent `extra` that turns reasoning on (Anthropic / Bedrock thinking), if the protocol needs one.
    thinking_extra: dict[str, Any]
    #: The model to use for reasoning tests (DeepSeek thinks as deepseek-reasoner only).
    reasoning_model: str = ""

    def reply(self, **kw: Any) -> Any:
        from tests.fakes.anthropic import AnthropicReply
        from tests.fakes.base import FakeReply
        from tests.fakes.bedrock import BedrockReply
        from tests.fakes.gemini import GeminiReply

        cls = {"anthropic": AnthropicReply, "gemini": GeminiReply, "bedrock": BedrockReply}.get(self.name, FakeReply)
        return cls(**kw)


_FAKES: dict[str, Any] = {}


@pytest.fixture(scope="session")
def all_fakes() -> Iterator[dict[str, Any]]:
    from tests.fakes.anthropic import AnthropicFake
    from tests.fakes.bedrock import BedrockFake
    from tests.fakes.gemini import GeminiFake
    from tests.fakes.ollama import OllamaFake
    from tests.fakes.openai import OpenAIFake

    fakes = {
        "anthropic": AnthropicFake(), "openai": OpenAIFake(), "gemini": GeminiFake(), "bedrock": BedrockFake(),
        "ollama": OllamaFake(), "deepseek": OpenAIFake(flavour="deepseek"),
    }
    for f in fakes.values():
        f.start()
    yield fakes
    for f in fakes.values():
        f.stop()


MODELS = {
    "anthropic": ("claude-sonnet-4-5", {"thinking": {"type": "enabled", "budget_tokens": 1024}}),
    "openai": ("gpt-4.1", {}),
    "gemini": ("gemini-2.5-flash", {}),
    "bedrock": ("bedrock.anthropic.claude-3-haiku-20240307-v1:0",
                {"additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}}}),
    "ollama": ("ollama.qwen3:0.6b", {}),
    "deepseek": ("deepseek-chat", {}),
}


@pytest.fixture
def use_proto(all_fakes: dict[str, Any], configure: Callable[..., Any]) -> Callable[[str], Proto]:
    """`use_proto("gemini")`: that fake reset and configured as the default model."""

    def use(name: str) -> Proto:
        fake = all_fakes[name]
        fake.reset()
        model, extra = MODELS[name]
        configure(**fake.settings(), model=model)
        return Proto(name, fake, model, extra, "deepseek-reasoner" if name == "deepseek" else model)

    return use


@pytest.fixture(autouse=True)
def _dispose_engines(synapse_env: Path) -> Iterator[None]:
    yield
    from synapse.usage import ledger

    ledger.flush(5)
    storage.dispose_all()
