"""The OpenAI Chat Completions protocol: OpenAI, xAI, DeepSeek, `oaic.` clouds and `locv1.` servers.

One adapter, five catalog entries; provider quirks branch on `spec.id` (reference
provider-protocols.md §3, §5, §7, §8.3/8.4):

* OpenAI: `max_completion_tokens`; o-series and GPT-5 reasoning models take the
  `developer` role and no `temperature`; usage in a last `choices: []` chunk.
* xAI: a bad key is HTTP 400 with `{"code": "...", "error": "<string>"}`.
* DeepSeek: bare-origin base URL, blank lines before non-streaming JSON, `: keep-alive`
  comments, `prompt_cache_hit/miss_tokens`, `reasoning_content` (echoed back on
  assistant tool-call turns), usage on the `finish_reason` chunk, no embeddings.
* `oaic` / `locv1`: configured model names merged with `/models`; `locv1` sends no
  Authorization header without a key and drops `stream_options` for servers that
  reject it. OpenRouter's `/models` is public, so its key is checked at `/key`.

Content shapes: `message.content` (and `delta.content`) is a string on most servers;
Mistral and others send a list of parts (`{"type": "text", "text"}`, `{"type":
"thinking", "thinking": [{"type": "text", "text"}]}`): text parts become text, thinking
parts reasoning. A reply whose only content is something else is an error that names
it, never a silent empty reply. Streamed usage is read from `usage`, or from Groq's
`x_groq.usage`; an `error` object in a 200 stream chunk is the typed error it describes.

Stop sequences: the protocol reports a hit stop sequence as `finish_reason: "stop"`,
exactly like a natural end, so it maps to `end_turn`; only servers that name the
matched string (vLLM `stop_reason`, SGLang `matched_stop`) give `stop_sequence`.
"""

from __future__ import annotations

