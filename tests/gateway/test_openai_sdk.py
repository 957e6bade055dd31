"""The official `openai` SDK, unchanged, against /v1/chat/completions, /v1/models and
/v1/embeddings, with every wire protocol's fake behind the gateway."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import openai as openai_sdk
import pytest

from tests.fakes.anthropic import AnthropicFake
from tests.fakes.base import FakeReply, FakeServer, FakeToolCall
from tests.fakes.bedrock import BedrockFake
from tests.fakes.gemini import GeminiFake
from tests.fakes.ollama import OllamaFake
from tests.gateway.conftest import ledger_rows

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()


def sdk(gateway: Any, key: str, **kw: Any) -> openai_sdk.OpenAI:
    return openai_sdk.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, **kw)


@pytest.fixture
def both(anthropic: AnthropicFake, openai: Any, configure: Any) -> tuple[AnthropicFake, Any]:
    configure(**anthropic.settings(), **openai.settings(), max_retries=0)
    return anthropic, openai


# --- same protocol: relayed -----------------------------------------------------------------------


def test_relay_chat_usage_counts_cached_input_in_prompt_tokens(gateway: Any, both: Any, make_key: Any) -> None:
    _, oai = both
    oai.reply(FakeReply(text="Bonjour", input_tokens=100, cache_read_tokens=900, cache_write_tokens=50, output_tokens=7,
                        reasoning_tokens=3))
    r = sdk(gateway, make_key("app")).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hi in French"}], temperature=0.5, seed=7)
    assert r.choices[0].message.content == "Bonjour"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens == 1050  # includes the cached tokens, as OpenAI counts
    assert r.usage.prompt_tokens_details.cached_tokens == 900
    assert r.usage.completion_tokens == 7
    assert r.usage.completion_tokens_details.reasoning_tokens == 3
    sent = oai.last.json()
    assert sent["model"] == "gpt-4o-mini" and sent["temperature"] == 0.5 and sent["seed"] == 7  # passed through as is
    (row,) = ledger_rows()
    assert (row["key_name"], row["provider"], row["model"]) == ("app", "openai", "gpt-4o-mini")
    assert (row["input_tokens"], row["cache_read_tokens"], row["cache_write_tokens"], row["output_tokens"]) == (100, 900, 50, 7)
    assert row["outcome"] == "ok" and row["cost_usd"] > 0


def test_relay_stream_hides_the_usage_chunk_it_asked_for_but_records_usage(gateway: Any, both: Any, make_key: Any) -> None:
    _, oai = both
    oai.reply(FakeReply(text="one two three", input_tokens=11, output_tokens=3))
    chunks = list(sdk(gateway, make_key()).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "count"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three"
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)  # not asked for: not sent
    assert oai.last.json()["stream_options"] == {"include_usage": True}  # but asked upstream, for the ledger
    (row,) = ledger_rows()
    assert (row["input_tokens"], row["output_tokens"], row["stream"]) == (11, 3, True)


def test_relay_stream_tool_call_arguments_arrive_in_pieces(gateway: Any, both: Any, make_key: Any) -> None:
    _, oai = both
    oai.reply(FakeReply(tool_calls=[FakeToolCall("call_1", "get_weather", {"city": "Paris"})]))
    chunks = list(sdk(gateway, make_key()).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER], stream=True,
        stream_options={"include_usage": True}))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].index == 0 and calls[0].id == "call_1" and calls[0].function.name == "get_weather"
    assert json.loads("".join(tc.function.arguments or "" for tc in calls)) == {"city": "Paris"}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None  # asked for: the usage chunk comes last


# --- cross shape: OpenAI-shaped request to Claude ---------------------------------------------------


def test_openai_shape_to_claude_streams_tool_calls_like_openai(gateway: Any, both: Any, make_key: Any) -> None:
    claude, _ = both
    claude.reply(FakeReply(text="Let me check.", tool_calls=[FakeToolCall("toolu_01", "get_weather", {"city": "Paris"})],
                           input_tokens=20, cache_read_tokens=2000, cache_write_tokens=300, output_tokens=15))
    chunks = list(sdk(gateway, make_key()).chat.completions.create(
        model="claude-sonnet-4-5", messages=[{"role": "system", "content": "Be brief."},
                                             {"role": "user", "content": "weather in Paris?"}],
        tools=[WEATHER], tool_choice="auto", max_completion_tokens=300, stream=True, stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Let me check."
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert (calls[0].index, calls[0].id, calls[0].function.name) == (0, "toolu_01", "get_weather")
    assert all(tc.id is None and tc.function.name is None for tc in calls[1:])
    assert json.loads("".join(tc.function.arguments or "" for tc in calls)) == {"city": "Paris"}
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["tool_calls"]
    usage = chunks[-1].usage
    assert chunks[-1].choices == []
    assert usage.prompt_tokens == 2320 and usage.prompt_tokens_details.cached_tokens == 2000
    assert usage.completion_tokens == 15
    sent = claude.last.json()
    assert sent["system"][0]["text"] == "Be brief." and sent["max_tokens"] == 300
    assert sent["tools"][0]["name"] == "get_weather" and sent["tool_choice"] == {"type": "auto"}
    (row,) = ledger_rows()
    assert (row["provider"], row["cache_read_tokens"], row["cache_write_tokens"], row["input_tokens"]) == ("anthropic", 2000, 300, 20)


def test_openai_shape_to_claude_with_an_image_and_a_tool_result(gateway: Any, both: Any, make_key: Any) -> None:
    claude, _ = both
    r = sdk(gateway, make_key()).chat.completions.create(model="claude-sonnet-4-5", messages=[
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_9", "content": "sunny"},
    ], tools=[WEATHER])
    assert r.choices[0].message.content == "The tool said: sunny"
    sent = claude.last.json()["messages"]
    image = sent[0]["content"][1]
    assert image["type"] == "image" and image["source"] == {"type": "base64", "media_type": "image/png", "data": PNG}
    assert sent[1]["content"][0] == {"type": "tool_use", "id": "call_9", "name": "get_weather", "input": {"city": "Oslo"}}
    assert sent[2]["content"][0]["type"] == "tool_result" and sent[2]["content"][0]["tool_use_id"] == "call_9"


def test_reasoning_effort_and_top_p_become_claude_thinking(gateway: Any, both: Any, make_key: Any) -> None:
    claude, _ = both
    claude.reply(FakeReply(text="42", reasoning="think think"))
    r = sdk(gateway, make_key()).chat.completions.create(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "answer"}], reasoning_effort="low",
        max_completion_tokens=8000, top_p=0.9, user="u-1")
    sent = claude.last.json()
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert sent["top_p"] == 0.9 and sent["metadata"] == {"user_id": "u-1"}
    assert r.choices[0].message.content == "42"
    assert r.usage.completion_tokens_details.reasoning_tokens > 0


# --- every other protocol behind the OpenAI shape ----------------------------------------------------


OTHERS = [
    ("gemini-2.5-flash", "gemini", GeminiFake),
    ("bedrock.us.anthropic.claude-sonnet-4-5-20250929-v1:0", "bedrock", BedrockFake),
    ("ollama.llama3.2", "ollama", OllamaFake),
]


@pytest.fixture(params=OTHERS, ids=[o[1] for o in OTHERS])
def other(request: pytest.FixtureRequest, configure: Any) -> Iterator[tuple[str, str, FakeServer]]:
    model, provider, cls = request.param
    fake = cls().start()
    try:
        configure(**fake.settings(), max_retries=0)
        yield model, provider, fake
    finally:
        fake.stop()


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
def test_every_protocol_answers_in_openai_shape(gateway: Any, other: Any, make_key: Any, stream: bool) -> None:
    model, provider, fake = other
    fake.reply(FakeReply(tool_calls=[FakeToolCall("call_a", "get_weather", {"city": "Rome"})]))
    client = sdk(gateway, make_key())
    messages = [{"role": "user", "content": "weather in Rome?"}]
    if stream:
        chunks = list(client.chat.completions.create(model=model, messages=messages, tools=[WEATHER], stream=True,
                                                     stream_options={"include_usage": True}))
        calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
        assert calls[0].function.name == "get_weather"
        assert json.loads("".join(tc.function.arguments or "" for tc in calls)) == {"city": "Rome"}
        assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
        assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0
    else:
        r = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
        call = r.choices[0].message.tool_calls[0]
        assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Rome"})
        assert r.choices[0].finish_reason == "tool_calls" and r.usage.prompt_tokens > 0
    (row,) = ledger_rows()
    assert row["provider"] == provider and row["outcome"] == "ok"


# --- models and embeddings ------------------------------------------------------------------------


def test_models_list_has_every_configured_provider_and_the_aliases(gateway: Any, both: Any, make_key: Any,
                                                                    configure: Any) -> None:
    configure(model_aliases={"fast": "claude-haiku-4-5", "smart": "gpt-5"})
    client = sdk(gateway, make_key())
    ids = {m.id: m.owned_by for m in client.models.list()}
    assert ids["gpt-4o-mini"] == "openai" and ids["claude-sonnet-4-5-20250929"] == "anthropic"
    assert ids["fast"] == ids["smart"] == "synapse-alias" and ids["local"] == "synapse"
    assert client.models.retrieve("fast").id == "fast"
    with pytest.raises(openai_sdk.NotFoundError):
        client.models.retrieve("no-such-model")


def test_an_alias_routes_every_call(gateway: Any, both: Any, make_key: Any, configure: Any) -> None:
    claude, _ = both
    configure(model_aliases='{"fast": "claude-haiku-4-5"}')
    r = sdk(gateway, make_key()).chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
    assert r.model == "claude-haiku-4-5"
    assert claude.last.json()["model"] == "claude-haiku-4-5"


def test_embeddings_from_a_provider_and_the_local_model(gateway: Any, both: Any, make_key: Any) -> None:
    client = sdk(gateway, make_key())
    r = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])  # the SDK asks for base64
    assert [d.index for d in r.data] == [0, 1] and len(r.data[0].embedding) > 0
    local = client.embeddings.create(model="local", input="bonjour", encoding_format="float")
    assert len(local.data) == 1 and len(local.data[0].embedding) == 384
    assert abs(sum(x * x for x in local.data[0].embedding) - 1.0) < 1e-3  # unit vector


# --- errors: each status raises the SDK's own class ------------------------------------------------------


def test_each_error_status_raises_the_sdk_exception(gateway: Any, both: Any, make_key: Any) -> None:
    claude, oai = both
    client = sdk(gateway, make_key("limited", models="gpt-*,claude-*"))
    hi = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai_sdk.BadRequestError) as bad:
        client.chat.completions.create(model="claude-sonnet-4-5", messages=[{"role": "wizard", "content": "x"}])
    assert "role" in bad.value.message
    with pytest.raises(openai_sdk.AuthenticationError):
        sdk(gateway, "sk-syn-nope").chat.completions.create(model="gpt-4o-mini", messages=hi)
    with pytest.raises(openai_sdk.PermissionDeniedError) as denied:
        client.chat.completions.create(model="gemini-2.5-flash", messages=hi)
    assert "limited" in denied.value.message
    with pytest.raises(openai_sdk.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-unknown", messages=hi)
    assert missing.value.code == "model_not_found"
    oai.fail_next(429, {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}},
                  {"retry-after": "7"})
    with pytest.raises(openai_sdk.RateLimitError) as limited:
        client.chat.completions.create(model="gpt-4o-mini", messages=hi)
    assert limited.value.response.headers["retry-after"] == "7"
    oai.fail_next(500, {"error": {"message": "boom", "type": "server_error", "code": None}})
    with pytest.raises(openai_sdk.InternalServerError):
        client.chat.completions.create(model="gpt-4o-mini", messages=hi)
    claude.overloaded_next()
    with pytest.raises(openai_sdk.InternalServerError) as overloaded:
        client.chat.completions.create(model="claude-sonnet-4-5", messages=hi)
    assert overloaded.value.status_code == 529 and overloaded.value.body["code"] == "overloaded"


def test_a_failure_after_the_stream_started_is_an_in_stream_error(gateway: Any, both: Any, make_key: Any) -> None:
    claude, _ = both
    claude.reply(FakeReply(text="a b c d e f", error_after_events=5))
    stream = sdk(gateway, make_key()).chat.completions.create(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "go"}], stream=True)
    got: list[str] = []
    with pytest.raises(openai_sdk.APIError) as err:
        for chunk in stream:
            got.append(chunk.choices[0].delta.content or "")
    assert "overloaded" in str(err.value.message).lower()
    assert "".join(got)  # some text came before the error
    (row,) = ledger_rows()
    assert row["outcome"] == "overloaded"
