"""AWS Bedrock (Converse, ConverseStream, control plane, Titan) through the Python API,
against the loopback fake that speaks the real wire protocol (reference §6)."""

from __future__ import annotations

import base64
import json

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
from synapse.providers.catalog import get as get_spec
from synapse.settings import load as load_settings
from synapse.types import (
    ImagePart,
    Message,
    ReasoningDelta,
    ResponseDone,
    TextDelta,
    TextPart,
    Tool,
    ToolCallDelta,
    Usage,
)
from tests.conftest import provider_fake
from tests.fakes.base import FakeReply, FakeToolCall, estimate_tokens
from tests.fakes.bedrock import BedrockFake, BedrockReply

MODEL = "bedrock.anthropic.claude-3-haiku-20240307-v1:0"
UPSTREAM = "anthropic.claude-3-haiku-20240307-v1:0"
PATH = "/model/anthropic.claude-3-haiku-20240307-v1%3A0"
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture(scope="module")
def bedrock_server():
    yield from provider_fake(BedrockFake)


@pytest.fixture
def fake(bedrock_server, configure):
    bedrock_server.reset()
    # explicit cache markers only: the planner's own breakpoints are tested separately
    configure(**bedrock_server.settings(), max_retries=2, prompt_cache_enabled=False)
    return bedrock_server


def adapter():
    return adapter_for(get_spec("bedrock"), load_settings())


async def collect(model, messages, **kw):
    events = [e async for e in synapse.astream(model, messages, **kw)]
    assert isinstance(events[-1], ResponseDone)
    assert not any(isinstance(e, ResponseDone) for e in events[:-1])
    return events, events[-1].response


# --- plain chat ------------------------------------------------------------------------------------


async def test_plain_chat_wire_and_usage(fake):
    r = await synapse.achat(MODEL, "Hello there")
    assert r.text == "Bedrock says: Hello there"
    assert (r.provider, r.model, r.stop_reason, r.raw_stop_reason) == ("bedrock", MODEL, "end_turn", "end_turn")
    assert r.usage == Usage(input_tokens=estimate_tokens("Hello there"), output_tokens=estimate_tokens(r.text))
    assert r.id  # x-amzn-RequestId
    req = fake.last
    assert req.method == "POST"
    assert fake.raw_paths == [f"{PATH}/converse"]
    assert req.json() == {"messages": [{"role": "user", "content": [{"text": "Hello there"}]}]}
    assert req.headers["Authorization"] == f"Bearer {fake.key}"
    assert req.headers["Content-Type"] == "application/json"
    assert "X-Amz-Date" not in req.headers


async def test_stream_text_deltas_and_final_usage(fake):
    events, r = await collect(MODEL, "stream me a few words please")
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 2 and "".join(deltas) == r.text == "Bedrock says: stream me a few words please"
    assert r.usage == Usage(input_tokens=estimate_tokens("stream me a few words please"), output_tokens=estimate_tokens(r.text))
    assert (r.stop_reason, r.raw_stop_reason, r.model) == ("end_turn", "end_turn", MODEL)
    assert fake.raw_paths == [f"{PATH}/converse-stream"]
    assert fake.last.json() == {"messages": [{"role": "user", "content": [{"text": "stream me a few words please"}]}]}


@pytest.mark.parametrize("mode", ["chunked", "coalesced"])
async def test_stream_frames_split_or_coalesced_on_the_wire(fake, mode):
    if mode == "chunked":
        fake.stream_chunk_size = 5  # frames split across many reads
    else:
        fake.stream_coalesce = True  # every frame in one write
    fake.reply(FakeReply(text="a reply long enough to need many frames", tool_calls=[FakeToolCall("t1", "f", {"a": [1, 2]})]))
    _, r = await collect(MODEL, "hi", tools=[Tool("f")])
    assert r.text == "a reply long enough to need many frames"
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == [("t1", "f", {"a": [1, 2]})]


def test_sync_api(fake):
    r = synapse.chat(MODEL, "sync hello")
    assert r.text == "Bedrock says: sync hello"
    events = list(synapse.stream(MODEL, "sync stream"))
    assert events[-1].response.text == "Bedrock says: sync stream"


async def test_system_history_and_options_on_the_wire(fake):
    history = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
    ]
    r = await synapse.achat(MODEL, history, system="Answer in English.", max_tokens=50, temperature=0.2, stop=["END"])
    assert r.text == "Bedrock says: second question"
    assert fake.last.json() == {
        "system": [{"text": "Answer in English."}, {"text": "You are terse."}],
        "messages": [
            {"role": "user", "content": [{"text": "first question"}]},
            {"role": "assistant", "content": [{"text": "first answer"}]},
            {"role": "user", "content": [{"text": "second question"}]},
        ],
        "inferenceConfig": {"maxTokens": 50, "temperature": 0.2, "stopSequences": ["END"]},
    }
    _, sr = await collect(MODEL, history, system="Answer in English.")
    assert sr.text == r.text
    assert fake.last.json()["system"] == [{"text": "Answer in English."}, {"text": "You are terse."}]


