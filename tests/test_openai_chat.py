"""OpenAI Chat Completions against the OpenAI-flavoured fake: encode, decode, stream, usage, errors."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from synapse.client import achat, astream
from synapse.errors import (
    AuthenticationError,
    BadRequestError,
    ContextTooLongError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UpstreamUnavailableError,
)
from synapse.providers.openai import normalise_usage
from synapse.types import (
    ImagePart,
    Message,
    ResponseDone,
    TextDelta,
    TextPart,
    Tool,
    ToolCallDelta,
    ToolResultPart,
    Usage,
)
from tests.conftest import provider_fake
from tests.fakes.openai import FakeReply, FakeToolCall, OpenAIFake

MODEL = "gpt-4o-mini"
WEATHER = Tool("get_weather", "Weather for a city", {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIFake]:
    yield from provider_fake(OpenAIFake, flavour="openai")


@pytest.fixture
def fake(server: OpenAIFake, configure: Any) -> OpenAIFake:
    server.reset()
    configure(**server.settings(), max_retries=2)
    return server


async def collect(model: str, messages: Any, **kw: Any) -> tuple[list[Any], Any]:
    events = [e async for e in astream(model, messages, **kw)]
    assert isinstance(events[-1], ResponseDone)
    assert not any(isinstance(e, ResponseDone) for e in events[:-1])
    return events, events[-1].response


# --- encode + decode ---------------------------------------------------------------------------


async def test_plain_text_wire_and_response(fake: OpenAIFake) -> None:
    r = await achat(MODEL, "hello there")
    assert r.text == "You said: hello there"
    assert r.stop_reason == "end_turn" and r.raw_stop_reason == "stop"
    assert r.provider == "openai" and r.model == MODEL and r.id == "chatcmpl-fake1"
    # prompt "hello there" = 11 chars -> 2 tokens; reply 21 chars -> 5 tokens
    assert r.usage == Usage(input_tokens=2, output_tokens=5)
    req = fake.last
    assert req.method == "POST" and req.path == "/v1/chat/completions"
    assert req.headers["Authorization"] == f"Bearer {fake.key}"
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Accept"] == "application/json"
    assert req.json() == {"model": MODEL, "messages": [{"role": "user", "content": "hello there"}]}


async def test_system_history_sampling_options_on_the_wire(fake: OpenAIFake) -> None:
    history = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
    ]
    r = await achat(MODEL, history, system="You are terse.", max_tokens=50, temperature=0.2, stop=["END", "STOP"])
    assert r.text == "You said: second question"
    assert fake.last.json() == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": "second question"},
        ],
        "max_completion_tokens": 50,
        "temperature": 0.2,
        "stop": ["END", "STOP"],
    }


@pytest.mark.parametrize("model", ["o3-mini", "o4-mini", "gpt-5"])
async def test_reasoning_models_use_developer_role_and_no_temperature(fake: OpenAIFake, model: str) -> None:
    r = await achat(model, "think", system="Be careful.", max_tokens=300, temperature=0.7)
    assert r.text == "You said: think"
    body = fake.last.json()
    assert body["messages"][0] == {"role": "developer", "content": "Be careful."}
    assert body["max_completion_tokens"] == 300
    assert "max_tokens" not in body and "temperature" not in body


async def test_images_inline_and_by_url(fake: OpenAIFake) -> None:
    png = b"\x89PNG\r\n\x1a\nfake"
    msg = Message("user", [TextPart("what is this?"), ImagePart("image/png", data=png), ImagePart(url="https://x.test/cat.jpg")])
    await achat(MODEL, [msg])
    assert fake.last.json()["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()}},
        {"type": "image_url", "image_url": {"url": "https://x.test/cat.jpg"}},
    ]}]


async def test_tool_call_round_trip(fake: OpenAIFake) -> None:
    fake.reply(FakeReply(tool_calls=[FakeToolCall("call_a", "get_weather", {"city": "Paris"}),
                                     FakeToolCall("call_b", "get_weather", {"city": "Oslo"})]))
    r = await achat(MODEL, "weather in Paris and Oslo?", tools=[WEATHER], tool_choice="auto")
    assert r.stop_reason == "tool_use" and r.raw_stop_reason == "tool_calls"
    assert r.text == ""
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == [
        ("call_a", "get_weather", {"city": "Paris"}), ("call_b", "get_weather", {"city": "Oslo"})]
    first = fake.last.json()
    assert first["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city", "parameters": WEATHER.parameters}}]
    assert first["tool_choice"] == "auto"

    history = [
        Message("user", [TextPart("weather in Paris and Oslo?")]),
        r.to_message(),
        Message("user", [ToolResultPart("call_a", "18C, sunny"), ToolResultPart("call_b", "3C, snow"), TextPart("and be brief")]),
    ]
    r2 = await achat(MODEL, history, tools=[WEATHER])
    assert r2.text == "You said: and be brief"
    assert fake.last.json()["messages"] == [
        {"role": "user", "content": "weather in Paris and Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_a", "content": "18C, sunny"},
        {"role": "tool", "tool_call_id": "call_b", "content": "3C, snow"},
        {"role": "user", "content": "and be brief"},
    ]


async def test_openai_style_dict_history_is_accepted(fake: OpenAIFake) -> None:
    history = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "warm"},
    ]
    await achat(MODEL, history, tools=[WEATHER])
    sent = fake.last.json()["messages"]
    assert sent[1]["tool_calls"][0]["function"]["arguments"] == '{"city":"Rome"}'
    assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": "warm"}


@pytest.mark.parametrize("choice, wire", [
    ("none", "none"), ("required", "required"),
    ("get_weather", {"type": "function", "function": {"name": "get_weather"}}),
])
async def test_tool_choice(fake: OpenAIFake, choice: str, wire: Any) -> None:
    await achat(MODEL, "x", tools=[WEATHER], tool_choice=choice)
    assert fake.last.json()["tool_choice"] == wire


async def test_extra_fields_are_merged_last(fake: OpenAIFake) -> None:
    await achat(MODEL, "x", extra={"seed": 7, "prompt_cache_key": "k1"})
    body = fake.last.json()
    assert body["seed"] == 7 and body["prompt_cache_key"] == "k1"


# --- stop reasons ---------------------------------------------------------------------------------


async def test_max_tokens_stop(fake: OpenAIFake) -> None:
    fake.reply(FakeReply(text="one two three four five six seven eight nine ten"))
    r = await achat(MODEL, "count", max_tokens=2)
    assert r.stop_reason == "max_tokens" and r.raw_stop_reason == "length"
    assert r.text == "one two "


async def test_stop_sequence_reports_end_turn(fake: OpenAIFake) -> None:
    # Chat Completions says "stop" for a hit stop sequence too: not knowable, kept as end_turn.
    fake.reply(FakeReply(text="alpha END beta"))
    r = await achat(MODEL, "x", stop="END")
    assert r.text == "alpha " and r.stop_reason == "end_turn" and r.raw_stop_reason == "stop"


async def test_content_filter_and_unknown_finish(fake: OpenAIFake) -> None:
    fake.reply(FakeReply(text="", stop_reason="content_filter"), FakeReply(text="hm", stop_reason="weird_new_reason"))
    r = await achat(MODEL, "x")
    assert r.stop_reason == "content_filter" and r.raw_stop_reason == "content_filter"
    events, r2 = await collect(MODEL, "x")
    assert r2.stop_reason == "other" and r2.raw_stop_reason == "weird_new_reason"


# --- streaming --------------------------------------------------------------------------------------


async def test_stream_text_and_final_usage_chunk(fake: OpenAIFake) -> None:
    fake.reply(FakeReply(text="Hello there, streaming world", input_tokens=40, cache_read_tokens=1024, output_tokens=9))
    events, r = await collect(MODEL, "hi", temperature=0)
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(texts) == 4 and "".join(texts) == "Hello there, streaming world"
    assert r.text == "Hello there, streaming world" and r.stop_reason == "end_turn"
    assert r.usage == Usage(input_tokens=40, output_tokens=9, cache_read_tokens=1024)
    body = fake.last.json()
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0
    assert fake.last.headers.get("Accept") == "application/json"  # streaming is chosen by the body


async def test_stream_parallel_tool_calls_assembled(fake: OpenAIFake) -> None:
    fake.reply(FakeReply(text="Checking.", tool_calls=[
        FakeToolCall("call_1", "get_weather", {"city": "Paris", "unit": "C"}),
        FakeToolCall("call_2", "get_time", {}),
    ]))
    events, r = await collect(MODEL, "x", tools=[WEATHER, Tool("get_time")])
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    firsts = [d for d in deltas if d.id is not None]
    assert [(d.index, d.id, d.name) for d in firsts] == [(0, "call_1", "get_weather"), (1, "call_2", "get_time")]
    assert all(d.name is None for d in deltas if d.id is None)
    assert "".join(d.arguments for d in deltas if d.index == 0) == '{"city": "Paris", "unit": "C"}'
    assert len([d for d in deltas if d.index == 0]) > 2  # arguments really arrived in pieces
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == [
        ("call_1", "get_weather", {"city": "Paris", "unit": "C"}), ("call_2", "get_time", {})]
    assert r.text == "Checking." and r.stop_reason == "tool_use"


async def test_stream_empty_argument_buffer_means_empty_object(fake: OpenAIFake) -> None:
    body = (
        b'data: {"id":"c1","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":'
        b'[{"index":0,"id":"call_z","type":"function","function":{"name":"ping","arguments":""}}]},"finish_reason":null}],"usage":null}\n\n'
        b'data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":null}\n\n'
        b"data: [DONE]\n\n"
    )
    fake.fail_next(200, body, {"Content-Type": "text/event-stream"})
    _, r = await collect(MODEL, "x")
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == [("call_z", "ping", {})]


@pytest.mark.parametrize("mode", ["split", "coalesce"])
async def test_stream_survives_split_and_coalesced_tcp_writes(fake: OpenAIFake, mode: str) -> None:
    fake.write_mode = mode
    fake.reply(FakeReply(text="split across many reads", tool_calls=[FakeToolCall("call_s", "get_weather", {"city": "Lima"})],
                         input_tokens=7, output_tokens=11))
    events, r = await collect(MODEL, "x", tools=[WEATHER])
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "split across many reads"
    assert r.tool_calls[0].arguments == {"city": "Lima"}
    assert r.usage == Usage(input_tokens=7, output_tokens=11)


async def test_sync_stream_and_chat(fake: OpenAIFake) -> None:
    from synapse.client import chat, stream

    r = chat(MODEL, "sync call")
    assert r.text == "You said: sync call"
    events = list(stream(MODEL, "sync stream"))
    assert events[-1].response.text == "You said: sync stream"


# --- usage normalisation --------------------------------------------------------------------------


async def test_usage_cache_read_write_and_reasoning_exact(fake: OpenAIFake) -> None:
    fake.reply(
        FakeReply(text="a", input_tokens=8, cache_write_tokens=4012, output_tokens=30, reasoning_tokens=20),
        FakeReply(text="a", input_tokens=8, cache_read_tokens=4012, output_tokens=30, reasoning_tokens=20),
    )
    r1 = await achat("o3", "x")
    assert r1.usage == Usage(input_tokens=8, output_tokens=30, cache_read_tokens=0, cache_write_tokens=4012, reasoning_tokens=20)
    _, r2 = await collect("o3", "x")
    assert r2.usage == Usage(input_tokens=8, output_tokens=30, cache_read_tokens=4012, cache_write_tokens=0, reasoning_tokens=20)
    assert r2.usage.prompt_tokens == 4020


def test_normalise_usage_recorded_shapes() -> None:
    # §3.3 example: 1200 prompt incl. 1024 cached.
    assert normalise_usage({"prompt_tokens": 1200, "completion_tokens": 30, "total_tokens": 1230,
                            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
                            "completion_tokens_details": {"reasoning_tokens": 0}}) == Usage(176, 30, 1024, 0, 0)
    # §1.1 OpenRouter/Anthropic: 2649 = 1 + read 2569 + write 79.
    assert normalise_usage({"prompt_tokens": 2649, "completion_tokens": 100,
                            "prompt_tokens_details": {"cached_tokens": 2569, "cache_write_tokens": 79}}) == Usage(1, 100, 2569, 79, 0)
    # §1.1 OpenRouter/Gemini reported the same tokens as read and written: trust prompt_tokens.
    u = normalise_usage({"prompt_tokens": 2168, "completion_tokens": 5,
                         "prompt_tokens_details": {"cached_tokens": 2161, "cache_write_tokens": 2161}})
    assert u == Usage(0, 5, 2161, 7, 0) and u.prompt_tokens == 2168
    # §7.3 DeepSeek recorded: 563 = hit 512 + miss 51, reasoning 60 inside 116.
    assert normalise_usage({"prompt_tokens": 563, "completion_tokens": 116, "total_tokens": 679,
                            "prompt_cache_hit_tokens": 512, "prompt_cache_miss_tokens": 51,
                            "prompt_tokens_details": {"cached_tokens": 512},
                            "completion_tokens_details": {"reasoning_tokens": 60}}) == Usage(51, 116, 512, 0, 60)
    assert normalise_usage(None) == Usage()
    assert normalise_usage({"prompt_tokens": 9, "completion_tokens": 3, "prompt_tokens_details": None}) == Usage(9, 3)


# --- errors -----------------------------------------------------------------------------------------


async def test_bad_key_401_not_retried_and_never_echoed(fake: OpenAIFake, configure: Any) -> None:
    bad = "sk-proj-wrongwrongwrong0000zzzz"
    configure(openai_key=bad)
    with pytest.raises(AuthenticationError) as exc:
        await achat(MODEL, "x")
    msg = str(exc.value)
    assert msg.startswith("OpenAI rejected the key in openai_key: check it at platform.openai.com/api-keys")
    assert bad not in msg and "zzzz" in msg  # the masked form only
    assert exc.value.status == 401
    assert len(fake.requests) == 1


async def test_missing_key_header_is_401(fake: OpenAIFake) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as s:
        async with s.post(fake.base_url + "/chat/completions", json={"model": MODEL, "messages": []}) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] is None


async def test_bad_request_400_not_retried(fake: OpenAIFake) -> None:
    fake.fail_next(400, {"error": {"message": "Invalid value for 'temperature'.", "type": "invalid_request_error",
                                   "param": "temperature", "code": "invalid_value"}})
    with pytest.raises(BadRequestError) as exc:
        await achat(MODEL, "x")
    assert not isinstance(exc.value, ContextTooLongError)
    assert "Invalid value for 'temperature'" in str(exc.value)
    assert len(fake.requests) == 1


async def test_unknown_model_404(fake: OpenAIFake) -> None:
    with pytest.raises(NotFoundError) as exc:
        await achat("gpt-nonexistent", "x")
    assert "does not exist" in str(exc.value)
    assert len(fake.requests) == 1


async def test_permission_403(fake: OpenAIFake) -> None:
    fake.fail_next(403, {"error": {"message": "Project does not have access to model gpt-4.1", "type": "invalid_request_error",
                                   "param": None, "code": "model_not_found"}})
    with pytest.raises(PermissionDeniedError):
        await achat(MODEL, "x")
    assert len(fake.requests) == 1


async def test_429_retry_after_ms_then_success(fake: OpenAIFake) -> None:
    fake.fail_next(429, {"error": {"message": "Rate limit reached for gpt-4o-mini. Please try again in 1ms.",
                                   "type": "tokens", "param": None, "code": "rate_limit_exceeded"}},
                   {"retry-after-ms": "1", "retry-after": "0"})
    r = await achat(MODEL, "after the wait")
    assert r.text == "You said: after the wait"
    assert len(fake.requests) == 2


async def test_429_retries_exhausted(fake: OpenAIFake, configure: Any) -> None:
    configure(max_retries=1)
    fake.fail_next(429, {"error": {"message": "Rate limit reached", "type": "requests", "param": None,
                                   "code": "rate_limit_exceeded"}}, {"retry-after-ms": "2"}, times=3)
    with pytest.raises(RateLimitError) as exc:
        await achat(MODEL, "x")
    assert exc.value.retry_after == pytest.approx(0.002)
    assert len(fake.requests) == 2


async def test_insufficient_quota_is_not_retried(fake: OpenAIFake) -> None:
    fake.fail_next(429, {"error": {"message": "You exceeded your current quota, please check your plan and billing details.",
                                   "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}},
                   {"retry-after-ms": "1"}, times=3)
    with pytest.raises(PermissionDeniedError) as exc:
        await achat(MODEL, "x")
    assert "quota" in str(exc.value)
    assert len(fake.requests) == 1


@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_retried_then_success(fake: OpenAIFake, status: int) -> None:
    fake.fail_next(status, {"error": {"message": "The engine is currently overloaded, please try again later",
                                      "type": "server_error", "param": None, "code": None}}, {"retry-after-ms": "1"})
    _, r = await collect(MODEL, "x")
    assert r.text == "You said: x"
    assert len(fake.requests) == 2


async def test_503_exhausted_is_overloaded_error(fake: OpenAIFake, configure: Any) -> None:
    configure(max_retries=1)
    fake.fail_next(503, {"error": {"message": "The engine is currently overloaded, please try again later",
                                   "type": "server_error", "param": None, "code": "server_is_overloaded"}},
                   {"retry-after-ms": "1"}, times=2)
    from synapse.errors import OverloadedError

    with pytest.raises(OverloadedError) as exc:
        await achat(MODEL, "x")
    assert exc.value.retry_after == pytest.approx(0.001) and exc.value.status == 503
    assert len(fake.requests) == 2


async def test_context_too_long_not_retried(fake: OpenAIFake) -> None:
    fake.context_window = 100
    with pytest.raises(ContextTooLongError) as exc:
        await achat(MODEL, "word " * 200)
    assert "maximum context length is 100 tokens" in str(exc.value)
    assert len(fake.requests) == 1


async def test_connection_dropped_before_answer_is_retried(fake: OpenAIFake) -> None:
    fake.drop_next()
    r = await achat(MODEL, "again")
    assert r.text == "You said: again"
    assert len(fake.requests) == 2


async def test_drop_mid_stream_reported_not_retried(fake: OpenAIFake) -> None:
    fake.reply(FakeReply(text="this reply will be cut off halfway through", break_after_events=3))
    seen: list[str] = []
    with pytest.raises(UpstreamUnavailableError) as exc:
        async for e in astream(MODEL, "x"):
            if isinstance(e, TextDelta):
                seen.append(e.text)
    assert "(mid-stream)" in str(exc.value)
    assert seen == ["this ", "reply "]
    assert len(fake.requests) == 1


async def test_in_stream_error_event(fake: OpenAIFake) -> None:
    fake.reply(FakeReply(text="partial answer here", error_after_events=2))
    with pytest.raises(UpstreamUnavailableError) as exc:
        await collect(MODEL, "x")
    msg = str(exc.value)
    assert "The server had an error while processing your request" in msg
    assert msg.endswith("(mid-stream)") and "HTTP" not in msg and exc.value.status is None
    assert len(fake.requests) == 1


async def test_in_stream_rate_limit_error_is_typed(fake: OpenAIFake) -> None:
    fake.stream_error = {"error": {"message": "Rate limit reached for requests", "type": "requests",
                                   "param": None, "code": "rate_limit_exceeded"}}
    fake.reply(FakeReply(text="partial", error_after_events=1))
    with pytest.raises(RateLimitError):
        await collect(MODEL, "x")
    assert len(fake.requests) == 1


async def test_malformed_json_body(fake: OpenAIFake) -> None:
    fake.fail_next(200, b"<html>Bad gateway</html>", {"Content-Type": "text/html"})
    with pytest.raises(UpstreamUnavailableError) as exc:
        await achat(MODEL, "x")
    assert "malformed" in str(exc.value)
    fake.fail_next(200, {"object": "chat.completion", "choices": []})
    with pytest.raises(UpstreamUnavailableError, match="no choices"):
        await achat(MODEL, "x")


async def test_malformed_stream_event(fake: OpenAIFake) -> None:
    fake.fail_next(200, b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"ok"}}]}\n\ndata: {not json\n\n',
                   {"Content-Type": "text/event-stream"})
    with pytest.raises(UpstreamUnavailableError, match="not JSON"):
        await collect(MODEL, "x")


async def test_stream_closed_cleanly_without_finish_is_mid_stream(fake: OpenAIFake) -> None:
    fake.fail_next(200, b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":null}]}\n\n',
                   {"Content-Type": "text/event-stream"})
    with pytest.raises(UpstreamUnavailableError, match="mid-stream"):
        await collect(MODEL, "x")


async def test_malformed_tool_arguments(fake: OpenAIFake) -> None:
    fake.fail_next(200, {"id": "x", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None,
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}}]})
    with pytest.raises(UpstreamUnavailableError, match="not valid JSON"):
        await achat(MODEL, "x")


# --- CLI -----------------------------------------------------------------------------------------


def test_cli_chat_json_and_stream(fake: OpenAIFake, cli: Any) -> None:
    res = cli("chat", "-m", MODEL, "--json", "hi there")
    assert res.code == 0, res.err
    out = json.loads(res.out)
    assert out["text"] == "You said: hi there" and out["provider"] == "openai"
    assert out["usage"] == {"input_tokens": 2, "output_tokens": 4, "cache_read_tokens": 0, "cache_write_tokens": 0,
                            "reasoning_tokens": 0}
    assert fake.last.json()["stream"] is True
    res = cli("chat", "-m", MODEL, "--no-stream", "-s", "be nice", "--max-tokens", "20", "plain")
    assert res.code == 0 and res.out == "You said: plain\n"
    assert fake.last.json()["messages"][0] == {"role": "system", "content": "be nice"}
    assert fake.last.json()["max_completion_tokens"] == 20


def test_cli_errors_are_one_line(fake: OpenAIFake, cli: Any, configure: Any) -> None:
    configure(openai_key="sk-proj-badbadbadbad1234")
    res = cli("chat", "-m", MODEL, "hi")
    assert res.code == 1
    assert res.err.strip().count("\n") == 0
    assert res.err.startswith("synapse: OpenAI rejected the key in openai_key")
    assert "sk-proj-badbadbadbad1234" not in res.err


def test_subprocess_cli_success_and_failure(fake: OpenAIFake, run_synapse: Any, configure: Any) -> None:
    res = run_synapse("chat", "-m", MODEL, "from a subprocess")
    assert res.code == 0, res.err
    assert res.out == "You said: from a subprocess\n"
    fake.fail_next(400, {"error": {"message": "Invalid 'messages[0].content': string too long.", "type": "invalid_request_error",
                                   "param": "messages[0].content", "code": "string_above_max_length"}})
    res = run_synapse("chat", "-m", MODEL, "--no-stream", "boom")
    assert res.code == 1
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.err
    assert "OpenAI rejected the request (HTTP 400)" in lines[0]
