"""Canonical request, response and stream types shared by every provider adapter.

Adapters translate between these and one wire protocol; nothing above the adapters
knows any wire format. Plain slotted dataclasses: cheap to build on the hot path.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Union

__all__ = [
    "Citation",
    "Embeddings",
    "ImagePart",
    "Message",
    "ModelInfo",
    "Part",
    "ReasoningDelta",
    "ReasoningPart",
    "Request",
    "Response",
    "ResponseDone",
    "Role",
    "ServerTool",
    "ServerToolPart",
    "Source",
    "StopReason",
    "StreamEvent",
    "TextDelta",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolResultPart",
    "Usage",
]

Role = Literal["user", "assistant"]

#: Canonical stop reasons. Adapters map their provider's vocabulary onto these and
#: keep the provider's own word in `Response.raw_stop_reason`.
StopReason = Literal[
    "end_turn",        # the model finished
    "max_tokens",      # hit max_tokens
    "stop_sequence",   # hit one of the stop sequences
    "tool_use",        # the model wants tool results
    "content_filter",  # refused / filtered by the provider
    "other",           # anything else (see raw_stop_reason)
]


@dataclass(slots=True)
class TextPart:
    text: str
    #: A prompt-cache breakpoint after this part (Anthropic / Bedrock). Set by the
    #: caller explicitly or by the cache planner; other adapters ignore it.
    cache: bool = False
    type: Literal["text"] = "text"


@dataclass(slots=True)
class ImagePart:
    """An image given inline (`data`, raw bytes) or by `url`."""

    media_type: str = "image/png"
    data: bytes | None = None
    url: str | None = None
    cache: bool = False
    type: Literal["image"] = "image"

    def b64(self) -> str:
        if self.data is None:
            raise ValueError("this image has a URL, not inline data")
        return base64.b64encode(self.data).decode("ascii")


@dataclass(slots=True)
class ToolCall:
    """A tool call the model made: `arguments` is the parsed JSON object."""

    id: str
    name: str
    arguments: dict[str, Any]
    cache: bool = False
    type: Literal["tool_call"] = "tool_call"
    #: Opaque provider data that must be echoed back (Gemini thoughtSignature).
    provider_data: dict[str, Any] | None = None


@dataclass(slots=True)
class ToolResultPart:
    """The result of a tool call, sent back in a user turn."""

    tool_call_id: str
    content: str
    #: The tool's name; Gemini needs it. Filled from the matching ToolCall when absent.
    name: str | None = None
    is_error: bool = False
    cache: bool = False
    type: Literal["tool_result"] = "tool_result"


@dataclass(slots=True)
class ReasoningPart:
    """Reasoning a provider returned that only it can read back (OpenAI Responses
    `reasoning` items with their `encrypted_content`). Kept in the assistant turn so the
    next request gives it back; other providers skip it."""

    #: The readable summary, when the provider sent one ("" otherwise).
    text: str
    #: The provider id that made it (`openai`); only that provider is sent it again.
    provider: str
    #: The wire item, echoed back as it came (id, summary, encrypted_content).
    data: dict[str, Any] = field(default_factory=dict)
    cache: bool = False
    type: Literal["reasoning"] = "reasoning"


@dataclass(slots=True)
class Source:
    """A web page a provider-side tool read or a reply cites."""

    url: str
    title: str = ""


@dataclass(slots=True)
class ServerToolPart:
    """A provider-side tool's call or result (web search, web fetch, code execution,
    Google Search grounding). The provider ran it; Synapse keeps it so a UI can show
    what was searched and which sources came back, and so the same provider gets the
    blocks back on the next turn (other providers skip them)."""

    #: The canonical tool name: `web_search`, `web_fetch` or `code_execution`.
    name: str
    #: "call" (what the model asked the tool) or "result" (what the tool returned).
    kind: Literal["call", "result"]
    #: The provider id whose blocks these are.
    provider: str
    #: The provider's id linking a call to its result, when it has one.
    id: str | None = None
    #: The call's input (`{"query": ...}`, `{"url": ...}`, `{"code": ...}`).
    input: dict[str, Any] = field(default_factory=dict)
    #: Pages a search or fetch returned.
    sources: list[Source] = field(default_factory=list)
    #: Readable output (code execution's stdout, an error code), when there is one.
    text: str = ""
    #: The wire blocks, echoed back as they came.
    data: list[dict[str, Any]] = field(default_factory=list)
    cache: bool = False
    type: Literal["server_tool"] = "server_tool"


Part = Union[TextPart, ImagePart, ToolCall, ToolResultPart, ReasoningPart, ServerToolPart]


@dataclass(slots=True)
class Message:
    role: Role
    content: list[Part]

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


@dataclass(slots=True)
class Tool:
    name: str
    description: str = ""
    #: JSON Schema of the arguments object.
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    cache: bool = False
    #: A tool type the provider defines and the caller runs (Anthropic's `memory_20250818`):
    #: the protocol that knows it sends its own short definition (and any beta header it
    #: needs); every other protocol sends `parameters` as a plain function tool.
    native: str | None = None


@dataclass(frozen=True, slots=True)
class ServerTool:
    """A tool the provider runs itself, enabled by name: `synapse.server_tool("web_search")`.

    `options` go into the provider's tool definition as they are (`max_uses`,
    `allowed_domains`, `user_location`, ...).
    """

    name: str
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.options)


#: The provider-side tools Synapse knows by name.
SERVER_TOOL_NAMES = ("web_search", "web_fetch", "code_execution")


@dataclass(slots=True)
class Request:
    """One model call, already routed: `model` is the upstream model id."""

    model: str
    messages: list[Message]
    system: list[TextPart] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    #: "auto" | "none" | "required" | a tool name
    tool_choice: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    stop: list[str] = field(default_factory=list)
    #: Provider-specific extra body fields, merged last (escape hatch).
    extra: dict[str, Any] = field(default_factory=dict)
    #: Tools the provider runs itself (web search, web fetch, code execution).
    server_tools: list[ServerTool] = field(default_factory=list)
    #: Set by a streaming adapter whose provider reports usage before the end (Anthropic's
    #: message_start, Gemini's every chunk): the usage reported so far, so a stream that is
    #: cancelled or breaks midway is recorded with what was already billed.
    usage_so_far: Callable[[], Usage] | None = field(default=None, repr=False, compare=False)
    #: Set by a streaming adapter once the provider has started its answer: the characters
    #: streamed so far, as (output, the reasoning part of it): text, tool-call arguments and
    #: reasoning. Read only when a stream ends early, to estimate its output tokens
    #: (usage/estimate.py); the adapter's own accumulated state: the success path pays one attribute set.
    streamed_so_far: Callable[[], tuple[int, int]] | None = field(default=None, repr=False, compare=False)


@dataclass(slots=True)
class Usage:
    """Token counts normalised across providers (see reference §1.1).

    `input_tokens` is the uncached input only, `cache_read_tokens` and
    `cache_write_tokens` the cached parts, so the whole prompt is their sum.
    `output_tokens` is all output as billed, reasoning included; `reasoning_tokens`
    is the reasoning part of it.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    #: Provider-side tool uses billed apart from tokens, by canonical tool name
    #: (`{"web_search": 2, "web_fetch": 1}`): Anthropic's `server_tool_use`, OpenAI
    #: `web_search_call` items, Gemini grounded searches.
    server_tool_use: dict[str, int] = field(default_factory=dict)

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }
        if self.server_tool_use:
            out["server_tool_use"] = dict(self.server_tool_use)
        return out


