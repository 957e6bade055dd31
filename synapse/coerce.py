"""Caller input -> canonical types: a prompt string, canonical Messages, or the message
and tool dicts people already have from the OpenAI and Anthropic APIs."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from .errors import SynapseError
from .types import (
    SERVER_TOOL_NAMES,
    ImagePart,
    Message,
    Part,
    Request,
    ServerTool,
    TextPart,
    Tool,
    ToolCall,
    ToolResultPart,
)

__all__ = [
    "MessagesInput",
    "SystemInput",
    "ToolsInput",
    "build_request",
    "coerce_messages",
    "coerce_tools",
    "server_tool",
]

MessagesInput = str | Sequence[Message | Mapping[str, Any]]
SystemInput = str | Sequence[str | TextPart] | None
ToolsInput = Sequence[Tool | ServerTool | Mapping[str, Any]]


def server_tool(name: str, **options: Any) -> ServerTool:
    """A tool the provider runs itself, to pass in `tools=[...]`: `web_search`,
    `web_fetch` or `code_execution`. `options` go into the provider's tool definition
    as they are (e.g. `max_uses=3` or `allowed_domains=[...]` for Anthropic)."""
    if name not in SERVER_TOOL_NAMES:
        raise SynapseError(f"unknown provider-side tool {name!r}: use one of {', '.join(SERVER_TOOL_NAMES)}")
    return ServerTool(name, tuple(sorted(options.items())))

_SYSTEM_ROLES = ("system", "developer")


def _image(d: Mapping[str, Any]) -> ImagePart:
    """`{"type": "image", data|url}`, Anthropic's `source` block, or OpenAI's `image_url`."""
    source = d.get("source")
    if isinstance(source, Mapping):  # Anthropic: {"type": "base64"|"url", ...}
        if source.get("type") == "url":
            return ImagePart(url=str(source["url"]))
        return ImagePart(media_type=str(source.get("media_type", "image/png")), data=base64.b64decode(source["data"]))
    url = d.get("url")
    if d.get("type") == "image_url":
        inner = d.get("image_url")
        url = inner.get("url") if isinstance(inner, Mapping) else inner
    if isinstance(url, str) and url.startswith("data:"):
        header, _, payload = url.partition(",")
        return ImagePart(media_type=header[5:].split(";")[0] or "image/png", data=base64.b64decode(payload))
    data = d.get("data")
    if isinstance(data, str):
        data = base64.b64decode(data)
    if data is None and not url:
        raise SynapseError("an image part needs `data` (base64), a `url`, or a `source` block")
    return ImagePart(media_type=str(d.get("media_type", "image/png")), data=data, url=url)


def _text_of(content: Any) -> str:
    """Tool-result content as text: a string, or the text of a list of blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        texts = [b.get("text", "") for b in content if isinstance(b, Mapping) and b.get("type", "text") == "text"]
        if len(texts) == len(content):
            return "".join(texts)
    return orjson.dumps(content).decode()


def _part(d: Mapping[str, Any]) -> Part:
    kind = d.get("type", "text")
    if kind == "text":
        return TextPart(str(d.get("text", "")), cache=bool(d.get("cache") or d.get("cache_control")))
    if kind in ("image", "image_url"):
        return _image(d)
    if kind in ("tool_call", "tool_use"):
        if not d.get("id") or not d.get("name"):
            raise SynapseError(f"a {kind} part needs an `id` and a `name`")
        return ToolCall(str(d["id"]), str(d["name"]), dict(d.get("arguments") or d.get("input") or {}))
    if kind == "tool_result":
        call_id = d.get("tool_call_id") or d.get("tool_use_id")
        if not call_id:
            raise SynapseError("a tool_result part needs the `tool_call_id` (or `tool_use_id`) it answers")
        return ToolResultPart(str(call_id), _text_of(d.get("content", "")), d.get("name"), bool(d.get("is_error")))
    raise SynapseError(f"unknown message part type {kind!r}: use text, image, tool_call or tool_result")


def _openai_tool_call(call: Mapping[str, Any]) -> ToolCall:
    fn = call.get("function", call)
    if not call.get("id") or not fn.get("name"):
        raise SynapseError("an assistant tool call needs an `id` and a function `name`")
    args = fn.get("arguments") or {}
    if isinstance(args, str):
        try:
            args = orjson.loads(args) if args.strip() else {}
        except orjson.JSONDecodeError:
            raise SynapseError(f"tool call {call['id']}: `arguments` is not valid JSON") from None
    return ToolCall(str(call["id"]), str(fn["name"]), dict(args))


