"""The one event stream of a chat turn: the page, the REST API, the CLI and
`synapse.Agent` all consume these, in this order:

    start                       the turn began (session, agent, model)
    compacted                   the history was shortened or summarised first (optional)
    reasoning / text            deltas of the model's reasoning and answer, as they stream
    tool_call_delta             a tool call's name and arguments as they stream
    tool_call                   a whole tool call, about to run
    tool_result                 its result (or error) the model will read
    usage                       one model call's tokens and cost
    ... more rounds of the above while the model calls tools ...
    done                        stop reason, the reply, total usage and cost of the turn
    error                       the turn could not go on (a limit, a provider error)

Hooks add their own events (synapse/agents/hooks.py). Memory's: `memory_recalled`
after `start` (the memories put before the first model call), and `memory` after
`done` (what the turn changed in memory, or why nothing, or the extraction's error):
a consumer reads on past `done` to see it.

`as_dict()` is the JSON each event is sent as (SSE `data:` lines, `--json` output).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal, Union

from ..types import Usage

__all__ = [
    "CallUsage", "Compacted", "ReasoningDelta", "TextDelta", "ToolCallDelta", "ToolCallEvent", "ToolResultEvent",
    "TurnDone", "TurnError", "TurnEvent", "TurnStart", "event_dict",
]


@dataclass(slots=True)
class TurnStart:
    session_id: str
    agent: str
    agent_id: str | None
    model: str
    title: str = ""
    type: Literal["start"] = "start"


@dataclass(slots=True)
class Compacted:
    """The history was too long for the model's context window: what was done about it."""

    tokens_before: int
    tokens_after: int
    shortened_tool_results: int = 0
    summarised_messages: int = 0
    type: Literal["compacted"] = "compacted"


@dataclass(slots=True)
class TextDelta:
    text: str
    round: int = 1
    type: Literal["text"] = "text"


@dataclass(slots=True)
class ReasoningDelta:
    text: str
    round: int = 1
    type: Literal["reasoning"] = "reasoning"


@dataclass(slots=True)
class ToolCallDelta:
    """Part of a streamed tool call: `id`/`name` on its first delta, then argument JSON pieces."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    round: int = 1
    type: Literal["tool_call_delta"] = "tool_call_delta"


@dataclass(slots=True)
class ToolCallEvent:
    id: str
    name: str
    arguments: dict[str, Any]
    round: int = 1
    type: Literal["tool_call"] = "tool_call"


@dataclass(slots=True)
class ToolResultEvent:
    id: str
    name: str
    content: str
    is_error: bool = False
    seconds: float = 0.0
    round: int = 1
    type: Literal["tool_result"] = "tool_result"


@dataclass(slots=True)
class CallUsage:
    """One model call: what it used and cost (None: price unknown)."""

    model: str
    usage: Usage
    cost_usd: float | None
    round: int = 1
    type: Literal["usage"] = "usage"


@dataclass(slots=True)
class TurnDone:
    """The turn's end. `stop_reason`: end_turn, max_tokens, max_turns, stopped, content_filter, ..."""

    session_id: str
    stop_reason: str
    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = 0.0
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    rounds: int = 0
    message: str = ""
    type: Literal["done"] = "done"


@dataclass(slots=True)
class TurnError:
    message: str
    kind: str = "error"
    session_id: str | None = None
    type: Literal["error"] = "error"


TurnEvent = Union[TurnStart, Compacted, TextDelta, ReasoningDelta, ToolCallDelta, ToolCallEvent, ToolResultEvent,
                  CallUsage, TurnDone, TurnError]


def event_dict(event: TurnEvent) -> dict[str, Any]:
    """The event as JSON-ready data (Usage as its dict)."""
    out: dict[str, Any] = {}
    for f in fields(event):
        value = getattr(event, f.name)
        out[f.name] = value.as_dict() if isinstance(value, Usage) else value
    return out
