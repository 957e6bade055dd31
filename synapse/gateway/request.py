"""What both API shapes decode a request into, and the type checks they share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import SynapseError

__all__ = ["CallArgs", "Invalid", "integer", "number", "string_list"]


class Invalid(SynapseError):
    """A request field with the wrong type or value: a 400 that names the field."""

    kind = "bad_request"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(slots=True)
class CallArgs:
    """The achat / astream keyword arguments one request decodes to, and how to answer it."""

    messages: list[Any]
    system: Any = None
    tools: list[Any] | None = None
    tool_choice: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    stop: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    #: OpenAI `stream_options.include_usage`: send the usage chunk at the end.
    include_usage: bool = False

    def kwargs(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "tools": self.tools,
            "tool_choice": self.tool_choice,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stop": self.stop,
            "extra": self.extra,
        }


def number(body: Mapping[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise Invalid(f"{name} must be a number from {low:g} to {high:g}", name)
    return float(value)


def integer(body: Mapping[str, Any], name: str, minimum: int = 0) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise Invalid(f"{name} must be a whole number of at least {minimum}", name)
    return value


def string_list(body: Mapping[str, Any], name: str) -> list[str]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Invalid(f"{name} must be an array of strings", name)
    return list(value)