def _message(d: Mapping[str, Any]) -> tuple[str, list[Part]]:
    role = d.get("role")
    content = d.get("content")
    parts: list[Part] = []
    if isinstance(content, str):
        if content:
            parts.append(TextPart(content))
    elif isinstance(content, Sequence):
        parts.extend(_part(p) if isinstance(p, Mapping) else p for p in content)
    if role == "tool":  # OpenAI-style tool result
        if not d.get("tool_call_id"):
            raise SynapseError("a tool message needs the `tool_call_id` it answers")
        return "user", [ToolResultPart(str(d["tool_call_id"]), _text_of(content or ""), d.get("name"))]
    parts.extend(_openai_tool_call(call) for call in d.get("tool_calls") or ())
    if role in _SYSTEM_ROLES:
        return "system", parts
    if role not in ("user", "assistant"):
        raise SynapseError(f"message role must be user, assistant, system, developer or tool, not {role!r}")
    return str(role), parts


def coerce_messages(messages: MessagesInput, system: SystemInput = None) -> tuple[list[TextPart], list[Message]]:
    """The system prompt and the turns, canonical.

    System messages are lifted into the system prompt; consecutive turns of the same
    role are merged (Anthropic and Bedrock require alternation); a tool result without
    a name gets the name of the call it answers (Gemini needs it). The caller's own
    objects are never changed.
    """
    sys_parts: list[TextPart] = []
    if isinstance(system, str):
        if system:
            sys_parts.append(TextPart(system))
    elif system:
        sys_parts.extend(TextPart(s) if isinstance(s, str) else s for s in system)
    if isinstance(messages, str):
        return sys_parts, [Message("user", [TextPart(messages)])]
    out: list[Message] = []
    call_names: dict[str, str] = {}
    for m in messages:
        role: str
        if isinstance(m, Message):
            role, parts = m.role, list(m.content)
        elif isinstance(m, Mapping):
            role, parts = _message(m)
        else:
            raise SynapseError(f"each message must be a Message or a dict, not {type(m).__name__}")
        if role == "system":
            sys_parts.extend(p for p in parts if isinstance(p, TextPart))
            continue
        for i, p in enumerate(parts):
            if isinstance(p, ToolCall):
                call_names[p.id] = p.name
            elif isinstance(p, ToolResultPart) and not p.name and p.tool_call_id in call_names:
                parts[i] = dataclasses.replace(p, name=call_names[p.tool_call_id])
        if out and out[-1].role == role:
            out[-1] = Message(out[-1].role, out[-1].content + parts)
        else:
            out.append(Message(role, parts))  # type: ignore[arg-type]
    if not out:
        raise SynapseError("no messages to send: give a prompt")
    return sys_parts, out


def coerce_tools(tools: ToolsInput | None) -> list[Tool]:
    """Tool objects, {name, description, parameters}, or OpenAI / Anthropic tool dicts.
    Provider-side tools (`server_tool(...)`) are not functions: `build_request` takes them apart."""
    out: list[Tool] = []
    for t in tools or ():
        if isinstance(t, Tool):
            out.append(t)
            continue
        if isinstance(t, ServerTool):
            raise SynapseError(f"{t.name} is a provider-side tool, not a function: pass it in tools= of a chat call")
        fn = t.get("function", t)
        if not fn.get("name"):
            raise SynapseError("every tool needs a name")
        schema = fn.get("parameters") or fn.get("input_schema") or {"type": "object", "properties": {}}
        out.append(Tool(str(fn["name"]), str(fn.get("description") or ""), dict(schema), bool(t.get("cache"))))
    return out


def build_request(
    upstream_model: str,
    messages: MessagesInput,
    *,
    system: SystemInput = None,
    tools: ToolsInput | None = None,
    tool_choice: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    stop: str | Iterable[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Request:
    sys_parts, msgs = coerce_messages(messages, system)
    server = [t for t in tools or () if isinstance(t, ServerTool)]
    return Request(
        model=upstream_model,
        messages=msgs,
        system=sys_parts,
        tools=coerce_tools([t for t in tools or () if not isinstance(t, ServerTool)] if server else tools),
        tool_choice=tool_choice,
        max_tokens=max_tokens,
        temperature=temperature,
        stop=[stop] if isinstance(stop, str) else list(stop or ()),
        extra=dict(extra or {}),
        server_tools=server,
    )
