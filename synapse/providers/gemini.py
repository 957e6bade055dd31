"""Google Gemini generateContent protocol (Developer API, not Vertex).

Wire facts: /work/shared/reference/provider-protocols.md §4. The settings key
`gemini_base_url` holds the bare origin; this module appends `/v1beta` (and accepts a
base URL that already ends in a version segment).

Quirks handled here, once:
* `promptTokenCount` includes `cachedContentTokenCount`; thoughts are billed as output
  but are not inside `candidatesTokenCount` (§1.1) -> `_usage`.
* A bad key is HTTP 400 INVALID_ARGUMENT with reason API_KEY_INVALID, not 401 (§4.7).
* Streams are CRLF SSE with `data:` only and no `[DONE]`; each chunk is a whole
  GenerateContentResponse, function calls arrive whole, usage rides on every chunk
  and the last one is authoritative; an error mid-stream is a raw JSON object (§4.4).
* Gemini may return function calls without ids: stable ids are synthesised and never
  sent back; a `thoughtSignature` is kept in `ToolCall.provider_data` and echoed (§4.2).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from ..embed_mode import EmbedMode
from ..errors import (
    AuthenticationError,
    BadRequestError,
    OverloadedError,
    PermissionDeniedError,
    ProviderError,
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
from .base import Adapter, merge_extra, redact, streamed_chars
from .catalog import ProviderConfig, ProviderSpec
from .transport import iter_sse, open_stream, parse_retry_after, request

__all__ = ["GeminiAdapter", "build", "encode_request", "gemini_schema", "map_usage"]

API_VERSION = "v1beta"
#: The documented placeholder for function calls that did not come from Gemini (§4.2).
DUMMY_THOUGHT_SIGNATURE = "c2tpcF90aG91Z2h0X3NpZ25hdHVyZV92YWxpZGF0b3I="
#: batchEmbedContents takes at most 100 requests per call.
EMBED_BATCH = 100
#: `aembed` mode -> the embedding request's taskType (reference §4.6).
_TASK_TYPES = {"query": "RETRIEVAL_QUERY", "document": "RETRIEVAL_DOCUMENT"}
MAX_MODEL_PAGES = 100

_FILTER_REASONS = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT"}
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
#: Provider-side tools: Google Search grounding, code execution, URL context.
SERVER_TOOLS: dict[str, dict[str, Any]] = {
    "web_search": {"google_search": {}},
    "code_execution": {"code_execution": {}},
    "web_fetch": {"url_context": {}},
}


def build(spec: ProviderSpec, config: ProviderConfig) -> GeminiAdapter:
    return GeminiAdapter(spec, config)


# --- request encoding ------------------------------------------------------------------

#: Schema keywords the Gemini `Schema` (an OpenAPI 3.0 subset) accepts; anything else
#: ($schema, additionalProperties, $ref/$defs, const, oneOf, examples, ...) is rejected
#: with 400 "Unknown name", so it is translated or dropped.
_SCHEMA_KEYS = frozenset(
    {
        "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
        "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
        "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum",
    }
)
#: The only `format` values Gemini accepts, per type; others are rejected, so dropped.
_FORMATS = {"STRING": ("enum", "date-time"), "NUMBER": ("float", "double"), "INTEGER": ("int32", "int64")}


def gemini_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON Schema rewritten into the subset Gemini's `Schema` accepts.

    `$ref`s are inlined from `$defs`/`definitions`, `const` becomes a one-value enum,
    `oneOf` becomes `anyOf`, `["string", "null"]` becomes `STRING` + `nullable`, and
    unknown keywords are dropped. Type names are upper-cased as in the API's enum.
    """
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        if isinstance(schema.get(key), Mapping):
            defs.update(schema[key])
    return _convert_schema(schema, defs, 0)


