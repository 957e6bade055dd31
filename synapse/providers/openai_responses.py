"""OpenAI's Responses API: `POST /v1/responses`, beside Chat Completions (`openai.py`).

Some OpenAI models are served only here (`catalog.RESPONSES_ONLY_MODELS`: the -pro
reasoning models, codex, deep research); the setting `openai_use_responses_api` sends
every OpenAI model here. Models, embeddings, auth and the error-body mapping are the
same as Chat Completions, so the adapter extends `OpenAIAdapter` and replaces encode,
chat and stream.

Synapse keeps no state at OpenAI: every request has `store: false` and the whole
history. Reasoning models are asked for `include: ["reasoning.encrypted_content"]`;
each `reasoning` output item is kept on the reply (`Response.reasoning_parts`, then in
the assistant turn `to_message()` builds) and sent back, without its id, on the next
turn, which is how OpenAI keeps reasoning across an agent's tool loop. A reasoning item
without encrypted content cannot be sent back under `store: false` (OpenAI answers
404 "Items are not persisted"), so it is dropped. Non-reasoning models reject the
include ("Encrypted content is not supported with this model"), so they get none.

Wire facts (openai-python `types/responses/`): the request takes `instructions`,
`input` items (messages with `input_text` / `input_image` parts, `function_call`,
`function_call_output`, `reasoning`), function tools `{"type": "function", "name",
"parameters", "strict"}` (strict defaults to true here, so Synapse sends false: caller
schemas are not written for strict mode), `max_output_tokens`; there is no `stop`.
The stream is SSE with `event:` names: `response.created`, `output_item.added/done`,
`output_text.delta`, `function_call_arguments.delta`, `reasoning_summary_text.delta`,
then `response.completed` (or `.incomplete` / `.failed`) carrying the whole response;
an `error` event can arrive mid-stream. Usage: `input_tokens` includes
`input_tokens_details.cached_tokens`; `output_tokens` includes
`output_tokens_details.reasoning_tokens`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from ..errors import BadRequestError, ProviderError
from ..types import (
    ImagePart,
    Message,
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
    ToolCall,
    ToolCallDelta,
    ToolResultPart,
    Usage,
)
from .catalog import RESPONSES_ONLY_MODELS, ProviderConfig, ProviderSpec
from .openai import _REASONING_MODEL, OpenAIAdapter, _parse_arguments
from .transport import dumps, iter_sse, loads, open_stream, request

__all__ = ["OpenAIResponsesAdapter", "build", "decode_response", "is_reasoning_model", "normalise_usage"]

#: Provider-side tools and their Responses API tool definitions.
_SERVER_TOOLS: dict[str, dict[str, Any]] = {
    "web_search": {"type": "web_search"},
    "code_execution": {"type": "code_interpreter", "container": {"type": "auto"}},
}
#: What each provider-side tool needs in `include` for its results to come back.
_SERVER_INCLUDES = {"web_search": "web_search_call.action.sources", "code_execution": "code_interpreter_call.outputs"}
#: Output item types that are a provider-side tool's work, by canonical tool name.
_SERVER_ITEMS = {"web_search_call": "web_search", "code_interpreter_call": "code_execution"}
_INCOMPLETE: dict[str, StopReason] = {"max_output_tokens": "max_tokens", "content_filter": "content_filter"}


def build(spec: ProviderSpec, config: ProviderConfig) -> "OpenAIResponsesAdapter":
    return OpenAIResponsesAdapter(spec, config)


def is_reasoning_model(model: str) -> bool:
    """o-series, GPT-5 reasoning models and the Responses-only models (computer use aside)."""
    return bool(_REASONING_MODEL.match(model)) or (
        bool(RESPONSES_ONLY_MODELS.search(model)) and not model.startswith("computer-use")
    )


def normalise_usage(u: Mapping[str, Any] | None) -> Usage:
    """Responses usage -> canonical Usage (reference §1.1, as for Chat Completions):
    `input_tokens` includes the cached tokens, `output_tokens` the reasoning tokens."""
    if not isinstance(u, Mapping):
        return Usage()
    prompt = _int(u.get("input_tokens"))
    itd = u.get("input_tokens_details")
    otd = u.get("output_tokens_details")
    cached = min(_int(itd.get("cached_tokens")), prompt) if isinstance(itd, Mapping) else 0
    reasoning = _int(otd.get("reasoning_tokens")) if isinstance(otd, Mapping) else 0
    return Usage(prompt - cached, _int(u.get("output_tokens")), cached, 0, reasoning)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


# --- decode ---------------------------------------------------------------------------------


class _Decoded:
    """What one Responses `output` list says, in canonical terms."""

    __slots__ = ("text", "refusal", "reasoning", "calls", "reasoning_parts", "server_tools", "citations", "unknown")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.refusal: list[str] = []
        self.reasoning: list[str] = []
        self.calls: list[ToolCall] = []
        self.reasoning_parts: list[ReasoningPart] = []
        self.server_tools: list[ServerToolPart] = []
        self.citations: list[Source] = []
        self.unknown: list[str] = []


def _decode_output(adapter: OpenAIAdapter, output: Any) -> _Decoded:
    out = _Decoded()
    if not isinstance(output, list):
        raise adapter.protocol_error("the response has no output list")
    seen_urls: set[str] = set()
    for item in output:
        if not isinstance(item, dict):
            raise adapter.protocol_error("an output item is not an object")
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "output_text":
                    out.text.append(str(part.get("text") or ""))
                    for ann in part.get("annotations") or ():
                        if isinstance(ann, dict) and ann.get("type") == "url_citation" and ann.get("url"):
                            url = str(ann["url"])
                            if url not in seen_urls:
                                seen_urls.add(url)
                                out.citations.append(Source(url, str(ann.get("title") or "")))
                elif part.get("type") == "refusal":
                    out.refusal.append(str(part.get("refusal") or ""))
                else:
                    out.unknown.append(f"message part {part.get('type')!r}")
        elif kind == "function_call":
            args = _parse_arguments(adapter, item.get("arguments"))
            out.calls.append(ToolCall(str(item.get("call_id") or item.get("id") or ""), str(item.get("name") or ""), args))
        elif kind == "reasoning":
            summary = "".join(
                str(s.get("text") or "") for s in item.get("summary") or () if isinstance(s, dict)
            )
            content = "".join(
                str(c.get("text") or "") for c in item.get("content") or () if isinstance(c, dict)
            )
            readable = summary or content
            if readable:
                out.reasoning.append(readable)
            kept = {k: item[k] for k in ("id", "summary", "encrypted_content") if item.get(k) is not None}
            out.reasoning_parts.append(ReasoningPart(readable, adapter.spec.id, {"type": "reasoning", **kept}))
        elif kind in _SERVER_ITEMS:
            out.server_tools.append(_server_item(adapter.spec.id, _SERVER_ITEMS[kind], item))
        else:
            out.unknown.append(f"output item {kind!r}")
    return out


def _server_item(provider: str, name: str, item: Mapping[str, Any]) -> ServerToolPart:
    """A web_search_call or code_interpreter_call output item as a ServerToolPart."""
    sources: list[Source] = []
    text = ""
    given: dict[str, Any] = {}
    if name == "web_search":
        action = item.get("action") if isinstance(item.get("action"), dict) else {}
        given = {k: v for k, v in action.items() if k in ("query", "url", "pattern")}  # type: ignore[union-attr]
        for s in action.get("sources") or ():  # type: ignore[union-attr]
            if isinstance(s, dict) and s.get("url"):
                sources.append(Source(str(s["url"]), str(s.get("title") or "")))
    else:
        if isinstance(item.get("code"), str):
            given = {"code": item["code"]}
        logs = [str(o.get("logs") or "") for o in item.get("outputs") or () if isinstance(o, dict) and o.get("type") == "logs"]
        text = "".join(logs)
    return ServerToolPart(name, "call", provider, id=item.get("id"), input=given, sources=sources, text=text,
                          data=[dict(item)])


def _server_use(parts: list[ServerToolPart]) -> dict[str, int]:
    """Billed provider-side tool uses: each web search call (not page opens), each code run."""
    use: dict[str, int] = {}
    for p in parts:
        action = p.data[0].get("action") if p.data else None
        if p.name == "web_search" and isinstance(action, dict) and action.get("type") not in (None, "search"):
            continue
        use[p.name] = use.get(p.name, 0) + 1
    return use


def decode_response(adapter: OpenAIAdapter, data: Any, model: str) -> Response:
    """A Responses API `response` object -> Response. Raises a typed error for a failed one."""
    if not isinstance(data, dict):
        raise adapter.protocol_error("the response is not a JSON object")
    status = data.get("status")
    if status == "failed" or (isinstance(data.get("error"), dict) and status != "completed"):
        raise _failed(adapter, data.get("error"))
    if status in ("queued", "in_progress"):
        raise adapter.protocol_error(f"the response is still {status} (background mode is not supported)")
    dec = _decode_output(adapter, data.get("output"))
    text = "".join(dec.text)
    stop: StopReason
    raw = str(status) if status else None
    if status == "incomplete":
        details = data.get("incomplete_details") if isinstance(data.get("incomplete_details"), dict) else {}
        reason = str(details.get("reason") or "")  # type: ignore[union-attr]
        stop = _INCOMPLETE.get(reason, "other")
        raw = reason or raw
    elif dec.calls:
        stop = "tool_use"
    elif dec.refusal and not text:
        stop = "content_filter"
    else:
        stop = "end_turn"
    if not text and dec.refusal:
        text = "".join(dec.refusal)
    if not text and not dec.calls and dec.unknown and stop != "max_tokens":
        raise adapter.protocol_error(
            f"the reply holds only content Synapse does not understand ({', '.join(dec.unknown)})"
        )
    usage = normalise_usage(data.get("usage"))
    usage.server_tool_use = _server_use(dec.server_tools)
    return Response(
        text=text,
        tool_calls=dec.calls,
        stop_reason=stop,
        usage=usage,
        provider=adapter.spec.id,
        model=model,
        raw_stop_reason=raw,
        reasoning="".join(dec.reasoning),
        id=data.get("id") if isinstance(data.get("id"), str) else None,
        reasoning_parts=dec.reasoning_parts,
        server_tools=dec.server_tools,
        citations=dec.citations,
    )


def _failed(adapter: OpenAIAdapter, err: Any) -> ProviderError:
    """`response.failed` / a failed response's `error` {code, message} -> typed error."""
    err = err if isinstance(err, dict) else {}
    code = str(err.get("code") or "server_error")
    etype = "invalid_request_error" if code.startswith(("invalid_", "image_", "unsupported_", "empty_", "failed_")) else code
    return adapter._error(None, {"error": {"message": err.get("message") or code, "code": code, "type": etype}}, None)


