"""Model lists, key checks and embeddings over the Chat Completions protocol."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from synapse.client import aembed
from synapse.errors import AuthenticationError, NotFoundError, UpstreamUnavailableError
from synapse.providers import adapter_for
from synapse.providers.catalog import get as get_spec
from synapse.settings import load as load_settings
from tests.conftest import provider_fake
from tests.fakes.openai import OpenAIFake, embedding_for


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIFake]:
    yield from provider_fake(OpenAIFake, flavour="openai")


@pytest.fixture
def fake(server: OpenAIFake, configure: Any) -> OpenAIFake:
    server.reset()
    configure(**server.settings(), max_retries=0)
    return server


def openai_adapter() -> Any:
    return adapter_for(get_spec("openai"), load_settings())


async def test_list_models_keeps_what_routes_back_to_openai(fake: OpenAIFake) -> None:
    models = await openai_adapter().list_models()
    assert [(m.id, m.embedding) for m in models] == [
        ("gpt-4o-mini", False), ("gpt-4.1", False), ("gpt-5", False), ("o3", False), ("o3-mini", False),
        ("o4-mini", False), ("text-embedding-3-small", True), ("text-embedding-3-large", True),
    ]  # whisper, dall-e, realtime, tts and davinci cannot be chatted with here
    assert all(m.provider == "openai" and m.upstream_id == m.id for m in models)
    assert fake.last.method == "GET" and fake.last.path == "/v1/models"
    assert fake.last.headers["Authorization"] == f"Bearer {fake.key}"


async def test_verify_good_and_bad_key(fake: OpenAIFake, configure: Any) -> None:
    assert len(await openai_adapter().verify()) == 8
    configure(openai_key="sk-proj-nopenopenope00009999")
    with pytest.raises(AuthenticationError) as exc:
        await openai_adapter().verify()
    assert str(exc.value).startswith("OpenAI rejected the key in openai_key: check it at platform.openai.com/api-keys")
    assert "sk-proj-nopenopenope00009999" not in str(exc.value)


async def test_list_models_malformed(fake: OpenAIFake) -> None:
    fake.fail_next(200, {"object": "list"})
    with pytest.raises(UpstreamUnavailableError, match="model list"):
        await openai_adapter().list_models()


async def test_xai_and_deepseek_lists(configure: Any) -> None:
    with OpenAIFake(flavour="xai") as xai, OpenAIFake(flavour="deepseek") as ds:
        configure(**xai.settings(), **ds.settings())
        assert [m.id for m in await adapter_for(get_spec("xai"), load_settings()).list_models()] == ["grok-4", "grok-3-mini"]
        assert [m.id for m in await adapter_for(get_spec("deepseek"), load_settings()).verify()] == [
            "deepseek-chat", "deepseek-reasoner"]
        assert ds.last.path == "/models"


def test_cli_models(fake: OpenAIFake, cli: Any) -> None:
    res = cli("models", "--json")
    assert res.code == 0, res.err
    entry = next(p for p in json.loads(res.out) if p["provider"] == "openai")
    assert "gpt-4o-mini" in entry["models"] and "whisper-1" not in entry["models"]


async def test_embed_openai_base64_decoded_in_order(fake: OpenAIFake) -> None:
    vectors = await aembed("text-embedding-3-small", ["hello", "world", "hello"])
    assert vectors == [embedding_for("hello"), embedding_for("world"), embedding_for("hello")]
    assert fake.last.path == "/v1/embeddings"
    assert fake.last.json() == {"model": "text-embedding-3-small", "input": ["hello", "world", "hello"],
                                "encoding_format": "base64"}


async def test_embed_sorts_by_index_and_checks_count(fake: OpenAIFake) -> None:
    fake.fail_next(200, {"object": "list", "data": [
        {"object": "embedding", "index": 1, "embedding": [0.0, 1.0]},
        {"object": "embedding", "index": 0, "embedding": [1.0, 0.0]},
    ], "model": "text-embedding-3-small", "usage": {"prompt_tokens": 2, "total_tokens": 2}})
    assert await aembed("text-embedding-3-small", ["a", "b"]) == [[1.0, 0.0], [0.0, 1.0]]
    fake.fail_next(200, {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [1.0]}]})
    with pytest.raises(UpstreamUnavailableError, match="expected 2 embeddings"):
        await aembed("text-embedding-3-small", ["a", "b"])


async def test_embed_batches_past_2048_inputs(fake: OpenAIFake) -> None:
    texts = [f"t{i}" for i in range(2050)]
    vectors = await aembed("text-embedding-3-small", texts)
    assert len(vectors) == 2050 and vectors[2049] == embedding_for("t2049")
    assert [len(r.json()["input"]) for r in fake.requests] == [2048, 2]


async def test_embed_unknown_model_and_bad_key(fake: OpenAIFake, configure: Any) -> None:
    with pytest.raises(NotFoundError):
        await aembed("text-embedding-nope", ["x"])
    configure(openai_key="sk-proj-badbadbad000011112222")
    with pytest.raises(AuthenticationError):
        await aembed("text-embedding-3-small", ["x"])


async def test_embed_locv1(configure: Any) -> None:
    with OpenAIFake(flavour="local") as local:
        configure(**local.settings())
        assert await aembed("locv1.nomic-embed-text-v1.5", ["q"]) == [embedding_for("q")]
        assert local.last.json() == {"model": "nomic-embed-text-v1.5", "input": ["q"]}
        assert "Authorization" not in local.last.headers


def test_cli_embed(fake: OpenAIFake, cli: Any) -> None:
    res = cli("embed", "--json", "-m", "text-embedding-3-small", "one", "two")
    assert res.code == 0, res.err
    out = json.loads(res.out)
    assert out["dimensions"] == 8 and out["vectors"] == [embedding_for("one"), embedding_for("two")]
