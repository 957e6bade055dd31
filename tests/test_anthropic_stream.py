"""Anthropic Messages streaming: SSE decoding, tool-call assembly, usage rules, mid-stream failures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import synapse
from synapse.errors import (
    AuthenticationError,
    ContextTooLongError,
    OverloadedError,
    RateLimitError,
    UpstreamUnavailableError,
)
from synapse.providers import transport
from synapse.types import ReasoningDelta, ResponseDone, TextDelta, Tool, ToolCallDelta
from tests.conftest import provider_fake
from tests.fakes.anthropic import AnthropicFake, AnthropicReply
from tests.fakes.base import FakeReply, FakeToolCall, estimate_tokens

MODEL = "claude-sonnet-4-5"
SSE = {"Content-Type": "text/event-stream; charset=utf-8"}


@pytest.fixture(scope="module")
def fake() -> Iterator[AnthropicFake]:
    yield from provider_fake(AnthropicFake)


@pytest.fixture
def anth(fake: AnthropicFake, configure: Any, monkeypatch: pytest.MonkeyPatch) -> AnthropicFake:
    fake.reset()
    monkeypatch.setattr(transport, "BACKOFF_BASE", 0.001)
    configure(**fake.settings(max_retries=2, prompt_cache_enabled=False))
    return fake


async def collect(*args: Any, **kwargs: Any) -> list[Any]:
    return [e async for e in synapse.astream(*args, **kwargs)]


async def test_text_stream_ends_with_the_assembled_response(anth: AnthropicFake) -> None:
    events = await collect(MODEL, "stream this please", system="Be kind.", max_tokens=200, temperature=1.0, stop=["###"])
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(texts) > 1 and "".join(texts) == "You said: stream this please"
    done = events[-1]
    assert isinstance(done, ResponseDone) and sum(isinstance(e, ResponseDone) for e in events) == 1
    r = done.response
    assert r.text == "You said: stream this please" and r.model == MODEL and r.id and r.id.startswith("msg_")
    assert (r.stop_reason, r.raw_stop_reason) == ("end_turn", "end_turn")
    assert r.usage.as_dict() == {
        "input_tokens": estimate_tokens("Be kind.") + estimate_tokens("stream this please"),
        "output_tokens": estimate_tokens("You said: stream this please"),
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
    }
    assert anth.last.json() == {
        "model": MODEL,
        "max_tokens": 200,
        "system": [{"type": "text", "text": "Be kind."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "stream this please"}]}],
        "temperature": 1.0,
        "stop_sequences": ["###"],
        "stream": True,
    }
    headers = {k.lower(): v for k, v in anth.last.headers.items()}
    assert headers["accept"] == "application/json"  # like the SDK: the body asks for the stream


async def test_streamed_tool_calls_are_assembled(anth: AnthropicFake) -> None:
    args = {"city": "San Francisco", "units": "celsius", "days": [1, 2, 3], "note": "a \"quoted\" word"}
    anth.reply(FakeReply(text="Let me look.", tool_calls=[
        FakeToolCall("toolu_01A", "get_weather", args),
        FakeToolCall("toolu_01B", "get_time", {}),
    ]))
    tools = [Tool("get_weather", "w", {"type": "object", "properties": {}}), Tool("get_time")]
    events = await collect(MODEL, "weather and time?", tools=tools, tool_choice="auto")
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    # id and name come once, on the first piece of each index; arguments stream in fragments
    assert [(c.index, c.id, c.name) for c in calls if c.id] == [(0, "toolu_01A", "get_weather"), (1, "toolu_01B", "get_time")]
    assert all(c.id is None and c.name is None for c in calls if not c.id)
    assert len([c for c in calls if c.index == 0 and c.arguments]) > 2
    import json

    assert json.loads("".join(c.arguments for c in calls if c.index == 0)) == args
    assert "".join(c.arguments for c in calls if c.index == 1) == ""  # only the empty fragment
    r = events[-1].response
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == [
        ("toolu_01A", "get_weather", args),
        ("toolu_01B", "get_time", {}),  # empty buffer means {}
    ]
    assert r.text == "Let me look."
    assert (r.stop_reason, r.raw_stop_reason) == ("tool_use", "tool_use")
    assert anth.last.json()["tool_choice"] == {"type": "auto"}


async def test_streamed_reasoning(anth: AnthropicFake) -> None:
    anth.reply(FakeReply(text="42.", reasoning="Six times seven is forty-two.", reasoning_tokens=11))
    events = await collect(MODEL, "6*7?", extra={"thinking": {"type": "enabled", "budget_tokens": 1024}})
    reasoning = [e.text for e in events if isinstance(e, ReasoningDelta)]
    assert "".join(reasoning) == "Six times seven is forty-two."
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert all(isinstance(e, ReasoningDelta) for e in events[: first_text])
    r = events[-1].response
    assert r.reasoning == "Six times seven is forty-two." and r.text == "42."
    assert r.usage.reasoning_tokens == 11
    assert r.usage.output_tokens == 11 + estimate_tokens("42.")


async def test_streamed_thinking_is_kept_with_its_signature_for_the_next_turn(anth: AnthropicFake) -> None:
    import hashlib

    thought = "I should call the calculator."
    anth.reply(FakeReply(reasoning=thought, tool_calls=[FakeToolCall("toolu_c", "calc", {"expr": "6*7"})]))
    r = (await collect(MODEL, "6*7?", tools=[Tool("calc")]))[-1].response
    assert r.tool_calls[0].provider_data == {
        "anthropic_thinking": [{"type": "thinking", "thinking": thought, "signature": hashlib.sha256(thought.encode()).hexdigest()}]
    }


@pytest.mark.parametrize(("raw", "canonical"), [("max_tokens", "max_tokens"), ("refusal", "content_filter"), ("pause_turn", "other")])
async def test_streamed_stop_reasons(anth: AnthropicFake, raw: str, canonical: str) -> None:
    anth.reply(FakeReply(text="partial", stop_reason=raw))
    r = (await collect(MODEL, "hi"))[-1].response
    assert (r.stop_reason, r.raw_stop_reason) == (canonical, raw)


async def test_streamed_max_tokens_truncation(anth: AnthropicFake) -> None:
    r = (await collect(MODEL, "a rather long question indeed", max_tokens=2))[-1].response
    assert r.text == "You said"
    assert r.stop_reason == "max_tokens" and r.usage.output_tokens == 2


# A byte-exact stream written from reference §2.4: padded JSON, a ping, an unknown event type,
# a comment line, an empty text block, a text block with initial text, and message_delta usage
# that differs from message_start on the input side (server tools grow the prompt).
RECORDED_STYLE = (
    b'event: message_start\n'
    b'data: {"type":"message_start","message":{"model":"claude-sonnet-4-5-20250929","id":"msg_01XYZ","type":"message",'
    b'"role":"assistant","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":2039,'
    b'"cache_creation_input_tokens":0,"cache_read_input_tokens":55096,"cache_creation":{"ephemeral_5m_input_tokens":0,'
    b'"ephemeral_1h_input_tokens":0},"output_tokens":3,"service_tier":"standard"}}    }\n\n'
    b'event: content_block_start\n'
    b'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}  }\n\n'
    b'event: ping\n'
    b'data: {"type": "ping"}\n\n'
    b': a comment line\n\n'
    b'event: content_block_stop\n'
    b'data: {"type":"content_block_stop","index":0        }\n\n'
    b'event: content_block_start\n'
    b'data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":"Hel"}}\n\n'
    b'event: content_block_delta\n'
    b'data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"lo"}   }\n\n'
    b'event: content_block_delta\n'
    b'data: {"type":"content_block_delta","index":1,"delta":{"type":"citations_delta","citation":{"type":"x"}}}\n\n'
    b'event: brand_new_event\n'
    b'data: {"type":"brand_new_event","whatever":1}\n\n'
    b'event: content_block_stop\n'
    b'data: {"type":"content_block_stop","index":1}\n\n'
    b'event: message_delta\n'
    b'data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":10423,'
    b'"cache_creation_input_tokens":12,"cache_read_input_tokens":0,"output_tokens":89,'
    b'"output_tokens_details":{"thinking_tokens":40}}       }\n\n'
    b'event: message_stop\n'
    b'data: {"type":"message_stop"    }\n\n'
)


async def test_message_delta_usage_overwrites_message_start(anth: AnthropicFake) -> None:
    anth.fail_next(200, RECORDED_STYLE, SSE)
    events = await collect(MODEL, "hi")
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hel", "lo"]
    r = events[-1].response
    assert r.text == "Hello" and r.id == "msg_01XYZ" and r.stop_reason == "end_turn"
    assert r.usage.as_dict() == {
        "input_tokens": 10423,
        "output_tokens": 89,
        "cache_read_tokens": 0,
        "cache_write_tokens": 12,
        "reasoning_tokens": 40,
    }


async def test_message_start_usage_kept_when_message_delta_carries_only_output(anth: AnthropicFake) -> None:
    body = RECORDED_STYLE.replace(
        b'"usage":{"input_tokens":10423,"cache_creation_input_tokens":12,"cache_read_input_tokens":0,"output_tokens":89,'
        b'"output_tokens_details":{"thinking_tokens":40}}',
        b'"usage":{"output_tokens":89}',
    )
    assert body != RECORDED_STYLE
    anth.fail_next(200, body, SSE)
    r = (await collect(MODEL, "hi"))[-1].response
    assert r.usage.as_dict() == {
        "input_tokens": 2039,
        "output_tokens": 89,
        "cache_read_tokens": 55096,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
    }


async def test_stream_split_into_tiny_reads_still_decodes(anth: AnthropicFake) -> None:
    # CRLF framing too: the SSE reader accepts both
    anth.fail_next(200, RECORDED_STYLE.replace(b"\n", b"\r\n"), SSE)
    r = (await collect(MODEL, "hi"))[-1].response
    assert r.text == "Hello" and r.usage.output_tokens == 89


async def test_server_tool_blocks_are_skipped_not_called(anth: AnthropicFake) -> None:
    body = RECORDED_STYLE.replace(
        b'event: content_block_start\n'
        b'data: {"type":"content_block_start","index":1,',
        b'event: content_block_start\n'
        b'data: {"type":"content_block_start","index":2,"content_block":{"type":"server_tool_use","id":"srvtoolu_1",'
        b'"name":"web_search","input":{}}}\n\n'
        b'event: content_block_delta\n'
        b'data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\\"query\\": \\"x\\"}"}}\n\n'
        b'event: content_block_stop\n'
        b'data: {"type":"content_block_stop","index":2}\n\n'
        b'event: content_block_start\n'
        b'data: {"type":"content_block_start","index":1,',
    )
    assert b"server_tool_use" in body
    anth.fail_next(200, body, SSE)
    events = await collect(MODEL, "search")
    assert not any(isinstance(e, ToolCallDelta) for e in events)
    r = events[-1].response
    assert r.text == "Hello" and r.tool_calls == []


async def test_drop_mid_stream_is_reported_and_not_retried(anth: AnthropicFake) -> None:
    anth.reply(AnthropicReply(text="one two three four five six", break_after_events=5))
    seen: list[Any] = []
    with pytest.raises(UpstreamUnavailableError) as info:
        async for event in synapse.astream(MODEL, "count"):
            seen.append(event)
    assert str(info.value).endswith("(mid-stream)")
    assert "Anthropic Claude" in str(info.value)
    assert [e.text for e in seen] == ["one ", "two "]  # what arrived before the drop was delivered
    assert len(anth.requests) == 1


async def test_stream_ending_without_message_stop_is_an_error(anth: AnthropicFake) -> None:
    cut = RECORDED_STYLE[: RECORDED_STYLE.index(b"event: message_delta")]
    anth.fail_next(200, cut, SSE)
    with pytest.raises(UpstreamUnavailableError, match=r"before message_stop \(mid-stream\)"):
        await collect(MODEL, "hi")
    assert len(anth.requests) == 1


@pytest.mark.parametrize(
    ("etype", "message", "error"),
    [
        ("overloaded_error", "Overloaded", OverloadedError),
        ("rate_limit_error", "Rate limited", RateLimitError),
        ("api_error", "Internal server error", UpstreamUnavailableError),
        ("invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum", ContextTooLongError),
    ],
)
async def test_in_stream_error_event_raises_the_typed_error(anth: AnthropicFake, etype: str, message: str, error: type) -> None:
    anth.reply(AnthropicReply(text="alpha beta gamma", error_after_events=4, error_type=etype, error_message=message))
    seen: list[Any] = []
    with pytest.raises(error) as info:
        async for event in synapse.astream(MODEL, "hi"):
            seen.append(event)
    assert type(info.value) is error
    assert message in str(info.value)
    assert [e.text for e in seen] == ["alpha "]
    assert len(anth.requests) == 1  # never retried once the stream started


async def test_malformed_stream_is_a_protocol_error(anth: AnthropicFake) -> None:
    anth.malformed_next(stream=True)
    with pytest.raises(UpstreamUnavailableError, match="Anthropic Claude sent a malformed response"):
        await collect(MODEL, "hi")
    assert len(anth.requests) == 1


async def test_stream_auth_error_before_start_is_not_retried(anth: AnthropicFake, configure: Any) -> None:
    configure(anthropic_key="sk-ant-api03-not-the-right-key-at-all")
    with pytest.raises(AuthenticationError, match="rejected the key in anthropic_key"):
        await collect(MODEL, "hi")
    assert len(anth.requests) == 1


async def test_stream_rate_limit_before_start_is_retried(anth: AnthropicFake) -> None:
    anth.rate_limit_next(retry_after="0")
    anth.overloaded_next()
    events = await collect(MODEL, "again")
    assert events[-1].response.text == "You said: again"
    assert len(anth.requests) == 3
    assert all(r.json()["stream"] is True for r in anth.requests)


def test_sync_stream_iterates(anth: AnthropicFake) -> None:
    events = list(synapse.stream(MODEL, "sync stream"))
    assert isinstance(events[-1], ResponseDone) and events[-1].response.text == "You said: sync stream"
