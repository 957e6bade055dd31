"""The Anthropic Messages API shape: request -> call arguments, Response and stream events
-> `message` JSON and the Messages SSE event sequence, errors.

Usage in Anthropic's convention (reference §1.1, §2.3): `input_tokens` *excludes* the
cache; `cache_read_input_tokens` and `cache_creation_input_tokens` are the cached parts;
`output_tokens` includes thinking.

This shape's canonical path serves non-Anthropic models (Anthropic models are relayed),
so blocks only Anthropic understands are handled here: thinking blocks in the history
are dropped (their signatures mean nothing to another provider), server tools and
document blocks are refused with a 400 that says so.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from ..types import (
    ReasoningDelta,
    Response,
    ResponseDone,
    StopReason,
    StreamEvent,
    TextDelta,
    TextPart,
    Tool,
    ToolCallDelta,
    Usage,
)
from .options import Options, extra_for
from .problems import Problem
from .request import CallArgs, Invalid, integer, number, string_list

__all__ = ["STOP", "StreamEncoder", "decode", "encode_response", "error_body", "stream_error", "usage"]

STOP: dict[StopReason, str] = {
    "end_turn": "end_turn",
    "stop_sequence": "stop_sequence",
    "max_tokens": "max_tokens",
    "tool_use": "tool_use",
    "content_filter": "refusal",
    "other": "end_turn",
}
_DROPPED = frozenset({"thinking", "redacted_thinking"})
_BLOCKS = frozenset({"text", "image", "tool_use", "tool_result"})


def error_body(p: Problem) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": p.anthropic_type, "message": p.message}})


def stream_error(p: Problem) -> bytes:
    return b"event: error\ndata: " + error_body(p) + b"\n\n"


def usage(u: Usage) -> dict[str, int]:
    return {
        "input_tokens": u.input_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
        "output_tokens": u.output_tokens,
    }


# --- request -------------------------------------------------------------------------------


def _content(i: int, content: Any) -> Any:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise Invalid(f"messages.{i}.content must be a string or an array of content blocks", f"messages.{i}.content")
    out = []
    for j, block in enumerate(content):
        if not isinstance(block, dict):
            raise Invalid(f"messages.{i}.content.{j} must be an object with a type", f"messages.{i}.content.{j}")
        kind = block.get("type")
        if kind in _DROPPED:
            continue
        if kind not in _BLOCKS:
            raise Invalid(
                f"messages.{i}.content.{j}: {kind!r} blocks work with Anthropic models only; "
                "use text, image, tool_use and tool_result blocks for other models",
                f"messages.{i}.content.{j}.type",
            )
        if kind == "text" and not isinstance(block.get("text"), str):
            raise Invalid(f"messages.{i}.content.{j}.text must be a string", f"messages.{i}.content.{j}.text")
        out.append(block)
    return out


def _system(system: Any) -> list[TextPart] | str | None:
    if system is None or isinstance(system, str):
        return system
    if not isinstance(system, list):
        raise Invalid("system must be a string or an array of text blocks", "system")
    parts = []
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise Invalid(f"system.{i} must be a text block {{type: text, text}}", f"system.{i}")
        parts.append(TextPart(block["text"], cache=bool(block.get("cache_control"))))
    return parts


def _tools(tools: Any) -> list[Tool] | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise Invalid("tools must be an array of {name, description, input_schema}", "tools")
    out = []
    for i, t in enumerate(tools):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise Invalid(f"tools.{i} must be {{name, description, input_schema}}", f"tools.{i}")
        if t.get("type") not in (None, "custom"):
            raise Invalid(f"tools.{i}: the server tool {t.get('type')!r} works with Anthropic models only", f"tools.{i}.type")
        schema = t.get("input_schema") or {"type": "object", "properties": {}}
        if not isinstance(schema, dict):
            raise Invalid(f"tools.{i}.input_schema must be a JSON Schema object", f"tools.{i}.input_schema")
        out.append(Tool(t["name"], str(t.get("description") or ""), schema, bool(t.get("cache_control"))))
    return out


def _tool_choice(choice: Any) -> str | None:
    if choice is None:
        return None
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in ("auto", "none"):
        return str(kind)
    if kind == "any":
        return "required"
    if kind == "tool" and isinstance(choice.get("name"), str):
        return str(choice["name"])
    raise Invalid("tool_choice must be {type: auto | any | none} or {type: tool, name}", "tool_choice")


def decode(body: Mapping[str, Any], protocol: str, upstream_model: str) -> CallArgs:
    """The achat/astream arguments for a Messages body going to `protocol` (not Anthropic)."""
    max_tokens = integer(body, "max_tokens", minimum=1)
    if max_tokens is None:
        raise Invalid("max_tokens: Field required (a whole number of at least 1)", "max_tokens")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages must be a non-empty array of {role, content}", "messages")
    turns = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise Invalid(f"messages.{i}.role must be user or assistant", f"messages.{i}.role")
        turns.append({"role": m["role"], "content": _content(i, m.get("content"))})
    opts = Options(top_p=number(body, "top_p", 0, 1), top_k=integer(body, "top_k", minimum=1))
    thinking = body.get("thinking")
    if thinking is not None:
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        if kind == "enabled":
            opts.budget = integer(thinking, "budget_tokens", minimum=1)
        elif kind == "adaptive":
            opts.effort = "medium"
        elif kind != "disabled":
            raise Invalid("thinking must be {type: enabled, budget_tokens} or {type: disabled}", "thinking")
    meta = body.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("user_id"), str):
        opts.user = meta["user_id"]
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise Invalid("stream must be true or false", "stream")
    return CallArgs(
        messages=turns,
        system=_system(body.get("system")),
        tools=_tools(body.get("tools")),
        tool_choice=_tool_choice(body.get("tool_choice")),
        max_tokens=max_tokens,
        temperature=number(body, "temperature", 0, 1),
        stop=string_list(body, "stop_sequences"),
        extra=extra_for(protocol, upstream_model, opts, max_tokens),
        stream=bool(stream),
    )


# --- response ------------------------------------------------------------------------------


def _id(rid: str | None) -> str:
    return rid if rid and rid.startswith("msg_") else "msg_" + uuid.uuid4().hex[:24]


def encode_response(r: Response, model: str) -> bytes:
    content: list[dict[str, Any]] = []
    if r.reasoning:
        content.append({"type": "thinking", "thinking": r.reasoning, "signature": ""})
    if r.text or not r.tool_calls:
        content.append({"type": "text", "text": r.text})
    for c in r.tool_calls:
        content.append({"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments})
    return orjson.dumps({
        "id": _id(r.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP[r.stop_reason],
        "stop_sequence": None,
        "usage": usage(r.usage),
    })


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class StreamEncoder:
    """Canonical stream events -> the Messages SSE sequence (§2.4): message_start, one
    content block per text / thinking / tool-use run, ping, message_delta with the stop
    reason and final usage, message_stop."""

    __slots__ = ("_model", "_started", "_block", "_open", "_tools")

    def __init__(self, model: str) -> None:
        self._model = model
        self._started = False
        self._block = -1
        self._open: str | None = None  # "text" | "thinking" | "tool_use"
        self._tools: dict[int, int] = {}  # canonical tool index -> content block index

    def _start_message(self) -> bytes:
        self._started = True
        message: dict[str, Any] = {"id": _id(None), "type": "message", "role": "assistant", "model": self._model, "content": [],
                   "stop_reason": None, "stop_sequence": None, "usage": usage(Usage())}
        return _event("message_start", {"type": "message_start", "message": message})

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return _event("content_block_stop", {"type": "content_block_stop", "index": self._block})

    def _open_block(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self._block += 1
        self._open = kind
        out += _event("content_block_start", {"type": "content_block_start", "index": self._block, "content_block": block})
        if self._block == 0:
            out += b'event: ping\ndata: {"type": "ping"}\n\n'
        return out

    def _delta(self, delta: dict[str, Any], index: int | None = None) -> bytes:
        return _event("content_block_delta", {"type": "content_block_delta",
                                              "index": self._block if index is None else index, "delta": delta})

    def event(self, ev: StreamEvent) -> bytes:
        out = b"" if self._started else self._start_message()
        if isinstance(ev, TextDelta):
            if self._open != "text":
                out += self._open_block("text", {"type": "text", "text": ""})
            return out + self._delta({"type": "text_delta", "text": ev.text})
        if isinstance(ev, ReasoningDelta):
            if self._open != "thinking":
                out += self._open_block("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            return out + self._delta({"type": "thinking_delta", "thinking": ev.text})
        if isinstance(ev, ToolCallDelta):
            if ev.id is not None or ev.index not in self._tools:
                out += self._open_block("tool_use", {"type": "tool_use", "id": ev.id or f"toolu_{ev.index}",
                                                     "name": ev.name or "", "input": {}})
                self._tools[ev.index] = self._block
            if ev.arguments:
                out += self._delta({"type": "input_json_delta", "partial_json": ev.arguments}, self._tools[ev.index])
            return out
        if isinstance(ev, ResponseDone):
            r = ev.response
            out += self._close()
            out += _event("message_delta", {"type": "message_delta",
                                            "delta": {"stop_reason": STOP[r.stop_reason], "stop_sequence": None},
                                            "usage": usage(r.usage)})
            return out + _event("message_stop", {"type": "message_stop"})
        return out
