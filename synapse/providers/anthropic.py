"""Anthropic Messages protocol: `POST /v1/messages`, `GET /v1/models`.

Wire facts: reference/provider-protocols.md §2 (request, response, stream, errors,
prompt caching) and §1.1 (usage). Encode and decode are pure functions of dicts and
bytes; only `transport` does I/O.

Choices worth knowing:

* `max_tokens` is required by Anthropic; a request without one gets `DEFAULT_MAX_TOKENS`.
* A canonical part or Tool with `cache=True` gets `"cache_control": {"type": "ephemeral"}`
  on its wire block. Anthropic accepts at most 4 of them, so only the last 4 are kept
  (the later breakpoints cover the longer prefixes, which is what is worth caching).
* `stop_reason: "model_context_window_exceeded"` maps to `max_tokens`: like max_tokens,
  it means the reply was cut short by a token limit and what came back is usable.
* `tool_choice` is sent only with tools ("required" -> any, a tool name -> tool); empty
  text parts are dropped (Anthropic rejects empty text blocks); tool_result blocks go first
  in their user turn, as Anthropic requires.
* Thinking blocks (with their signatures) are kept on the first ToolCall's
  `provider_data["anthropic_thinking"]` and sent back before the tool_use blocks, which
  Anthropic requires when extended thinking and tools are used together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, assert_never

import orjson

from ..embed_mode import EmbedMode
from ..errors import (
    AuthenticationError,
    BadRequestError,
    ContextTooLongError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    UpstreamUnavailableError,
)
from ..types import (
    Embeddings,
    ImagePart,
    Message,
    ModelInfo,
    ReasoningDelta,
    ReasoningPart,
    Request,
    Response,
    ResponseDone,
    ServerToolPart,
    Source,
    StopReason,
    StreamEvent,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolResultPart,
    Usage,
)
from . import transport
from .base import Adapter, looks_like_context_overflow, merge_extra, redact, streamed_chars
from .catalog import ProviderConfig, ProviderSpec

__all__ = ["AnthropicAdapter", "build", "decode_message", "encode_request", "map_usage", "state_chars"]

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
MAX_CACHE_BREAKPOINTS = 4
MODELS_PAGE_LIMIT = 1000
_EPHEMERAL: dict[str, str] = {"type": "ephemeral"}

STOP_REASONS: dict[str, StopReason] = {
    "end_turn": "end_turn",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_use": "tool_use",
    "refusal": "content_filter",
    "pause_turn": "other",
    # The reply was cut short by the context window: same handling as max_tokens.
    "model_context_window_exceeded": "max_tokens",
}

#: error.type -> the HTTP status Anthropic uses for it (§2.7); in-stream errors carry no status.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

_THINKING_KEY = "anthropic_thinking"

#: Provider-side tools: the tool definition, and the beta header that enables it.
SERVER_TOOLS: dict[str, tuple[dict[str, Any], str | None]] = {
    "web_search": ({"type": "web_search_20250305", "name": "web_search"}, None),
    "web_fetch": ({"type": "web_fetch_20250910", "name": "web_fetch"}, "web-fetch-2025-09-10"),
    "code_execution": ({"type": "code_execution_20250825", "name": "code_execution"}, "code-execution-2025-08-25"),
}
#: Tool types Anthropic defines and the caller runs (`Tool.native`) -> the beta header each needs.
NATIVE_TOOLS: dict[str, str | None] = {"memory_20250818": "context-management-2025-06-27"}
#: server_tool_use names and result block types -> the canonical tool name.
_SERVER_NAMES = {
    "web_search": "web_search", "web_fetch": "web_fetch", "code_execution": "code_execution",
    "bash_code_execution": "code_execution", "text_editor_code_execution": "code_execution",
}
_RESULT_BLOCKS = {
    "web_search_tool_result": "web_search", "web_fetch_tool_result": "web_fetch",
    "code_execution_tool_result": "code_execution", "bash_code_execution_tool_result": "code_execution",
    "text_editor_code_execution_tool_result": "code_execution",
}


def build(spec: ProviderSpec, config: ProviderConfig) -> Adapter:
    return AnthropicAdapter(spec, config)


# --- encode -------------------------------------------------------------------------------


def _text_block(part: TextPart) -> dict[str, Any]:
    return {"type": "text", "text": part.text}


def _image_block(part: ImagePart) -> dict[str, Any]:
    if part.data is not None:
        source = {"type": "base64", "media_type": part.media_type, "data": part.b64()}
    elif part.url:
        source = {"type": "url", "url": part.url}
    else:
        raise BadRequestError("an image part needs inline data or a URL", provider="anthropic")
    return {"type": "image", "source": source}


def _content(message: Message, marked: list[dict[str, Any]], server: bool = False) -> list[dict[str, Any]]:
    """One message's content blocks; blocks to mark for caching are appended to `marked`.

    Anthropic's own provider-side tool blocks go back as they came when the request
    enables provider-side tools (`server`); otherwise only the text that used them does.
    """
    blocks: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            if not part.text:
                continue  # Anthropic rejects empty text blocks
            block = _text_block(part)
        elif isinstance(part, ImagePart):
            block = _image_block(part)
        elif isinstance(part, ToolCall):
            thinking = (part.provider_data or {}).get(_THINKING_KEY)
            if thinking:  # must precede the text and tool_use blocks of this turn
                blocks[0:0] = [dict(b) for b in thinking]
            block = {"type": "tool_use", "id": part.id, "name": part.name, "input": part.arguments}
        elif isinstance(part, ToolResultPart):
            block = {"type": "tool_result", "tool_use_id": part.tool_call_id, "content": part.content}
            if part.is_error:
                block["is_error"] = True
            # Anthropic wants the tool_result blocks first in a user turn, text after.
            results.append(block)
            if part.cache:
                marked.append(block)
            continue
        elif isinstance(part, ServerToolPart):
            if server and part.provider == "anthropic" and message.role == "assistant":
                blocks.extend(dict(b) for b in part.data)
            continue
        elif isinstance(part, ReasoningPart):
            continue  # another API's reasoning item: Anthropic's thinking rides on ToolCall.provider_data
        else:
            assert_never(part)
        blocks.append(block)
        if part.cache:
            marked.append(block)
    if results:
        blocks[0:0] = results
    if not blocks:
        blocks.append({"type": "text", "text": ""})
    return blocks


def _tool(tool: Tool) -> dict[str, Any]:
    if tool.native in NATIVE_TOOLS:  # Anthropic's own definition: the model knows its schema
        return {"type": tool.native, "name": tool.name}
    out: dict[str, Any] = {"name": tool.name, "input_schema": tool.parameters or {"type": "object", "properties": {}}}
    if tool.description:
        out["description"] = tool.description
    return out


def _tool_choice(choice: str) -> dict[str, Any]:
    if choice == "auto":
        return {"type": "auto"}
    if choice in ("required", "any"):
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    return {"type": "tool", "name": choice}


def encode_request(req: Request, *, stream: bool = False) -> dict[str, Any]:
    """The `/v1/messages` body for a canonical request (`extra` merged last)."""
    marked: list[dict[str, Any]] = []  # in prefix order: tools -> system -> messages
    body: dict[str, Any] = {
        "model": req.model,
        "max_tokens": req.max_tokens if req.max_tokens is not None else DEFAULT_MAX_TOKENS,
    }
    if req.tools or req.server_tools:
        tools = []
        for tool in req.tools:
            block = _tool(tool)
            tools.append(block)
            if tool.cache:
                marked.append(block)
        tools.extend({**SERVER_TOOLS[t.name][0], **t.config} for t in req.server_tools)
        body["tools"] = tools
        if req.tool_choice and req.tools:
            body["tool_choice"] = _tool_choice(req.tool_choice)
    if req.system:
        system = []
        for part in req.system:
            if not part.text:
                continue
            block = _text_block(part)
            system.append(block)
            if part.cache:
                marked.append(block)
        if system:
            body["system"] = system
    server = bool(req.server_tools)
    body["messages"] = [{"role": m.role, "content": _content(m, marked, server)} for m in req.messages]
    for block in marked[-MAX_CACHE_BREAKPOINTS:]:
        block["cache_control"] = _EPHEMERAL
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.stop:
        body["stop_sequences"] = list(req.stop)
    if stream:
        body["stream"] = True
    if req.extra:
        merge_extra(body, req.extra)
    return body


# --- decode -------------------------------------------------------------------------------


def map_usage(raw: Mapping[str, Any]) -> Usage:
    """Anthropic usage -> canonical (reference §1.1): `input_tokens` already excludes the cache.

    Whole prompt = input_tokens + cache_creation_input_tokens + cache_read_input_tokens;
    `output_tokens` includes thinking, whose count (newer models) is in
    `output_tokens_details.thinking_tokens`.
    """
    details = raw.get("output_tokens_details")
    server = raw.get("server_tool_use")
    uses: dict[str, int] = {}
    if isinstance(server, dict):  # {"web_search_requests": 1, "web_fetch_requests": 0}
        for key, name in (("web_search_requests", "web_search"), ("web_fetch_requests", "web_fetch")):
            count = server.get(key)
            if isinstance(count, int) and count > 0:
                uses[name] = count
    return Usage(
        input_tokens=int(raw.get("input_tokens") or 0),
        output_tokens=int(raw.get("output_tokens") or 0),
        cache_read_tokens=int(raw.get("cache_read_input_tokens") or 0),
        cache_write_tokens=int(raw.get("cache_creation_input_tokens") or 0),
        reasoning_tokens=int(details.get("thinking_tokens") or 0) if isinstance(details, dict) else 0,
        server_tool_use=uses,
    )


def server_tool_part(block: Mapping[str, Any]) -> ServerToolPart | None:
    """A `server_tool_use` or `*_tool_result` block as a ServerToolPart (None: not one)."""
    kind = block.get("type")
    if kind == "server_tool_use":
        name = _SERVER_NAMES.get(str(block.get("name")), str(block.get("name")))
        given = block.get("input") if isinstance(block.get("input"), dict) else {}
        return ServerToolPart(name, "call", "anthropic", id=block.get("id"), input=dict(given),  # type: ignore[arg-type]
                              data=[dict(block)])
    result_of = _RESULT_BLOCKS.get(str(kind))
    if result_of is None:
        return None
    content = block.get("content")
    sources: list[Source] = []
    text = ""
    items = content if isinstance(content, list) else [content] if isinstance(content, dict) else []
    for item in items:
        if not isinstance(item, dict):
            continue
        if item.get("url"):  # web_search_result; web_fetch_result keeps its title on the document
            doc = item.get("content")
            title = item.get("title") or (doc.get("title") if isinstance(doc, dict) else None)
            sources.append(Source(str(item["url"]), str(title or "")))
        if isinstance(item.get("stdout"), str):
            text += item["stdout"]
        if item.get("error_code"):
            text += f"error: {item['error_code']}"
    return ServerToolPart(result_of, "result", "anthropic", id=block.get("tool_use_id"), sources=sources, text=text,
                          data=[dict(block)])


def _cited(citations: Any, out: list[Source], seen: set[str]) -> None:
    for c in citations or ():
        if isinstance(c, dict) and c.get("url") and c["url"] not in seen:
            seen.add(c["url"])
            out.append(Source(str(c["url"]), str(c.get("title") or "")))


def _stop(raw: str | None) -> StopReason:
    if raw is None:
        return "end_turn"
    return STOP_REASONS.get(raw, "other")


def _attach_thinking(calls: list[ToolCall], thinking: list[dict[str, Any]]) -> None:
    if calls and thinking:
        first = calls[0]
        first.provider_data = {**(first.provider_data or {}), _THINKING_KEY: thinking}


def decode_message(data: Any, provider: str = "anthropic") -> Response:
    """A non-streaming `/v1/messages` body -> Response. Raises ValueError if it is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise ValueError("no content list in the message")
    text: list[str] = []
    reasoning: list[str] = []
    thinking: list[dict[str, Any]] = []
    calls: list[ToolCall] = []
    server: list[ServerToolPart] = []
    citations: list[Source] = []
    cited: set[str] = set()
    unknown: list[str] = []
    for block in data["content"]:
        if not isinstance(block, dict):
            raise ValueError("a content block is not an object")
        kind = block.get("type")
        if kind == "text":
            text.append(str(block.get("text") or ""))
            _cited(block.get("citations"), citations, cited)
        elif kind == "tool_use":
            args = block.get("input") or {}
            if not isinstance(args, dict):
                raise ValueError("tool_use input is not an object")
            calls.append(ToolCall(str(block.get("id")), str(block.get("name")), args))
        elif kind == "thinking":
            reasoning.append(str(block.get("thinking") or ""))
            thinking.append(block)
        elif kind == "redacted_thinking":
            thinking.append(block)
        else:
            part = server_tool_part(block)
            if part is not None:
                server.append(part)
            else:
                unknown.append(str(kind))
    if unknown and not text and not calls and not server:
        raise ValueError(f"the reply holds only content Synapse does not understand ({', '.join(unknown)} blocks)")
    _attach_thinking(calls, thinking)
    raw_stop = data.get("stop_reason")
    usage = data.get("usage")
    return Response(
        text="".join(text),
        tool_calls=calls,
        stop_reason=_stop(raw_stop),
        usage=map_usage(usage if isinstance(usage, dict) else {}),
        provider=provider,
        model=str(data.get("model") or ""),
        raw_stop_reason=raw_stop,
        reasoning="".join(reasoning),
        id=data.get("id"),
        server_tools=server,
        citations=citations,
    )