async def test_extra_is_merged_last(fake):
    await synapse.achat(
        MODEL, "hi", max_tokens=10,
        extra={"additionalModelRequestFields": {"top_k": 50}, "inferenceConfig": {"topP": 0.9}},
    )
    body = fake.last.json()
    assert body["additionalModelRequestFields"] == {"top_k": 50}
    assert body["inferenceConfig"] == {"maxTokens": 10, "topP": 0.9}


@pytest.mark.parametrize("streaming", [False, True])
async def test_stop_sequence_and_max_tokens_stop_reasons(fake, streaming):
    async def call(prompt, **kw):
        if streaming:
            return (await collect(MODEL, prompt, **kw))[1]
        return await synapse.achat(MODEL, prompt, **kw)

    r = await call("alpha STOP beta", stop="STOP")
    assert (r.stop_reason, r.raw_stop_reason, r.text) == ("stop_sequence", "stop_sequence", "Bedrock says: alpha ")
    r = await call("a prompt that is long enough to be cut", max_tokens=2)
    assert (r.stop_reason, r.raw_stop_reason, r.text) == ("max_tokens", "max_tokens", "Bedrock ")
    assert r.usage.output_tokens == 2


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("malformed_tool_use", "other"),
        ("model_context_window_exceeded", "max_tokens"),
    ],
)
async def test_other_stop_reasons(fake, raw, canonical):
    fake.reply(FakeReply(text="x", stop_reason=raw), FakeReply(text="x", stop_reason=raw))
    r = await synapse.achat(MODEL, "hi")
    assert (r.stop_reason, r.raw_stop_reason) == (canonical, raw)
    _, sr = await collect(MODEL, "hi")
    assert (sr.stop_reason, sr.raw_stop_reason) == (canonical, raw)


async def test_images_inline(fake):
    msg = Message("user", [TextPart("what is this?"), ImagePart("image/png", PNG), ImagePart("image/jpg", b"\xff\xd8\xff")])
    await synapse.achat(MODEL, [msg])
    content = fake.last.json()["messages"][0]["content"]
    assert content == [
        {"text": "what is this?"},
        {"image": {"format": "png", "source": {"bytes": base64.b64encode(PNG).decode()}}},
        {"image": {"format": "jpeg", "source": {"bytes": base64.b64encode(b"\xff\xd8\xff").decode()}}},
    ]


async def test_image_url_is_refused_before_any_request(fake):
    with pytest.raises(BadRequestError, match="inline"):
        await synapse.achat(MODEL, [Message("user", [TextPart("x"), ImagePart(url="https://example.com/a.png")])])
    with pytest.raises(BadRequestError, match="png, jpeg, gif or webp"):
        await synapse.achat(MODEL, [Message("user", [ImagePart("image/tiff", b"II*")])])
    assert fake.requests == []


# --- tools ----------------------------------------------------------------------------------------------


async def test_tool_definitions_and_streamed_tool_call(fake):
    fake.reply(FakeReply(text="Checking.", tool_calls=[FakeToolCall("tooluse_1", "get_weather", {"city": "Paris", "days": 3})]))
    events, r = await collect(
        MODEL, "weather in Paris?", tools=[{"name": "get_weather", "description": "Weather for a city", "parameters": WEATHER}],
        tool_choice="auto",
    )
    assert fake.last.json()["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "get_weather", "description": "Weather for a city", "inputSchema": {"json": WEATHER}}}],
        "toolChoice": {"auto": {}},
    }
    pieces = [e for e in events if isinstance(e, ToolCallDelta)]
    assert pieces[0].id == "tooluse_1" and pieces[0].name == "get_weather" and pieces[0].index == 0
    assert all(p.id is None and p.name is None and p.index == 0 for p in pieces[1:])
    assert len(pieces) > 2  # the input came in several fragments
    assert json.loads("".join(p.arguments for p in pieces)) == {"city": "Paris", "days": 3}
    assert r.text == "Checking."
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == [("tooluse_1", "get_weather", {"city": "Paris", "days": 3})]
    assert (r.stop_reason, r.raw_stop_reason) == ("tool_use", "tool_use")


