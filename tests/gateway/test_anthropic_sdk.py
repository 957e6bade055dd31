"""The official `anthropic` SDK, unchanged, against /v1/messages, count_tokens and
/v1/models, relayed to the Anthropic fake and translated for the other protocols."""

from __future__ import annotations

import json
from typing import Any

import anthropic as anthropic_sdk
import pytest

from tests.fakes.anthropic import AnthropicFake
from tests.fakes.base import FakeReply, FakeToolCall
from tests.gateway.conftest import ledger_rows

WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
LONG_SYSTEM = "You are a careful assistant. " * 400  # ~3,000 tokens: over the 1,024-token cache minimum


def sdk(gateway: Any, key: str, **kw: Any) -> anthropic_sdk.Anthropic:
    return anthropic_sdk.Anthropic(base_url=gateway.url, api_key=key, max_retries=0, **kw)


@pytest.fixture
def both(anthropic: AnthropicFake, openai: Any, configure: Any) -> tuple[AnthropicFake, Any]:
    configure(**anthropic.settings(), **openai.settings(), max_retries=0)
    return anthropic, openai


# --- relayed to Anthropic -------------------------------------------------------------------------


def test_relay_plans_the_prompt_cache_and_reports_anthropic_usage(gateway: Any, both: Any, make_key: Any) -> None:
    claude, _ = both
    client = sdk(gateway, make_key("agent"))
    ask = {"model": "claude-sonnet-4-5", "max_tokens": 200, "system": LONG_SYSTEM,
           "messages": [{"role": "user", "content": "hi"}]}
    first = client.messages.create(**ask)  # type: ignore[arg-type]
    second = client.messages.create(**ask)  # type: ignore[arg-type]
    sent = claude.last.json()
    assert sent["system"][0]["cache_control"] == {"type": "ephemeral"}  # planned by Synapse: the caller set none
    assert first.usage.cache_creation_input_tokens > 1000 and first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.input_tokens < 10  # excludes the cache, as Anthropic counts
    rows = ledger_rows(key_name="agent")
    assert [r["cache_read_tokens"] for r in rows] == [0, second.usage.cache_read_input_tokens]
    assert rows[1]["savings_usd"] > 0


