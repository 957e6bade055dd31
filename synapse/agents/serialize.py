"""Canonical messages <-> JSON, exactly, for stored session history.

Each part is written as its dataclass fields plus its `type` literal, and read back by
looking that literal up in a registry. A Part type added later (a reasoning item, a
server-tool block) is covered by `register_part(NewPart)`: no other change. Bytes
(inline images) are written as `{"$bytes": base64}`; `provider_data` (Anthropic
thinking blocks with signatures, Gemini thoughtSignature, DeepSeek reasoning_content)
is kept as the JSON it already is, so what goes back to the provider is what came.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import SynapseError
from ..types import ImagePart, Message, Part, ReasoningPart, ServerToolPart, Source, TextPart, ToolCall, ToolResultPart

__all__ = ["dump_message", "dump_messages", "dump_part", "load_message", "load_messages", "load_part", "register_part"]

_PARTS: dict[str, type] = {}
_FIELDS: dict[type, tuple[tuple[str, Any], ...]] = {}


def register_part(cls: type) -> type:
    """Make a Part dataclass storable; its `type` field's default is its key."""
    fields = dataclasses.fields(cls)
    kind = next((f.default for f in fields if f.name == "type"), None)
    if not isinstance(kind, str):
        raise TypeError(f"{cls.__name__} needs a `type` field with a string default to be stored")
    _PARTS[kind] = cls
    _FIELDS[cls] = tuple((f.name, f.default) for f in fields if f.name != "type")
    return cls


for _cls in (TextPart, ImagePart, ToolCall, ToolResultPart, ReasoningPart, ServerToolPart):
    register_part(_cls)

#: Dataclasses that appear inside a part's fields (ServerToolPart.sources), by name.
_NESTED: dict[str, type] = {"Source": Source}


def _enc(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list):
        return [_enc(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and type(value).__name__ in _NESTED:
        return {"$dc": type(value).__name__, **{f.name: _enc(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    return value


def _dec(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1 and "$bytes" in value:
        return base64.b64decode(value["$bytes"])
    if isinstance(value, list):
        return [_dec(v) for v in value]
    if isinstance(value, dict) and isinstance(value.get("$dc"), str) and value["$dc"] in _NESTED:
        return _NESTED[value["$dc"]](**{k: _dec(v) for k, v in value.items() if k != "$dc"})
    return value


def dump_part(part: Part) -> dict[str, Any]:
    """One part as a JSON object: `type`, then each field that differs from its default."""
    cls = type(part)
    fields = _FIELDS.get(cls)
    if fields is None:
        raise SynapseError(f"cannot store a {cls.__name__} part: register it with synapse.agents.serialize.register_part")
    out: dict[str, Any] = {"type": part.type}
    for name, default in fields:
        value = getattr(part, name)
        if value is default or (default is not dataclasses.MISSING and value == default):
            continue
        out[name] = _enc(value)
    return out


def load_part(data: Mapping[str, Any]) -> Part:
    kind = data.get("type")
    cls = _PARTS.get(str(kind))
    if cls is None:
        raise SynapseError(
            f"stored history holds a part of type {kind!r} that this version of Synapse does not know: "
            "upgrade Synapse to read this session"
        )
    names = {name for name, _ in _FIELDS[cls]}
    part: Part = cls(**{k: _dec(v) for k, v in data.items() if k in names})
    return part


def dump_message(message: Message) -> dict[str, Any]:
    return {"role": message.role, "content": [dump_part(p) for p in message.content]}


def load_message(data: Mapping[str, Any]) -> Message:
    return Message(data["role"], [load_part(p) for p in data.get("content") or ()])


def dump_messages(messages: Iterable[Message]) -> list[dict[str, Any]]:
    return [dump_message(m) for m in messages]


def load_messages(data: Iterable[Mapping[str, Any]]) -> list[Message]:
    return [load_message(d) for d in data]
