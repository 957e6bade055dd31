"""A loopback Google Gemini Developer API (generateContent protocol), faithful to the wire.

Point Synapse at it with the bare origin (the adapter appends /v1beta):

    fake = GeminiFake(valid_keys={"AIza-test-key-gemini"}).start()
    configure(gemini_key="AIza-test-key-gemini", gemini_base_url=fake.url)

Served paths (reference/provider-protocols.md §4):

* POST /v1beta/models/{model}:generateContent
* POST /v1beta/models/{model}:streamGenerateContent?alt=sse   (CRLF SSE, `data:` only,
  no [DONE], usageMetadata on every chunk; without alt=sse: one JSON array)
* POST /v1beta/models/{model}:countTokens, :embedContent, :batchEmbedContents
* GET  /v1beta/models?pageSize=&pageToken=   (paginated, nextPageToken), GET /v1beta/models/{model}

Auth is `x-goog-api-key` (or `?key=`): a wrong key gets the real HTTP 400 INVALID_ARGUMENT
with reason API_KEY_INVALID; no key gets 403 PERMISSION_DENIED. Request keys are read in
camelCase or snake_case and bytes in either base64 alphabet (§4.1); unknown request fields,
schema keywords Gemini rejects, empty parts and unnamed function responses get 400s.

Replies: without a script the fake echoes the last user text; usage is estimated from the
prompt with `estimate_tokens`. `fake.reply(GeminiReply(...))` scripts one; usage fields of a
reply are canonical (Synapse's): `input_tokens` is the *uncached* prompt and
`cache_read_tokens` is reported as `cachedContentTokenCount` (implicit caching), so the wire
`promptTokenCount` is their sum; `output_tokens` includes `reasoning_tokens`, so the wire
`candidatesTokenCount` is their difference. Gemini reports no cache writes:
`cache_write_tokens` is ignored.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .base import FakeReply, FakeServer, estimate_tokens

__all__ = ["GeminiFake", "GeminiReply", "error_body", "DEFAULT_MODELS"]

SIGNATURE_BYTES = b"fake-gemini-thought-signature"
DUMMY_SIGNATURE_BYTES = b"skip_thought_signature_validator"


def _model(name: str, methods: list[str], display: str, input_limit: int = 1048576, output_limit: int = 65536) -> dict[str, Any]:
    return {
        "name": f"models/{name}",
        "version": "001",
        "displayName": display,
        "description": f"{display} (fake)",
        "inputTokenLimit": input_limit,
        "outputTokenLimit": output_limit,
        "supportedGenerationMethods": methods,
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
    }


_CHAT = ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]
DEFAULT_MODELS: list[dict[str, Any]] = [
    _model("gemini-2.5-flash", _CHAT, "Gemini 2.5 Flash"),
    _model("gemini-2.5-pro", _CHAT, "Gemini 2.5 Pro"),
    _model("gemini-2.5-flash-lite", _CHAT, "Gemini 2.5 Flash-Lite"),
    _model("gemini-2.0-flash", _CHAT, "Gemini 2.0 Flash"),
    _model("gemini-embedding-001", ["embedContent", "countTextTokens", "countTokens", "asyncBatchEmbedContent"],
           "Gemini Embedding 001", 2048, 1),
    _model("text-embedding-004", ["embedContent"], "Text Embedding 004", 2048, 1),
    _model("imagen-4.0-generate-001", ["predict"], "Imagen 4", 480, 8192),
    _model("aqa", ["generateAnswer"], "Model that performs Attributed Question Answering.", 7168, 1024),
    _model("gemini-tiny-context", _CHAT, "A model with a tiny window (tests)", 64),
]


def error_body(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A google.rpc.Status error body as the API sends it."""
    err: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        err["details"] = details
    return {"error": err}


def bad_key_body() -> dict[str, Any]:
    return error_body(
        400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
        [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
             "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
            {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
             "message": "API key not valid. Please pass a valid API key."},
        ],
    )