import base64
import re
import sys
from array import array
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from ..embed_mode import EmbedMode
from ..errors import (
    AuthenticationError,
    BadRequestError,
    ContextTooLongError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderError,
)
from ..types import (
    Embeddings,
    ImagePart,
    Message,
    ModelInfo,
    ReasoningDelta,
    Request,
    Response,
    ResponseDone,
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
from .base import Adapter, looks_like_context_overflow, merge_extra, redact, streamed_chars
from .catalog import ProviderConfig, ProviderSpec
from .routing import resolve
from .transport import dumps, iter_sse, loads, open_stream, parse_retry_after, request

__all__ = ["OpenAIAdapter", "build", "normalise_usage"]

_FINISH: dict[str, StopReason] = {
    "stop": "end_turn",
    "eos": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "content_filter",
}

#: Models that take `developer` instead of `system` and reject `temperature`:
#: o1/o3/o4 (and their dashed forms) and the GPT-5 reasoning models (not gpt-5-chat).
_REASONING_MODEL = re.compile(r"^(?:o[134](?:-|$)|gpt-5(?:\.\d+)?(?:-mini|-nano|-pro)?(?:-\d{4}-\d{2}-\d{2})?$)")
_BAD_KEY = re.compile(
    r"incorrect api key|invalid api key|api key (?:is )?(?:invalid|not valid)|no api key|"
    r"didn't provide an api key|authentication fails",
    re.IGNORECASE,
)
_PROMPT_TOO_LONG = re.compile(r"maximum prompt length|prompt length|context_length_exceeded", re.IGNORECASE)
_OVERLOADED = re.compile(r"overloaded|slow_down|slow down", re.IGNORECASE)
#: OpenRouter's in-stream error when the reply reaches max_tokens (recorded, §7.1).
_TOKEN_LIMIT = re.compile(r"^token limit reached", re.IGNORECASE)
#: Models in an OpenAI/xAI `/models` list that Chat Completions cannot serve.
_NOT_CHAT = re.compile(r"realtime|audio|transcribe|tts|dall-e|whisper|moderation|image|imagine|video|sora|instruct")
#: OpenAI accepts at most 2048 inputs in one embeddings request.
_EMBED_BATCH = 2048


def build(spec: ProviderSpec, config: ProviderConfig) -> "OpenAIAdapter":
    return OpenAIAdapter(spec, config)


# --- usage -------------------------------------------------------------------------


def normalise_usage(u: Mapping[str, Any] | None) -> Usage:
    """Chat Completions usage -> canonical Usage (reference §1.1).

    `prompt_tokens` includes cache reads and writes, so input = prompt - read - write;
    DeepSeek's `prompt_cache_miss_tokens` is the uncached input directly.
    `completion_tokens` already includes `reasoning_tokens`. Read and write are capped
    so that their sum never passes `prompt_tokens` (OpenRouter once reported the same
    tokens as both read and written); `prompt_tokens` is the number to trust.
    """
    if not u:
        return Usage()
    prompt = _int(u.get("prompt_tokens"))
    output = _int(u.get("completion_tokens"))
    ptd = u.get("prompt_tokens_details") or {}
    ctd = u.get("completion_tokens_details") or {}
    reasoning = _int(ctd.get("reasoning_tokens")) if isinstance(ctd, dict) else 0
    if "prompt_cache_hit_tokens" in u or "prompt_cache_miss_tokens" in u:  # DeepSeek
        read = _int(u.get("prompt_cache_hit_tokens"))
        miss = u.get("prompt_cache_miss_tokens")
        uncached = _int(miss) if miss is not None else max(0, prompt - read)
        return Usage(uncached, output, read, 0, reasoning)
    read = _int(ptd.get("cached_tokens")) if isinstance(ptd, dict) else 0
    write = _int(ptd.get("cache_write_tokens")) if isinstance(ptd, dict) else 0
    read = min(read, prompt)
    write = min(write, prompt - read)
    return Usage(prompt - read - write, output, read, write, reasoning)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


# --- the adapter -------------------------------------------------------------------------


class OpenAIAdapter(Adapter):
    """Chat Completions over plain HTTP; one instance per provider configuration."""

    def __init__(self, spec: ProviderSpec, config: ProviderConfig) -> None:
        super().__init__(spec, config)
        base = config.base_url
        self._chat_url = f"{base}/chat/completions"
        self._models_url = f"{base}/models"
        self._embed_url = f"{base}/embeddings"
        auth = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._get_headers = {"Accept": "application/json", **auth}
        self._headers = {"Content-Type": "application/json", **self._get_headers}
        self._openai = spec.id == "openai"
        self._deepseek = spec.id == "deepseek"
        self._openrouter = spec.id == "oaic" and "openrouter.ai" in base
        #: OpenAI's search models take `web_search_options` (others answer 400 for it).
        self.server_tools = frozenset({"web_search"}) if self._openai else frozenset()
        #: Cleared when a local server rejects `stream_options` (remembered per adapter).
        self._stream_usage = True

    def relay_endpoint(self, endpoint: str) -> tuple[str, Mapping[str, str]]:
        """URL and headers for the gateway's same-protocol relay (`chat` only)."""
        if endpoint != "chat":
            raise BadRequestError(f"{self.spec.label} has no {endpoint} endpoint", provider=self.spec.id)
        return self._chat_url, self._headers

    def relay_error(self, data: Mapping[str, Any]) -> ProviderError:
        """The typed error for an error object a relayed stream carried."""
        return self._error(None, data, None)

    @property
    def stream_usage(self) -> bool:
        """Whether this server takes `stream_options.include_usage` (old local servers do not)."""
        return self._stream_usage

    # --- encode ------------------------------------------------------------------------

    def encode(self, req: Request, stream: bool = False) -> dict[str, Any]:
        """The wire body for one request (pure: no I/O)."""
        reasoning_model = self._openai and bool(_REASONING_MODEL.match(req.model))
        messages: list[dict[str, Any]] = []
        if req.system:
            messages.append({
                "role": "developer" if reasoning_model else "system",
                "content": "\n\n".join(p.text for p in req.system),
            })
        for m in req.messages:
            self._encode_message(m, messages)
        body: dict[str, Any] = {"model": req.model, "messages": messages}
        if req.max_tokens is not None:
            body["max_completion_tokens" if self._openai else "max_tokens"] = req.max_tokens
        if req.temperature is not None and not reasoning_model:
            body["temperature"] = req.temperature
        if req.stop:
            body["stop"] = list(req.stop)
        if req.tools:
            body["tools"] = [
                {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
                if t.description
                else {"type": "function", "function": {"name": t.name, "parameters": t.parameters}}
                for t in req.tools
            ]
            if req.tool_choice:
                body["tool_choice"] = (
                    req.tool_choice
                    if req.tool_choice in ("auto", "none", "required")
                    else {"type": "function", "function": {"name": req.tool_choice}}
                )
        for st in req.server_tools:  # only web_search gets here (check_server_tools)
            body["web_search_options"] = st.config
        if stream:
            body["stream"] = True
            if self._stream_usage:
                body["stream_options"] = {"include_usage": True}
        if req.extra:
            merge_extra(body, req.extra)
        return body

    def _encode_message(self, m: Message, out: list[dict[str, Any]]) -> None:
        if m.role == "assistant":
            text = "".join(p.text for p in m.content if isinstance(p, TextPart))
            calls = [p for p in m.content if isinstance(p, ToolCall)]
            msg: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                msg["tool_calls"] = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": dumps(c.arguments).decode()}}
                    for c in calls
                ]
                if self._deepseek:
                    # Thinking-mode tool turns must carry their reasoning back (§7.3).
                    for c in calls:
                        if c.provider_data and c.provider_data.get("reasoning_content"):
                            msg["reasoning_content"] = c.provider_data["reasoning_content"]
                            break
            elif not text:
                return
            out.append(msg)
            return
        # A user turn: tool results become "tool" messages (they must follow the assistant
        # turn directly), then whatever text and images remain become one user message.
        parts: list[dict[str, Any]] = []
        texts: list[str] = []
        for p in m.content:
            if isinstance(p, ToolResultPart):
                out.append({"role": "tool", "tool_call_id": p.tool_call_id, "content": p.content})
            elif isinstance(p, TextPart):
                texts.append(p.text)
                parts.append({"type": "text", "text": p.text})
            elif isinstance(p, ImagePart):
                url = p.url if p.url else f"data:{p.media_type};base64,{p.b64()}"
                parts.append({"type": "image_url", "image_url": {"url": url}})
        if not parts:
            return
        if len(texts) == len(parts) and (len(texts) == 1 or self._deepseek):
            out.append({"role": "user", "content": "\n\n".join(texts)})  # plain string: what every server takes
        else:
            out.append({"role": "user", "content": parts})

    # --- chat --------------------------------------------------------------------------------

    async def chat(self, req: Request) -> Response:
        body = self.encode(req)
        res = await request(self, "POST", self._chat_url, headers=self._headers, body=dumps(body))
        data = self._json(res.body, "the chat completion")  # DeepSeek may send blank lines first
        if not isinstance(data, dict):
            raise self.protocol_error("the chat completion is not a JSON object")
        if data.get("error"):  # some proxies answer 200 with an error body
            raise self._error(None, data, None)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self.protocol_error("the chat completion has no choices")
        choice = choices[0]
        msg = choice.get("message")
        if not isinstance(msg, dict):
            raise self.protocol_error("the chat completion's choice has no message")
        acc = _Accumulator()
        acc.take_message(msg)
        acc.take_finish(choice)
        return acc.response(self, req, data.get("id"), data.get("usage"))

    # --- stream -----------------------------------------------------------------------------

    async def stream(self, req: Request) -> AsyncIterator[StreamEvent]:
        body = self.encode(req, stream=True)
        try:
            resp = await open_stream(self, "POST", self._chat_url, headers=self._headers, body=dumps(body))
        except BadRequestError as err:
            if "stream_options" not in body or self.spec.id not in ("locv1", "oaic") or not _mentions_stream_options(err):
                raise
            self._stream_usage = False  # an older local server: stream without usage from now on
            body.pop("stream_options")
            resp = await open_stream(self, "POST", self._chat_url, headers=self._headers, body=dumps(body))
        acc = _Accumulator()
        req.streamed_so_far = acc.streamed
        done = False
        async with resp:
            async for ev in iter_sse(resp, self):
                data = ev.data
                if data == b"[DONE]":
                    done = True
                    break
                if ev.event == "__raw__":  # not SSE: a bare JSON error object, or garbage
                    raise self._raw_stream_error(data)
                try:
                    chunk = loads(data)
                except ValueError:
                    raise self.protocol_error("a stream event is not JSON") from None
                if not isinstance(chunk, dict):
                    raise self.protocol_error("a stream event is not a JSON object")
                if chunk.get("error") or ev.event == "error":
                    raise self._error(None, chunk, None)
                for event in acc.feed(chunk):
                    yield event
        if not done and acc.finish is None:
            raise self.protocol_error("the stream ended before the reply finished (mid-stream)")
        yield ResponseDone(acc.response(self, req, acc.id, acc.usage))

    def _raw_stream_error(self, data: bytes) -> ProviderError:
        try:
            obj = loads(data)
        except ValueError:
            return self.protocol_error("the stream carried a line that is not server-sent events")
        if isinstance(obj, dict) and obj.get("error"):
            return self._error(None, obj, None)
        return self.protocol_error("the stream carried a line that is not server-sent events")

    # --- models -----------------------------------------------------------------------------

    async def list_models(self) -> list[ModelInfo]:
        configured = self._configured_models()
        try:
            listed = await self._fetch_models()
        except AuthenticationError:
            raise
        except ProviderError:
            if not configured:
                raise
            listed = []  # a server without /models (or down): the names the user gave still work
        return _merge(configured, listed)

    async def verify(self) -> list[ModelInfo]:
        """Check the key: `/models` for most; OpenRouter's `/models` is public, so ask `/key`."""
        if self._openrouter:
            await request(self, "GET", self.config.base_url + "/key", headers=self._get_headers)
        configured = self._configured_models()
        try:
            listed = await self._fetch_models()
        except NotFoundError:
            if not configured:
                raise
            listed = []
        return _merge(configured, listed)

    def _configured_models(self) -> list[ModelInfo]:
        return [self.model_info(m) for m in self.config.models] + [
            self.model_info(m, embedding=True) for m in self.config.embed_models
        ]

    async def _fetch_models(self) -> list[ModelInfo]:
        res = await request(self, "GET", self._models_url, headers=self._get_headers)
        data = self._json(res.body, "the model list")
        items = data if isinstance(data, list) else data.get("data", data.get("models")) if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise self.protocol_error("the model list has no data")
        routed = not self.spec.route_prefix  # openai, xai, deepseek: keep what routes back here
        out: list[ModelInfo] = []
        for item in items:
            mid = item.get("id") or item.get("name") if isinstance(item, dict) else item if isinstance(item, str) else None
            if not isinstance(mid, str) or not mid:
                continue
            kind = item.get("type") if isinstance(item, dict) else None
            embedding = kind == "embedding" or "embed" in mid.lower()
            if routed:
                if _NOT_CHAT.search(mid) or resolve(mid, None, "embed" if embedding else "chat").spec.id != self.spec.id:
                    continue
            label = item.get("display_name") or item.get("name") or "" if isinstance(item, dict) else ""
            out.append(self.model_info(mid, label if isinstance(label, str) and label != mid else "", embedding,
                                       _reads_images(item)))
        return out

    # --- embeddings ---------------------------------------------------------------------------

    async def embed(self, model: str, texts: list[str], *, mode: EmbedMode | None = None) -> Embeddings:
        if self._deepseek:
            raise BadRequestError(
                "DeepSeek offers no embedding models: pick another embedding model "
                "(e.g. text-embedding-3-small) or leave embedding_model empty for the local one",
                provider=self.spec.id,
            )
        out: list[list[float]] = []
        tokens: int | None = None
        for start in range(0, len(texts), _EMBED_BATCH):
            vectors, used = await self._embed_batch(model, texts[start:start + _EMBED_BATCH])
            out.extend(vectors)
            if used is not None:
                tokens = (tokens or 0) + used
        return Embeddings(out, tokens)

    async def _embed_batch(self, model: str, texts: list[str]) -> tuple[list[list[float]], int | None]:
        """One request's vectors and its `usage.prompt_tokens` (reference §3.6)."""
        body: dict[str, Any] = {"model": model, "input": texts}
        if self._openai:
            body["encoding_format"] = "base64"  # a quarter of the bytes of JSON floats
        res = await request(self, "POST", self._embed_url, headers=self._headers, body=dumps(body))
        data = self._json(res.body, "the embeddings")
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list) or len(items) != len(texts):
            raise self.protocol_error(f"expected {len(texts)} embeddings")
        vectors: list[list[float] | None] = [None] * len(texts)
        for pos, item in enumerate(items):
            if not isinstance(item, dict):
                raise self.protocol_error("an embedding is not an object")
            index = item.get("index", pos)
            vec = item.get("embedding")
            if isinstance(vec, str):
                vec = _decode_b64_floats(vec)
            if not isinstance(index, int) or not 0 <= index < len(texts) or not isinstance(vec, list):
                raise self.protocol_error("an embedding has no vector or a bad index")
            vectors[index] = vec
        if any(v is None for v in vectors):
            raise self.protocol_error("an embedding index is missing")
        usage = data.get("usage")
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return vectors, tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None  # type: ignore[return-value]

    # --- errors -------------------------------------------------------------------------------

    def _json(self, body: bytes, what: str) -> Any:
        try:
            return loads(body)
        except ValueError:
            raise self.protocol_error(f"{what} is not JSON") from None

    def error_message(self, body: bytes) -> str:
        try:
            data = loads(body)
        except ValueError:
            return body.decode("utf-8", "replace").strip()[:300]
        return _error_fields(data)[0]

    def error_from_response(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        try:
            data: Any = loads(body)
        except ValueError:
            data = body.decode("utf-8", "replace").strip()[:300]
        return self._error(status, data, headers)

    def _error(self, status: int | None, data: Any, headers: Mapping[str, str] | None) -> ProviderError:
        """Map an error body (HTTP status, or None for an error inside a 200 stream) to a typed error."""
        if status is not None:
            return self._error_kind(status, data, headers)
        # In a 200 stream there was no such HTTP status: say where it happened instead.
        message, code, etype = _error_fields(data)
        if _TOKEN_LIMIT.match(message):  # OpenRouter: the reply hit max_tokens mid-stream (recorded)
            detail = redact(message, self.config.api_key)
            return BadRequestError(f"{self.spec.label} stopped the reply ({detail}): raise max_tokens (mid-stream)",
                                   provider=self.spec.id)
        err = self._error_kind(_status_from_code(code, etype), data, None)
        text = re.sub(r" \(HTTP \d+\)", "", err.message)
        return type(err)(f"{text} (mid-stream)", provider=self.spec.id, request_id=err.request_id)

    def _error_kind(self, status: int, data: Any, headers: Mapping[str, str] | None) -> ProviderError:
        message, code, etype = _error_fields(data)
        detail = redact(message, self.config.api_key)
        label, pid = self.spec.label, self.spec.id
        kw: dict[str, Any] = {"provider": pid, "status": status}
        if headers is not None:
            kw["retry_after"] = parse_retry_after(headers)
            kw["request_id"] = headers.get("x-request-id") or headers.get("request-id")
        suffix = f" ({detail})" if detail else ""
        bad_key = code == "invalid_api_key" or (status in (400, 401, 403) and bool(_BAD_KEY.search(message)))
        if status == 401 or bad_key:
            if not self.config.api_key:
                return AuthenticationError(f"{label} needs a key: set {self.spec.key_setting}{suffix}", **kw)
            return AuthenticationError(self.key_rejected() + suffix, **kw)
        if code == "context_length_exceeded" or (
            status in (400, 403, 413, 422) and (looks_like_context_overflow(message) or _PROMPT_TOO_LONG.search(message))
        ):
            return ContextTooLongError(
                f"the prompt is too long for this model at {label}{suffix}: shorten it or pick a larger model", **kw
            )
        if code == "insufficient_quota" or status == 402:
            where = f": check billing at {self.spec.console_url.split('://', 1)[-1]}" if self.spec.console_url else ""
            # Not retryable (unlike a 429 rate limit): waiting does not add credit.
            return PermissionDeniedError(f"{label} says the account is out of credit or quota{suffix}{where}", **kw)
        if status == 503 and _OVERLOADED.search(f"{message} {code}"):
            return OverloadedError(f"{label} is overloaded{suffix}; try again shortly", **kw)
        if status == 400 and "model not exist" in message.lower():  # DeepSeek's unknown model
            return NotFoundError(f"{label} does not know that model{suffix}", **kw)
        err = self.error_for_status(status, detail, headers)
        blamed = data.get("error") if isinstance(data, dict) else None
        if isinstance(blamed, dict) and isinstance(blamed.get("param"), str):
            err.param = blamed["param"]  # passed on by the gateway's OpenAI shape
        return err


# --- helpers ---------------------------------------------------------------------------------


def _error_fields(data: Any) -> tuple[str, str, str]:
    """(message, code, type) from any error body shape this protocol's servers send.

    OpenAI: {"error": {"message", "type", "code", "param"}}; xAI: {"code": "...", "error": "..."};
    old vLLM: {"object": "error", "message", "type", "code": 400}; OpenRouter: numeric code and
    the upstream's words in error.metadata.raw; FastAPI-style servers: {"detail": ...}.
    """
    if isinstance(data, str):
        return data[:500], "", ""
    if not isinstance(data, dict):
        return str(data)[:300], "", ""
    err = data.get("error")
    if isinstance(err, dict):
        message = str(err.get("message") or "")
        meta = err.get("metadata")
        if isinstance(meta, dict) and isinstance(meta.get("raw"), str) and meta["raw"] not in message:
            message = f"{message}: {meta['raw']}" if message else meta["raw"]
        return message[:500], _code(err.get("code")), str(err.get("type") or "")
    if isinstance(err, str):
        return err[:500], _code(data.get("code")), str(data.get("type") or "")
    message = data.get("message") or data.get("detail") or ""
    if not isinstance(message, str):
        message = str(message)
    return message[:500], _code(data.get("code")), str(data.get("type") or "")


def _code(value: Any) -> str:
    return str(value) if value is not None else ""


def _status_from_code(code: str, etype: str) -> int:
    """An HTTP-like status for an error that arrived inside a 200 stream."""
    if code.isdigit():
        return int(code)
    words = f"{code} {etype}".lower()
    if "rate_limit" in words or etype in ("tokens", "requests"):
        return 429
    if "overloaded" in words or "slow_down" in words:
        return 529
    if "invalid_api_key" in words or "authentication" in words:
        return 401
    if "context_length" in words or "invalid_request" in words:
        return 400
    if "not_found" in words:
        return 404
    return 500


def _mentions_stream_options(err: ProviderError) -> bool:
    text = err.message.lower()
    return "stream_options" in text or "include_usage" in text


def _reads_images(item: Any) -> bool | None:
    """OpenRouter's list says what a model reads: `architecture.input_modalities` (reference §7.1)."""
    arch = item.get("architecture") if isinstance(item, dict) else None
    inputs = arch.get("input_modalities") if isinstance(arch, dict) else None
    return "image" in inputs if isinstance(inputs, list) and inputs else None


def _merge(first: list[ModelInfo], second: list[ModelInfo]) -> list[ModelInfo]:
    seen: dict[tuple[str, bool], ModelInfo] = {}
    out: list[ModelInfo] = []
    for m in (*first, *second):
        key = (m.upstream_id, m.embedding)
        if key not in seen:
            seen[key] = m
            out.append(m)
        elif seen[key].images is None:  # a configured name: what the list says about it
            seen[key].images = m.images
    return out


def _decode_b64_floats(text: str) -> list[float]:
    values = array("f")
    values.frombytes(base64.b64decode(text))
    if sys.byteorder != "little":  # the wire is little-endian float32
        values.byteswap()
    return values.tolist()


def _parse_arguments(adapter: Adapter, raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):  # a few servers send the object itself
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if not isinstance(raw, str):
        raise adapter.protocol_error("tool call arguments are neither a string nor an object")
    try:
        value = loads(raw)
    except ValueError:
        raise adapter.protocol_error("tool call arguments are not valid JSON") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise adapter.protocol_error("tool call arguments are not a JSON object")
    return value


class _ToolSlot:
    __slots__ = ("id", "name", "args")

    def __init__(self, id: str, name: str) -> None:
        self.id = id
        self.name = name
        self.args: list[str] = []


#: Content parts that carry nothing to show (Mistral's citation references).
_SILENT_PARTS = frozenset({"reference"})


def content_pieces(content: Any, unknown: list[str]) -> Iterator[tuple[bool, str]]:
    """(is_reasoning, text) pieces of a message or delta `content`: a string, or a list of
    text / thinking parts. What is neither is named in `unknown`."""
    if content is None:
        return
    if isinstance(content, str):
        if content:
            yield False, content
        return
    if not isinstance(content, list):
        unknown.append(f"content of type {type(content).__name__}")
        return
    for part in content:
        if isinstance(part, str):  # a bare string in the list: text
            if part:
                yield False, part
            continue
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "output_text") and isinstance(part.get("text"), str):
            if part["text"]:
                yield False, part["text"]
        elif kind in ("thinking", "reasoning"):
            inner = part.get("thinking", part.get("text", part.get("reasoning")))
            for piece in inner if isinstance(inner, list) else [inner]:
                text = piece.get("text") if isinstance(piece, dict) else piece
                if isinstance(text, str) and text:
                    yield True, text
        elif kind not in _SILENT_PARTS:
            unknown.append(f"{kind!r} part" if isinstance(kind, str) else "a part without a type")


