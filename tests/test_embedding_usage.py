"""Embedding calls land in the usage ledger with the tokens the provider counted, priced
from genai-prices where it knows the model; "price unknown" only when it does not, or when
the provider reported no count at all (older Gemini answers)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

import synapse
from synapse import settings as settings_mod
from synapse import storage
from synapse.providers import openai as openai_mod
from synapse.usage.ledger import flush
from tests.fakes.base import estimate_tokens

pytestmark = pytest.mark.database

TEXTS = ["the first text to embed", "a second, somewhat longer text to embed here"]
TOKENS = sum(estimate_tokens(t) for t in TEXTS)  # what every fake counts


def rows() -> list[dict[str, Any]]:
    from synapse.storage.tables import usage_calls

    assert flush(30)
    with storage.engine(settings=settings_mod.load()).connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(usage_calls).order_by(usage_calls.c.id)).mappings()]


async def test_openai_embedding_tokens_are_recorded_and_priced(openai: Any) -> None:
    vectors = await synapse.aembed("text-embedding-3-small", TEXTS)
    assert len(vectors) == 2
    [row] = rows()
    assert (row["kind"], row["outcome"], row["input_tokens"], row["output_tokens"]) == ("embed", "ok", TOKENS, 0)
    assert row["cost_usd"] == pytest.approx(TOKENS * 0.02 / 1e6)  # text-embedding-3-small: $0.02 / M tokens


async def test_tokens_of_every_batch_are_added_up(openai: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openai_mod, "_EMBED_BATCH", 1)
    await synapse.aembed("text-embedding-3-small", TEXTS)
    assert len([r for r in openai.requests if r.path.endswith("/embeddings")]) == 2
    [row] = rows()
    assert row["input_tokens"] == TOKENS


async def test_titan_tokens_come_from_each_answer(bedrock: Any) -> None:
    await synapse.aembed("amazon.titan-embed-text-v2:0", TEXTS)
    [row] = rows()
    assert (row["provider"], row["input_tokens"]) == ("bedrock", TOKENS)
    assert row["cost_usd"] == pytest.approx(TOKENS * 0.02 / 1e6)


async def test_cohere_on_bedrock_counts_tokens_even_without_a_known_price(bedrock: Any) -> None:
    await synapse.aembed("bedrock.cohere.embed-english-v3", TEXTS)
    [row] = rows()
    assert row["input_tokens"] == TOKENS  # from the x-amzn-bedrock-input-token-count header
    assert row["cost_usd"] is None  # genai-prices has no price for it: unknown, not $0


async def test_gemini_tokens_when_the_answer_has_usage_and_unknown_when_not(gemini: Any) -> None:
    await synapse.aembed("gemini-embedding-001", TEXTS)
    gemini.embed_usage = False  # an older answer: no usageMetadata
    await synapse.aembed("gemini-embedding-001", TEXTS)
    with_usage, without = rows()
    assert with_usage["input_tokens"] == TOKENS
    assert with_usage["cost_usd"] == pytest.approx(TOKENS * 0.15 / 1e6)
    assert (without["input_tokens"], without["cost_usd"], without["outcome"]) == (0, None, "ok")


async def test_ollama_embedding_tokens_are_recorded_at_no_cost(ollama: Any) -> None:
    await synapse.aembed("ollama.nomic-embed-text", TEXTS)
    [row] = rows()
    assert (row["provider"], row["input_tokens"], row["cost_usd"]) == ("ollama", TOKENS, 0.0)


async def test_a_failed_embedding_costs_nothing(openai: Any, configure: Any) -> None:
    configure(max_retries=0)
    openai.fail_next(500, {"error": {"message": "boom", "type": "server_error", "param": None, "code": None}})
    with pytest.raises(synapse.UpstreamUnavailableError):
        await synapse.aembed("text-embedding-3-small", TEXTS)
    [row] = rows()
    assert (row["outcome"], row["input_tokens"], row["cost_usd"]) == ("unavailable", 0, 0.0)
