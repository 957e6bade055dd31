"""The pure parts of the gateway: usage conventions, stream encoders, relay readers, the
wire-level prompt-cache planner and the error -> status table."""

from __future__ import annotations

import json
from typing import Any

import pytest

from synapse import errors
from synapse.caching import SYNAPSE_VOLATILE, plan_anthropic_body
from synapse.gateway import anthropic_shape, openai_shape
from synapse.gateway.keys import KeyRejected
from synapse.gateway.problems import problem_for
from synapse.providers.anthropic import map_usage
from synapse.providers.openai import normalise_usage
from synapse.providers.relay import AnthropicStreamReader, OpenAIStreamReader
from synapse.types import ReasoningDelta, Response, ResponseDone, TextDelta, ToolCall, ToolCallDelta, Usage

USAGE = Usage(input_tokens=100, output_tokens=20, cache_read_tokens=900, cache_write_tokens=50, reasoning_tokens=5)


def sse_data(raw: bytes) -> list[Any]:
    out: list[Any] = []
    for line in raw.split(b"\n"):
        if line.startswith(b"data: "):
            payload = line[6:]
            out.append(payload.decode() if payload == b"[DONE]" else json.loads(payload))
    return out


# --- usage in each API's convention -----------------------------------------------------------------


def test_openai_usage_includes_the_cache_in_prompt_tokens() -> None:
    u = openai_shape.usage(USAGE)
    assert u["prompt_tokens"] == 1050 and u["total_tokens"] == 1070
    assert u["prompt_tokens_details"] == {"cached_tokens": 900, "cache_write_tokens": 50}
    assert u["completion_tokens"] == 20 and u["completion_tokens_details"] == {"reasoning_tokens": 5}
    assert normalise_usage(u) == USAGE  # and it reads back to the same canonical numbers


def test_anthropic_usage_excludes_the_cache_from_input_tokens() -> None:
    u = anthropic_shape.usage(USAGE)
    assert u == {"input_tokens": 100, "cache_creation_input_tokens": 50, "cache_read_input_tokens": 900, "output_tokens": 20}
    back = map_usage(u)
    assert (back.input_tokens, back.cache_read_tokens, back.cache_write_tokens, back.output_tokens) == (100, 900, 50, 20)


def test_usage_crosses_shapes_in_both_directions() -> None:
    # what an OpenAI upstream reported, as an Anthropic-shaped caller sees it
    from_openai = normalise_usage({"prompt_tokens": 1050, "completion_tokens": 20,
                                   "prompt_tokens_details": {"cached_tokens": 900, "cache_write_tokens": 50}})
    assert anthropic_shape.usage(from_openai)["input_tokens"] == 100
    # what Anthropic reported, as an OpenAI-shaped caller sees it
    from_anthropic = map_usage({"input_tokens": 100, "cache_read_input_tokens": 900,
                                "cache_creation_input_tokens": 50, "output_tokens": 20})
    assert openai_shape.usage(from_anthropic)["prompt_tokens"] == 1050


# --- stream encoders ------------------------------------------------------------------------------------


def _events() -> list[Any]:
    done = Response("Hi", [ToolCall("call_1", "f", {"a": 1})], "tool_use", USAGE, "anthropic", "claude-x", reasoning="r")
    return [ReasoningDelta("r"), TextDelta("Hi"), ToolCallDelta(0, "call_1", "f", ""), ToolCallDelta(0, None, None, '{"a":'),
            ToolCallDelta(0, None, None, " 1}"), ResponseDone(done)]