async def test_two_tool_calls_and_empty_arguments(fake):
    calls = [FakeToolCall("t1", "now", {}), FakeToolCall("t2", "get_weather", {"city": "Oslo"})]
    fake.reply(FakeReply(tool_calls=calls), FakeReply(tool_calls=calls))
    tools = [Tool("now"), Tool("get_weather", parameters=WEATHER)]
    events, r = await collect(MODEL, "time and weather", tools=tools)
    firsts = [(e.index, e.id, e.name) for e in events if isinstance(e, ToolCallDelta) and e.id]
    assert firsts == [(0, "t1", "now"), (1, "t2", "get_weather")]
    assert [(c.id, c.arguments) for c in r.tool_calls] == [("t1", {}), ("t2", {"city": "Oslo"})]
    r2 = await synapse.achat(MODEL, "time and weather", tools=tools)
    assert [(c.id, c.arguments) for c in r2.tool_calls] == [("t1", {}), ("t2", {"city": "Oslo"})]
    # a tool with no description gets its name (Bedrock rejects an empty one)
    assert fake.last.json()["toolConfig"]["tools"][0]["toolSpec"]["description"] == "now"


async def test_tool_choice_mapping(fake):
    tools = [Tool("get_weather", "w", WEATHER)]
    await synapse.achat(MODEL, "x", tools=tools, tool_choice="required")
    assert fake.last.json()["toolConfig"]["toolChoice"] == {"any": {}}
    await synapse.achat(MODEL, "x", tools=tools, tool_choice="get_weather")
    assert fake.last.json()["toolConfig"]["toolChoice"] == {"tool": {"name": "get_weather"}}
    await synapse.achat(MODEL, "x", tools=tools, tool_choice="none")
    assert "toolConfig" not in fake.last.json()  # Bedrock has no "none": leave the tools out
    await synapse.achat(MODEL, "x", tools=tools)
    assert "toolChoice" not in fake.last.json()["toolConfig"]


async def test_tool_result_round_trip(fake):
    tools = [Tool("get_weather", "Weather for a city", WEATHER)]
    fake.reply(FakeReply(tool_calls=[FakeToolCall("tooluse_9", "get_weather", {"city": "Paris"})]))
    first = await synapse.achat(MODEL, "weather in Paris?", tools=tools)
    assert first.stop_reason == "tool_use"
    history = [
        {"role": "user", "content": "weather in Paris?"},
        first.to_message(),
        {"role": "user", "content": [{"type": "tool_result", "tool_call_id": "tooluse_9", "content": "18C and sunny"}]},
    ]
    r = await synapse.achat(MODEL, history, tools=tools)
    assert r.text == "Bedrock says: 18C and sunny"
    assert fake.last.json()["messages"] == [
        {"role": "user", "content": [{"text": "weather in Paris?"}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_9", "name": "get_weather", "input": {"city": "Paris"}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_9", "content": [{"text": "18C and sunny"}], "status": "success"}}]},
    ]
    history[2] = {"role": "user", "content": [{"type": "tool_result", "tool_call_id": "tooluse_9", "content": "city unknown", "is_error": True}]}
    _, sr = await collect(MODEL, history, tools=tools, tool_choice="none")
    body = fake.last.json()
    assert body["messages"][2]["content"][0]["toolResult"]["status"] == "error"
    # tool blocks in the history need a toolConfig even with tool_choice="none"
    assert body["toolConfig"] == {"tools": [{"toolSpec": {"name": "get_weather", "description": "Weather for a city", "inputSchema": {"json": WEATHER}}}]}
    assert sr.text == "Bedrock says: city unknown"


async def test_reasoning(fake):
    fake.reply(BedrockReply(text="42", reasoning="Let me think step by step about it."))
    r = await synapse.achat(MODEL, "meaning of life?")
    assert (r.text, r.reasoning) == ("42", "Let me think step by step about it.")
    fake.reply(BedrockReply(text="42", reasoning="Let me think step by step about it."))
    events, sr = await collect(MODEL, "meaning of life?")
    thoughts = [e.text for e in events if isinstance(e, ReasoningDelta)]
    assert len(thoughts) > 1 and "".join(thoughts) == sr.reasoning == "Let me think step by step about it."
    assert sr.text == "42"
    # reasoning is billed inside outputTokens; Bedrock reports no separate count
    assert sr.usage.output_tokens == estimate_tokens("42") + estimate_tokens("Let me think step by step about it.")
    assert sr.usage.reasoning_tokens == 0