class _Accumulator:
    """Collects text, reasoning, tool calls, finish and usage; shared by chat and stream."""

    __slots__ = ("text", "reasoning", "refusal", "tools", "alias", "finish", "matched_stop", "usage", "id", "unknown",
                 "citations")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        self.tools: list[_ToolSlot] = []
        self.alias: dict[int, int] = {}  # the server's tool index -> ours
        self.finish: str | None = None
        self.matched_stop: str | None = None
        self.usage: Mapping[str, Any] | None = None
        self.id: str | None = None
        #: Content this module does not understand, named for the error.
        self.unknown: list[str] = []
        #: url_citation annotations (OpenAI's search models), by URL.
        self.citations: dict[str, Source] = {}

    def streamed(self) -> tuple[int, int]:
        """(output characters, the reasoning part) so far: for a stream cut short (Request.streamed_so_far)."""
        return streamed_chars((*self.text, *self.refusal, *(t.name for t in self.tools)), self.reasoning,
                              (a for t in self.tools for a in t.args))

    def take_annotations(self, annotations: Any) -> None:
        for ann in annotations or ():
            cite = ann.get("url_citation") if isinstance(ann, dict) else None
            if isinstance(cite, dict) and cite.get("url") and cite["url"] not in self.citations:
                self.citations[cite["url"]] = Source(str(cite["url"]), str(cite.get("title") or ""))

    def take_message(self, msg: Mapping[str, Any]) -> None:
        for is_reasoning, piece in content_pieces(msg.get("content"), self.unknown):
            (self.reasoning if is_reasoning else self.text).append(piece)
        self.take_annotations(msg.get("annotations"))
        reasoning = msg.get("reasoning_content") or msg.get("reasoning")
        if isinstance(reasoning, str):
            self.reasoning.append(reasoning)
        refusal = msg.get("refusal")
        if isinstance(refusal, str):
            self.refusal.append(refusal)
        for pos, call in enumerate(msg.get("tool_calls") or ()):
            if not isinstance(call, dict):
                continue
            fn = call.get("function") or {}
            slot = _ToolSlot(str(call.get("id") or f"call_{pos}"), str(fn.get("name") or ""))
            args = fn.get("arguments")
            slot.args.append(args if isinstance(args, str) else dumps(args).decode() if args is not None else "")
            self.tools.append(slot)

    def take_finish(self, choice: Mapping[str, Any]) -> None:
        finish = choice.get("finish_reason")
        if isinstance(finish, str) and finish:
            self.finish = finish
        matched = choice.get("stop_reason", choice.get("matched_stop"))
        if isinstance(matched, str):
            self.matched_stop = matched

    def feed(self, chunk: Mapping[str, Any]) -> Iterator[StreamEvent]:
        if self.id is None:
            self.id = chunk.get("id")
        usage = chunk.get("usage")
        if not usage:
            groq = chunk.get("x_groq")  # Groq puts streamed usage here, on the last chunk
            usage = groq.get("usage") if isinstance(groq, dict) else None
        if usage:
            self.usage = usage
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict) and delta:
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                if isinstance(reasoning, str) and reasoning:
                    self.reasoning.append(reasoning)
                    yield ReasoningDelta(reasoning)
                for is_reasoning, piece in content_pieces(delta.get("content"), self.unknown):
                    if is_reasoning:
                        self.reasoning.append(piece)
                        yield ReasoningDelta(piece)
                    else:
                        self.text.append(piece)
                        yield TextDelta(piece)
                refusal = delta.get("refusal")
                if isinstance(refusal, str) and refusal:
                    self.refusal.append(refusal)
                    yield TextDelta(refusal)
                self.take_annotations(delta.get("annotations"))
                calls = delta.get("tool_calls")
                if calls:
                    yield from self._feed_tools(calls)
            self.take_finish(choice)

    def _feed_tools(self, calls: Any) -> Iterator[ToolCallDelta]:
        for pos, call in enumerate(calls):
            if not isinstance(call, dict):
                continue
            server_index = call.get("index", pos)
            fn = call.get("function") or {}
            args = fn.get("arguments") or ""
            if not isinstance(args, str):
                args = dumps(args).decode()
            call_id = call.get("id")
            ours = self.alias.get(server_index)
            slot = self.tools[ours] if ours is not None else None
            if ours is None or slot is None or (call_id and slot.id and call_id != slot.id):
                # A new call (or a server that reuses index 0 for the next call).
                ours = len(self.tools)
                self.alias[server_index] = ours
                slot = _ToolSlot(str(call_id or f"call_{ours}"), str(fn.get("name") or ""))
                self.tools.append(slot)
                slot.args.append(args)
                yield ToolCallDelta(ours, slot.id, slot.name, args)
                continue
            if not slot.name and fn.get("name"):
                slot.name = str(fn["name"])
            if args:
                slot.args.append(args)
                yield ToolCallDelta(ours, None, None, args)

    def response(self, adapter: OpenAIAdapter, req: Request, rid: Any, usage: Any) -> Response:
        calls = [ToolCall(s.id, s.name, _parse_arguments(adapter, "".join(s.args))) for s in self.tools]
        reasoning = "".join(self.reasoning)
        if adapter._deepseek and calls and reasoning:
            calls[0].provider_data = {"reasoning_content": reasoning}
        text = "".join(self.text)
        raw = self.finish
        stop: StopReason = _FINISH.get(raw or "", "other")
        if calls and stop in ("end_turn", "other"):
            stop = "tool_use"  # local servers often say "stop" after a tool call
        elif raw == "stop" and self.matched_stop is not None and self.matched_stop in req.stop:
            stop = "stop_sequence"
        elif self.refusal and not text:
            stop = "content_filter"
        if not text and self.refusal:
            text = "".join(self.refusal)
        if not text and not calls and self.unknown:
            raise adapter.protocol_error(
                f"the reply holds only content Synapse does not understand ({', '.join(dict.fromkeys(self.unknown))})"
            )
        counted = normalise_usage(usage if isinstance(usage, dict) else None)
        if self.citations and req.server_tools:
            counted.server_tool_use = {"web_search": 1}  # a search model's call searched
        return Response(
            text=text,
            tool_calls=calls,
            stop_reason=stop,
            usage=counted,
            provider=adapter.spec.id,
            model=req.model,
            raw_stop_reason=raw,
            reasoning=reasoning,
            id=rid if isinstance(rid, str) else None,
            citations=list(self.citations.values()),
        )