def _convert_schema(node: Any, defs: Mapping[str, Any], depth: int) -> dict[str, Any]:
    if not isinstance(node, Mapping) or depth > 32:
        return {"type": "STRING"} if depth > 32 else {}
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1])
        merged = {**(target if isinstance(target, Mapping) else {}), **{k: v for k, v in node.items() if k != "$ref"}}
        return _convert_schema(merged, defs, depth + 1)
    all_of = node.get("allOf")
    if isinstance(all_of, list) and all_of:
        merged = {k: v for k, v in node.items() if k != "allOf"}
        for sub in all_of:
            if isinstance(sub, Mapping):
                sub = _resolve(sub, defs)
                for k, v in sub.items():
                    if k == "properties" and isinstance(merged.get("properties"), Mapping):
                        merged["properties"] = {**merged["properties"], **v}
                    elif k == "required" and isinstance(merged.get("required"), list):
                        merged["required"] = [*merged["required"], *v]
                    else:
                        merged.setdefault(k, v)
        return _convert_schema(merged, defs, depth + 1)
    out: dict[str, Any] = {}
    nullable = bool(node.get("nullable"))
    typ = node.get("type")
    if isinstance(typ, list):
        kinds = [t for t in typ if t != "null"]
        nullable = nullable or len(kinds) < len(typ)
        if len(kinds) == 1:
            typ = kinds[0]
        elif kinds:
            out["anyOf"] = [_convert_schema({**node, "type": t}, defs, depth + 1) for t in kinds]
            typ = None
        else:
            typ = None
    if isinstance(typ, str) and typ != "null":
        out["type"] = typ.upper()
    variants = node.get("anyOf") if isinstance(node.get("anyOf"), list) else node.get("oneOf")
    if isinstance(variants, list):
        subs = [v for v in variants if not (isinstance(v, Mapping) and v.get("type") == "null")]
        nullable = nullable or len(subs) < len(variants)
        if len(subs) == 1:
            inner = _convert_schema(subs[0], defs, depth + 1)
            inner.update({k: v for k, v in out.items() if k not in inner})
            out = inner
        elif subs:
            out["anyOf"] = [_convert_schema(v, defs, depth + 1) for v in subs]
    if "const" in node and "enum" not in node:
        node = {**node, "enum": [node["const"]]}
    for key, value in node.items():
        if key not in _SCHEMA_KEYS or key in ("type", "anyOf"):
            continue
        if key == "properties" and isinstance(value, Mapping):
            out["properties"] = {str(k): _convert_schema(v, defs, depth + 1) for k, v in value.items()}
        elif key == "items" and isinstance(value, Mapping):
            out["items"] = _convert_schema(value, defs, depth + 1)
        elif key == "enum" and isinstance(value, list):
            # Gemini enums are strings on a STRING schema.
            out["enum"] = [v if isinstance(v, str) else orjson.dumps(v).decode() for v in value if v is not None]
            out["type"] = "STRING"
        elif key == "format":
            if value in _FORMATS.get(str(out.get("type") or node.get("type") or "").upper(), ()):
                out["format"] = value
        else:
            out[key] = value
    if nullable:
        out["nullable"] = True
    if out.get("type") == "OBJECT" and not out.get("properties"):
        # "properties: should be non-empty for OBJECT type": a free-form object sends none.
        out.pop("properties", None)
        out.pop("required", None)
    return out


def _resolve(node: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1])
        if isinstance(target, Mapping):
            return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _declaration(tool: Tool) -> dict[str, Any]:
    decl: dict[str, Any] = {"name": tool.name}
    if tool.description:
        decl["description"] = tool.description
    params = gemini_schema(tool.parameters or {})
    if params.get("properties"):
        decl["parameters"] = params
    return decl


def _tool_config(choice: str | None, tools: list[Tool]) -> dict[str, Any] | None:
    if not choice or not tools:
        return None
    if choice == "auto":
        return {"functionCallingConfig": {"mode": "AUTO"}}
    if choice == "none":
        return {"functionCallingConfig": {"mode": "NONE"}}
    if choice in ("required", "any"):
        return {"functionCallingConfig": {"mode": "ANY"}}
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice]}}


def _function_response(part: ToolResultPart) -> dict[str, Any]:
    try:
        value: Any = orjson.loads(part.content) if part.content.strip() else ""
    except orjson.JSONDecodeError:
        value = part.content
    # "Use 'output' for the function output and 'error' for error details" (FunctionResponse docs).
    return {"error": value} if part.is_error else {"output": value}


def _from_gemini(call: ToolCall) -> bool:
    return bool(call.provider_data) and call.provider_data.get("provider") == "gemini"  # type: ignore[union-attr]