# --- the adapter ------------------------------------------------------------------------------


class OpenAIResponsesAdapter(OpenAIAdapter):
    """`POST /v1/responses` for OpenAI models; models, embeddings and errors as Chat Completions."""

    def __init__(self, spec: ProviderSpec, config: ProviderConfig) -> None:
        super().__init__(spec, config)
        self.server_tools = frozenset(_SERVER_TOOLS)
        self._responses_url = f"{config.base_url}/responses"

    # --- encode ------------------------------------------------------------------------------

    def encode(self, req: Request, stream: bool = False) -> dict[str, Any]:
        """The `/responses` body for one request (pure: no I/O)."""
        if req.stop:
            raise BadRequestError(
                f"OpenAI's Responses API (which serves {req.model} here) takes no stop sequences: "
                "drop `stop`, or use a Chat Completions model",
                provider=self.spec.id,
            )
        reasoning = is_reasoning_model(req.model)
        store = bool(req.extra.get("store", False))
        body: dict[str, Any] = {"model": req.model}
        if req.system:
            body["instructions"] = "\n\n".join(p.text for p in req.system)
        items: list[dict[str, Any]] = []
        for m in req.messages:
            self._encode_item(m, items, store)
        body["input"] = items
        tools: list[dict[str, Any]] = [
            {"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters, "strict": False}
            if t.description
            else {"type": "function", "name": t.name, "parameters": t.parameters, "strict": False}
            for t in req.tools
        ]
        include: list[str] = []
        for st in req.server_tools:
            tools.append({**_SERVER_TOOLS[st.name], **st.config})
            include.append(_SERVER_INCLUDES[st.name])
        if tools:
            body["tools"] = tools
        if req.tools and req.tool_choice:
            body["tool_choice"] = (
                req.tool_choice
                if req.tool_choice in ("auto", "none", "required")
                else {"type": "function", "name": req.tool_choice}
            )
        if req.max_tokens is not None:
            body["max_output_tokens"] = req.max_tokens
        if req.temperature is not None and not reasoning:
            body["temperature"] = req.temperature
        if reasoning and not store:
            include.append("reasoning.encrypted_content")
        if include:
            body["include"] = include
        body["store"] = False
        if stream:
            body["stream"] = True
        if req.extra:
            from .base import merge_extra

            merge_extra(body, req.extra)
        return body

    def _encode_item(self, m: Message, items: list[dict[str, Any]], store: bool) -> None:
        if m.role == "assistant":
            texts: list[str] = []

            def flush() -> None:
                if texts:
                    items.append({"type": "message", "role": "assistant", "content": "".join(texts)})
                    texts.clear()

            for p in m.content:
                if isinstance(p, TextPart):
                    if p.text:
                        texts.append(p.text)
                elif isinstance(p, ToolCall):
                    flush()
                    items.append({"type": "function_call", "call_id": p.id, "name": p.name,
                                  "arguments": dumps(p.arguments).decode()})
                elif isinstance(p, ReasoningPart):
                    if p.provider != self.spec.id:
                        continue  # another provider's reasoning means nothing here
                    flush()
                    item = _reasoning_item(p, store)
                    if item is not None:
                        items.append(item)
                # Images in an assistant turn, provider-side tool items (their ids cannot be
                # read back under store: false; the text that used them stays) are not sent.
            flush()
            return
        parts: list[dict[str, Any]] = []
        for p in m.content:
            if isinstance(p, ToolResultPart):
                items.append({"type": "function_call_output", "call_id": p.tool_call_id, "output": p.content})
            elif isinstance(p, TextPart):
                parts.append({"type": "input_text", "text": p.text})
            elif isinstance(p, ImagePart):
                url = p.url if p.url else f"data:{p.media_type};base64,{p.b64()}"
                parts.append({"type": "input_image", "image_url": url, "detail": "auto"})
        if parts:
            items.append({"type": "message", "role": "user", "content": parts})

    # --- chat --------------------------------------------------------------------------------

    async def chat(self, req: Request) -> Response:
        body = self.encode(req)
        res = await request(self, "POST", self._responses_url, headers=self._headers, body=dumps(body))
        data = self._json(res.body, "the response")
        if isinstance(data, dict) and isinstance(data.get("error"), dict) and "output" not in data:
            raise self._error(None, data, None)  # a proxy's 200 with an error body
        return decode_response(self, data, req.model)

    # --- stream ------------------------------------------------------------------------------

    async def stream(self, req: Request) -> AsyncIterator[StreamEvent]:
        body = self.encode(req, stream=True)
        resp = await open_stream(self, "POST", self._responses_url, headers=self._headers, body=dumps(body))
        st = _StreamState()
        req.streamed_so_far = st.streamed
        final: dict[str, Any] | None = None
        async with resp:
            async for ev in iter_sse(resp, self):
                if ev.data == b"[DONE]":
                    break
                if ev.event == "__raw__":
                    raise self._raw_stream_error(ev.data)
                try:
                    data = loads(ev.data)
                except ValueError:
                    raise self.protocol_error("a stream event is not JSON") from None
                if not isinstance(data, dict):
                    raise self.protocol_error("a stream event is not a JSON object")
                kind = data.get("type") or ev.event
                if kind in ("response.completed", "response.incomplete"):
                    final = data.get("response") if isinstance(data.get("response"), dict) else None
                    if final is None:
                        raise self.protocol_error(f"{kind} carries no response")
                    break
                if kind == "response.failed":
                    resp_obj = data.get("response") if isinstance(data.get("response"), dict) else {}
                    raise _failed(self, resp_obj.get("error"))  # type: ignore[union-attr]
                if kind == "error":
                    err = data.get("error") if isinstance(data.get("error"), dict) else data
                    raise _failed(self, err)
                for event in st.feed(kind, data):
                    yield event
        if final is None:
            raise self.protocol_error("the stream ended before response.completed (mid-stream)")
        if not final.get("output") and st.items:
            final = {**final, "output": [st.items[i] for i in sorted(st.items)]}
        response = decode_response(self, final, req.model)
        yield ResponseDone(response)  # the final object is authoritative


def _reasoning_item(p: ReasoningPart, store: bool) -> dict[str, Any] | None:
    """A kept reasoning item as an input item: its encrypted content without its id
    (under store: false the id names nothing), or, when stored, its id."""
    summary = p.data.get("summary")
    summary = summary if isinstance(summary, list) else []
    encrypted = p.data.get("encrypted_content")
    if isinstance(encrypted, str) and encrypted:
        return {"type": "reasoning", "summary": summary, "encrypted_content": encrypted}
    if store and p.data.get("id"):
        return {"type": "reasoning", "id": p.data["id"], "summary": summary}
    return None


class _StreamState:
    """Turns `response.*` events into canonical deltas; keeps finished items by index."""

    __slots__ = ("calls", "count", "items", "chars", "thought")

    def __init__(self) -> None:
        self.calls: dict[Any, int] = {}  # item id or ("index", output index) -> our tool-call ordinal
        self.count = 0
        self.items: dict[int, dict[str, Any]] = {}
        #: Characters streamed so far, and the reasoning part (Request.streamed_so_far).
        self.chars = 0
        self.thought = 0

    def streamed(self) -> tuple[int, int]:
        return self.chars, self.thought

    def _ordinal(self, data: Mapping[str, Any]) -> int | None:
        key = data.get("item_id")
        if key in self.calls:
            return self.calls[key]
        return self.calls.get(("index", data.get("output_index")))

    def feed(self, kind: Any, data: Mapping[str, Any]) -> Iterator[StreamEvent]:
        if kind == "response.output_text.delta" or kind == "response.refusal.delta":
            delta = data.get("delta")
            if isinstance(delta, str) and delta:
                self.chars += len(delta)
                yield TextDelta(delta)
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            delta = data.get("delta")
            if isinstance(delta, str) and delta:
                self.chars += len(delta)
                self.thought += len(delta)
                yield ReasoningDelta(delta)
        elif kind == "response.function_call_arguments.delta":
            ordinal = self._ordinal(data)
            delta = data.get("delta")
            if ordinal is not None and isinstance(delta, str) and delta:
                self.chars += len(delta)
                yield ToolCallDelta(ordinal, arguments=delta)
        elif kind == "response.output_item.added":
            item = data.get("item")
            if isinstance(item, dict) and item.get("type") == "function_call":
                ordinal = self.count
                self.count += 1
                if item.get("id"):
                    self.calls[item["id"]] = ordinal
                self.calls[("index", data.get("output_index"))] = ordinal
                call_id = str(item.get("call_id") or item.get("id") or "")
                yield ToolCallDelta(ordinal, call_id, str(item.get("name") or ""), str(item.get("arguments") or ""))
        elif kind == "response.output_item.done":
            item = data.get("item")
            index = data.get("output_index")
            if isinstance(item, dict) and isinstance(index, int):
                self.items[index] = item
        # response.created / in_progress / content_part.* / *.done and event types added
        # later carry nothing the canonical events need.
