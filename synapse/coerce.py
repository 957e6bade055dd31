"""Caller input -> canonical types: a prompt string, canonical Messages, or the message
and tool dicts people already have from the OpenAI and Anthropic APIs.

Input of the wrong shape (`messages=123`, `stop=5`, `content={"text": ...}`) raises
`BadRequestError` naming the argument and what it accepts, before any request is made:
never a raw TypeError, never an empty prompt sent and billed. The checks are isinstance
tests on the branches the coercion takes anyway, so the happy path pays almost nothing.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from .errors import BadRequestError, SynapseError
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
    "bad_argument",
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
_PART_TYPES = (TextPart, ImagePart, ToolCall, ToolResultPart)
_LIST_SHAPES = (list, tuple)


def bad_argument(name: str, accepts: str, value: Any) -> BadRequestError:
    """`name` must be `accepts`: the error for an argument of the wrong shape."""
    return BadRequestError(f"{name} must be {accepts}, not {_shape(value)}")


def _shape(value: Any) -> str:
    """What the caller gave, without echoing text (a misplaced key must not land in an error)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "a string"
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


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
        raise BadRequestError("an image part needs `data` (base64), a `url`, or a `source` block")
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
        text = d.get("text")
        if not isinstance(text, str):
            raise bad_argument("a text part's `text`", "a string", text)
        return TextPart(text, cache=bool(d.get("cache") or d.get("cache_control")))
    if kind in ("image", "image_url"):
        return _image(d)
    if kind in ("tool_call", "tool_use"):
        if not d.get("id") or not d.get("name"):
            raise BadRequestError(f"a {kind} part needs an `id` and a `name`")
        return ToolCall(str(d["id"]), str(d["name"]), dict(d.get("arguments") or d.get("input") or {}))
    if kind == "tool_result":
        call_id = d.get("tool_call_id") or d.get("tool_use_id")
        if not call_id:
            raise BadRequestError("a tool_result part needs the `tool_call_id` (or `tool_use_id`) it answers")
        return ToolResultPart(str(call_id), _text_of(d.get("content", "")), d.get("name"), bool(d.get("is_error")))
    raise BadRequestError(f"unknown message part type {kind!r}: use text, image, tool_call or tool_result")


def _openai_tool_call(call: Mapping[str, Any]) -> ToolCall:
    fn = call.get("function", call)
    if not call.get("id") or not fn.get("name"):
        raise BadRequestError("an assistant tool call needs an `id` and a function `name`")
    args = fn.get("arguments") or {}
    if isinstance(args, str):
        try:
            args = orjson.loads(args) if args.strip() else {}
        except orjson.JSONDecodeError:
            raise BadRequestError(f"tool call {call['id']}: `arguments` is not valid JSON") from None
    return ToolCall(str(call["id"]), str(fn["name"]), dict(args))


def _content_part(p: Any, where: str) -> Part:
    if isinstance(p, Mapping):
        return _part(p)
    if isinstance(p, _PART_TYPES):
        return p
    if isinstance(p, str):
        return TextPart(p)
    raise bad_argument(where, 'a part dict ({"type": "text", "text": ...}), a string or a synapse part', p)


def _message(d: Mapping[str, Any], where: str) -> tuple[str, list[Part]]:
    role = d.get("role")
    content = d.get("content")
    tool_calls = d.get("tool_calls")
    parts: list[Part] = []
    if isinstance(content, str):
        if content:
            parts.append(TextPart(content))
    elif isinstance(content, _LIST_SHAPES):
        parts.extend(_content_part(p, f"{where}.content[{i}]") for i, p in enumerate(content))
    elif content is not None or not (tool_calls or role == "assistant"):
        # None is an assistant turn that only calls tools; anything else would be an empty, billed prompt
        raise bad_argument(f"{where}.content", "a string or a list of parts", content)
    if role == "tool":  # OpenAI-style tool result
        if not d.get("tool_call_id"):
            raise BadRequestError("a tool message needs the `tool_call_id` it answers")
        return "user", [ToolResultPart(str(d["tool_call_id"]), _text_of(content or ""), d.get("name"))]
    if tool_calls:
        if not isinstance(tool_calls, _LIST_SHAPES) or not all(isinstance(c, Mapping) for c in tool_calls):
            raise bad_argument(f"{where}.tool_calls", "a list of tool-call dicts", tool_calls)
        parts.extend(_openai_tool_call(call) for call in tool_calls)
    if role in _SYSTEM_ROLES:
        return "system", parts
    if role not in ("user", "assistant"):
        raise BadRequestError(f"message role must be user, assistant, system, developer or tool, not {role!r}")
    return str(role), parts


