"""Gemini generateContent adapter against the loopback fake: wire bodies, decoding, usage, errors."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

import synapse
from synapse.errors import (
    AuthenticationError,
    BadRequestError,
    ContextTooLongError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    UpstreamUnavailableError,
)
from synapse.providers import adapter_for
from synapse.providers import transport as transport_mod
from synapse.providers.catalog import get as get_spec
from synapse.providers.gemini import gemini_schema, map_usage
from synapse.types import (
    ImagePart,
    Message,
    ReasoningDelta,
    ResponseDone,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolResultPart,
    Usage,
)
from tests.fakes.base import FakeToolCall
from tests.fakes.gemini import GeminiFake, GeminiReply, error_body

KEY = "AIzaSyFakeGeminiKey0123456789abcd"
MODEL = "gemini-2.5-flash"


@pytest.fixture(scope="module")
def fake() -> Iterator[GeminiFake]:
    server = GeminiFake(valid_keys={KEY}).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gem(fake: GeminiFake, configure: Any, monkeypatch: pytest.MonkeyPatch) -> GeminiFake:
    fake.reset()
    configure(gemini_key=KEY, gemini_base_url=fake.url, max_retries=2)
    monkeypatch.setattr(transport_mod, "BACKOFF_BASE", 0.001)  # retries without real sleeps
    return fake


def adapter() -> Any:
    from synapse import settings

    return adapter_for(get_spec("gemini"), settings.load())


async def collect(**kwargs: Any) -> list[Any]:
    model = kwargs.pop("model", MODEL)
    messages = kwargs.pop("messages", "hi")
    return [e async for e in synapse.astream(model, messages, **kwargs)]


# --- plain calls and the exact wire ------------------------------------------------------------


async def test_plain_chat_sends_exact_wire_request(gem: GeminiFake) -> None:
    r = await synapse.achat(MODEL, "What is up?", system="Be terse.", max_tokens=64, temperature=0.3, stop=["END"])
    req = gem.last
    assert req.method == "POST"
    assert req.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert req.query == {}  # the key is a header, never in the URL
    assert req.headers["x-goog-api-key"] == KEY
    assert req.headers["Content-Type"] == "application/json"
    assert req.json() == {
        "contents": [{"role": "user", "parts": [{"text": "What is up?"}]}],
        "systemInstruction": {"parts": [{"text": "Be terse."}]},
        "generationConfig": {"maxOutputTokens": 64, "temperature": 0.3, "stopSequences": ["END"]},
    }
    assert r.text == "Gemini heard: What is up?"
    assert r.stop_reason == "end_turn" and r.raw_stop_reason == "STOP"
    assert r.provider == "gemini" and r.model == MODEL
    assert r.tool_calls == []
    sent = gem.sent[-1]
    assert r.id == sent["responseId"]
    meta = sent["usageMetadata"]
    assert r.usage == Usage(input_tokens=meta["promptTokenCount"], output_tokens=meta["candidatesTokenCount"])
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0


async def test_multi_turn_history_maps_roles(gem: GeminiFake) -> None:
    history = [
        {"role": "system", "content": "You are a parrot."},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "ONE"},
        {"role": "user", "content": "two"},
    ]
    r = await synapse.achat(MODEL, history)
    body = gem.last.json()
    assert body["systemInstruction"] == {"parts": [{"text": "You are a parrot."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "one"}]},
        {"role": "model", "parts": [{"text": "ONE"}]},
        {"role": "user", "parts": [{"text": "two"}]},
    ]
    assert r.text == "Gemini heard: two"


async def test_images_inline_and_by_url(gem: GeminiFake) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2
    msg = Message("user", [
        TextPart("what is this?"),
        ImagePart(media_type="image/png", data=png),
        ImagePart(media_type="image/jpeg", url="https://example.com/cat.jpg"),
    ])
    await synapse.achat(MODEL, [msg])
    parts = gem.last.json()["contents"][0]["parts"]
    assert parts[0] == {"text": "what is this?"}
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png).decode()}}
    assert base64.b64decode(parts[1]["inlineData"]["data"]) == png
    assert parts[2] == {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}}


async def test_base_url_with_version_is_not_doubled(gem: GeminiFake, configure: Any) -> None:
    configure(gemini_base_url=gem.url + "/v1beta/")
    await synapse.achat(MODEL, "hi")
    assert gem.last.path == "/v1beta/models/gemini-2.5-flash:generateContent"


# --- tools -------------------------------------------------------------------------------------------

WEATHER = Tool(
    "get_weather",
    "Weather for a city",
    {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name", "format": "email"},
            "unit": {"type": ["string", "null"], "enum": ["c", "f"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 7, "format": "int32"},
            "when": {"anyOf": [{"$ref": "#/$defs/Day"}, {"type": "null"}]},
            "mode": {"const": "fast"},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            "extra": {"type": "object", "additionalProperties": True},
        },
        "required": ["city"],
        "additionalProperties": False,
        "$defs": {"Day": {"type": "string", "format": "date-time", "title": "Day"}},
    },
)


def test_schema_is_rewritten_into_the_gemini_subset() -> None:
    assert gemini_schema(WEATHER.parameters) == {
        "type": "OBJECT",
        "properties": {
            "city": {"type": "STRING", "description": "City name"},
            "unit": {"type": "STRING", "enum": ["c", "f"], "nullable": True},
            "days": {"type": "INTEGER", "minimum": 1, "maximum": 7, "format": "int32"},
            "when": {"type": "STRING", "format": "date-time", "title": "Day", "nullable": True},
            "mode": {"type": "STRING", "enum": ["fast"]},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "maxItems": 3},
            "extra": {"type": "OBJECT"},
        },
        "required": ["city"],
    }
    union = gemini_schema({"oneOf": [{"type": "string"}, {"type": "integer"}]})
    assert union == {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]}


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        (None, None),
        ("auto", {"functionCallingConfig": {"mode": "AUTO"}}),
        ("none", {"functionCallingConfig": {"mode": "NONE"}}),
        ("required", {"functionCallingConfig": {"mode": "ANY"}}),
        ("get_weather", {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}),
    ],
)
async def test_tool_definitions_and_tool_choice(gem: GeminiFake, choice: str | None, config: Any) -> None:
    ping = Tool("ping", "No arguments")
    await synapse.achat(MODEL, "weather?", tools=[WEATHER, ping], tool_choice=choice)
    body = gem.last.json()
    decls = body["tools"][0]["functionDeclarations"]
    assert decls[0]["name"] == "get_weather" and decls[0]["description"] == "Weather for a city"
    assert decls[0]["parameters"] == gemini_schema(WEATHER.parameters)
    assert decls[1] == {"name": "ping", "description": "No arguments"}  # no empty OBJECT parameters
    assert body.get("toolConfig") == config


async def test_tool_call_round_trip_echoes_signature_and_name(gem: GeminiFake) -> None:
    gem.reply(GeminiReply(text="Checking.", tool_calls=[FakeToolCall("", "get_weather", {"city": "Paris"})]))
    r = await synapse.achat(MODEL, "weather in Paris?", tools=[WEATHER])
    assert r.stop_reason == "tool_use" and r.raw_stop_reason == "STOP"
    assert r.text == "Checking."
    [call] = r.tool_calls
    assert call.name == "get_weather" and call.arguments == {"city": "Paris"}
    assert call.id.startswith("call_") and len(call.id) > 10
    wire_sig = gem.sent[-1]["candidates"][0]["content"]["parts"][1]["thoughtSignature"]
    assert call.provider_data == {"provider": "gemini", "thought_signature": wire_sig}

    gem.require_thought_signatures = True  # Gemini 3 behaviour: a missing signature is a 400
    history = [
        {"role": "user", "content": "weather in Paris?"},
        r.to_message(),
        Message("user", [ToolResultPart(call.id, '{"temp_c": 18}')]),
    ]
    r2 = await synapse.achat(MODEL, history, tools=[WEATHER])
    contents = gem.last.json()["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [
            {"text": "Checking."},
            # the synthesised id is never sent; the signature goes back on the same part
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": wire_sig},
        ],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": {"temp_c": 18}}}}],
    }
    assert r2.text == "Gemini heard: the tool result"


async def test_missing_signature_is_rejected_by_a_gemini3_style_fake(gem: GeminiFake) -> None:
    gem.require_thought_signatures = True
    call = ToolCall("call_x", "get_weather", {"city": "Oslo"}, provider_data={"provider": "gemini"})
    with pytest.raises(BadRequestError, match="thought_signature"):
        await synapse.achat(MODEL, [
            {"role": "user", "content": "weather?"},
            Message("assistant", [call]),
            Message("user", [ToolResultPart("call_x", "cold", name="get_weather")]),
        ], tools=[WEATHER])
    assert len(gem.requests) == 1  # a 400 is not retried


async def test_provider_ids_are_kept_and_sent_back(gem: GeminiFake) -> None:
    gem.reply(GeminiReply(tool_calls=[
        FakeToolCall("fc-1", "get_weather", {"city": "Rome"}),
        FakeToolCall("fc-2", "get_weather", {"city": "Milan"}),
    ]))
    r = await synapse.achat(MODEL, "two cities", tools=[WEATHER])
    assert [c.id for c in r.tool_calls] == ["fc-1", "fc-2"]
    assert r.tool_calls[1].provider_data == {"provider": "gemini", "id": True}  # only the first call is signed
    history = [
        {"role": "user", "content": "two cities"},
        r.to_message(),
        Message("user", [ToolResultPart("fc-1", "sunny"), ToolResultPart("fc-2", "rain", is_error=True)]),
    ]
    await synapse.achat(MODEL, history, tools=[WEATHER])
    contents = gem.last.json()["contents"]
    assert [p["functionCall"].get("id") for p in contents[1]["parts"]] == ["fc-1", "fc-2"]
    assert "thoughtSignature" in contents[1]["parts"][0] and "thoughtSignature" not in contents[1]["parts"][1]
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}, "id": "fc-1"}},
        {"functionResponse": {"name": "get_weather", "response": {"error": "rain"}, "id": "fc-2"}},
    ]


async def test_foreign_tool_calls_get_the_documented_dummy_signature(gem: GeminiFake) -> None:
    history = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Lima"}'}},
            {"id": "toolu_02", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
        ]},
        {"role": "tool", "tool_call_id": "toolu_01", "content": "warm"},
        {"role": "tool", "tool_call_id": "toolu_02", "content": "hot"},
    ]
    await synapse.achat(MODEL, history, tools=[WEATHER])
    contents = gem.last.json()["contents"]
    assert contents[1]["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"city": "Lima"}, "id": "toolu_01"},
         "thoughtSignature": "c2tpcF90aG91Z2h0X3NpZ25hdHVyZV92YWxpZGF0b3I="},
        {"functionCall": {"name": "get_weather", "args": {}, "id": "toolu_02"}},
    ]
    assert [p["functionResponse"]["name"] for p in contents[2]["parts"]] == ["get_weather", "get_weather"]


async def test_tool_result_without_a_known_name_is_a_clear_error(gem: GeminiFake) -> None:
    with pytest.raises(BadRequestError, match="needs the tool name"):
        await synapse.achat(MODEL, [Message("user", [ToolResultPart("nope", "x")])])
    assert gem.requests == []


async def test_synthesised_ids_are_stable_and_unique(gem: GeminiFake) -> None:
    gem.reply(GeminiReply(tool_calls=[FakeToolCall("", "ping", {}), FakeToolCall("", "ping", {})]))
    r = await synapse.achat(MODEL, "ping twice", tools=[Tool("ping")])
    ids = [c.id for c in r.tool_calls]
    assert len(set(ids)) == 2
    assert [c.arguments for c in r.tool_calls] == [{}, {}]
    from synapse.providers.gemini import _Assembler

    again = _Assembler()
    again.feed(gem.sent[-1], None)  # the same response decodes to the same ids
    assert [c.id for c in again.calls] == ids


# --- streaming ------------------------------------------------------------------------------------------


async def test_stream_text_and_reasoning(gem: GeminiFake) -> None:
    gem.reply(GeminiReply(text="The quick brown fox jumps over the lazy dog", reasoning="Let me think.",
                          input_tokens=40, output_tokens=30, reasoning_tokens=12))
    events = await collect(messages="tell me")
    req = gem.last
    assert req.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert req.query == {"alt": "sse"}
    assert req.headers["x-goog-api-key"] == KEY
    assert isinstance(events[0], ReasoningDelta) and events[0].text == "Let me think."
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(texts) == 3 and "".join(texts) == "The quick brown fox jumps over the lazy dog"
    assert isinstance(events[-1], ResponseDone) and sum(isinstance(e, ResponseDone) for e in events) == 1
    r = events[-1].response
    assert r.text == "The quick brown fox jumps over the lazy dog" and r.reasoning == "Let me think."
    assert r.stop_reason == "end_turn" and r.raw_stop_reason == "STOP"
    # provisional counts on earlier chunks must not leak into the final usage
    assert gem.sent[-1][1]["usageMetadata"]["candidatesTokenCount"] < 18
    assert r.usage == Usage(input_tokens=40, output_tokens=30, reasoning_tokens=12)


async def test_stream_tool_calls_arrive_whole(gem: GeminiFake) -> None:
    gem.reply(GeminiReply(tool_calls=[
        FakeToolCall("", "get_weather", {"city": "Paris", "days": 2}),
        FakeToolCall("", "ping", {}),
    ]))
    events = await collect(messages="go", tools=[WEATHER, Tool("ping")])
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [(d.index, d.name) for d in deltas] == [(0, "get_weather"), (1, "ping")]
    assert deltas[0].arguments == '{"city":"Paris","days":2}' and deltas[1].arguments == "{}"
    r = events[-1].response
    assert r.stop_reason == "tool_use"
    assert [c.id for c in r.tool_calls] == [d.id for d in deltas]
    assert [c.arguments for c in r.tool_calls] == [{"city": "Paris", "days": 2}, {}]
    assert r.tool_calls[0].provider_data["thought_signature"]


# --- usage ------------------------------------------------------------------------------------------------


def test_usage_normalisation_matches_reference_example() -> None:
    # reference §4.3: promptTokenCount includes the cached 1024; thoughts are outside candidates
    meta = {"promptTokenCount": 1200, "candidatesTokenCount": 12, "totalTokenCount": 1262,
            "thoughtsTokenCount": 50, "cachedContentTokenCount": 1024}
    assert map_usage(meta) == Usage(input_tokens=176, output_tokens=62, cache_read_tokens=1024, reasoning_tokens=50)
    # recorded server-side tool totals: toolUsePromptTokenCount is input; a missing count is 0
    assert map_usage({"promptTokenCount": 147, "toolUsePromptTokenCount": 360, "totalTokenCount": 507}) == Usage(
        input_tokens=507)
    assert map_usage({"promptTokenCount": 3520, "cachedContentTokenCount": 3512, "candidatesTokenCount": 9}) == Usage(
        input_tokens=8, output_tokens=9, cache_read_tokens=3512)
    assert map_usage(None) == Usage()


@pytest.mark.parametrize("streaming", [False, True])
async def test_usage_with_cache_read_reasoning_and_tool_use_prompt(gem: GeminiFake, streaming: bool) -> None:
    gem.reply(GeminiReply(text="cached answer", reasoning="hmm", input_tokens=100, cache_read_tokens=1024,
                          output_tokens=50, reasoning_tokens=20, tool_use_prompt_tokens=7))
    if streaming:
        r = (await collect(messages="again"))[-1].response
        meta = gem.sent[-1][-1]["usageMetadata"]
    else:
        r = await synapse.achat(MODEL, "again")
        meta = gem.sent[-1]["usageMetadata"]
    assert meta["promptTokenCount"] == 1124 and meta["cachedContentTokenCount"] == 1024
    assert meta["candidatesTokenCount"] == 30 and meta["thoughtsTokenCount"] == 20
    assert meta["toolUsePromptTokenCount"] == 7
    assert r.usage == Usage(input_tokens=107, output_tokens=50, cache_read_tokens=1024, cache_write_tokens=0,
                            reasoning_tokens=20)
    assert r.usage.prompt_tokens == 1131


# --- stop reasons ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [("MAX_TOKENS", "max_tokens"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
     ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"), ("BLOCKLIST", "content_filter"),
     ("MALFORMED_FUNCTION_CALL", "other"), ("LANGUAGE", "other")],
)
async def test_finish_reasons(gem: GeminiFake, raw: str, canonical: str) -> None:
    gem.reply(GeminiReply(text="partial", stop_reason=raw))
    r = await synapse.achat(MODEL, "x")
    assert (r.stop_reason, r.raw_stop_reason) == (canonical, raw)


async def test_max_tokens_truncates(gem: GeminiFake) -> None:
    gem.reply(GeminiReply(text="word " * 100))
    events = await collect(messages="long please", max_tokens=5)
    assert gem.last.json()["generationConfig"] == {"maxOutputTokens": 5}
    r = events[-1].response
    assert r.stop_reason == "max_tokens" and r.raw_stop_reason == "MAX_TOKENS"
    assert len(r.text) == 20


async def test_stop_sequence_cuts_the_reply(gem: GeminiFake) -> None:
    gem.reply(GeminiReply(text="one two END three"))
    r = await synapse.achat(MODEL, "count", stop="END")
    assert gem.last.json()["generationConfig"] == {"stopSequences": ["END"]}
    assert r.text == "one two " and r.stop_reason == "end_turn"


@pytest.mark.parametrize("streaming", [False, True])
async def test_blocked_prompt_is_content_filter(gem: GeminiFake, streaming: bool) -> None:
    gem.reply(GeminiReply(block_reason="SAFETY", input_tokens=9))
    if streaming:
        events = await collect(messages="something bad")
        assert len(events) == 1
        r = events[0].response
    else:
        r = await synapse.achat(MODEL, "something bad")
    assert r.stop_reason == "content_filter"
    assert r.raw_stop_reason == "prompt blocked: SAFETY"
    assert r.text == "" and r.tool_calls == []
    assert r.usage == Usage(input_tokens=9)


async def test_parts_without_text_and_empty_candidates_are_tolerated(gem: GeminiFake) -> None:
    gem.reply(GeminiReply(raw_parts=[{"executableCode": {"language": "PYTHON", "code": "1+1"}},
                                     {"text": "", "thoughtSignature": "c2ln"}], text="two"))
    r = await synapse.achat(MODEL, "compute")
    assert r.text == "two"


# --- models, verify, embeddings -------------------------------------------------------------------------------


async def test_list_models_paginates_and_filters(gem: GeminiFake) -> None:
    gem.max_page_size = 3
    try:
        models = await adapter().list_models()
    finally:
        gem.max_page_size = 1000
    assert [r.query.get("pageSize") for r in gem.requests] == ["1000"] * 3
    assert [r.query.get("pageToken") for r in gem.requests][0] is None
    assert all(r.query.get("pageToken") for r in gem.requests[1:])
    assert all(r.path == "/v1beta/models" and r.headers["x-goog-api-key"] == KEY for r in gem.requests)
    by_id = {m.id: m for m in models}
    assert "imagen-4.0-generate-001" not in by_id and "aqa" not in by_id
    assert by_id["gemini-2.5-pro"].embedding is False and by_id["gemini-2.5-pro"].label == "Gemini 2.5 Pro"
    assert by_id["gemini-embedding-001"].embedding is True
    assert by_id[MODEL].provider == "gemini" and by_id[MODEL].upstream_id == MODEL
    assert len(models) == 7


async def test_verify_is_one_page_and_rejects_a_bad_key(gem: GeminiFake, configure: Any) -> None:
    gem.max_page_size = 3
    try:
        assert len(await adapter().verify()) == 3
        assert len(gem.requests) == 1
        configure(gemini_key="AIzaSyWrongKey000000000000000000")
        with pytest.raises(AuthenticationError) as info:
            await adapter().verify()
    finally:
        gem.max_page_size = 1000
    msg = str(info.value)
    assert msg.startswith("Google Gemini rejected the key in gemini_key: check it at aistudio.google.com/app/apikey")
    assert "API key not valid" in msg and "AIzaSyWrongKey" not in msg
    assert info.value.status == 400
    assert len(gem.requests) == 2  # not retried


async def test_embeddings_batch(gem: GeminiFake) -> None:
    vectors = await synapse.aembed("gemini-embedding-001", ["alpha", "beta"])
    req = gem.last
    assert req.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert req.json() == {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "alpha"}]}},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "beta"}]}},
    ]}
    assert len(vectors) == 2 and len(vectors[0]) == 8 and vectors[0] != vectors[1]
    assert vectors == await synapse.aembed("gemini-embedding-001", ["alpha", "beta"])  # deterministic


async def test_embeddings_split_into_batches_of_100(gem: GeminiFake) -> None:
    texts = [f"text {i}" for i in range(150)]
    vectors = await synapse.aembed("gemini-embedding-001", texts)
    assert len(vectors) == 150
    assert sorted(len(r.json()["requests"]) for r in gem.requests) == [50, 100]
    single = await synapse.aembed("gemini-embedding-001", ["text 149"])
    assert single[0] == vectors[149]


async def test_embedding_unknown_model_is_not_found(gem: GeminiFake) -> None:
    with pytest.raises(NotFoundError, match="not supported for embedContent"):
        await synapse.aembed("gemini-2.5-flash", ["x"])
    assert len(gem.requests) == 1


# --- errors ------------------------------------------------------------------------------------------------------


async def test_bad_key_is_400_api_key_invalid_and_not_retried(gem: GeminiFake, configure: Any) -> None:
    configure(gemini_key="AIzaSyAnotherWrongKey00000000000")
    for call in (lambda: synapse.achat(MODEL, "hi"), lambda: collect()):
        with pytest.raises(AuthenticationError, match="Google Gemini rejected the key in gemini_key") as info:
            await call()
        assert "AIzaSyAnotherWrongKey" not in str(info.value)
    assert len(gem.requests) == 2


async def test_unknown_model_is_not_found(gem: GeminiFake) -> None:
    with pytest.raises(NotFoundError, match="gemini-9-ultra is not found"):
        await synapse.achat("gemini-9-ultra", "hi")
    assert len(gem.requests) == 1


async def test_permission_denied_403(gem: GeminiFake) -> None:
    gem.fail_next(403, error_body(403, "PERMISSION_DENIED", "Your API key was reported as leaked."))
    with pytest.raises(PermissionDeniedError, match="reported as leaked"):
        await synapse.achat(MODEL, "hi")
    assert len(gem.requests) == 1


async def test_bad_request_400_is_not_retried(gem: GeminiFake) -> None:
    gem.fail_next(400, error_body(400, "INVALID_ARGUMENT", "Request contains an invalid argument."))
    with pytest.raises(BadRequestError, match="invalid argument") as info:
        await synapse.achat(MODEL, "hi")
    assert not isinstance(info.value, (ContextTooLongError, AuthenticationError))
    assert len(gem.requests) == 1


@pytest.mark.parametrize("streaming", [False, True])
async def test_429_retry_delay_then_success(gem: GeminiFake, streaming: bool) -> None:
    gem.fail_rate_limited(retry_delay="0s")
    if streaming:
        r = (await collect(messages="again"))[-1].response
    else:
        r = await synapse.achat(MODEL, "again")
    assert r.text == "Gemini heard: again"
    assert len(gem.requests) == 2


async def test_429_retries_exhausted_reports_retry_delay(gem: GeminiFake, configure: Any) -> None:
    configure(max_retries=1)
    gem.fail_rate_limited(retry_delay="0.001s", times=2)
    with pytest.raises(RateLimitError) as info:
        await synapse.achat(MODEL, "hi")
    assert info.value.retry_after == pytest.approx(0.001)
    assert "exceeded your current quota" in str(info.value)
    assert len(gem.requests) == 2


async def test_429_retry_after_header_wins(gem: GeminiFake, configure: Any) -> None:
    configure(max_retries=0)
    gem.fail_rate_limited(retry_delay="30s", retry_after="2")
    with pytest.raises(RateLimitError) as info:
        await synapse.achat(MODEL, "hi")
    assert info.value.retry_after == 2.0
    assert "retry in 2 s" in str(info.value)


@pytest.mark.parametrize("fail", ["fail_unavailable", "fail_internal"])
async def test_5xx_is_retried(gem: GeminiFake, fail: str) -> None:
    getattr(gem, fail)(times=2)
    r = await synapse.achat(MODEL, "hi")
    assert r.text == "Gemini heard: hi"
    assert len(gem.requests) == 3


async def test_503_exhausted_is_overloaded(gem: GeminiFake, configure: Any) -> None:
    configure(max_retries=1)
    gem.fail_unavailable(times=2)
    with pytest.raises(OverloadedError, match="overloaded"):
        await collect()
    assert len(gem.requests) == 2


async def test_context_too_long_is_not_retried(gem: GeminiFake) -> None:
    with pytest.raises(ContextTooLongError, match="exceeds the maximum number of tokens"):
        await synapse.achat("gemini-tiny-context", "word " * 400)
    assert len(gem.requests) == 1


async def test_connection_dropped_before_answer_is_retried(gem: GeminiFake) -> None:
    gem.drop_next()
    r = await synapse.achat(MODEL, "hi")
    assert r.text == "Gemini heard: hi" and len(gem.requests) == 2


async def test_drop_mid_stream_is_reported_not_retried(gem: GeminiFake) -> None:
    gem.reply(GeminiReply(text="a b c d e f", break_after_events=2))
    seen: list[Any] = []
    with pytest.raises(UpstreamUnavailableError, match="mid-stream"):
        async for event in synapse.astream(MODEL, "hi"):
            seen.append(event)
    assert [e.text for e in seen] == ["a b ", "c d "]
    assert len(gem.requests) == 1


@pytest.mark.parametrize(
    ("error", "kind"),
    [((500, "INTERNAL", "An internal error has occurred."), UpstreamUnavailableError),
     ((429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."), RateLimitError),
     ((400, "INVALID_ARGUMENT", "The input token count (2000000) exceeds the maximum number of tokens allowed (1048576)."),
      ContextTooLongError)],
)
async def test_in_stream_error_raises_typed_error(gem: GeminiFake, error: tuple[int, str, str], kind: type) -> None:
    gem.reply(GeminiReply(text="a b c d e f", error_after_events=1, stream_error=error))
    seen: list[Any] = []
    with pytest.raises(kind, match=error[2][:20]) as info:
        async for event in synapse.astream(MODEL, "hi"):
            seen.append(event)
    assert info.value.status == error[0]
    assert [e.text for e in seen] == ["a b "]
    assert len(gem.requests) == 1


async def test_malformed_body(gem: GeminiFake) -> None:
    gem.reply(GeminiReply(text="hello", malformed=True))
    with pytest.raises(UpstreamUnavailableError, match="malformed"):
        await synapse.achat(MODEL, "hi")
    gem.reply(GeminiReply(text="hello there my friend", malformed=True))
    with pytest.raises(UpstreamUnavailableError, match="malformed"):
        await collect()
    assert len(gem.requests) == 2


async def test_stream_that_ends_without_final_chunk_is_an_error(gem: GeminiFake) -> None:
    gem.fail_next(200, b'data: {"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"}}]}\r\n\r\n',
                  {"Content-Type": "text/event-stream"})
    with pytest.raises(UpstreamUnavailableError, match="before its final chunk"):
        await collect()


async def test_error_bodies_never_carry_the_key(gem: GeminiFake) -> None:
    gem.fail_next(400, error_body(400, "INVALID_ARGUMENT", f"bad request for key {KEY}"))
    with pytest.raises(BadRequestError) as info:
        await synapse.achat(MODEL, "hi")
    assert KEY not in str(info.value) and "…" in str(info.value)


async def test_sync_api_works_too(gem: GeminiFake) -> None:
    import asyncio

    r = await asyncio.to_thread(synapse.chat, MODEL, "sync hello")
    assert r.text == "Gemini heard: sync hello"
    events = await asyncio.to_thread(lambda: list(synapse.stream(MODEL, "sync stream")))
    assert isinstance(events[-1], ResponseDone) and events[-1].response.text == "Gemini heard: sync stream"


async def test_final_chunk_usage_replaces_provisional_counts(gem: GeminiFake) -> None:
    # Byte-exact stream in the recorded shape (§4.4): provisional counts first, a chunk with no
    # usage, then a final chunk whose totals differ and which lacks candidatesTokenCount.
    chunks = [
        {"candidates": [{"content": {"parts": [{"text": "think", "thought": True}], "role": "model"}, "index": 0}],
         "usageMetadata": {"promptTokenCount": 15, "candidatesTokenCount": 5, "thoughtsTokenCount": 3,
                           "cachedContentTokenCount": 4, "totalTokenCount": 23},
         "modelVersion": MODEL, "responseId": "resp-1"},
        {"candidates": [{"content": {"parts": [{"functionCall": {"name": "ping", "args": {}},
                                                "thoughtSignature": "c2lnLTE="}], "role": "model"}, "index": 0}],
         "modelVersion": MODEL, "responseId": "resp-1"},
        {"candidates": [{"content": {"parts": [{"text": ""}], "role": "model"}, "finishReason": "STOP", "index": 0}],
         "usageMetadata": {"promptTokenCount": 13, "thoughtsTokenCount": 3, "totalTokenCount": 16},
         "modelVersion": MODEL, "responseId": "resp-1"},
    ]
    raw = b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks)
    gem.fail_next(200, raw, {"Content-Type": "text/event-stream"})
    events = await collect(messages="x", tools=[Tool("ping")])
    assert isinstance(events[0], ReasoningDelta)
    r = events[-1].response
    assert r.usage == Usage(input_tokens=13, output_tokens=3, reasoning_tokens=3)
    assert r.stop_reason == "tool_use" and r.id == "resp-1"
    assert r.tool_calls[0].provider_data == {"provider": "gemini", "thought_signature": "c2lnLTE="}


async def test_extra_fields_merge_into_the_body(gem: GeminiFake) -> None:
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    await synapse.achat(MODEL, "hi", temperature=0, extra={
        "generationConfig": {"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 128}},
        "safetySettings": safety,
    })
    body = gem.last.json()
    assert body["generationConfig"] == {"temperature": 0, "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 128}}
    assert body["safetySettings"] == safety


@pytest.mark.parametrize("body", [b"{}", b"[1, 2]", b"<html>502 Bad Gateway</html>"])
async def test_non_protocol_200_bodies_are_malformed(gem: GeminiFake, body: bytes) -> None:
    gem.fail_next(200, body)
    with pytest.raises(UpstreamUnavailableError, match="Google Gemini sent a malformed response"):
        await synapse.achat(MODEL, "hi")
    assert len(gem.requests) == 1