def test_openai_stream_encoder_frames_chunks_like_openai() -> None:
    enc = openai_shape.StreamEncoder("claude-x", include_usage=True)
    chunks = sse_data(b"".join(enc.event(e) for e in _events()))
    assert chunks[-1] == "[DONE]"
    body = chunks[:-1]
    assert {c["object"] for c in body} == {"chat.completion.chunk"} and len({c["id"] for c in body}) == 1
    assert body[0]["choices"][0]["delta"]["role"] == "assistant"
    tool = [c["choices"][0]["delta"]["tool_calls"][0] for c in body if c["choices"] and "tool_calls" in c["choices"][0]["delta"]]
    assert tool[0] == {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
    assert tool[1] == {"index": 0, "function": {"arguments": '{"a":'}}
    finish = body[-2]["choices"][0]
    assert finish["finish_reason"] == "tool_calls" and finish["delta"] == {}
    assert body[-1]["choices"] == [] and body[-1]["usage"]["prompt_tokens"] == 1050
    assert all(c["usage"] is None for c in body[:-1])


def test_openai_stream_encoder_without_usage_sends_no_usage() -> None:
    enc = openai_shape.StreamEncoder("m", include_usage=False)
    chunks = sse_data(b"".join(enc.event(e) for e in _events()))
    assert all("usage" not in c for c in chunks[:-1]) and chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_anthropic_stream_encoder_sends_the_messages_event_sequence() -> None:
    enc = anthropic_shape.StreamEncoder("gpt-5")
    raw = b"".join(enc.event(e) for e in _events())
    names = [line[7:].decode() for line in raw.split(b"\n") if line.startswith(b"event: ")]
    assert names == ["message_start", "content_block_start", "ping", "content_block_delta", "content_block_stop",
                     "content_block_start", "content_block_delta", "content_block_stop",
                     "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
                     "message_delta", "message_stop"]
    data = [d for d in sse_data(raw) if d["type"] != "ping"]
    starts = [d["content_block"]["type"] for d in data if d["type"] == "content_block_start"]
    assert starts == ["thinking", "text", "tool_use"]
    assert [d["index"] for d in data if d["type"] == "content_block_start"] == [0, 1, 2]
    deltas = [d["delta"]["type"] for d in data if d["type"] == "content_block_delta"]
    assert deltas == ["thinking_delta", "text_delta", "input_json_delta", "input_json_delta"]
    final = [d for d in data if d["type"] == "message_delta"][0]
    assert final["delta"]["stop_reason"] == "tool_use" and final["usage"]["cache_read_input_tokens"] == 900


def test_in_stream_errors_in_each_shape() -> None:
    p = problem_for(errors.OverloadedError("busy", provider="x"))
    assert json.loads(openai_shape.stream_error(p)[6:])["error"]["code"] == "overloaded"
    raw = anthropic_shape.stream_error(p)
    assert raw.startswith(b"event: error\n") and json.loads(raw.split(b"data: ")[1])["error"]["type"] == "overloaded_error"


# --- relay readers --------------------------------------------------------------------------------------

OPENAI_STREAM = (
    b'data: {"id":"c","object":"chat.completion.chunk","usage":null,"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
    b'data: {"id":"c","object":"chat.completion.chunk","usage":null,"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b'data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":1050,"completion_tokens":20,'
    b'"prompt_tokens_details":{"cached_tokens":900}}}\n\n'
    b"data: [DONE]\n\n"
)


@pytest.mark.parametrize("size", [1, 7, 64, len(OPENAI_STREAM)])
def test_openai_reader_passes_bytes_through_and_reads_usage(size: int) -> None:
    reader = OpenAIStreamReader()
    out = b"".join(reader.feed(OPENAI_STREAM[i:i + size]) for i in range(0, len(OPENAI_STREAM), size)) + reader.close()
    assert out == OPENAI_STREAM
    assert reader.done and reader.error is None
    assert reader.usage() == Usage(input_tokens=150, output_tokens=20, cache_read_tokens=900)


@pytest.mark.parametrize("size", [5, len(OPENAI_STREAM)])
def test_openai_reader_hides_the_usage_chunk_the_caller_did_not_ask_for(size: int) -> None:
    reader = OpenAIStreamReader(hide_usage=True)
    out = b"".join(reader.feed(OPENAI_STREAM[i:i + size]) for i in range(0, len(OPENAI_STREAM), size)) + reader.close()
    assert [d if isinstance(d, str) else d["choices"] for d in sse_data(out)][-1] == "[DONE]"
    assert b'"choices":[]' not in out and reader.usage().cache_read_tokens == 900


def test_openai_reader_notices_an_error_object() -> None:
    reader = OpenAIStreamReader()
    reader.feed(b'data: {"error": {"message": "boom", "type": "server_error"}}\n\n')
    assert reader.error is not None and not reader.done


def test_anthropic_reader_merges_message_start_and_message_delta_usage() -> None:
    start = {"type": "message_start", "message": {"usage": {"input_tokens": 5, "cache_read_input_tokens": 900,
                                                            "cache_creation_input_tokens": 50, "output_tokens": 1}}}
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 42}}
    raw = (b"event: message_start\ndata: " + json.dumps(start).encode() + b"\n\n"
           b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"message_stop"}}\n\n'
           b"event: message_delta\ndata: " + json.dumps(delta).encode() + b"\n\n")
    reader = AnthropicStreamReader()
    assert reader.feed(raw) == raw
    assert not reader.done  # "message_stop" inside a text delta is text, not the end
    reader.feed(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    assert reader.done
    assert reader.usage() == Usage(input_tokens=5, output_tokens=42, cache_read_tokens=900, cache_write_tokens=50)


# --- the wire-level prompt-cache plan ---------------------------------------------------------------------


def test_wire_plan_splits_volatile_system_and_marks_the_stable_prefix() -> None:
    stable = "rules " * 1500
    body: dict[str, Any] = {"model": "claude-sonnet-4-5", "system": f"{stable}{SYNAPSE_VOLATILE}time is 12:00",
                            "messages": [{"role": "user", "content": "hi"}]}
    plan_anthropic_body(body)
    assert body["system"][0] == {"type": "text", "text": stable.rstrip(), "cache_control": {"type": "ephemeral"}}
    assert body["system"][1] == {"type": "text", "text": "time is 12:00"}
    assert SYNAPSE_VOLATILE not in json.dumps(body)


def test_wire_plan_marks_the_conversation_and_tools_and_keeps_explicit_marks() -> None:
    long = "x" * 6000
    tools = [{"name": "t", "input_schema": {"type": "object", "description": long}}]
    first = {"role": "user", "content": [{"type": "text", "text": long}]}
    body: dict[str, Any] = {"model": "claude-sonnet-4-5", "tools": tools, "messages": [
        first, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "more " * 300}]}
    plan_anthropic_body(body)
    assert body["messages"][2]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert body["messages"][0]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in first["content"][0]  # the caller's blocks are copied, not changed
    marked: dict[str, Any] = {"model": "claude-sonnet-4-5", "cache_control": {"type": "ephemeral"},
                              "messages": [{"role": "user", "content": long}]}
    plan_anthropic_body(marked)
    assert marked["messages"][0]["content"] == long  # automatic caching asked for: left alone