def rate_limit_body(retry_delay: str | None = "0s") -> dict[str, Any]:
    details: list[dict[str, Any]] = [
        {"@type": "type.googleapis.com/google.rpc.Help",
         "links": [{"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
         "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                         "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                         "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"}, "quotaValue": "10"}]},
    ]
    if retry_delay is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay})
    return error_body(
        429, "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. For more information on "
        "this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
        details,
    )


@dataclass
class GeminiReply(FakeReply):
    """A FakeReply with the Gemini-only knobs."""

    #: Wire `toolUsePromptTokenCount` (server-side tools), counted as input.
    tool_use_prompt_tokens: int | None = None
    #: `promptFeedback.blockReason`: the prompt is refused with no candidates.
    block_reason: str | None = None
    #: Sign the first functionCall with a thoughtSignature (Gemini 2.5+/3 with thinking).
    thought_signature: bool = True
    #: Also sign the final empty text part (a recorded quirk).
    text_signature: bool = False
    #: Send a body that is not JSON (non-streaming) or a chunk that is not JSON (streaming).
    malformed: bool = False
    #: The in-stream error for `error_after_events`: (code, status, message).
    stream_error: tuple[int, str, str] = (
        500, "INTERNAL", "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    )
    #: Content parts to send instead of rendering text/tool calls (exotic shapes).
    raw_parts: list[dict[str, Any]] | None = None
    finish_message: str | None = None


def _get(d: Any, camel: str, default: Any = None) -> Any:
    """A field by its camelCase or snake_case name (the API accepts both, §4.1)."""
    if not isinstance(d, dict):
        return default
    if camel in d:
        return d[camel]
    snake = "".join("_" + c.lower() if c.isupper() else c for c in camel)
    return d.get(snake, default)


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _b64decode(value: Any) -> bytes | None:
    """Either base64 alphabet, padded or not; None if it is not base64."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    text += "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(text)
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


class _Invalid(Exception):
    def __init__(self, message: str, status: str = "INVALID_ARGUMENT", code: int = 400) -> None:
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


_TOP_FIELDS = {"contents", "tools", "toolConfig", "safetySettings", "systemInstruction", "generationConfig",
               "cachedContent", "model", "labels"}
_GEN_FIELDS = {"stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema", "responseModalities",
               "candidateCount", "maxOutputTokens", "temperature", "topP", "topK", "seed", "presencePenalty",
               "frequencyPenalty", "responseLogprobs", "logprobs", "enableEnhancedCivicAnswers", "speechConfig",
               "thinkingConfig", "mediaResolution", "imageConfig", "_responseJsonSchema"}
_PART_FIELDS = {"text", "inlineData", "fileData", "functionCall", "functionResponse", "thought", "thoughtSignature",
                "executableCode", "codeExecutionResult", "videoMetadata", "partMetadata", "mediaResolution"}
_TOOL_FIELDS = {"functionDeclarations", "function_declarations", "googleSearch", "google_search", "codeExecution",
                "code_execution", "urlContext", "url_context", "googleSearchRetrieval", "google_search_retrieval"}
_SCHEMA_FIELDS = {"type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
                  "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example",
                  "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum"}
_TYPES = {"TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}
_MODES = {"MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"}


def _check_fields(obj: Any, allowed: set[str], where: str) -> None:
    if not isinstance(obj, dict):
        raise _Invalid(f"Invalid JSON payload received. Expected an object at '{where}'.")
    known = allowed | {_snake(a) for a in allowed}
    for key in obj:
        if key not in known:
            raise _Invalid(f'Invalid JSON payload received. Unknown name "{key}" at \'{where}\': Cannot find field.')


def _check_schema(schema: Any, where: str) -> None:
    _check_fields(schema, _SCHEMA_FIELDS, where)
    typ = schema.get("type")
    if typ is not None and str(typ).upper() not in _TYPES:
        raise _Invalid(f"Invalid value at '{where}.type' (type.googleapis.com/google.ai.generativelanguage.v1beta.Type), \"{typ}\"")
    if str(typ).upper() == "OBJECT" and "properties" in schema and not schema["properties"]:
        raise _Invalid(f"* GenerateContentRequest.{where}.properties: should be non-empty for OBJECT type\n")
    for name, sub in (schema.get("properties") or {}).items():
        _check_schema(sub, f"{where}.properties[{name}].value")
    if "items" in schema:
        _check_schema(schema["items"], f"{where}.items")
    for i, sub in enumerate(_get(schema, "anyOf") or ()):
        _check_schema(sub, f"{where}.any_of[{i}]")
    if "enum" in schema and not all(isinstance(v, str) for v in schema["enum"]):
        raise _Invalid(f"Invalid value at '{where}.enum': enum values must be strings")


class GeminiFake(FakeServer):
    """The fake Gemini service. See the module docstring for how to point Synapse at it."""

    name = "gemini"

    def __init__(
        self,
        valid_keys: set[str] | None = None,
        models: list[dict[str, Any]] | None = None,
        max_page_size: int = 1000,
        embedding_dimensions: int = 8,
        require_thought_signatures: bool = False,
    ) -> None:
        super().__init__(valid_keys or {"AIza-test-key-gemini"})
        self.models = list(models if models is not None else DEFAULT_MODELS)
        #: The server's cap on pageSize (the real one is 1000); lower it to force pagination.
        self.max_page_size = max_page_size
        self.embedding_dimensions = embedding_dimensions
        #: batchEmbedContents answers carry usageMetadata (newer API); False answers like the older one.
        self.embed_usage = True
        #: Gemini 3 behaviour: a model functionCall sent back without its signature is a 400.
        self.require_thought_signatures = require_thought_signatures
        self._calls = 0
        #: What the fake answered, newest last: the response body (non-streaming) or the list
        #: of chunks (streaming), so tests can check the mapping from the exact wire values.
        self.sent: list[Any] = []

    def settings(self, **extra: Any) -> dict[str, Any]:
        """The settings that point Synapse at this fake: `configure(**fake.settings())`."""
        return {"gemini_key": sorted(self.valid_keys)[0], "gemini_base_url": self.url, **extra}

    def reset(self) -> None:
        super().reset()
        self.sent.clear()
        self.require_thought_signatures = False
        self.embed_usage = True

    @property
    def key(self) -> str:
        return sorted(self.valid_keys)[0]

    # --- steering helpers for tests ---------------------------------------------------------

    def fail_rate_limited(self, retry_delay: str | None = "0s", retry_after: str | None = None, times: int = 1) -> None:
        headers = {"Retry-After": retry_after} if retry_after is not None else None
        self.fail_next(429, rate_limit_body(retry_delay), headers, times=times)

    def fail_unavailable(self, times: int = 1) -> None:
        self.fail_next(503, error_body(503, "UNAVAILABLE", "The model is overloaded. Please try again later."), times=times)

    def fail_internal(self, times: int = 1) -> None:
        self.fail_next(500, error_body(500, "INTERNAL", "An internal error has occurred. Please retry or report in "
                                       "https://developers.generativeai.google/guide/troubleshooting"), times=times)

    # --- routes -----------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1beta/models", self._list_models),
            web.get("/v1beta/models/{name}", self._get_model),
            web.post("/v1beta/models/{spec}", self._model_method),
        ]

    def _json(self, data: Any, status: int = 200) -> web.Response:
        return web.Response(status=status, body=json.dumps(data, indent=2).encode(),
                            content_type="application/json", charset="UTF-8")

    def _error(self, code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> web.Response:
        return self._json(error_body(code, status, message, details), code)

    def _auth(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            return self._error(
                403, "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API.",
            )
        if key not in self.valid_keys:
            return self._json(bad_key_body(), 400)
        return None

    def _find(self, name: str) -> dict[str, Any] | None:
        return next((m for m in self.models if m["name"] == f"models/{name}"), None)

    async def _list_models(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied:
            return denied
        try:
            size = int(request.query.get("pageSize") or 50)
            start = int(base64.urlsafe_b64decode(request.query["pageToken"]).decode()) if request.query.get("pageToken") else 0
        except (ValueError, binascii.Error):
            return self._error(400, "INVALID_ARGUMENT", "Invalid page token or page size.")
        size = max(1, min(size, 1000, self.max_page_size))
        page = self.models[start : start + size]
        body: dict[str, Any] = {"models": page}
        if start + size < len(self.models):
            body["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        return self._json(body)

    async def _get_model(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied:
            return denied
        model = self._find(request.match_info["name"])
        if model is None:
            return self._error(404, "NOT_FOUND", f"models/{request.match_info['name']} is not found for API version v1beta")
        return self._json(model)

    async def _model_method(self, request: web.Request) -> web.StreamResponse:
        name, _, method = request.match_info["spec"].rpartition(":")
        if not name:
            return self._error(404, "NOT_FOUND", "Method not found.")
        denied = self._auth(request)
        if denied:
            return denied
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError as exc:
            return self._error(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. {exc}")
        model = self._find(name)
        wanted = {"generateContent": "generateContent", "streamGenerateContent": "generateContent",
                  "countTokens": "countTokens", "embedContent": "embedContent",
                  "batchEmbedContents": "embedContent"}.get(method)
        if wanted is None:
            return self._error(404, "NOT_FOUND", f"Method {method} not found.")
        if model is None or wanted not in model["supportedGenerationMethods"]:
            return self._error(
                404, "NOT_FOUND",
                f"models/{name} is not found for API version v1beta, or is not supported for {wanted}. "
                "Call ModelService.ListModels to see the list of available models and their supported methods.",
            )
        try:
            if method in ("embedContent", "batchEmbedContents"):
                return self._embed(name, method, body)
            prompt_tokens = self._validate(body)
            if method == "countTokens":
                return self._json({"totalTokens": prompt_tokens,
                                   "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}]})
            if prompt_tokens > int(model["inputTokenLimit"]):
                raise _Invalid(f"The input token count ({prompt_tokens}) exceeds the maximum number of tokens "
                               f"allowed ({model['inputTokenLimit']}).")
        except _Invalid as bad:
            return self._error(bad.code, bad.status, bad.message)
        reply = self.next_reply() or self._default_reply(body)
        if not isinstance(reply, GeminiReply):
            reply = GeminiReply(**{f: getattr(reply, f) for f in FakeReply.__dataclass_fields__})
        chunks = self._render(name, body, reply, prompt_tokens)
        if method == "generateContent":
            if reply.malformed:
                return web.Response(status=200, body=b'{"candidates": [{"content": {"parts": [{"text": "Hel',
                                    content_type="application/json")
            merged = self._merge(chunks)
            self.sent.append(merged)
            return self._json(merged)
        self.sent.append(chunks)
        return await self._stream(request, reply, chunks)

    # --- request checks ------------------------------------------------------------------------

    def _validate(self, body: dict[str, Any]) -> int:
        """Reject what the real API rejects; return the prompt's token estimate."""
        _check_fields(body, _TOP_FIELDS, "")
        contents = _get(body, "contents")
        if not contents:
            raise _Invalid("* GenerateContentRequest.contents: contents is not specified\n")
        texts: list[str] = []
        system = _get(body, "systemInstruction")
        if system is not None:
            for j, part in enumerate(_get(system, "parts") or ()):
                _check_fields(part, _PART_FIELDS, f"system_instruction.parts[{j}]")
                texts.append(str(_get(part, "text") or ""))
        issued = self._issued_signatures()
        for i, content in enumerate(contents):
            role = _get(content, "role", "user")
            if role not in ("user", "model", "function"):
                raise _Invalid("Please use a valid role: user, model.")
            parts = _get(content, "parts")
            if not parts:
                raise _Invalid(f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n")
            for j, part in enumerate(parts):
                where = f"contents[{i}].parts[{j}]"
                _check_fields(part, _PART_FIELDS, where)
                sig = _get(part, "thoughtSignature")
                if sig is not None:
                    raw = _b64decode(sig)
                    if raw is None:
                        raise _Invalid(f"Invalid value at '{where}.thought_signature' (TYPE_BYTES), Base64 decoding failed for \"{sig}\"")
                    if raw not in issued and raw != DUMMY_SIGNATURE_BYTES:
                        raise _Invalid("Corrupted thought signature.")
                if "text" in part:
                    texts.append(str(part["text"]))
                inline = _get(part, "inlineData")
                if inline is not None:
                    if not _get(inline, "mimeType"):
                        raise _Invalid(f"* GenerateContentRequest.{where}.inline_data.mime_type: must not be empty\n")
                    if _b64decode(_get(inline, "data")) is None:
                        raise _Invalid(f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), Base64 decoding failed")
                    texts.append("x" * 1032)  # an image costs ~258 tokens
                file_data = _get(part, "fileData")
                if file_data is not None and not _get(file_data, "fileUri"):
                    raise _Invalid(f"* GenerateContentRequest.{where}.file_data.file_uri: must not be empty\n")
                call = _get(part, "functionCall")
                if call is not None:
                    if role != "model":
                        raise _Invalid("Please ensure that function call turn comes immediately after a user turn or after a function response turn.")
                    if not _get(call, "name"):
                        raise _Invalid(f"* GenerateContentRequest.{where}.function_call.name: Name cannot be empty.\n")
                    if self.require_thought_signatures and j == self._first_call_index(parts) and sig is None:
                        raise _Invalid(f"Function call is missing a thought_signature in functionCall parts. This is "
                                       f"required for tools to work correctly, and missing thought_signature may lead "
                                       f"to degraded model performance. Additional data, function call "
                                       f"`default_api:{_get(call, 'name')}` , position {j + 1}.")
                    texts.append(json.dumps(call))
                fresp = _get(part, "functionResponse")
                if fresp is not None:
                    if not _get(fresp, "name"):
                        raise _Invalid(f"* GenerateContentRequest.{where}.function_response.name: Name cannot be empty.\n")
                    if not isinstance(_get(fresp, "response"), dict):
                        raise _Invalid(f"Invalid value at '{where}.function_response.response' (type.googleapis.com/google.protobuf.Struct)")
                    texts.append(json.dumps(fresp))
        tools = _get(body, "tools") or []
        names: list[str] = []
        for t, tool in enumerate(tools):
            for key in tool:
                if key not in _TOOL_FIELDS:
                    raise _Invalid(f"Invalid JSON payload received. Unknown name \"{key}\" at 'tools[{t}]': Cannot find field.")
            for d, decl in enumerate(_get(tool, "functionDeclarations") or ()):
                where = f"tools[{t}].function_declarations[{d}]"
                if not _get(decl, "name"):
                    raise _Invalid(f"* GenerateContentRequest.{where}.name: Name cannot be empty.\n")
                names.append(decl["name"])
                if "parameters" in decl:
                    _check_schema(decl["parameters"], f"{where}.parameters")
                texts.append(json.dumps(decl))
        config = _get(_get(body, "toolConfig"), "functionCallingConfig")
        if config is not None:
            mode = _get(config, "mode", "AUTO")
            if mode not in _MODES:
                raise _Invalid(f"Invalid value at 'tool_config.function_calling_config.mode' "
                               f"(type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode), \"{mode}\"")
            for allowed in _get(config, "allowedFunctionNames") or ():
                if allowed not in names:
                    raise _Invalid(f"* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: "
                                   f"Function {allowed} is not declared\n")
        gen = _get(body, "generationConfig")
        if gen is not None:
            _check_fields(gen, _GEN_FIELDS, "generation_config")
            temp = _get(gen, "temperature")
            if temp is not None and not (0 <= float(temp) <= 2):
                raise _Invalid("* GenerateContentRequest.generation_config.temperature: must be in [0.0, 2.0]\n")
            stops = _get(gen, "stopSequences") or []
            if len(stops) > 5:
                raise _Invalid("* GenerateContentRequest.generation_config.stop_sequences: at most 5 stop sequences\n")
        return max(1, estimate_tokens("\n".join(texts)))

    @staticmethod
    def _first_call_index(parts: list[Any]) -> int:
        return next((k for k, p in enumerate(parts) if _get(p, "functionCall") is not None), -1)

    def _issued_signatures(self) -> set[bytes]:
        return {hashlib.sha256(SIGNATURE_BYTES + str(n).encode()).digest()[:24] for n in range(self._calls + 1)} | {
            SIGNATURE_BYTES
        }

    # --- replies ---------------------------------------------------------------------------------

    def _default_reply(self, body: dict[str, Any]) -> GeminiReply:
        last = ""
        for content in reversed(_get(body, "contents") or []):
            if _get(content, "role", "user") == "user":
                texts = [str(p["text"]) for p in _get(content, "parts") or () if isinstance(p, dict) and "text" in p]
                if texts:
                    last = " ".join(texts)
                    break
                if any(_get(p, "functionResponse") is not None for p in _get(content, "parts") or ()):
                    last = "the tool result"
                    break
        return GeminiReply(text=f"Gemini heard: {last.strip()[:200]}")

    def _render(self, model: str, body: dict[str, Any], reply: GeminiReply, prompt_estimate: int) -> list[dict[str, Any]]:
        """The reply as the list of stream chunks (the non-streaming answer is their merge)."""
        self._calls += 1
        gen = _get(body, "generationConfig") or {}
        text = reply.text
        finish = reply.stop_reason
        max_out = _get(gen, "maxOutputTokens")
        for stop in _get(gen, "stopSequences") or ():
            if stop and stop in text:
                text = text[: text.index(stop)]
        if max_out is not None and estimate_tokens(text) > int(max_out) and not reply.tool_calls:
            text = text[: int(max_out) * 4]
            finish = finish or "MAX_TOKENS"
        reasoning_tokens = reply.reasoning_tokens if reply.reasoning_tokens is not None else estimate_tokens(reply.reasoning)
        if reply.output_tokens is not None:
            candidates_tokens = max(0, reply.output_tokens - reasoning_tokens)
        else:
            candidates_tokens = estimate_tokens(text) + sum(estimate_tokens(json.dumps(c.arguments)) + 3 for c in reply.tool_calls)
        cached = reply.cache_read_tokens or 0
        prompt = (reply.input_tokens + cached) if reply.input_tokens is not None else max(prompt_estimate, cached)
        response_id = base64.urlsafe_b64encode(hashlib.sha256(f"{self._calls}:{model}".encode()).digest()[:16]).decode().rstrip("=")
        signature = base64.b64encode(hashlib.sha256(SIGNATURE_BYTES + str(self._calls).encode()).digest()[:24]).decode()

        def usage(candidates: int | None, thoughts: int | None, final: bool) -> dict[str, Any]:
            meta: dict[str, Any] = {"promptTokenCount": prompt}
            if candidates is not None:
                meta["candidatesTokenCount"] = candidates
            total = prompt + (candidates or 0)
            if thoughts:
                meta["thoughtsTokenCount"] = thoughts
                total += thoughts
            if cached and final:
                meta["cachedContentTokenCount"] = cached
                meta["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
            if reply.tool_use_prompt_tokens and final:
                meta["toolUsePromptTokenCount"] = reply.tool_use_prompt_tokens
                total += reply.tool_use_prompt_tokens
            meta["totalTokenCount"] = total
            meta["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
            return meta

        enabled = {k for tool in _get(body, "tools") or [] for k in tool}
        grounding: dict[str, Any] | None = None
        if enabled & {"googleSearch", "google_search"} and reply.search_query:
            # Real grounding chunks point at redirect URLs titled with the site's domain.
            grounding = {
                "searchEntryPoint": {"renderedContent": "<style>.container{}</style><div class=\"container\"></div>"},
                "groundingChunks": [
                    {"web": {"uri": "https://vertexaisearch.cloud.google.com/grounding-api-redirect/"
                                    + base64.urlsafe_b64encode(url.encode()).decode().rstrip("="),
                             "title": url.split("/")[2]}}
                    for url, _ in reply.sources
                ],
                "groundingSupports": [{"segment": {"startIndex": 0, "endIndex": len(text), "text": text},
                                       "groundingChunkIndices": list(range(len(reply.sources)))}],
                "webSearchQueries": [reply.search_query],
            }

        def chunk(parts: list[dict[str, Any]] | None, meta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            out: dict[str, Any] = {}
            if parts is not None or finish_reason:
                cand: dict[str, Any] = {"content": {"parts": parts or [], "role": "model"}}
                if finish_reason:
                    cand["finishReason"] = finish_reason
                    if grounding is not None:
                        cand["groundingMetadata"] = grounding
                    if reply.finish_message:
                        cand["finishMessage"] = reply.finish_message
                cand["index"] = 0
                out["candidates"] = [cand]
            out["usageMetadata"] = meta
            out["modelVersion"] = model
            out["responseId"] = response_id
            return out

        if reply.block_reason:
            return [{"promptFeedback": {"blockReason": reply.block_reason},
                     "usageMetadata": {"promptTokenCount": prompt, "totalTokenCount": prompt},
                     "modelVersion": model, "responseId": response_id}]
        chunks: list[dict[str, Any]] = []
        thoughts = reasoning_tokens or None
        if reply.reasoning:
            chunks.append(chunk([{"text": reply.reasoning, "thought": True}], usage(None, thoughts, False)))
        if reply.raw_parts is not None:
            chunks.append(chunk(reply.raw_parts, usage(candidates_tokens, thoughts, False)))
        if enabled & {"codeExecution", "code_execution"} and reply.code:
            chunks.append(chunk([{"executableCode": {"language": "PYTHON", "code": reply.code}}],
                                usage(candidates_tokens, thoughts, False)))
            chunks.append(chunk([{"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": reply.code_output}}],
                                usage(candidates_tokens, thoughts, False)))
        pieces = _split(text)
        sent = 0
        for piece in pieces:
            sent += len(piece)
            running = min(candidates_tokens, max(1, estimate_tokens(text[:sent])))
            chunks.append(chunk([{"text": piece}], usage(running, thoughts, False)))
        if reply.tool_calls:
            parts = []
            for k, call in enumerate(reply.tool_calls):
                fc: dict[str, Any] = {"name": call.name, "args": call.arguments}
                if call.id:
                    fc["id"] = call.id
                part: dict[str, Any] = {"functionCall": fc}
                if k == 0 and reply.thought_signature:
                    part["thoughtSignature"] = signature
                parts.append(part)
            chunks.append(chunk(parts, usage(candidates_tokens, thoughts, False)))
        final_part: dict[str, Any] = {"text": ""}
        if reply.text_signature:
            final_part["thoughtSignature"] = signature
        chunks.append(chunk([final_part], usage(candidates_tokens, thoughts, True), finish or "STOP"))
        return chunks

    @staticmethod
    def _merge(chunks: list[dict[str, Any]]) -> dict[str, Any]:
        """The non-streaming response: all parts in one candidate, the final usage."""
        last = dict(chunks[-1])
        if "candidates" not in last:
            return last
        parts: list[dict[str, Any]] = []
        for c in chunks:
            for cand in c.get("candidates") or ():
                for p in cand["content"]["parts"]:
                    if p.get("text") == "" and "thoughtSignature" not in p:
                        continue
                    if parts and "text" in p and "text" in parts[-1] and p.get("thought") == parts[-1].get("thought") \
                            and "thoughtSignature" not in p and "thoughtSignature" not in parts[-1]:
                        parts[-1] = {**parts[-1], "text": parts[-1]["text"] + p["text"]}
                    else:
                        parts.append(dict(p))
        cand = dict(last["candidates"][0])
        cand["content"] = {"parts": parts, "role": "model"} if parts else {"role": "model"}
        last["candidates"] = [cand]
        return last

    async def _stream(self, request: web.Request, reply: GeminiReply, chunks: list[dict[str, Any]]) -> web.StreamResponse:
        sse = request.query.get("alt") == "sse"
        resp = web.StreamResponse(status=200, headers={
            "Content-Type": "text/event-stream" if sse else "application/json; charset=UTF-8",
            "Content-Disposition": "attachment",
            "Vary": "Origin, X-Origin, Referer",
        })
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        if not sse:  # one JSON array, streamed (§4.4)
            await resp.write(("[" + ",\r\n".join(json.dumps(c) for c in chunks) + "]").encode())
            await resp.write_eof()
            return resp
        for n, data in enumerate(chunks):
            if reply.break_after_events is not None and n >= reply.break_after_events:
                assert request.transport is not None
                request.transport.close()
                return resp
            if reply.error_after_events is not None and n >= reply.error_after_events:
                code, status, message = reply.stream_error
                await resp.write(json.dumps(error_body(code, status, message), indent=2).encode() + b"\n")
                await resp.write_eof()
                return resp
            if reply.malformed and n == len(chunks) - 1:
                await resp.write(b'data: {"candidates": [{"content": \r\n\r\n')
                continue
            event = b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\r\n\r\n"
            # Split each event across two writes: clients must reassemble (§9).
            cut = max(1, len(event) // 3)
            await resp.write(event[:cut])
            await asyncio.sleep(0)
            await resp.write(event[cut:])
        await resp.write_eof()
        return resp

    # --- embeddings -------------------------------------------------------------------------------

    def _vector(self, text: str) -> list[float]:
        digest = hashlib.sha256(text.encode()).digest()
        return [round((digest[i % len(digest)] - 128) / 128, 6) for i in range(self.embedding_dimensions)]

    def _embed(self, name: str, method: str, body: dict[str, Any]) -> web.Response:
        def text_of(item: Any, where: str) -> str:
            parts = _get(_get(item, "content"), "parts")
            if not parts:
                raise _Invalid(f"* {where}.content.parts: must not be empty\n")
            return " ".join(str(_get(p, "text") or "") for p in parts)

        try:
            if method == "embedContent":
                text, task = text_of(body, "EmbedContentRequest"), _task_type(body, "task_type")
                return self._json({"embedding": {"values": self._vector(f"{task}\x00{text}" if task else text)}})
            requests = _get(body, "requests")
            if not requests:
                raise _Invalid("* BatchEmbedContentsRequest.requests: must not be empty\n")
            if len(requests) > 100:
                raise _Invalid("* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n")
            vectors = []
            tokens = 0
            for i, item in enumerate(requests):
                if _get(item, "model") != f"models/{name}":
                    raise _Invalid(f"* BatchEmbedContentsRequest.requests[{i}].model: the model of every request "
                                   f"must match the batch model models/{name}\n")
                text = text_of(item, f"BatchEmbedContentsRequest.requests[{i}]")
                task = _task_type(item, f"requests[{i}]")
                tokens += estimate_tokens(text)
                # the real model embeds a text differently per task type
                vectors.append({"values": self._vector(f"{task}\x00{text}" if task else text)})
        except _Invalid as bad:
            return self._error(bad.code, bad.status, bad.message)
        if not self.embed_usage:
            return self._json({"embeddings": vectors})
        return self._json({"embeddings": vectors, "usageMetadata": {
            "promptTokenCount": tokens, "promptTokenDetails": [{"modality": "TEXT", "tokenCount": tokens}]}})


#: The TaskType enum of the embedding requests.
TASK_TYPES = frozenset({"TASK_TYPE_UNSPECIFIED", "RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT", "SEMANTIC_SIMILARITY",
                        "CLASSIFICATION", "CLUSTERING", "QUESTION_ANSWERING", "FACT_VERIFICATION",
                        "CODE_RETRIEVAL_QUERY"})


def _task_type(item: Any, where: str) -> str | None:
    """The request's taskType; a value outside the enum fails JSON parsing, as upstream."""
    task = _get(item, "taskType")
    if task is None:
        return None
    if task not in TASK_TYPES:
        field = where if where.endswith("task_type") else f"{where}.task_type"
        raise _Invalid(f"Invalid value at '{field}' (type.googleapis.com/google.ai.generativelanguage.v1beta.TaskType), "
                       f"{json.dumps(task)}")
    return None if task == "TASK_TYPE_UNSPECIFIED" else str(task)


def _split(text: str) -> list[str]:
    """Text in a few stream pieces (Gemini sends larger chunks than OpenAI)."""
    if not text:
        return []
    words = text.split(" ")
    if len(words) < 3:
        return [text]
    third = max(1, len(words) // 3)
    out = [" ".join(words[:third]) + " ", " ".join(words[third : 2 * third]) + " ", " ".join(words[2 * third :])]
    return [p for p in out if p]
