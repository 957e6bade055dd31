"""The OpenAI Chat Completions API shape: request -> call arguments, Response and stream
events -> `chat.completion` JSON and `chat.completion.chunk` SSE, errors.

Usage in OpenAI's convention (reference §1.1, §3.3): `prompt_tokens` *includes* cached
input, `prompt_tokens_details.cached_tokens` is the cache reads (and `cache_write_tokens`
the writes, as the newest API reports them), `completion_tokens` includes reasoning,
whose count is `completion_tokens_details.reasoning_tokens`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from ..types import ReasoningDelta, Response, ResponseDone, StopReason, StreamEvent, TextDelta, ToolCallDelta, Usage
from .options import Options, extra_for
from .problems import Problem
from .request import CallArgs, Invalid, integer, number, string_list

__all__ = ["FINISH", "StreamEncoder", "decode", "encode_response", "error_body", "stream_error", "usage"]

#: Canonical stop reason -> `finish_reason`.
FINISH: dict[StopReason, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "content_filter": "content_filter",
    "other": "stop",
}
_TOOL_CHOICE = ("auto", "none", "required")


def error_body(p: Problem) -> bytes:
    return orjson.dumps({"error": {"message": p.message, "type": p.openai_type, "param": p.param, "code": p.code}})


def stream_error(p: Problem) -> bytes:
    """An error after the stream started: one `data:` object with `error` (the SDKs raise on it)."""
    return b"data: " + error_body(p) + b"\n\n"


def usage(u: Usage) -> dict[str, Any]:
    prompt = u.input_tokens + u.cache_read_tokens + u.cache_write_tokens
    details: dict[str, int] = {"cached_tokens": u.cache_read_tokens}
    if u.cache_write_tokens:
        details["cache_write_tokens"] = u.cache_write_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": u.output_tokens,
        "total_tokens": prompt + u.output_tokens,
        "prompt_tokens_details": details,
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


# --- request -------------------------------------------------------------------------------


def decode(body: Mapping[str, Any], protocol: str, upstream_model: str) -> CallArgs:
    """The achat/astream arguments for a Chat Completions body going to `protocol`.

    Fields the real API has and Synapse does not use (seed, n=1, logprobs...) are
    ignored, as the API ignores unknown ones; fields given with the wrong type are a 400
    naming the field.
    """
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages must be a non-empty array of message objects", "messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise Invalid(f"messages[{i}] must be an object with a role and content", f"messages[{i}]")
        content = m.get("content")
        if content is not None and not isinstance(content, str) and not (
                isinstance(content, list) and all(isinstance(p, dict) for p in content)):
            raise Invalid(f"messages[{i}].content must be a string or an array of content parts", f"messages[{i}].content")
        calls = m.get("tool_calls")
        if calls is not None and not (isinstance(calls, list) and all(isinstance(c, dict) for c in calls)):
            raise Invalid(f"messages[{i}].tool_calls must be an array of tool calls", f"messages[{i}].tool_calls")
    n = body.get("n")
    if n not in (None, 1):
        raise Invalid("n must be 1: Synapse returns one choice per request", "n")
    max_tokens = integer(body, "max_completion_tokens", minimum=1)
    if max_tokens is None:
        max_tokens = integer(body, "max_tokens", minimum=1)
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            raise Invalid("tools must be an array of {type: function, function: {name, parameters}}", "tools")
        for i, t in enumerate(tools):
            fn = t.get("function")
            if t.get("type", "function") != "function" or not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise Invalid(f"tools[{i}] must be {{type: function, function: {{name, description, parameters}}}}", f"tools[{i}]")
    choice = body.get("tool_choice")
    tool_choice: str | None = None
    if isinstance(choice, str):
        if choice not in _TOOL_CHOICE:
            raise Invalid("tool_choice must be auto, none, required or {type: function, function: {name}}", "tool_choice")
        tool_choice = choice
    elif isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") if isinstance(choice.get("function"), dict) else None
        if not isinstance(name, str):
            raise Invalid("tool_choice must be auto, none, required or {type: function, function: {name}}", "tool_choice")
        tool_choice = name
    elif choice is not None:
        raise Invalid("tool_choice must be auto, none, required or {type: function, function: {name}}", "tool_choice")
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else string_list(body, "stop")
    opts = Options(top_p=number(body, "top_p", 0, 1))
    effort = body.get("reasoning_effort")
    if effort is not None:
        if not isinstance(effort, str):
            raise Invalid("reasoning_effort must be minimal, low, medium or high", "reasoning_effort")
        opts.effort = effort
    fmt = body.get("response_format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
            raise Invalid("response_format must be {type: text | json_object | json_schema}", "response_format")
        if fmt["type"] == "json_object":
            opts.json = True
        elif fmt["type"] == "json_schema":
            schema = fmt.get("json_schema")
            if not isinstance(schema, dict) or not isinstance(schema.get("schema", {}), dict):
                raise Invalid("response_format.json_schema must be {name, schema}", "response_format")
            opts.json_schema = schema.get("schema") or {}
    user = body.get("user")
    if isinstance(user, str):
        opts.user = user
    elif user is not None:
        raise Invalid("user must be a string", "user")
    stream_options = body.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise Invalid("stream_options must be an object such as {include_usage: true}", "stream_options")
    return CallArgs(
        messages=messages,
        tools=tools,
        tool_choice=tool_choice,
        max_tokens=max_tokens,
        temperature=number(body, "temperature", 0, 2),
        stop=stops,
        extra=extra_for(protocol, upstream_model, opts, max_tokens),
        stream=_stream_flag(body),
        include_usage=bool(stream_options and stream_options.get("include_usage")),
    )


def _stream_flag(body: Mapping[str, Any]) -> bool:
    value = body.get("stream", False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise Invalid("stream must be true or false", "stream")
    return value


# --- response ------------------------------------------------------------------------------


def _id(rid: str | None) -> str:
    return rid if rid else "chatcmpl-" + uuid.uuid4().hex[:24]


def encode_response(r: Response, model: str) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": r.text if (r.text or not r.tool_calls) else None,
                               "refusal": None}
    if r.reasoning:
        message["reasoning_content"] = r.reasoning
    if r.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": orjson.dumps(c.arguments).decode()}}
            for c in r.tool_calls
        ]
    return orjson.dumps({
        "id": _id(r.id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": FINISH[r.stop_reason]}],
        "usage": usage(r.usage),
        "system_fingerprint": None,
    })


class StreamEncoder:
    """Canonical stream events -> `chat.completion.chunk` SSE lines, as OpenAI frames them (§3.4)."""

    __slots__ = ("_head", "_include_usage", "_started")

    def __init__(self, model: str, include_usage: bool) -> None:
        self._include_usage = include_usage
        self._head = {"id": _id(None), "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                      "system_fingerprint": None}
        self._started = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk: dict[str, Any] = {**self._head, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                            "finish_reason": finish}]}
        if self._include_usage:
            chunk["usage"] = None
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def event(self, ev: StreamEvent) -> bytes:
        out = b""
        if not self._started:
            self._started = True
            # OpenAI opens a tool-call answer with content null, a text answer with ""
            out = self._chunk({"role": "assistant", "content": None} if ev.type == "tool_call"
                              else {"role": "assistant", "content": "", "refusal": None})
        if isinstance(ev, TextDelta):
            return out + self._chunk({"content": ev.text})
        if isinstance(ev, ReasoningDelta):
            return out + self._chunk({"reasoning_content": ev.text})
        if isinstance(ev, ToolCallDelta):
            call: dict[str, Any] = {"index": ev.index}
            if ev.id is not None or ev.name is not None:
                call.update(id=ev.id, type="function", function={"name": ev.name, "arguments": ev.arguments})
            else:
                call["function"] = {"arguments": ev.arguments}
            return out + self._chunk({"tool_calls": [call]})
        if isinstance(ev, ResponseDone):
            r = ev.response
            out += self._chunk({}, FINISH[r.stop_reason])
            if self._include_usage:
                out += b"data: " + orjson.dumps({**self._head, "choices": [], "usage": usage(r.usage)}) + b"\n\n"
            return out + b"data: [DONE]\n\n"
        return out