def encode_request(req: Request) -> dict[str, Any]:
    """The generateContent body for a canonical request (pure: dict out)."""
    names: dict[str, str] = {}
    send_ids: set[str] = set()
    for m in req.messages:
        for p in m.content:
            if isinstance(p, ToolCall):
                names[p.id] = p.name
                if not _from_gemini(p) or p.provider_data.get("id"):  # type: ignore[union-attr]
                    send_ids.add(p.id)
    contents: list[dict[str, Any]] = []
    for m in req.messages:
        parts = _encode_parts(m, names, send_ids)
        if parts:
            contents.append({"role": "model" if m.role == "assistant" else "user", "parts": parts})
    body: dict[str, Any] = {"contents": contents}
    if req.system:
        sys_parts = [{"text": p.text} for p in req.system if p.text]
        if sys_parts:
            body["systemInstruction"] = {"parts": sys_parts}
    if req.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(t) for t in req.tools]}]
        tool_config = _tool_config(req.tool_choice, req.tools)
        if tool_config:
            body["toolConfig"] = tool_config
    for st in req.server_tools:
        (key, value), = SERVER_TOOLS[st.name].items()
        body.setdefault("tools", []).append({key: {**value, **st.config}})
    gen: dict[str, Any] = {}
    if req.max_tokens is not None:
        gen["maxOutputTokens"] = req.max_tokens
    if req.temperature is not None:
        gen["temperature"] = req.temperature
    if req.stop:
        gen["stopSequences"] = list(req.stop)
    if gen:
        body["generationConfig"] = gen
    return merge_extra(body, req.extra)