class _StreamState:
    """Accumulates one streamed message into the same Response `chat` returns."""

    __slots__ = ("id", "model", "usage", "text", "reasoning", "blocks", "calls", "thinking", "stop", "done",
                 "server", "citations", "cited", "unknown")

    def __init__(self) -> None:
        self.id: str | None = None
        self.model = ""
        self.usage: dict[str, Any] = {}
        self.text: list[str] = []
        self.reasoning: list[str] = []
        #: content-block index -> [kind, tool ordinal, text pieces (tool JSON / thinking), block dict]
        self.blocks: dict[int, list[Any]] = {}
        self.calls: list[ToolCall] = []
        self.thinking: list[dict[str, Any]] = []
        self.stop: str | None = None
        self.done = False
        #: content-block index -> provider-side tool part, in block order
        self.server: dict[int, ServerToolPart] = {}
        self.citations: list[Source] = []
        self.cited: set[str] = set()
        self.unknown: list[str] = []


def state_chars(st: _StreamState) -> tuple[int, int]:
    """(output characters, the reasoning part) a stream has carried so far: text, thinking,
    and tool input (ours and Anthropic's own tools'); for a stream cut short."""
    tool_input = (p for b in st.blocks.values() if b[0] in ("tool_use", "server_tool_use") for p in b[2])
    return streamed_chars((*st.text, *(c.name for c in st.calls)), st.reasoning, tool_input)