@dataclass(slots=True)
class Response:
    text: str
    tool_calls: list[ToolCall]
    stop_reason: StopReason
    usage: Usage
    provider: str
    model: str
    raw_stop_reason: str | None = None
    reasoning: str = ""
    id: str | None = None
    #: Reasoning only this provider can read back (OpenAI Responses reasoning items).
    reasoning_parts: list[ReasoningPart] = field(default_factory=list)
    #: Provider-side tool calls and results, in the order they came.
    server_tools: list[ServerToolPart] = field(default_factory=list)
    #: Sources the text cites (Anthropic citations, OpenAI url_citation annotations,
    #: Gemini grounding chunks), in order, without duplicates.
    citations: list[Source] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "text": self.text,
            "model": self.model,
            "provider": self.provider,
            "stop_reason": self.stop_reason,
            "tool_calls": [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls
            ],
            "usage": self.usage.as_dict(),
        }
        if self.server_tools:
            out["server_tools"] = [
                {"name": p.name, "kind": p.kind, "input": p.input, "text": p.text,
                 "sources": [{"url": s.url, "title": s.title} for s in p.sources]}
                for p in self.server_tools
            ]
        if self.citations:
            out["citations"] = [{"url": s.url, "title": s.title} for s in self.citations]
        return out

    def to_message(self) -> Message:
        """This reply as an assistant turn, to append to the history: reasoning items and
        provider-side tool blocks first (as the providers produced them), then the text,
        then the tool calls."""
        parts: list[Part] = [*self.reasoning_parts, *self.server_tools]
        if self.text:
            parts.append(TextPart(self.text))
        parts.extend(self.tool_calls)
        return Message("assistant", parts)


# --- stream events -------------------------------------------------------------


@dataclass(slots=True)
class TextDelta:
    text: str
    type: Literal["text"] = "text"


@dataclass(slots=True)
class ReasoningDelta:
    text: str
    type: Literal["reasoning"] = "reasoning"


@dataclass(slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call. `id`/`name` arrive on the first delta of an index."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    type: Literal["tool_call"] = "tool_call"


@dataclass(slots=True)
class ResponseDone:
    """Always the last event of a stream: the assembled response with final usage."""

    response: Response
    type: Literal["done"] = "done"


StreamEvent = Union[TextDelta, ReasoningDelta, ToolCallDelta, ResponseDone]


@dataclass(slots=True)
class Embeddings:
    """What an adapter's `embed()` returns: one vector per text, in order, and the tokens billed."""

    vectors: list[list[float]]
    #: Input tokens the provider counted for all the texts; None when it reported none
    #: (older Gemini answers), so the ledger says "price unknown" rather than $0.
    input_tokens: int | None = None


@dataclass(slots=True)
class ModelInfo:
    """A model a provider lists. `id` is the routed name a user types (prefix applied)."""

    id: str
    provider: str
    upstream_id: str
    label: str = ""
    embedding: bool = False
    #: Whether the model reads images, as the provider's list says (Bedrock `inputModalities`,
    #: OpenRouter `architecture.input_modalities`); None: the list does not say.
    images: bool | None = None
