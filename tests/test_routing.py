"""Model name -> provider routing, prefix stripping, and the errors for names that go nowhere."""

from __future__ import annotations

from pathlib import Path

import pytest

import synapse
from synapse.errors import ConfigurationError, UnknownModelError
from synapse.providers.routing import KNOWN_PREFIXES, resolve


@pytest.mark.parametrize(
    ("name", "provider", "upstream"),
    [
        ("claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5"),
        ("gpt-4.1-mini", "openai", "gpt-4.1-mini"),
        ("chatgpt-4o-latest", "openai", "chatgpt-4o-latest"),
        ("o1", "openai", "o1"),
        ("o3", "openai", "o3"),
        ("o3-mini", "openai", "o3-mini"),
        ("o4-mini-2025-04-16", "openai", "o4-mini-2025-04-16"),
        ("gemini-2.5-flash", "gemini", "gemini-2.5-flash"),
        ("gemma-3-27b-it", "gemini", "gemma-3-27b-it"),
        ("grok-4", "xai", "grok-4"),
        ("deepseek-reasoner", "deepseek", "deepseek-reasoner"),
        ("bedrock.anthropic.claude-3-5-sonnet-20240620-v1:0", "bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0"),
        ("bedrock.us.anthropic.claude-sonnet-4-5-20250929-v1:0", "bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        (
            "bedrock.arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-2-1b-instruct-v1:0",
            "bedrock",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-2-1b-instruct-v1:0",
        ),
        ("oaic.meta-llama/Llama-3.3-70B", "oaic", "meta-llama/Llama-3.3-70B"),
        ("locv1.qwen2.5-7b-instruct", "locv1", "qwen2.5-7b-instruct"),
        ("hf.Qwen/Qwen2.5-0.5B-Instruct", "hf", "Qwen/Qwen2.5-0.5B-Instruct"),
        ("ollama.llama3.2:3b", "ollama", "llama3.2:3b"),
        ("ollama.gpt-oss:20b", "ollama", "gpt-oss:20b"),
        ("mistral", "ollama", "mistral"),
        ("o3x", "ollama", "o3x"),
        ("  claude-haiku-4-5  ", "anthropic", "claude-haiku-4-5"),
    ],
)
def test_prefix_routes_to_provider(name: str, provider: str, upstream: str) -> None:
    route = resolve(name)
    assert (route.spec.id, route.upstream_model) == (provider, upstream)
    assert route.bare == (provider == "ollama" and not name.startswith("ollama."))


def test_inference_profile_replaces_the_bedrock_model_for_chat_only() -> None:
    settings = {"bedrock_inference_profile": "us.anthropic.claude-sonnet-4-5-20250929-v1:0"}
    assert resolve("bedrock.anthropic.claude-x", settings).upstream_model == settings["bedrock_inference_profile"]
    assert resolve("bedrock.amazon.titan-embed-text-v2:0", settings, "embed").upstream_model == "amazon.titan-embed-text-v2:0"


@pytest.mark.parametrize(
    ("name", "provider"),
    [("text-embedding-3-small", "openai"), ("text-embedding-ada-002", "openai"), ("text-embedding-004", "gemini"), ("amazon.titan-embed-text-v2:0", "bedrock"), ("nomic-embed-text", "ollama")],
)
def test_embedding_names_route_without_prefix(name: str, provider: str) -> None:
    assert resolve(name, {}, "embed").spec.id == provider


@pytest.mark.parametrize("name", ["", "   ", "oaic.", "bedrock."])
def test_empty_names_are_rejected_with_a_hint(name: str) -> None:
    with pytest.raises(UnknownModelError):
        resolve(name)


def test_known_prefixes_cover_every_family() -> None:
    for prefix in ("claude-", "gpt-", "gemini-", "grok-", "deepseek-", "bedrock.<name>", "oaic.<name>", "locv1.<name>", "hf.<name>", "ollama.<name>"):
        assert prefix in KNOWN_PREFIXES


@pytest.mark.parametrize(
    ("model", "setting", "env"),
    [
        ("claude-sonnet-4-5", "anthropic_key", "ANTHROPIC_API_KEY"),
        ("gpt-5", "openai_key", "OPENAI_API_KEY"),
        ("gemini-2.5-pro", "gemini_key", "GEMINI_API_KEY"),
        ("grok-4", "grok_key", "XAI_API_KEY"),
        ("deepseek-chat", "deepseek_key", "DEEPSEEK_API_KEY"),
        ("bedrock.amazon.nova-pro-v1:0", "bedrock_api_key", "AWS_BEARER_TOKEN_BEDROCK"),
        ("oaic.some-model", "openai_compatible_key", ""),
        ("locv1.some-model", "local_compatible_base_url", ""),
    ],
)
def test_provider_without_key_names_provider_and_setting(synapse_env: Path, model: str, setting: str, env: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        synapse.chat(model, "hi")
    message = str(info.value)
    assert setting in message and "not configured" in message
    if env:
        assert env in message


def test_no_model_and_no_default_says_how_to_set_one(synapse_env: Path) -> None:
    with pytest.raises(UnknownModelError, match="synapse config set model"):
        synapse.chat(None, "hi")


def test_routes_are_worked_out_again_for_each_new_settings_snapshot(synapse_env: Path) -> None:
    """Routes are kept per settings snapshot (the gateway routes each name once, not once a
    request); a save is a new snapshot, so a changed alias or mode takes effect at once."""
    from synapse import settings as settings_mod

    s1 = settings_mod.update({"model_aliases": {"fast": "claude-haiku-4-5"}})
    assert resolve("fast", s1).upstream_model == "claude-haiku-4-5"
    assert resolve("fast", s1) is resolve("fast", s1)
    s2 = settings_mod.update({"model_aliases": {"fast": "gpt-5-mini"}})
    assert (resolve("fast", s2).spec.id, resolve("fast", s2).upstream_model) == ("openai", "gpt-5-mini")
    assert resolve("fast", s1).upstream_model == "claude-haiku-4-5"  # the old snapshot still routes its own way
    plain = {"model_aliases": {"fast": "grok-4"}}  # a plain mapping may change: never kept
    assert resolve("fast", plain).spec.id == "xai"
    plain["model_aliases"] = {"fast": "gemini-2.5-flash"}
    assert resolve("fast", plain).spec.id == "gemini"