# --- usage and prompt caching -----------------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True])
async def test_usage_normalisation_with_cache_fields(fake, streaming):
    # recorded Claude read: 433 + 16 + 2752 + 0 = 3201; recorded write: 2 + 5 + 0 + 1322 = 1329
    fake.reply(
        FakeReply(text="a", input_tokens=433, output_tokens=16, cache_read_tokens=2752, cache_write_tokens=0),
        FakeReply(text="b", input_tokens=2, output_tokens=5, cache_read_tokens=0, cache_write_tokens=1322),
    )
    for expected in (Usage(433, 16, 2752, 0), Usage(2, 5, 0, 1322)):
        if streaming:
            _, r = await collect(MODEL, "hi")
        else:
            r = await synapse.achat(MODEL, "hi")
        assert r.usage == expected
    assert r.usage.prompt_tokens == 1324


async def test_explicit_cache_point_two_turns_write_then_read(fake):
    long_system = "You are a meticulous assistant. " * 200  # ~1600 estimated tokens
    sys_tokens = estimate_tokens(long_system)
    assert sys_tokens >= BedrockFake.MIN_CACHE_TOKENS
    system = [TextPart(long_system, cache=True)]
    r1 = await synapse.achat(MODEL, "first question", system=system)
    assert fake.last.json()["system"] == [{"text": long_system}, {"cachePoint": {"type": "default"}}]
    assert r1.usage.cache_write_tokens == sys_tokens
    assert r1.usage.cache_read_tokens == 0
    assert r1.usage.input_tokens == estimate_tokens("first question")
    history = [
        {"role": "user", "content": "first question"},
        r1.to_message(),
        {"role": "user", "content": "second question"},
    ]
    _, r2 = await collect(MODEL, history, system=system)  # the stream's metadata carries the cache fields
    assert r2.usage.cache_read_tokens == sys_tokens
    assert r2.usage.cache_write_tokens == 0
    assert r2.usage.input_tokens == (
        estimate_tokens("first question") + estimate_tokens(r1.text) + estimate_tokens("second question")
    )


async def test_short_prefix_is_not_cached(fake):
    r = await synapse.achat(MODEL, "hi", system=[TextPart("short system", cache=True)])
    assert fake.last.json()["system"][-1] == {"cachePoint": {"type": "default"}}
    assert (r.usage.cache_write_tokens, r.usage.cache_read_tokens) == (0, 0)
    r = await synapse.achat(MODEL, "hi", system=[TextPart("short system", cache=True)])
    assert (r.usage.cache_write_tokens, r.usage.cache_read_tokens) == (0, 0)


async def test_planner_breakpoints_cache_across_turns(fake, configure):
    configure(prompt_cache_enabled=True)
    long_system = "Reference material for the assistant. " * 300  # above claude-3-haiku's 2048-token minimum
    r1 = await synapse.achat(MODEL, "first question", system=long_system)
    body = fake.last.json()
    assert body["system"] == [{"text": long_system}, {"cachePoint": {"type": "default"}}]
    assert r1.usage.cache_write_tokens >= estimate_tokens(long_system)
    history = [{"role": "user", "content": "first question"}, r1.to_message(), {"role": "user", "content": "second question"}]
    r2 = await synapse.achat(MODEL, history, system=long_system)
    assert r2.usage.cache_read_tokens == r1.usage.cache_write_tokens
    assert r2.usage.prompt_tokens == (
        estimate_tokens(long_system) + estimate_tokens("first question") + estimate_tokens(r1.text)
        + estimate_tokens("second question")
    )


async def test_tool_and_message_cache_points_and_cap_of_four(fake):
    tools = [Tool("a", "tool a", cache=True), Tool("b", "tool b", cache=True)]
    system = [TextPart("s1", cache=True), TextPart("s2", cache=True)]
    msg = Message("user", [TextPart("m1", cache=True), TextPart("m2", cache=True)])
    await synapse.achat(MODEL, [msg], system=system, tools=tools)
    body = fake.last.json()  # the fake rejects more than four cache points, so this also proves the cap
    cp = {"cachePoint": {"type": "default"}}
    # six requested: the first three (tools, system) and the last (the moving end) are kept
    assert body["toolConfig"]["tools"][1] == cp and body["toolConfig"]["tools"][3] == cp
    assert body["system"] == [{"text": "s1"}, cp, {"text": "s2"}]
    assert body["messages"][0]["content"] == [{"text": "m1"}, {"text": "m2"}, cp]
    assert json.dumps(body).count("cachePoint") == 4


async def test_fake_rejects_five_cache_points(fake):
    """The fake enforces Bedrock's limit (so the adapter's cap above is really tested)."""
    import aiohttp

    blocks = [{"text": f"b{i}"} for i in range(5)]
    content = [x for b in blocks for x in (b, {"cachePoint": {"type": "default"}})]
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{fake.url}{PATH}/converse", json={"messages": [{"role": "user", "content": content}]},
                          headers={"Authorization": f"Bearer {fake.key}"}) as resp:
            assert resp.status == 400
            assert resp.headers["x-amzn-ErrorType"].startswith("ValidationException:")


