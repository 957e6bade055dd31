"""Which models read images (providers/vision.py): the provider-wide facts, what Bedrock's and
OpenRouter's model lists say, and DeepSeek's fake refusing an image the way the real API does."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

import synapse
from synapse.errors import BadRequestError
from synapse.providers import adapter_for, vision
from synapse.providers.catalog import PROVIDERS
from synapse.providers.catalog import get as get_spec
from synapse.settings import load as load_settings
from synapse.types import ImagePart, Message, TextPart
from tests.conftest import provider_fake
from tests.fakes.bedrock import BedrockFake, _model
from tests.fakes.openai import OpenAIFake

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


@pytest.fixture(autouse=True)
def _forget_lists() -> Iterator[None]:
    saved = dict(vision._listed)
    vision._listed.clear()
    yield
    vision._listed.clear()
    vision._listed.update(saved)


@pytest.fixture(scope="module")
def bedrock_server() -> Iterator[BedrockFake]:
    yield from provider_fake(BedrockFake)


@pytest.fixture(scope="module")
def openrouter_server() -> Iterator[OpenAIFake]:
    yield from provider_fake(OpenAIFake, flavour="openrouter", models=["openai/gpt-4o-mini", "deepseek/deepseek-chat"])


@pytest.fixture(scope="module")
def deepseek_server() -> Iterator[OpenAIFake]:
    yield from provider_fake(OpenAIFake, flavour="deepseek")


def test_provider_wide_facts_and_unknown_models(synapse_env: Any) -> None:
    assert vision.takes_images("claude-sonnet-4-5") is True
    assert vision.takes_images("deepseek-chat") is False and vision.takes_images("deepseek-reasoner") is False
    for unknown in ("gpt-4.1", "gemini-2.5-flash", "grok-4", "ollama.llama3.2", "no such model", ""):
        assert vision.takes_images(unknown) is None, unknown


async def test_bedrock_lists_say_what_each_model_reads(bedrock_server: BedrockFake, configure: Any) -> None:
    bedrock_server.reset()
    bedrock_server.models.append(_model("meta.llama3-8b-instruct-v1:0", "Llama 3 8B", "Meta", ["TEXT"], ["ON_DEMAND"], ["TEXT"]))
    configure(**bedrock_server.settings())
    assert vision.takes_images("bedrock.meta.llama3-8b-instruct-v1:0") is None  # no list read yet
    models = {m.upstream_id: m for m in await adapter_for(get_spec("bedrock"), load_settings()).list_models()}
    assert models["meta.llama3-8b-instruct-v1:0"].images is False
    assert models["amazon.nova-pro-v1:0"].images is True
    profile = next(m for m in models.values() if m.upstream_id.endswith("anthropic.claude-sonnet-4-5-20250929-v1:0")
                   and m.upstream_id != "anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert profile.images is True  # an inference profile reads what its models read
    vision.remember(models.values())
    assert vision.takes_images("bedrock.meta.llama3-8b-instruct-v1:0") is False
    assert vision.takes_images("bedrock.amazon.nova-pro-v1:0") is True


async def test_openrouter_lists_say_what_each_model_reads(openrouter_server: OpenAIFake, configure: Any) -> None:
    openrouter_server.reset()
    configure(**openrouter_server.settings())
    spec = next(s for s in PROVIDERS if s.route_prefix and s.key_setting == "openai_compatible_key")
    models = {m.upstream_id: m for m in await adapter_for(spec, load_settings()).list_models()}
    assert models["openai/gpt-4o-mini"].images is True and models["deepseek/deepseek-chat"].images is False
    vision.remember(models.values())
    assert vision.takes_images(spec.route_prefix + "deepseek/deepseek-chat", load_settings()) is False
    assert vision.takes_images(spec.route_prefix + "openai/gpt-4o-mini", load_settings()) is True


async def test_deepseek_refuses_an_image_like_the_real_api(deepseek_server: OpenAIFake, configure: Any) -> None:
    deepseek_server.reset()
    configure(**deepseek_server.settings(), max_retries=0)
    with pytest.raises(BadRequestError, match="unknown variant `image_url`, expected `text`"):
        await synapse.achat("deepseek-chat", [Message("user", [TextPart("What is this?"), ImagePart("image/png", PNG)])])
    assert (await synapse.achat("deepseek-chat", "Just text")).text