def test_relay_keeps_the_callers_cache_control_and_beta_header(gateway: Any, both: Any, make_key: Any) -> None:
    claude, _ = both
    sdk(gateway, make_key()).messages.create(
        model="claude-sonnet-4-5", max_tokens=50,
        system=[{"type": "text", "text": "short", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        messages=[{"role": "user", "content": "hi"}], extra_headers={"anthropic-beta": "some-beta-2025"})
    sent = claude.last
    assert sent.json()["system"] == [{"type": "text", "text": "short", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    assert sent.headers["anthropic-beta"] == "some-beta-2025"
    assert sent.headers["x-api-key"] == AnthropicFake.KEY  # Synapse's key upstream, never the caller's


def test_relay_stream_has_the_exact_event_sequence(gateway: Any, both: Any, make_key: Any) -> None:
    claude, _ = both
    claude.reply(FakeReply(text="Checking.", reasoning="need the weather",
                           tool_calls=[FakeToolCall("toolu_7", "get_weather", {"city": "Lima"})]))
    with sdk(gateway, make_key()).messages.stream(model="claude-sonnet-4-5", max_tokens=300, tools=[WEATHER],
                                                  messages=[{"role": "user", "content": "weather?"}]) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[2].input == {"city": "Lima"} and final.stop_reason == "tool_use"
    (row,) = ledger_rows()
    assert row["output_tokens"] == final.usage.output_tokens and row["stream"]


def test_count_tokens_for_anthropic_models_only(gateway: Any, both: Any, make_key: Any) -> None:
    client = sdk(gateway, make_key())
    counted = client.messages.count_tokens(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "x" * 400}])
    assert counted.input_tokens == 100
    with pytest.raises(anthropic_sdk.BadRequestError) as err:
        client.messages.count_tokens(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert "Anthropic models only" in err.value.message
    assert ledger_rows() == []  # counting is free: no ledger row


# --- cross shape: Anthropic-shaped request to a gpt- model ------------------------------------------------


def test_anthropic_shape_to_gpt_streams_tool_use_blocks(gateway: Any, both: Any, make_key: Any) -> None:
    _, oai = both
    oai.reply(FakeReply(text="On it.", tool_calls=[FakeToolCall("call_5", "get_weather", {"city": "Kyiv"})],
                        input_tokens=40, cache_read_tokens=1024, cache_write_tokens=64, output_tokens=12))
    with sdk(gateway, make_key()).messages.stream(
            model="gpt-4o-mini", max_tokens=256, system=[{"type": "text", "text": "Be brief."}], tools=[WEATHER],
            tool_choice={"type": "any"}, messages=[{"role": "user", "content": "weather in Kyiv?"}]) as stream:
        events = list(stream)
        final = stream.get_final_message()
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    deltas = [e.delta.type for e in events if e.type == "content_block_delta"]
    assert "text_delta" in deltas and "input_json_delta" in deltas
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[0].text == "On it."
    assert (final.content[1].id, final.content[1].name, final.content[1].input) == ("call_5", "get_weather", {"city": "Kyiv"})
    assert final.stop_reason == "tool_use"
    # Anthropic's convention: input_tokens excludes the cache
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens, final.usage.cache_creation_input_tokens) == (40, 1024, 64)
    assert final.usage.output_tokens == 12
    sent = oai.last.json()
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."} and sent["tool_choice"] == "required"
    assert sent["max_completion_tokens"] == 256  # OpenAI's name for it


def test_anthropic_shape_to_gpt_with_history_tools_and_thinking(gateway: Any, both: Any, make_key: Any) -> None:
    _, oai = both
    r = sdk(gateway, make_key()).messages.create(model="gpt-4o-mini", max_tokens=100, messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "sig"},
                                          {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Nice"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain"}]},
    ], tools=[WEATHER])
    assert r.content[0].type == "text" and r.stop_reason == "end_turn"
    sent = oai.last.json()["messages"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Nice"}
    assert sent[2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "rain"}


def test_models_list_in_anthropic_shape(gateway: Any, both: Any, make_key: Any) -> None:
    page = sdk(gateway, make_key()).models.list()
    ids = [m.id for m in page.data]
    assert "claude-sonnet-4-5-20250929" in ids and "gpt-4o-mini" in ids
    assert page.data[0].type == "model"


# --- errors ----------------------------------------------------------------------------------------------


def test_each_error_status_raises_the_sdk_exception(gateway: Any, both: Any, make_key: Any, configure: Any) -> None:
    claude, oai = both
    client = sdk(gateway, make_key("claude-only", models="claude-*"))
    hi = [{"role": "user", "content": "hi"}]
    with pytest.raises(anthropic_sdk.AuthenticationError) as auth:
        sdk(gateway, "sk-syn-wrong").messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=hi)
    assert auth.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic_sdk.PermissionDeniedError):
        client.messages.create(model="gpt-4o-mini", max_tokens=10, messages=hi)
    with pytest.raises(anthropic_sdk.NotFoundError):
        client.messages.create(model="claude-nonexistent-9", max_tokens=10, messages=hi)
    with pytest.raises(anthropic_sdk.BadRequestError) as bad:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=hi, extra_body={"temperature": 3})
    assert "temperature" in bad.value.message
    claude.rate_limit_next(retry_after="12")
    with pytest.raises(anthropic_sdk.RateLimitError) as limited:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=hi)
    assert limited.value.response.headers["retry-after"] == "12"
    claude.overloaded_next()
    with pytest.raises(anthropic_sdk.OverloadedError):
        client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=hi)
    claude.server_error_next()
    with pytest.raises(anthropic_sdk.InternalServerError):
        client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=hi)
    configure(gateway_max_body_bytes=1000)
    with pytest.raises(anthropic_sdk.APIStatusError) as big:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "x" * 5000}])
    assert big.value.status_code == 413 and big.value.body["error"]["type"] == "request_too_large"


def test_a_relayed_stream_that_breaks_ends_with_an_error_event(gateway: Any, both: Any, make_key: Any) -> None:
    claude, _ = both
    claude.reply(FakeReply(text="one two three four five", break_after_events=5))
    with pytest.raises(anthropic_sdk.APIStatusError) as err:
        with sdk(gateway, make_key()).messages.stream(model="claude-sonnet-4-5", max_tokens=100,
                                                      messages=[{"role": "user", "content": "go"}]) as stream:
            for _ in stream:
                pass
    assert "mid-stream" in str(err.value)
    (row,) = ledger_rows()
    assert row["outcome"] in ("unavailable", "connection_failed") and row["input_tokens"] > 0  # from message_start