# --- model ids, inference profiles, control plane ----------------------------------------------------------


async def test_inference_profile_setting_replaces_the_model(fake, configure):
    configure(bedrock_inference_profile="us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    r = await synapse.achat(MODEL, "hi")
    assert fake.raw_paths[-1] == "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"
    assert r.model == MODEL


async def test_application_profile_arn_is_fully_encoded(fake):
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/otnfa2ysixqd"
    r = await synapse.achat(f"bedrock.{arn}", "hi")
    assert r.text == "Bedrock says: hi"
    assert fake.raw_paths[-1] == (
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fotnfa2ysixqd/converse"
    )
    _, sr = await collect(f"bedrock.{arn}", "hi")
    assert fake.raw_paths[-1].endswith("%2Fotnfa2ysixqd/converse-stream")


async def test_profile_only_model_called_directly_is_a_bad_request(fake):
    with pytest.raises(BadRequestError, match="inference profile") as info:
        await synapse.achat("bedrock.anthropic.claude-sonnet-4-5-20250929-v1:0", "hi")
    assert info.value.status == 400
    assert len(fake.requests) == 1


async def test_list_models_and_profiles_with_pagination(fake):
    models = await adapter().list_models()
    by_id = {m.id: m for m in models}
    assert "bedrock.amazon.nova-pro-v1:0" in by_id and by_id["bedrock.amazon.nova-pro-v1:0"].label == "Nova Pro"
    assert by_id["bedrock.amazon.titan-embed-text-v2:0"].embedding is True
    assert by_id["bedrock.anthropic.claude-3-haiku-20240307-v1:0"].embedding is False
    assert "bedrock.stability.sd3-5-large-v1:0" not in by_id  # image generator
    assert "bedrock.anthropic.claude-3-haiku-20240307-v1:0:200k" not in by_id  # provisioned only
    # all six profiles, over three pages of two
    assert by_id["bedrock.us.anthropic.claude-sonnet-4-5-20250929-v1:0"].label == "US Anthropic Claude Sonnet 4.5"
    assert by_id["bedrock.us.cohere.embed-english-v3"].embedding is True
    app = "bedrock.arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/otnfa2ysixqd"
    assert by_id[app].label == "my-team-sonnet"
    assert sum(1 for m in models if m.upstream_id.startswith(("us.", "global.", "arn:"))) == 6
    assert all(m.provider == "bedrock" for m in models)
    profile_reqs = [r for r in fake.requests if r.path == "/inference-profiles"]
    assert len(profile_reqs) == 3
    assert "nextToken" not in profile_reqs[0].query
    assert all(r.query["maxResults"] == "1000" for r in profile_reqs)
    assert [r.path for r in fake.requests].count("/foundation-models") == 1
    # the opaque token (full of / + =) came back intact
    assert profile_reqs[1].query["nextToken"] and "%2F" in "".join(fake.raw_paths)


async def test_list_models_without_permission_for_profiles(fake):
    fake.deny_profiles = True
    models = await adapter().list_models()
    assert "bedrock.amazon.nova-pro-v1:0" in {m.id for m in models}
    assert not any(m.upstream_id.startswith("us.") for m in models)
    with pytest.raises(PermissionDeniedError, match="ListInferenceProfiles"):
        await adapter().list_inference_profiles()


async def test_list_inference_profiles_for_the_card(fake):
    profiles = await adapter().list_inference_profiles()
    assert len(profiles) == 6
    assert profiles[0] == {
        "id": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "name": "US Anthropic Claude Sonnet 4.5",
        "arn": "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "type": "SYSTEM_DEFINED",
    }
    assert profiles[-1]["type"] == "APPLICATION"


async def test_verify_good_and_bad_key(fake, configure):
    models = await adapter().verify()
    assert any(m.id == "bedrock.amazon.nova-pro-v1:0" for m in models)
    assert [r.path for r in fake.requests] == ["/foundation-models"]  # one cheap call
    fake.reset()
    configure(bedrock_api_key="absk-WRONGKEY1234567890")
    with pytest.raises(AuthenticationError) as info:
        await adapter().verify()
    spec = get_spec("bedrock")
    assert str(info.value).startswith("AWS Bedrock rejected the key in bedrock_api_key: check it at docs.aws.amazon.com")
    assert "Authentication failed" in str(info.value)
    assert "WRONGKEY1234567890" not in str(info.value)
    assert spec.key_setting in str(info.value)
    assert len(fake.requests) == 1


# --- errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True])
async def test_bad_key_is_authentication_error_not_retried(fake, configure, streaming):
    configure(bedrock_api_key="absk-NOTVALIDNOTVALID0000")
    with pytest.raises(AuthenticationError, match="rejected the key in bedrock_api_key") as info:
        if streaming:
            await collect(MODEL, "hi")
        else:
            await synapse.achat(MODEL, "hi")
    assert "NOTVALIDNOTVALID0000" not in str(info.value)
    assert info.value.status == 403
    assert len(fake.requests) == 1


async def test_missing_auth_header_is_rejected_by_the_fake(fake):
    import aiohttp

    async with aiohttp.ClientSession() as s:
        async with s.post(f"{fake.url}{PATH}/converse", json={"messages": []}) as resp:
            assert resp.status == 403
            assert resp.headers["x-amzn-ErrorType"].startswith("MissingAuthenticationTokenException")


@pytest.mark.parametrize("streaming", [False, True])
async def test_no_model_access_is_permission_denied(fake, streaming):
    fake.no_access.add(UPSTREAM)
    with pytest.raises(PermissionDeniedError) as info:
        if streaming:
            await collect(MODEL, "hi")
        else:
            await synapse.achat(MODEL, "hi")
    msg = str(info.value)
    assert "don't have access" in msg and "request access" in msg and "us-east-1" in msg
    assert len(fake.requests) == 1


@pytest.mark.parametrize("streaming", [False, True])
async def test_throttling_with_retry_after_then_success(fake, streaming):
    fake.fail_next_aws(429, "ThrottlingException", "Too many tokens, please wait before trying again.", retry_after="0")
    if streaming:
        _, r = await collect(MODEL, "hi")
    else:
        r = await synapse.achat(MODEL, "hi")
    assert r.text == "Bedrock says: hi"
    assert len(fake.requests) == 2


async def test_throttling_retries_exhausted(fake, configure):
    configure(max_retries=1)
    fake.fail_next_aws(429, "ThrottlingException", "Too many requests, please wait before trying again.", retry_after="0", times=2)
    with pytest.raises(RateLimitError, match="rate limit") as info:
        await synapse.achat(MODEL, "hi")
    assert info.value.status == 429 and info.value.request_id
    assert "Too many tokens" not in str(info.value) and "Too many requests" in str(info.value)
    assert len(fake.requests) == 2


@pytest.mark.parametrize(
    ("status", "etype", "error"),
    [
        (503, "ServiceUnavailableException", OverloadedError),
        (500, "InternalServerException", UpstreamUnavailableError),
        (429, "ModelNotReadyException", OverloadedError),
    ],
)
async def test_server_errors_are_retried_then_succeed_or_exhaust(fake, configure, status, etype, error):
    fake.fail_next_aws(status, etype, "try later", retry_after="0")
    r = await synapse.achat(MODEL, "hi")
    assert r.text == "Bedrock says: hi" and len(fake.requests) == 2
    fake.reset()
    configure(max_retries=1)
    fake.fail_next_aws(status, etype, "try later", retry_after="0", times=2)
    with pytest.raises(error) as info:
        await synapse.achat(MODEL, "hi")
    assert info.value.status == status
    assert len(fake.requests) == 2


async def test_validation_error_is_not_retried(fake):
    fake.fail_next_aws(400, "ValidationException", "The model returned the following errors: Malformed input request")
    with pytest.raises(BadRequestError, match="Malformed input request") as info:
        await synapse.achat(MODEL, "hi")
    assert type(info.value) is BadRequestError and info.value.status == 400
    assert len(fake.requests) == 1


async def test_unknown_model_id_is_not_found(fake):
    with pytest.raises(NotFoundError, match="model identifier is invalid"):
        await synapse.achat("bedrock.anthropic.claude-nonexistent-v9:0", "hi")
    assert len(fake.requests) == 1
    fake.fail_next_aws(404, "ResourceNotFoundException", "Model not found.")
    with pytest.raises(NotFoundError, match="Model not found"):
        await synapse.achat(MODEL, "hi")


@pytest.mark.parametrize("streaming", [False, True])
async def test_context_too_long(fake, streaming):
    fake.context_window = 50
    with pytest.raises(ContextTooLongError, match="Input is too long"):
        if streaming:
            await collect(MODEL, "word " * 100)
        else:
            await synapse.achat(MODEL, "word " * 100)
    assert len(fake.requests) == 1


async def test_error_body_never_shows_the_key(fake):
    fake.fail_next_aws(400, "ValidationException", f"bad header Authorization: Bearer {fake.key}")
    with pytest.raises(BadRequestError) as info:
        await synapse.achat(MODEL, "hi")
    assert fake.key not in str(info.value)


async def test_dropped_connection_before_the_answer_is_retried(fake):
    fake.drop_next()
    r = await synapse.achat(MODEL, "hi")
    assert r.text == "Bedrock says: hi"
    assert len(fake.requests) == 2


async def test_unreachable_host(configure, fake):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    configure(bedrock_runtime_url=f"http://127.0.0.1:{port}", max_retries=0)
    with pytest.raises(UpstreamUnavailableError, match="cannot reach AWS Bedrock") as info:
        await synapse.achat(MODEL, "hi")
    assert "bedrock_runtime_url" in str(info.value)


async def test_drop_mid_stream_is_reported_not_retried(fake):
    fake.reply(BedrockReply(text="a fairly long reply that will be cut off", break_after_events=3))
    seen = []
    with pytest.raises(UpstreamUnavailableError, match="mid-stream"):
        async for e in synapse.astream(MODEL, "hi"):
            seen.append(e)
    assert [e.text for e in seen] == ["a fairly l", "ong reply "]
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("etype", "message", "error"),
    [
        ("throttlingException", "Too many tokens, please wait before trying again.", RateLimitError),
        ("serviceUnavailableException", "Bedrock is unable to process your request.", OverloadedError),
        ("validationException", "Input is too long for requested model.", ContextTooLongError),
        ("validationException", "The provided request is not valid", BadRequestError),
        ("modelStreamErrorException", "The model stream had an error.", UpstreamUnavailableError),
        ("internalServerException", "Internal server error", UpstreamUnavailableError),
    ],
)
async def test_in_stream_exceptions_are_typed_and_not_retried(fake, etype, message, error):
    fake.reply(BedrockReply(text="partial answer here", error_after_events=2, exception_type=etype, exception_message=message))
    seen = []
    with pytest.raises(error) as info:
        async for e in synapse.astream(MODEL, "hi"):
            seen.append(e)
    assert type(info.value) is error
    assert message in str(info.value) and etype in str(info.value)
    assert [e.text for e in seen] == ["partial an"]
    assert len(fake.requests) == 1


