"""The opt-in response cache: exact and semantic, per call or per agent, with TTL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import synapse
from synapse.client import CallContext
from synapse.errors import SynapseError
from synapse.types import ReasoningDelta, ResponseDone, TextDelta, ToolCallDelta
from tests.fakes.anthropic import AnthropicFake
from tests.fakes.base import FakeReply, FakeToolCall
from tests.test_usage_ledger import rows

CLAUDE = "claude-sonnet-4-5"


@pytest.fixture
def fake(anthropic_fake: AnthropicFake, configure: Any) -> AnthropicFake:
    anthropic_fake.reset()
    configure(anthropic_key=AnthropicFake.KEY, anthropic_base_url=anthropic_fake.url)
    return anthropic_fake


async def test_off_by_default(fake: AnthropicFake) -> None:
    await synapse.achat(CLAUDE, "What is 2+2?")
    await synapse.achat(CLAUDE, "What is 2+2?")
    assert len(fake.requests) == 2


async def test_exact_hit_makes_no_provider_call_and_counts_in_usage(fake: AnthropicFake, synapse_env: Path) -> None:
    r1 = await synapse.achat(CLAUDE, "What is 2+2?", cache="exact")
    r2 = await synapse.achat(CLAUDE, "What is 2+2?", cache="exact")
    assert len(fake.requests) == 1
    assert r2.text == r1.text and r2.stop_reason == r1.stop_reason and r2.model == CLAUDE
    assert r2.usage.prompt_tokens == 0 and r2.usage.output_tokens == 0  # nothing billed for the hit
    assert (synapse_env / "cache" / "responses.sqlite3").exists()
    first, hit = rows()
    assert (first["response_cache_hit"], hit["response_cache_hit"]) == (False, True)
    assert hit["cost_usd"] == 0.0
    assert hit["savings_usd"] == pytest.approx(first["cost_usd"])  # what the call would have cost
    assert hit["input_tokens"] == 0


async def test_exact_key_covers_model_options_and_history(fake: AnthropicFake) -> None:
    await synapse.achat(CLAUDE, "What is 2+2?", cache=True)
    await synapse.achat(CLAUDE, "What is 2+2?", cache=True, temperature=0.5)
    await synapse.achat(CLAUDE, "What is 2+2?", cache=True, system="Answer in French.")
    await synapse.achat("claude-haiku-4-5", "What is 2+2?", cache=True)
    await synapse.achat(CLAUDE, "what is 2+2?", cache=True)  # exact means exact
    assert len(fake.requests) == 5
    await synapse.achat(CLAUDE, "What is 2+2?", cache=True, temperature=0.5)
    assert len(fake.requests) == 5


async def test_a_streamed_hit_is_replayed_as_events(fake: AnthropicFake) -> None:
    fake.reply(FakeReply(text="Checking the weather.", reasoning="The user wants weather.",
                         tool_calls=[FakeToolCall("toolu_01", "get_weather", {"city": "Paris"})]))
    tools = [{"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    first: list[Any] = [ev async for ev in synapse.astream(CLAUDE, "Weather in Paris?", tools=tools, cache="exact")]
    again: list[Any] = [ev async for ev in synapse.astream(CLAUDE, "Weather in Paris?", tools=tools, cache="exact")]
    assert len(fake.requests) == 1
    assert [type(e) for e in again] == [ReasoningDelta, TextDelta, ToolCallDelta, ResponseDone]
    assert again[1].text == "Checking the weather."
    assert (again[2].id, again[2].name, again[2].arguments) == ("toolu_01", "get_weather", '{"city":"Paris"}')
    done = again[-1].response
    assert done.tool_calls[0].arguments == {"city": "Paris"} and done.stop_reason == "tool_use"
    assert done.text == first[-1].response.text
    # a cached non-streaming call is served from the streamed one too
    r = await synapse.achat(CLAUDE, "Weather in Paris?", tools=tools, cache="exact")
    assert len(fake.requests) == 1 and r.tool_calls[0].name == "get_weather"


async def test_semantic_hits_a_paraphrase_only(fake: AnthropicFake) -> None:
    r1 = await synapse.achat(CLAUDE, "What is the capital of France?", cache="semantic")
    r2 = await synapse.achat(CLAUDE, "What's the capital of France?", cache="semantic")
    assert len(fake.requests) == 1 and r2.text == r1.text
    await synapse.achat(CLAUDE, "What is the capital of Germany?", cache="semantic")  # similar, not the same
    assert len(fake.requests) == 2
    await synapse.achat(CLAUDE, "What's the capital of France?", cache="semantic", system="Answer in Spanish.")
    assert len(fake.requests) == 3  # a different system prompt is never a semantic hit
    await synapse.achat(CLAUDE, "What's the capital of France?", cache="exact")
    assert len(fake.requests) == 4  # exact mode does not match paraphrases


async def test_per_agent_cache_through_the_call_context(fake: AnthropicFake) -> None:
    agent = CallContext(agent="faq-bot", cache="exact")
    await synapse.achat(CLAUDE, "Opening hours?", context=agent)
    await synapse.achat(CLAUDE, "Opening hours?", context=agent)
    assert len(fake.requests) == 1
    await synapse.achat(CLAUDE, "Opening hours?", context=agent, cache=False)  # the call overrides the agent
    assert len(fake.requests) == 2
    _, hit, _ = rows()
    assert hit["agent"] == "faq-bot" and hit["response_cache_hit"] is True


async def test_entries_expire_after_the_ttl(fake: AnthropicFake, configure: Any) -> None:
    configure(response_cache_ttl=0)
    await synapse.achat(CLAUDE, "What is 2+2?", cache="exact")
    await synapse.achat(CLAUDE, "What is 2+2?", cache="exact")
    assert len(fake.requests) == 2


async def test_failed_calls_are_not_cached(fake: AnthropicFake, configure: Any) -> None:
    configure(max_retries=0)
    fake.fail_next(500, {"type": "error", "error": {"type": "api_error", "message": "Internal server error"}})
    with pytest.raises(synapse.UpstreamUnavailableError):
        await synapse.achat(CLAUDE, "What is 2+2?", cache="exact")
    await synapse.achat(CLAUDE, "What is 2+2?", cache="exact")
    assert len(fake.requests) == 2


async def test_a_bad_cache_value_is_a_clear_error(fake: AnthropicFake) -> None:
    with pytest.raises(SynapseError, match="cache must be 'exact', 'semantic' or off"):
        await synapse.achat(CLAUDE, "hi", cache="fuzzy")
    assert fake.requests == []


async def test_a_failing_embedding_model_falls_back_to_exact_matching(fake: AnthropicFake, configure: Any) -> None:
    configure(embedding_model="text-embedding-3-small")  # OpenAI is not configured: embedding fails
    await synapse.achat(CLAUDE, "What is the capital of France?", cache="semantic")
    await synapse.achat(CLAUDE, "What's the capital of France?", cache="semantic")
    assert len(fake.requests) == 2  # no semantic match possible, but the calls work
    await synapse.achat(CLAUDE, "What's the capital of France?", cache="semantic")
    assert len(fake.requests) == 2  # and the exact entry was stored