def _encode_parts(m: Message, names: Mapping[str, str], send_ids: set[str]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    signed = any(isinstance(p, ToolCall) and p.provider_data and p.provider_data.get("thought_signature") for p in m.content)
    first_call = True
    for p in m.content:
        if isinstance(p, TextPart):
            if p.text:
                parts.append({"text": p.text})
        elif isinstance(p, ImagePart):
            if p.data is not None:
                parts.append({"inlineData": {"mimeType": p.media_type, "data": p.b64()}})
            elif p.url:
                parts.append({"fileData": {"mimeType": p.media_type, "fileUri": p.url}})
        elif isinstance(p, ToolCall):
            call: dict[str, Any] = {"name": p.name, "args": p.arguments or {}}
            if p.id in send_ids and p.id:
                call["id"] = p.id
            part: dict[str, Any] = {"functionCall": call}
            sig = p.provider_data.get("thought_signature") if p.provider_data else None
            if sig:
                part["thoughtSignature"] = sig
            elif first_call and not signed and not _from_gemini(p):
                # A call from another model: Gemini 3 wants a signature on the first call of a turn.
                part["thoughtSignature"] = DUMMY_THOUGHT_SIGNATURE
            first_call = False
            parts.append(part)
        elif isinstance(p, ToolResultPart):
            name = p.name or names.get(p.tool_call_id)
            if not name:
                raise BadRequestError(
                    f"Google Gemini needs the tool name for the result of call {p.tool_call_id!r}: "
                    "include the assistant turn with that tool call, or set the result's name",
                    provider="gemini",
                )
            resp: dict[str, Any] = {"name": name, "response": _function_response(p)}
            if p.tool_call_id in send_ids:
                resp["id"] = p.tool_call_id
            parts.append({"functionResponse": resp})
        elif isinstance(p, ServerToolPart):
            if p.provider == "gemini":  # code Gemini ran goes back as it came; grounding is not content
                parts.extend(dict(d) for d in p.data if "executableCode" in d or "codeExecutionResult" in d)
        elif isinstance(p, ReasoningPart):
            continue  # another API's reasoning item: Gemini's rides on ToolCall.provider_data
        else:  # pragma: no cover - a new part type must be handled above
            raise TypeError(f"unsupported message part {type(p).__name__}")
    return parts


# --- response decoding -----------------------------------------------------------------


def _int(meta: Mapping[str, Any], key: str) -> int:
    value = meta.get(key)
    try:
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0


def map_usage(meta: Mapping[str, Any] | None) -> Usage:
    """Gemini usageMetadata -> canonical Usage (reference §1.1).

    `promptTokenCount` includes `cachedContentTokenCount`, so uncached input is the
    difference (plus `toolUsePromptTokenCount`, also input). Thoughts are billed as
    output but are not inside `candidatesTokenCount`, so output is their sum.
    """
    if not meta:
        return Usage()
    prompt = _int(meta, "promptTokenCount")
    cached = min(_int(meta, "cachedContentTokenCount"), prompt) if prompt else _int(meta, "cachedContentTokenCount")
    thoughts = _int(meta, "thoughtsTokenCount")
    return Usage(
        input_tokens=max(0, prompt - cached) + _int(meta, "toolUsePromptTokenCount"),
        output_tokens=_int(meta, "candidatesTokenCount") + thoughts,
        cache_read_tokens=cached,
        cache_write_tokens=0,
        reasoning_tokens=thoughts,
    )


def _stop_reason(finish: str | None, has_calls: bool) -> StopReason:
    if finish == "STOP" or finish is None:
        return "tool_use" if has_calls else "end_turn"
    if finish == "MAX_TOKENS":
        return "max_tokens"
    if finish in _FILTER_REASONS:
        return "content_filter"
    return "other"


def _call_id(seed: str, index: int, name: str, args: Any) -> str:
    """A stable id for a call Gemini gave none: same response, same id."""
    digest = hashlib.sha1(f"{seed}\x00{index}\x00{name}\x00".encode() + orjson.dumps(args, option=orjson.OPT_SORT_KEYS))
    return f"call_{digest.hexdigest()[:20]}"


class _Assembler:
    """Accumulates GenerateContentResponse chunks (one for chat, many for a stream)."""

    __slots__ = ("text", "reasoning", "calls", "finish", "usage", "response_id", "blocked", "seen", "candidates",
                 "server", "grounding", "url_context", "unknown")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.calls: list[ToolCall] = []
        self.finish: str | None = None
        self.usage: dict[str, Any] = {}
        self.response_id: str | None = None
        self.blocked: str | None = None
        self.seen = False
        self.candidates = False
        self.server: list[ServerToolPart] = []
        self.grounding: dict[str, Any] | None = None
        self.url_context: dict[str, Any] | None = None
        self.unknown: list[str] = []

    def feed(self, chunk: Any, events: list[StreamEvent] | None) -> None:
        if not isinstance(chunk, dict):
            raise TypeError("chunk is not a JSON object")
        self.seen = True
        if self.response_id is None and isinstance(chunk.get("responseId"), str):
            self.response_id = chunk["responseId"]
        candidates = chunk.get("candidates")
        cand = candidates[0] if isinstance(candidates, list) and candidates else None
        finish = cand.get("finishReason") if isinstance(cand, dict) else None
        meta = chunk.get("usageMetadata")
        if isinstance(meta, dict):
            if finish:  # the final chunk's counts replace everything (§4.4)
                self.usage = dict(meta)
            else:
                self.usage.update(meta)
        feedback = chunk.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            reason = str(feedback["blockReason"])
            detail = feedback.get("blockReasonMessage")
            self.blocked = f"prompt blocked: {reason}" + (f" ({detail})" if detail else "")
        if not isinstance(cand, dict):
            return
        self.candidates = True
        if finish:
            self.finish = str(finish)
        if isinstance(cand.get("groundingMetadata"), dict):  # the latest is the whole answer's
            self.grounding = cand["groundingMetadata"]
        if isinstance(cand.get("urlContextMetadata"), dict):
            self.url_context = cand["urlContextMetadata"]
        content = cand.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts or ():
            if not isinstance(part, dict):
                continue
            if "functionCall" in part:
                self._call(part, events)
            elif "executableCode" in part or "codeExecutionResult" in part:
                self._code(part)
            elif "text" in part:
                text = part["text"]
                if not isinstance(text, str) or not text:
                    continue
                if part.get("thought"):
                    self.reasoning.append(text)
                    if events is not None:
                        events.append(ReasoningDelta(text))
                else:
                    self.text.append(text)
                    if events is not None:
                        events.append(TextDelta(text))
            else:
                kinds = [k for k in part if k not in ("thoughtSignature", "thought", "partMetadata")]
                if kinds:
                    self.unknown.append(kinds[0])

    def not_understood(self) -> str | None:
        """What made an otherwise empty reply, when Synapse cannot read any of it."""
        if self.text or self.calls or self.server or not self.unknown:
            return None
        return f"the reply holds only content Synapse does not understand ({', '.join(dict.fromkeys(self.unknown))} parts)"

    def _call(self, part: Mapping[str, Any], events: list[StreamEvent] | None) -> None:
        fc = part["functionCall"]
        if not isinstance(fc, dict) or not isinstance(fc.get("name"), str):
            raise TypeError("functionCall without a name")
        args = fc.get("args")
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise TypeError("functionCall.args is not an object")
        index = len(self.calls)
        given = fc.get("id") if isinstance(fc.get("id"), str) and fc.get("id") else None
        data: dict[str, Any] = {"provider": "gemini"}
        if given:
            data["id"] = True
        sig = part.get("thoughtSignature")
        if isinstance(sig, str) and sig:
            data["thought_signature"] = sig
        call_id = given or _call_id(self.response_id or "", index, fc["name"], args)
        self.calls.append(ToolCall(call_id, fc["name"], args, provider_data=data))
        if events is not None:
            events.append(ToolCallDelta(index, call_id, fc["name"], orjson.dumps(args).decode()))

    def _code(self, part: Mapping[str, Any]) -> None:
        """Code Gemini wrote and ran on its side (the code_execution tool)."""
        code = part.get("executableCode")
        if isinstance(code, dict):
            given = {k: code[k] for k in ("code", "language") if k in code}
            self.server.append(ServerToolPart("code_execution", "call", "gemini", input=given, data=[dict(part)]))
            return
        result = part.get("codeExecutionResult")
        result = result if isinstance(result, dict) else {}
        text = str(result.get("output") or "")
        if result.get("outcome") not in (None, "OUTCOME_OK"):
            text = f"{result['outcome']}: {text}" if text else str(result["outcome"])
        self.server.append(ServerToolPart("code_execution", "result", "gemini", text=text, data=[dict(part)]))

    def server_parts(self, model: str) -> tuple[list[ServerToolPart], list[Source], dict[str, int]]:
        """Provider-side tool parts, the cited sources, and the billed uses.

        Google bills Search grounding per grounded prompt on Gemini 2.x and per search
        query on Gemini 3, so the count is 1 or the number of `webSearchQueries`.
        """
        parts = list(self.server)
        sources: list[Source] = []
        uses: dict[str, int] = {}
        g = self.grounding
        if g is not None:
            seen: set[str] = set()
            for chunk in g.get("groundingChunks") or ():
                web = chunk.get("web") if isinstance(chunk, dict) else None
                if isinstance(web, dict) and web.get("uri") and web["uri"] not in seen:
                    seen.add(web["uri"])
                    sources.append(Source(str(web["uri"]), str(web.get("title") or "")))
            queries = [q for q in g.get("webSearchQueries") or () if isinstance(q, str)]
            if queries or sources:
                parts.append(ServerToolPart("web_search", "result", "gemini", input={"queries": queries},
                                            sources=list(sources), data=[dict(g)]))
                uses["web_search"] = max(1, len(queries)) if model.startswith("gemini-3") else 1
        if self.url_context is not None:
            fetched = [
                Source(str(m["retrievedUrl"]))
                for m in self.url_context.get("urlMetadata") or ()
                if isinstance(m, dict) and m.get("retrievedUrl")
            ]
            parts.append(ServerToolPart("web_fetch", "result", "gemini", sources=fetched, data=[dict(self.url_context)]))
        runs = sum(1 for p in self.server if p.kind == "call")
        if runs:
            uses["code_execution"] = runs
        return parts, sources, uses

    def response(self, provider: str, model: str) -> Response:
        if self.blocked and not self.finish:
            stop: StopReason = "content_filter"
            raw: str | None = self.blocked
        else:
            stop = _stop_reason(self.finish, bool(self.calls))
            raw = self.finish
        server, citations, uses = self.server_parts(model)
        usage = map_usage(self.usage)
        usage.server_tool_use = uses
        return Response(
            text="".join(self.text),
            tool_calls=self.calls,
            stop_reason=stop,
            usage=usage,
            provider=provider,
            model=model,
            raw_stop_reason=raw,
            reasoning="".join(self.reasoning),
            id=self.response_id,
            server_tools=server,
            citations=citations,
        )


# --- errors ----------------------------------------------------------------------------


def _error_obj(body: bytes) -> dict[str, Any] | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, list) and data and isinstance(data[0], dict):  # non-SSE stream errors come as [ {...} ]
        data = data[0]
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return data["error"]
    return None