def test_wire_plan_off_and_short_prompts() -> None:
    body: dict[str, Any] = {"model": "claude-sonnet-4-5", "system": "short", "messages": [{"role": "user", "content": "hi"}]}
    plan_anthropic_body(body)
    assert body["system"] == "short"  # below the minimum nothing is cached, so nothing is marked
    long_body: dict[str, Any] = {"model": "claude-sonnet-4-5", "system": "y" * 8000, "messages": [{"role": "user", "content": "hi"}]}
    plan_anthropic_body(long_body, breakpoints=False)
    assert long_body["system"] == "y" * 8000


# --- errors -> statuses ----------------------------------------------------------------------------------


@pytest.mark.parametrize("err,status,anthropic_type", [
    (KeyRejected("no key", "missing"), 401, "authentication_error"),
    (errors.UnknownModelError("?"), 404, "not_found_error"),
    (errors.ConfigurationError("set gemini_key"), 404, "not_found_error"),
    (errors.SynapseError("bad part"), 400, "invalid_request_error"),
    (errors.BadRequestError("no", provider="p"), 400, "invalid_request_error"),
    (errors.ContextTooLongError("long", provider="p"), 400, "invalid_request_error"),
    (errors.AuthenticationError("provider key", provider="p"), 502, "api_error"),
    (errors.PermissionDeniedError("no", provider="p"), 403, "permission_error"),
    (errors.NotFoundError("no", provider="p"), 404, "not_found_error"),
    (errors.RateLimitError("slow", provider="p", retry_after=2.5), 429, "rate_limit_error"),
    (errors.CostLimitError("spent"), 429, "rate_limit_error"),
    (errors.OverloadedError("busy", provider="p"), 529, "overloaded_error"),
    (errors.UpstreamUnavailableError("down", provider="p"), 502, "api_error"),
    (errors.ProviderTimeoutError("slow", provider="p"), 504, "timeout_error"),
    (RuntimeError("bug"), 500, "api_error"),
])
def test_every_error_kind_has_a_status(err: BaseException, status: int, anthropic_type: str) -> None:
    p = problem_for(err)
    assert (p.status, p.anthropic_type) == (status, anthropic_type)
    if isinstance(err, errors.RateLimitError):
        assert p.headers() == [(b"retry-after", b"3")]
    if isinstance(err, RuntimeError):
        assert "bug" not in p.message  # internals stay in the server log


def test_the_access_log_leaves_out_gateway_requests() -> None:
    import logging

    from synapse.server.root import NoGatewayAccessLines

    def record(path: str) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
                                 ("127.0.0.1:5", "POST", path, "1.1", 200), None)

    f = NoGatewayAccessLines()
    assert not f.filter(record("/v1/chat/completions")) and f.filter(record("/settings/keys"))
    assert f.filter(record("/api/keys"))