# --- adapter ------------------------------------------------------------------------------


class AnthropicAdapter(Adapter):
    """Claude over the Messages API, with `x-api-key` auth."""

    server_tools = frozenset(SERVER_TOOLS)

    def __init__(self, spec: ProviderSpec, config: ProviderConfig) -> None:
        super().__init__(spec, config)
        base = config.base_url.rstrip("/")
        self._messages_url = base + "/v1/messages"
        self._models_url = base + "/v1/models"
        self._headers = {
            "x-api-key": config.api_key,
            "anthropic-version": API_VERSION,
            "content-type": "application/json",
            "accept": "application/json",
        }
        self._get_headers = {k: v for k, v in self._headers.items() if k != "content-type"}

    def headers_for(self, req: Request) -> dict[str, str]:
        """The POST headers: with `anthropic-beta` when a provider-side or native tool needs one."""
        betas = sorted({b for t in req.server_tools if (b := SERVER_TOOLS[t.name][1])}
                       | {b for t in req.tools if t.native and (b := NATIVE_TOOLS.get(t.native))})
        return {**self._headers, "anthropic-beta": ",".join(betas)} if betas else self._headers

    def relay_endpoint(self, endpoint: str) -> tuple[str, Mapping[str, str]]:
        """URL and headers for the gateway's same-protocol relay: `chat` or `count_tokens`."""
        if endpoint == "count_tokens":
            return self._messages_url + "/count_tokens", self._headers
        return self._messages_url, self._headers

    def relay_error(self, data: Mapping[str, Any]) -> ProviderError:
        """The typed error for an `error` event a relayed stream carried."""
        return self._error_from_body(data, None, {}, in_stream=True)

    # --- calls ----------------------------------------------------------------------------

    async def chat(self, req: Request) -> Response:
        body = transport.dumps(encode_request(req))
        result = await transport.request(self, "POST", self._messages_url, headers=self.headers_for(req), body=body)
        try:
            data = result.json()
        except orjson.JSONDecodeError:
            raise self.protocol_error("the body is not JSON") from None
        if isinstance(data, dict) and data.get("type") == "error":
            raise self._error_from_body(data, result.status, result.headers)
        try:
            return decode_message(data, self.spec.id)
        except (ValueError, TypeError) as exc:
            raise self.protocol_error(str(exc)) from None

    async def stream(self, req: Request) -> AsyncIterator[StreamEvent]:
        body = transport.dumps(encode_request(req, stream=True))
        resp = await transport.open_stream(self, "POST", self._messages_url, headers=self.headers_for(req), body=body)
        st = _StreamState()
        # input tokens are known from message_start; its output count is a placeholder
        # until message_delta brings the real one (`stop`), so until then none is reported
        req.usage_so_far = lambda: map_usage(st.usage if st.stop is not None else {**st.usage, "output_tokens": 0})
        req.streamed_so_far = lambda: state_chars(st)
        async with resp:
            async for sse in transport.iter_sse(resp, self):
                try:
                    data = transport.loads(sse.data)
                except orjson.JSONDecodeError:
                    if sse.event == "__raw__":
                        continue  # a stray non-SSE line that is not JSON: not ours to judge
                    raise self.protocol_error(f"a {sse.event or 'data'} event that is not JSON") from None
                if not isinstance(data, dict):
                    raise self.protocol_error("a stream event that is not an object")
                for event in self._on_event(st, data, resp.headers):
                    yield event
        if not st.done:
            raise UpstreamUnavailableError(
                f"{self.spec.label} closed the stream before message_stop (mid-stream)", provider=self.spec.id
            )
        if st.unknown and not "".join(st.text) and not st.calls and not st.server:
            raise self.protocol_error(
                f"the reply holds only content Synapse does not understand ({', '.join(st.unknown)} blocks)")
        _attach_thinking(st.calls, st.thinking)
        yield ResponseDone(
            Response(
                text="".join(st.text),
                tool_calls=st.calls,
                stop_reason=_stop(st.stop),
                usage=map_usage(st.usage),
                provider=self.spec.id,
                model=st.model,
                raw_stop_reason=st.stop,
                reasoning="".join(st.reasoning),
                id=st.id,
                server_tools=[st.server[i] for i in sorted(st.server)],
                citations=st.citations,
            )
        )

    def _on_event(self, st: _StreamState, data: dict[str, Any], headers: Mapping[str, str]) -> list[StreamEvent]:
        """One decoded SSE event -> the canonical events it produces (often none)."""
        kind = data.get("type")
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            dkind = delta.get("type")
            if dkind == "text_delta":
                piece = delta.get("text") or ""
                if piece:
                    st.text.append(piece)
                    return [TextDelta(piece)]
                return []
            block = st.blocks.get(data.get("index"))  # type: ignore[arg-type]
            if dkind == "input_json_delta":
                if block is None:
                    raise self.protocol_error("a content_block_delta before its content_block_start")
                if block[0] != "tool_use":
                    if block[0] == "server_tool_use":  # run by Anthropic: kept, not ours to call
                        block[2].append(delta.get("partial_json") or "")
                    return []
                piece = delta.get("partial_json") or ""
                if piece:
                    block[2].append(piece)
                    return [ToolCallDelta(block[1], arguments=piece)]
                return []
            if dkind == "thinking_delta":
                piece = delta.get("thinking") or ""
                if block is not None and block[2] is not None:
                    block[2].append(piece)
                if piece:
                    st.reasoning.append(piece)
                    return [ReasoningDelta(piece)]
                return []
            if dkind == "signature_delta" and block is not None:
                block[3]["signature"] = block[3].get("signature", "") + (delta.get("signature") or "")
            if dkind == "citations_delta":
                _cited([delta.get("citation")], st.citations, st.cited)
            return []  # future delta types
        if kind == "content_block_start":
            index = data.get("index")
            cb = data.get("content_block") or {}
            ckind = cb.get("type")
            if ckind == "text":
                st.blocks[index] = ["text", -1, None, cb]  # type: ignore[index]
                piece = cb.get("text") or ""
                if piece:
                    st.text.append(piece)
                    return [TextDelta(piece)]
                return []
            if ckind == "tool_use":
                ordinal = len(st.calls)
                st.calls.append(ToolCall(str(cb.get("id")), str(cb.get("name")), {}))
                st.blocks[index] = ["tool_use", ordinal, [], cb]  # type: ignore[index]
                return [ToolCallDelta(ordinal, id=st.calls[ordinal].id, name=st.calls[ordinal].name)]
            if ckind in ("thinking", "redacted_thinking"):
                thinking = dict(cb)
                pieces = [thinking.get("thinking") or ""] if ckind == "thinking" else None
                st.blocks[index] = [ckind, -1, pieces, thinking]  # type: ignore[index]
                st.thinking.append(thinking)
                piece = cb.get("thinking") or ""
                if piece:
                    st.reasoning.append(piece)
                    return [ReasoningDelta(piece)]
                return []
            if ckind == "server_tool_use":
                st.blocks[index] = [ckind, -1, [], dict(cb)]  # type: ignore[index]
                return []
            part = server_tool_part(cb)
            if part is not None and isinstance(index, int):  # a result block arrives whole
                st.server[index] = part
            elif part is None:
                st.unknown.append(str(ckind))
            st.blocks[index] = [str(ckind), -1, None, cb]  # type: ignore[index]
            return []
        if kind == "content_block_stop":
            block = st.blocks.get(data.get("index"))  # type: ignore[arg-type]
            if block is not None and block[0] == "server_tool_use":
                raw = "".join(block[2]).strip()
                try:
                    block[3]["input"] = transport.loads(raw) if raw else block[3].get("input") or {}
                except orjson.JSONDecodeError:
                    raise self.protocol_error("server_tool_use input that is not JSON") from None
                part = server_tool_part(block[3])
                if part is not None:
                    st.server[data["index"]] = part
            elif block is not None and block[0] == "thinking":
                block[3]["thinking"] = "".join(block[2])
            elif block is not None and block[0] == "tool_use":
                raw = "".join(block[2])
                if raw.strip():
                    try:
                        args = transport.loads(raw)
                    except orjson.JSONDecodeError:
                        raise self.protocol_error("tool_use input that is not JSON") from None
                else:  # a tool with no arguments streams only an empty fragment
                    args = block[3].get("input") or {}
                if not isinstance(args, dict):
                    raise self.protocol_error("tool_use input that is not an object")
                st.calls[block[1]].arguments = args
            return []
        if kind == "message_start":
            msg = data.get("message") or {}
            st.id = msg.get("id")
            st.model = str(msg.get("model") or "")
            usage = msg.get("usage")
            if isinstance(usage, dict):
                st.usage = dict(usage)
            return []
        if kind == "message_delta":
            delta = data.get("delta") or {}
            if delta.get("stop_reason") is not None:
                st.stop = delta["stop_reason"]
            usage = data.get("usage")
            if isinstance(usage, dict):  # cumulative and final: overwrite what it carries (§2.4)
                st.usage.update((k, v) for k, v in usage.items() if v is not None)
            return []
        if kind == "message_stop":
            st.done = True
            return []
        if kind == "error" or (isinstance(data.get("error"), dict) and kind is None):
            raise self._error_from_body(data, None, headers, in_stream=True)
        return []  # ping and event types added later

    async def list_models(self) -> list[ModelInfo]:
        """Every page of `GET /v1/models` (newest first), following `last_id` while `has_more`."""
        models: list[ModelInfo] = []
        after: str | None = None
        seen: set[str] = set()
        while True:
            params = {"limit": str(MODELS_PAGE_LIMIT)}
            if after:
                params["after_id"] = after
            page = await self._models_page(params)
            models.extend(page[0])
            has_more, last_id = page[1], page[2]
            if not has_more:
                return models
            if not last_id or last_id in seen:
                raise self.protocol_error("has_more is true but last_id does not advance")
            seen.add(last_id)
            after = last_id

    async def verify(self) -> list[ModelInfo]:
        """One model-list page of one model: proves the key without paging the catalogue."""
        return (await self._models_page({"limit": "1"}))[0]

    async def _models_page(self, params: dict[str, str]) -> tuple[list[ModelInfo], bool, str | None]:
        result = await transport.request(self, "GET", self._models_url, headers=self._get_headers, params=params)
        try:
            data = result.json()
            items = data["data"]
            page = [self.model_info(str(m["id"]), str(m.get("display_name") or "")) for m in items]
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise self.protocol_error("the model list is not {data: [...]}") from None
        return page, bool(data.get("has_more")), data.get("last_id")

    async def embed(self, model: str, texts: list[str], *, mode: EmbedMode | None = None) -> Embeddings:
        raise BadRequestError(
            f"{self.spec.label} offers no embedding models (Anthropic points to Voyage AI): "
            "pick another provider's embedding model or leave embedding_model empty for the local one",
            provider=self.spec.id,
        )

    # --- errors -----------------------------------------------------------------------------

    def error_message(self, body: bytes) -> str:
        try:
            data = transport.loads(body)
        except orjson.JSONDecodeError:
            return super().error_message(body)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:500]
        return super().error_message(body)

    def error_from_response(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        try:
            data = transport.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            return self._error_from_body(data, status, headers)
        return super().error_from_response(status, headers, body)

    def _error_from_body(
        self, data: Mapping[str, Any], status: int | None, headers: Mapping[str, str], *, in_stream: bool = False
    ) -> ProviderError:
        """Branch on `error.type` first (an overload can come as a 429 or in-stream), then status."""
        err = data.get("error") if isinstance(data.get("error"), dict) else {}
        etype = str(err.get("type") or "")  # type: ignore[union-attr]
        detail = redact(str(err.get("message") or etype)[:500], self.config.api_key)  # type: ignore[union-attr]
        if status is None:
            status = _ERROR_STATUS.get(etype, 500)
        label, where = self.spec.label, " (mid-stream)" if in_stream else ""
        kw: dict[str, Any] = {
            "provider": self.spec.id,
            "status": status,
            "retry_after": None if in_stream else transport.parse_retry_after(headers),
            "request_id": headers.get("request-id") or data.get("request_id"),
        }
        suffix = f" ({detail})" if detail else ""
        if etype == "overloaded_error":
            return OverloadedError(f"{label} is overloaded{suffix}; try again shortly{where}", **kw)
        if etype == "rate_limit_error":
            wait = kw["retry_after"]
            hint = f"; retry in {wait:g} s" if wait is not None else "; slow down or raise your limits"
            return RateLimitError(f"{label} rate limit reached{suffix}{hint}{where}", **kw)
        if etype == "authentication_error":
            return AuthenticationError(self.key_rejected() + suffix, **kw)
        if etype == "permission_error":
            return PermissionDeniedError(f"{label} refused access with this key{suffix}", **kw)
        if etype == "billing_error":
            return PermissionDeniedError(f"{label} refused the call for billing reasons{suffix}: check your plan and credits", **kw)
        if etype == "not_found_error":
            return NotFoundError(f"{label} does not know that model or resource{suffix}", **kw)
        if etype == "request_too_large":
            return ContextTooLongError(f"the request is larger than {label} accepts{suffix}: send less (32 MB limit)", **kw)
        if etype == "invalid_request_error":
            if looks_like_context_overflow(detail):
                return ContextTooLongError(
                    f"the prompt is too long for this model at {label}{suffix}: shorten it or pick a larger model", **kw
                )
            return BadRequestError(f"{label} rejected the request{suffix}", **kw)
        if etype == "timeout_error":
            return ProviderTimeoutError(f"{label} timed out{suffix}; try again{where}", **kw)
        if etype == "api_error" or (in_stream and status >= 500):
            return UpstreamUnavailableError(f"{label} had a server error{suffix}; try again{where}", **kw)
        return self.error_for_status(status, detail, None if in_stream else headers)