async def test_unmodeled_in_stream_error(fake):
    fake.reply(BedrockReply(text="x", error_after_events=1, unmodeled_error=True, exception_type="InternalFailure", exception_message="boom"))
    with pytest.raises(UpstreamUnavailableError, match="boom"):
        await collect(MODEL, "hi")


async def test_malformed_bodies(fake):
    fake.reply(BedrockReply(malformed=True))
    with pytest.raises(UpstreamUnavailableError, match="malformed"):
        await synapse.achat(MODEL, "hi")
    fake.reply(BedrockReply(text="some text", malformed=True))
    with pytest.raises(UpstreamUnavailableError, match="CRC"):
        await collect(MODEL, "hi")
    assert len(fake.requests) == 2  # neither was retried
    # a 200 whose body is not a ConverseResponse at all
    fake.fail_next(200, {"unexpected": True})
    with pytest.raises(UpstreamUnavailableError, match="not a ConverseResponse"):
        await synapse.achat(MODEL, "hi")


async def test_stream_that_ends_early_or_inside_a_frame(fake):
    from tests.fakes.bedrock import event_frame

    start = event_frame("messageStart", {"role": "assistant"})
    delta = event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "hi"}})
    ct = {"Content-Type": "application/vnd.amazon.eventstream"}
    fake.fail_next(200, start + delta, ct)  # a clean end with no messageStop / metadata
    with pytest.raises(UpstreamUnavailableError, match="before its messageStop event"):
        await collect(MODEL, "hi")
    fake.fail_next(200, start + delta[:-3], ct)  # the last frame is cut short
    with pytest.raises(UpstreamUnavailableError, match="inside an event"):
        await collect(MODEL, "hi")