def coerce_messages(messages: MessagesInput, system: SystemInput = None) -> tuple[list[TextPart], list[Message]]:
    """The system prompt and the turns, canonical.

    System messages are lifted into the system prompt; consecutive turns of the same
    role are merged (Anthropic and Bedrock require alternation); a tool result without
    a name gets the name of the call it answers (Gemini needs it). The caller's own
    objects are never changed.
    """
    sys_parts = _system(system)
    if isinstance(messages, str):
        if not messages.strip():
            raise BadRequestError("the prompt is empty: give the text to send")
        return sys_parts, [Message("user", [TextPart(messages)])]
    if not isinstance(messages, _LIST_SHAPES):
        if isinstance(messages, (bytes, Mapping)) or not isinstance(messages, Iterable):
            raise bad_argument("messages", "a prompt string or a list of messages (dicts or synapse.Message)", messages)
        messages = list(messages)
    out: list[Message] = []
    call_names: dict[str, str] = {}
    for i, m in enumerate(messages):
        role: str
        if isinstance(m, Message):
            role, parts = m.role, list(m.content)
        elif isinstance(m, Mapping):
            role, parts = _message(m, f"messages[{i}]")
        else:
            raise bad_argument(f"messages[{i}]", "a message dict or a synapse.Message", m)
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
        raise BadRequestError("no messages to send: give a prompt")
    if not any(m.content for m in out):
        raise BadRequestError("every message is empty: give the text to send")
    return sys_parts, out


def _system(system: SystemInput) -> list[TextPart]:
    if system is None:
        return []
    if isinstance(system, str):
        return [TextPart(system)] if system else []
    if isinstance(system, _LIST_SHAPES):
        out: list[TextPart] = []
        for s in system:
            if isinstance(s, str):
                out.append(TextPart(s))
            elif isinstance(s, TextPart):
                out.append(s)
            else:
                raise bad_argument("system", "a string or a list of strings", system)
        return out
    raise bad_argument("system", "a string or a list of strings", system)


_TOOLS_ACCEPT = "a list of tools (dicts with a `name`, or synapse.Tool)"


def coerce_tools(tools: ToolsInput | None) -> list[Tool]:
    """Tool objects, {name, description, parameters}, or OpenAI / Anthropic tool dicts.
    Provider-side tools (`server_tool(...)`) are not functions: `build_request` takes them apart."""
    if tools is None:
        return []
    if not isinstance(tools, _LIST_SHAPES):
        raise bad_argument("tools", _TOOLS_ACCEPT, tools)
    out: list[Tool] = []
    for t in tools:
        if isinstance(t, Tool):
            out.append(t)
            continue
        if isinstance(t, ServerTool):
            raise BadRequestError(f"{t.name} is a provider-side tool, not a function: pass it in tools= of a chat call")
        if not isinstance(t, Mapping):
            raise bad_argument("tools", _TOOLS_ACCEPT, t)
        fn = t.get("function", t)
        if not isinstance(fn, Mapping) or not fn.get("name") or not isinstance(fn["name"], str):
            raise BadRequestError("every tool needs a name (a string)")
        schema = fn.get("parameters") or fn.get("input_schema") or {"type": "object", "properties": {}}
        if not isinstance(schema, Mapping):
            raise bad_argument(f"tool {fn['name']!r}'s parameters", "a JSON Schema object (a dict)", schema)
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
    """A canonical Request; BadRequestError (naming the argument) for input of the wrong shape."""
    sys_parts, msgs = coerce_messages(messages, system)
    server = [t for t in tools if isinstance(t, ServerTool)] if isinstance(tools, _LIST_SHAPES) else []
    if tool_choice is not None and not isinstance(tool_choice, str):
        raise bad_argument("tool_choice", '"auto", "none", "required" or a tool name', tool_choice)
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise bad_argument("max_tokens", "a whole number of at least 1", max_tokens)
    if temperature is not None and (
        isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0
    ):
        raise bad_argument("temperature", "a number of at least 0", temperature)
    if extra is not None and not isinstance(extra, Mapping):
        raise bad_argument("extra", "a dict of provider body fields", extra)
    return Request(
        model=upstream_model,
        messages=msgs,
        system=sys_parts,
        tools=coerce_tools([t for t in tools or () if not isinstance(t, ServerTool)] if server else tools),
        tool_choice=tool_choice,
        max_tokens=max_tokens,
        temperature=temperature,
        stop=_stops(stop),
        extra=dict(extra or {}),
        server_tools=server,
    )


def _stops(stop: str | Iterable[str] | None) -> list[str]:
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if not isinstance(stop, (bytes, Mapping)) and isinstance(stop, Iterable):
        stops = list(stop)
        if all(isinstance(s, str) for s in stops):
            return stops
    raise bad_argument("stop", "a string or a list of strings", stop)