def _reasons(err: Mapping[str, Any]) -> set[str]:
    out: set[str] = set()
    for d in err.get("details") or ():
        if isinstance(d, dict) and isinstance(d.get("reason"), str):
            out.add(d["reason"])
    return out


def _retry_delay(err: Mapping[str, Any]) -> float | None:
    for d in err.get("details") or ():
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DURATION.match(str(d.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


# --- the adapter -----------------------------------------------------------------------


class GeminiAdapter(Adapter):
    """generateContent / streamGenerateContent / models / batchEmbedContents."""

    server_tools = frozenset(SERVER_TOOLS)

    def __init__(self, spec: ProviderSpec, config: ProviderConfig) -> None:
        super().__init__(spec, config)
        base = config.base_url.rstrip("/")
        self.root = base if re.search(r"/v1(beta\d*|alpha)?$", base) else f"{base}/{API_VERSION}"
        self.headers = {
            "x-goog-api-key": config.api_key,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._get_headers = {"x-goog-api-key": config.api_key, "Accept": "application/json"}

    def _model_url(self, model: str, method: str) -> str:
        name = model[len("models/"):] if model.startswith("models/") else model
        return f"{self.root}/models/{name}:{method}"

    # --- chat ----------------------------------------------------------------------------

    async def chat(self, req: Request) -> Response:
        body = orjson.dumps(encode_request(req))
        result = await request(self, "POST", self._model_url(req.model, "generateContent"), headers=self.headers, body=body)
        asm = _Assembler()
        try:
            asm.feed(orjson.loads(result.body), None)
        except (orjson.JSONDecodeError, TypeError, KeyError) as exc:
            raise self.protocol_error(f"generateContent returned an unreadable body ({exc})") from None
        if not asm.candidates and asm.blocked is None:
            raise self.protocol_error("generateContent returned neither candidates nor promptFeedback")
        if asm.not_understood():
            raise self.protocol_error(asm.not_understood() or "")
        return asm.response(self.spec.id, req.model)

    async def stream(self, req: Request) -> AsyncIterator[StreamEvent]:
        body = orjson.dumps(encode_request(req))
        url = self._model_url(req.model, "streamGenerateContent")
        resp = await open_stream(self, "POST", url, headers=self.headers, body=body, params={"alt": "sse"})
        asm = _Assembler()
        req.usage_so_far = lambda: map_usage(asm.usage)  # every chunk carries the usage so far
        req.streamed_so_far = lambda: streamed_chars(asm.text, asm.reasoning, calls=asm.calls)
        events: list[StreamEvent] = []
        async with resp:
            async for sse in iter_sse(resp, self):
                if sse.event == "__raw__":
                    raise self._stream_error(sse.data)
                try:
                    chunk = orjson.loads(sse.data)
                except orjson.JSONDecodeError:
                    raise self.protocol_error("a stream chunk is not JSON") from None
                if isinstance(chunk, dict) and isinstance(chunk.get("error"), dict):
                    raise self._stream_error(sse.data)
                try:
                    asm.feed(chunk, events)
                except (TypeError, KeyError) as exc:
                    raise self.protocol_error(f"a stream chunk is not a GenerateContentResponse ({exc})") from None
                for event in events:
                    yield event
                events.clear()
        if not asm.seen:
            raise self.protocol_error("the stream ended without a single chunk")
        if asm.finish is None and asm.blocked is None:
            raise UpstreamUnavailableError(
                f"{self.spec.label} ended the stream before its final chunk (mid-stream)", provider=self.spec.id
            )
        if asm.not_understood():
            raise self.protocol_error(asm.not_understood() or "")
        yield ResponseDone(asm.response(self.spec.id, req.model))

    def _stream_error(self, raw: bytes) -> ProviderError:
        err = _error_obj(raw)
        if err is None:
            return self.protocol_error("the stream carried something that is neither a chunk nor an error")
        try:
            status = int(err.get("code") or 500)
        except (TypeError, ValueError):
            status = 500
        return self.error_from_response(status, {}, raw)

    # --- models / verify / embeddings ----------------------------------------------------

    async def _models_page(self, token: str | None) -> tuple[list[ModelInfo], str | None]:
        params = {"pageSize": "1000"}
        if token:
            params["pageToken"] = token
        result = await request(self, "GET", f"{self.root}/models", headers=self._get_headers, params=params)
        try:
            data = orjson.loads(result.body)
            rows = data.get("models") or []
            out: list[ModelInfo] = []
            for row in rows:
                methods = row.get("supportedGenerationMethods") or ()
                name = str(row.get("name") or "")
                upstream = name[len("models/"):] if name.startswith("models/") else name
                if not upstream:
                    continue
                label = str(row.get("displayName") or "")
                if "generateContent" in methods:
                    out.append(self.model_info(upstream, label))
                elif "embedContent" in methods or "batchEmbedContents" in methods:
                    out.append(self.model_info(upstream, label, embedding=True))
            nxt = data.get("nextPageToken")
        except (orjson.JSONDecodeError, AttributeError, TypeError) as exc:
            raise self.protocol_error(f"the model list is unreadable ({exc})") from None
        return out, (str(nxt) if nxt else None)

    async def list_models(self) -> list[ModelInfo]:
        models, token = await self._models_page(None)
        seen: set[str] = set()
        pages = 1
        while token and token not in seen and pages < MAX_MODEL_PAGES:
            seen.add(token)
            more, token = await self._models_page(token)
            models.extend(more)
            pages += 1
        return models

    async def verify(self) -> list[ModelInfo]:
        """One page of the model list: cheap, and a bad key fails it with 400 API_KEY_INVALID."""
        models, _ = await self._models_page(None)
        return models

    async def embed(self, model: str, texts: list[str], *, mode: EmbedMode | None = None) -> Embeddings:
        if not texts:
            return Embeddings([], 0)
        name = model[len("models/"):] if model.startswith("models/") else model
        url = self._model_url(name, "batchEmbedContents")
        batches = [texts[i : i + EMBED_BATCH] for i in range(0, len(texts), EMBED_BATCH)]
        task = _TASK_TYPES.get(mode) if mode else None
        results = await asyncio.gather(*(self._embed_batch(url, name, b, task) for b in batches))
        counts = [tokens for _, tokens in results]
        # every batch must have reported usage, or the total is not known (older answers have none, §4.6)
        total = sum(c for c in counts if c is not None) if all(c is not None for c in counts) else None
        return Embeddings([v for batch, _ in results for v in batch], total)

    async def _embed_batch(
        self, url: str, name: str, texts: list[str], task: str | None
    ) -> tuple[list[list[float]], int | None]:
        """One batch's vectors and its `usageMetadata.promptTokenCount`, when the answer has one."""
        extra = {"taskType": task} if task else {}
        body = orjson.dumps(
            {"requests": [{"model": f"models/{name}", "content": {"parts": [{"text": t}]}, **extra} for t in texts]}
        )
        result = await request(self, "POST", url, headers=self.headers, body=body)
        try:
            data = orjson.loads(result.body)
            vectors = [[float(x) for x in row["values"]] for row in data["embeddings"]]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise self.protocol_error(f"batchEmbedContents returned an unreadable body ({exc})") from None
        if len(vectors) != len(texts):
            raise self.protocol_error(f"asked for {len(texts)} embeddings, got {len(vectors)}")
        meta = data.get("usageMetadata")
        tokens = meta.get("promptTokenCount") if isinstance(meta, dict) else None
        return vectors, tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None

    # --- errors ----------------------------------------------------------------------------

    def error_message(self, body: bytes) -> str:
        err = _error_obj(body)
        if err is None:
            return super().error_message(body)
        message = str(err.get("message") or "").strip()
        status = err.get("status")
        if status and status not in message:
            message = f"{status}: {message}" if message else str(status)
        return message[:500]

    def error_from_response(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        err = _error_obj(body) or {}
        detail = redact(self.error_message(body), self.config.api_key)
        reasons = _reasons(err)
        message = str(err.get("message") or "")
        kw: dict[str, Any] = {"provider": self.spec.id, "status": status}
        if "API_KEY_INVALID" in reasons or (status == 400 and "API key not valid" in message):
            return AuthenticationError(f"{self.key_rejected()} ({detail})", **kw)
        if status == 403 and ("unregistered callers" in message or "API_KEY_SERVICE_BLOCKED" in reasons):
            return PermissionDeniedError(f"{self.spec.label} refused this key ({detail}): check it at "
                                         f"{self.spec.console_url.split('://', 1)[-1]}", **kw)
        if status == 429:
            wait = parse_retry_after(headers)
            if wait is None:
                wait = _retry_delay(err)
            hint = f"; retry in {wait:g} s" if wait is not None else "; slow down or check your quota"
            return RateLimitError(f"{self.spec.label} rate limit or quota reached ({detail}){hint}", retry_after=wait, **kw)
        if status == 503 and "overloaded" in message.lower():
            return OverloadedError(f"{self.spec.label} is overloaded ({detail}); try again shortly",
                                   retry_after=parse_retry_after(headers), **kw)
        return self.error_for_status(status, detail, headers)