# --- SigV4 ----------------------------------------------------------------------------------------------

AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TMP_AKID = "ASIAIOSFODNN7TEMPKEY"
TMP_SECRET = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"


@pytest.fixture
def sigv4(bedrock_server, configure, monkeypatch):
    bedrock_server.reset()
    bedrock_server.sigv4_credentials = {AKID: (SECRET, ""), TMP_AKID: (TMP_SECRET, TOKEN)}
    settings = bedrock_server.settings(max_retries=2, prompt_cache_enabled=False)
    settings.pop("bedrock_api_key")
    configure(**settings)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AKID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    return bedrock_server


def _assert_sigv4(headers, akid, region="us-east-1"):
    import re

    auth = headers["Authorization"]
    m = re.match(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, SignedHeaders=([^,]+), Signature=[0-9a-f]{64}$", auth)
    assert m, auth
    assert m.group(1) == akid and m.group(3) == region and m.group(4) == "bedrock"
    assert headers["X-Amz-Date"].startswith(m.group(2))
    assert {"host", "x-amz-date"} <= set(m.group(5).split(";"))


async def test_sigv4_chat_stream_and_paginated_listing(sigv4):
    r = await synapse.achat(MODEL, "signed hello")
    assert r.text == "Bedrock says: signed hello"
    _assert_sigv4(sigv4.last.headers, AKID)
    assert "X-Amz-Security-Token" not in sigv4.last.headers
    assert sigv4.raw_paths[-1] == f"{PATH}/converse"  # signed exactly as sent (the fake recomputed it)
    _, sr = await collect(MODEL, "signed stream")
    assert sr.text == "Bedrock says: signed stream"
    _assert_sigv4(sigv4.last.headers, AKID)
    models = await adapter().list_models()  # query strings with an encoded nextToken are signed too
    assert len([r for r in sigv4.requests if r.path == "/inference-profiles"]) == 3
    assert any(m.id == "bedrock.us.amazon.nova-pro-v1:0" for m in models)
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/otnfa2ysixqd"
    await synapse.achat(f"bedrock.{arn}", "hi")  # %3A / %2F in the signed path
    vectors = await synapse.aembed("amazon.titan-embed-text-v2:0", ["one", "two"])
    assert len(vectors) == 2


async def test_sigv4_session_token(sigv4, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TMP_AKID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TMP_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    await synapse.achat(MODEL, "hi")
    _assert_sigv4(sigv4.last.headers, TMP_AKID)
    assert sigv4.last.headers["X-Amz-Security-Token"] == TOKEN


async def test_sigv4_wrong_secret_and_unknown_key(sigv4, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrongwrongwrongwrongwrongwrongwrongwrong")
    with pytest.raises(AuthenticationError, match="AWS_ACCESS_KEY_ID") as info:
        await synapse.achat(MODEL, "hi")
    assert "signature we calculated does not match" in str(info.value)
    assert "wrongwrongwrong" not in str(info.value)
    assert len(sigv4.requests) == 1
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNUNKNOWN00")
    with pytest.raises(AuthenticationError, match="security token included in the request is invalid"):
        await adapter().verify()


async def test_sigv4_region_must_match(sigv4, configure):
    configure(aws_region="eu-west-1")
    with pytest.raises(AuthenticationError, match="Credential should be scoped to a valid region"):
        await synapse.achat(MODEL, "hi")


# --- embeddings ---------------------------------------------------------------------------------------------


async def test_titan_embeddings_one_call_per_text(fake):
    vectors = await synapse.aembed("amazon.titan-embed-text-v2:0", ["alpha", "beta", "alpha"])
    assert len(vectors) == 3 and all(len(v) == 1024 for v in vectors)
    assert vectors[0] == vectors[2] != vectors[1]
    assert abs(sum(x * x for x in vectors[0]) - 1.0) < 1e-3
    assert fake.raw_paths == ["/model/amazon.titan-embed-text-v2%3A0/invoke"] * 3
    assert sorted(r.json()["inputText"] for r in fake.requests) == ["alpha", "alpha", "beta"]
    assert all(r.json() == {"inputText": r.json()["inputText"]} for r in fake.requests)
    assert all(r.headers["Accept"] == "application/json" for r in fake.requests)
    # with the routing prefix, and as the embedding_model setting
    assert await synapse.aembed("bedrock.amazon.titan-embed-text-v2:0", "alpha") == [vectors[0]]


async def test_embedding_model_setting_and_profile_is_not_applied(fake, configure):
    configure(embedding_model="amazon.titan-embed-text-v2:0", bedrock_inference_profile="us.amazon.nova-pro-v1:0")
    vectors = await synapse.aembed(None, ["hello"])
    assert len(vectors[0]) == 1024
    assert fake.raw_paths == ["/model/amazon.titan-embed-text-v2%3A0/invoke"]


async def test_cohere_embeddings_one_call(fake):
    vectors = await synapse.aembed("cohere.embed-english-v3", ["x", "y"])
    assert len(vectors) == 2 and vectors[0] != vectors[1]
    assert fake.last.json() == {"texts": ["x", "y"], "input_type": "search_document"}
    assert fake.raw_paths == ["/model/cohere.embed-english-v3/invoke"]


async def test_embedding_errors(fake, configure):
    fake.fail_next_aws(429, "ThrottlingException", "Too many requests", retry_after="0")
    assert len(await synapse.aembed("amazon.titan-embed-text-v2:0", ["a"])) == 1
    assert len(fake.requests) == 2
    configure(bedrock_api_key="absk-BADBADBADBADBAD")
    with pytest.raises(AuthenticationError):
        await synapse.aembed("amazon.titan-embed-text-v2:0", ["a", "b"])
