"""`mode`: the provider family for bare model names and for the default embedding model."""

from __future__ import annotations

from typing import Any

import pytest

import synapse
from synapse.errors import ConfigurationError
from synapse.providers import adapter_for
from synapse.providers.catalog import get as get_spec
from synapse.providers.routing import BARE_NAME_PROVIDER, default_embedding_model, resolve
from synapse.settings import load as load_settings
from synapse.settings_schema import MODES
from tests.conftest import provider_fake
from tests.fakes.ollama import OllamaFake
from tests.fakes.openai import OpenAIFake


def test_every_mode_names_a_provider() -> None:
    assert set(BARE_NAME_PROVIDER) == set(MODES)


@pytest.mark.parametrize(
    ("mode", "provider"), [(None, "ollama"), ("local", "ollama"), ("cloud", "oaic"), ("bedrock", "bedrock")]
)
def test_bare_names_go_to_the_modes_provider(mode: str | None, provider: str) -> None:
    settings = {"mode": mode} if mode else {}
    route = resolve("amazon.nova-pro-v1:0", settings)
    assert (route.spec.id, route.upstream_model, route.bare) == (provider, "amazon.nova-pro-v1:0", True)
    # prefixed names ignore the mode
    assert resolve("claude-sonnet-4-5", settings).spec.id == "anthropic"
    assert resolve("ollama.mistral", settings).spec.id == "ollama"


def test_bedrock_mode_applies_the_inference_profile_to_bare_names() -> None:
    settings = {"mode": "bedrock", "bedrock_inference_profile": "us.amazon.nova-pro-v1:0"}
    assert resolve("amazon.nova-pro-v1:0", settings).upstream_model == "us.amazon.nova-pro-v1:0"
    assert resolve("amazon.titan-embed-text-v2:0", settings, "embed").upstream_model == "amazon.titan-embed-text-v2:0"


@pytest.mark.parametrize(
    ("settings", "model"),
    [
        ({}, ""),
        ({"mode": "local"}, ""),
        ({"mode": "bedrock"}, "bedrock.amazon.titan-embed-text-v2:0"),
        ({"mode": "cloud"}, ""),
        ({"mode": "cloud", "openai_compatible_embed_models": "BAAI/bge-m3, other"}, "oaic.BAAI/bge-m3"),
        ({"mode": "bedrock", "embedding_model": "text-embedding-3-small"}, "text-embedding-3-small"),
    ],
)
def test_default_embedding_model_follows_the_mode(settings: dict[str, Any], model: str) -> None:
    assert default_embedding_model(settings) == model


# --- end to end, against the fakes ------------------------------------------------------------


@pytest.fixture(scope="module")
def ollama_server() -> Any:
    yield from provider_fake(OllamaFake)


@pytest.fixture(scope="module")
def oaic_server() -> Any:
    yield from provider_fake(OpenAIFake, flavour="openrouter")


async def test_bedrock_mode_sends_bare_names_and_default_embeddings_to_bedrock(bedrock: Any, configure: Any) -> None:
    configure(mode="bedrock", max_retries=0)
    reply = await synapse.achat("amazon.nova-pro-v1:0", "hi")
    assert reply.provider == "bedrock"
    assert bedrock.raw_paths[-1] == "/model/amazon.nova-pro-v1%3A0/converse"
    vectors = await synapse.aembed(None, ["alpha"])
    assert len(vectors[0]) == 1024
    assert bedrock.raw_paths[-1] == "/model/amazon.titan-embed-text-v2%3A0/invoke"


async def test_cloud_mode_sends_bare_names_to_the_openai_compatible_cloud(oaic_server: Any, configure: Any) -> None:
    oaic_server.reset()
    configure(**oaic_server.settings(), mode="cloud", max_retries=0,
              openai_compatible_embed_models="openai/text-embedding-3-small")
    reply = await synapse.achat("anthropic/claude-sonnet-4.5", "hi")
    assert reply.provider == "oaic"
    assert oaic_server.last.json()["model"] == "anthropic/claude-sonnet-4.5"
    await synapse.aembed(None, ["alpha"])
    assert oaic_server.last.json()["model"] == "openai/text-embedding-3-small"


async def test_cloud_mode_without_the_cloud_configured_names_its_settings(synapse_env: Any, configure: Any) -> None:
    configure(mode="cloud")
    with pytest.raises(ConfigurationError, match="openai_compatible_key"):
        await synapse.achat("mistral", "hi")


async def test_local_mode_lists_ollama_models_bare_other_modes_prefixed(ollama_server: Any, configure: Any) -> None:
    ollama_server.reset()
    configure(ollama_base_url=ollama_server.url)
    spec = get_spec("ollama")
    bare = [m.id for m in await adapter_for(spec, load_settings()).list_models()]
    assert "llama3.2" in bare
    configure(mode="bedrock")
    prefixed = [m.id for m in await adapter_for(spec, load_settings()).list_models()]
    assert "ollama.llama3.2" in prefixed and "llama3.2" not in prefixed
    assert all(resolve(mid, load_settings()).spec.id == "ollama" for mid in prefixed)


def test_local_mode_default_embedding_is_the_bundled_model(synapse_env: Any) -> None:
    vectors = synapse.embed(None, ["hello"])
    assert len(vectors) == 1 and len(vectors[0]) == len(synapse.embed("local", ["x"])[0])
