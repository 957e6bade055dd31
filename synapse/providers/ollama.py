"""Ollama's native API: POST /api/chat (NDJSON streaming), GET /api/tags, POST /api/embed.

Wire facts: reference/provider-protocols.md §8.1. Quirks handled here:

* tool-call `arguments` are JSON objects on the wire (not OpenAI's strings), tool calls
  arrive whole (never split across lines), and older servers send no call id, so one
  is synthesised;
* `done_reason` is "stop" even when the model called a tool, so tool calls decide;
* an error after the 200 arrives as an NDJSON line `{"error": "..."}`;
* a local Ollama needs no key and has no prompt-cache counters (§1.1: input is
  `prompt_eval_count`, output is `eval_count`, thinking included, no split reported).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ..embed_mode import EmbedMode
from ..errors import (
    AuthenticationError,
    BadRequestError,
    ConnectionFailedError,
    ContextTooLongError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
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
    StopReason,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolResultPart,
    Usage,
)
from . import transport
from .base import Adapter, looks_like_context_overflow, merge_extra, redact, streamed_chars
from .catalog import ProviderConfig, ProviderSpec
from .routing import resolve
from .transport import dumps, loads

__all__ = ["OllamaAdapter", "build", "decode_response", "encode_request"]

_STOP_REASONS: dict[str, StopReason] = {"stop": "end_turn", "length": "max_tokens"}


def build(spec: ProviderSpec, config: ProviderConfig) -> "OllamaAdapter":
    return OllamaAdapter(spec, config)


# --- encode ---------------------------------------------------------------------------


def _tool_message(part: ToolResultPart) -> dict[str, Any]:
    content = f"Error: {part.content}" if part.is_error else part.content
    msg: dict[str, Any] = {"role": "tool", "content": content, "tool_call_id": part.tool_call_id}
    if part.name:
        msg["tool_name"] = part.name
    return msg


def _encode_message(message: Message, out: list[dict[str, Any]]) -> None:
    """One canonical turn -> one or more Ollama messages (tool results are messages of their own)."""
    role = message.role
    texts: list[str] = []
    images: list[str] = []
    calls: list[dict[str, Any]] = []

    def flush() -> None:
        if not (texts or images or calls):
            return
        # Separate text blocks (or turns the client merged) must not run into each other.
        msg: dict[str, Any] = {"role": role, "content": "\n".join(texts)}
        if images:
            msg["images"] = list(images)
        if calls:
            msg["tool_calls"] = list(calls)
        out.append(msg)
        texts.clear()
        images.clear()
        calls.clear()

    for part in message.content:
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, ImagePart):
            if part.data is None:
                raise BadRequestError(
                    "Ollama takes images inline only: pass the image bytes (or a data: URL), not a web URL",
                    provider="ollama",
                )
            images.append(part.b64())
        elif isinstance(part, ToolCall):
            calls.append({"id": part.id, "function": {"name": part.name, "arguments": part.arguments}})
        elif isinstance(part, ToolResultPart):
            flush()
            out.append(_tool_message(part))
        elif isinstance(part, (ReasoningPart, ServerToolPart)):
            continue  # another API's opaque reasoning or provider-side tool blocks
        else:  # pragma: no cover - a new part type must be handled here
            raise TypeError(f"unsupported message part {type(part).__name__}")
    flush()


def encode_request(req: Request, stream: bool) -> dict[str, Any]:
    """The /api/chat body for a canonical request (pure: no I/O)."""
    messages: list[dict[str, Any]] = []
    if req.system:
        messages.append({"role": "system", "content": "\n\n".join(p.text for p in req.system)})
    for message in req.messages:
        _encode_message(message, messages)
    body: dict[str, Any] = {"model": req.model, "messages": messages, "stream": stream}
    if req.tools and req.tool_choice != "none":  # Ollama has no tool_choice; "none" = send no tools
        body["tools"] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
            }
            for t in req.tools
        ]
    options: dict[str, Any] = {}
    if req.max_tokens is not None:
        options["num_predict"] = req.max_tokens
    if req.temperature is not None:
        options["temperature"] = req.temperature
    if req.stop:
        options["stop"] = list(req.stop)
    if options:
        body["options"] = options
    if req.extra:
        merge_extra(body, req.extra)
    return body


# --- decode ---------------------------------------------------------------------------


def _usage(obj: Mapping[str, Any]) -> Usage:
    """§1.1: Ollama reports no cache counters; eval_count already includes thinking tokens."""
    return Usage(
        input_tokens=int(obj.get("prompt_eval_count") or 0),
        output_tokens=int(obj.get("eval_count") or 0),
    )


def _stop_reason(done_reason: str | None, has_tool_calls: bool) -> StopReason:
    if has_tool_calls:
        return "tool_use"
    if not done_reason:
        return "end_turn"
    return _STOP_REASONS.get(done_reason, "other")


def _tool_calls(raw: Any, start: int = 0) -> list[ToolCall]:
    """Wire tool calls -> ToolCall; ids are synthesised when the server sends none."""
    calls: list[ToolCall] = []
    for i, item in enumerate(raw or (), start):
        fn = item.get("function") if isinstance(item, Mapping) else None
        if not isinstance(fn, Mapping) or not fn.get("name"):
            raise ValueError("a tool call without a function name")
        args = fn.get("arguments")
        if isinstance(args, str):  # a proxy that re-encoded OpenAI style
            args = loads(args) if args.strip() else {}
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise ValueError("tool call arguments are not a JSON object")
        call_id = item.get("id") or f"call_{i}_{uuid.uuid4().hex[:16]}"
        calls.append(ToolCall(str(call_id), str(fn["name"]), args))
    return calls


def decode_response(data: Any, provider: str, model: str) -> Response:
    """A non-streaming /api/chat body -> Response. Raises ValueError on a foreign shape."""
    if not isinstance(data, Mapping) or not isinstance(data.get("message"), Mapping):
        raise ValueError("no message object in the reply")
    msg = data["message"]
    calls = _tool_calls(msg.get("tool_calls"))
    done_reason = data.get("done_reason")
    return Response(
        text=str(msg.get("content") or ""),
        tool_calls=calls,
        stop_reason=_stop_reason(done_reason, bool(calls)),
        usage=_usage(data),
        provider=provider,
        model=str(data.get("model") or model),
        raw_stop_reason=done_reason,
        reasoning=str(msg.get("thinking") or ""),
    )


# --- adapter --------------------------------------------------------------------------


class OllamaAdapter(Adapter):
    """Talks to one Ollama server (`ollama_base_url`, no key locally)."""

    def __init__(self, spec: ProviderSpec, config: ProviderConfig) -> None:
        super().__init__(spec, config)
        base = config.base_url
        self._chat_url = f"{base}/api/chat"
        self._tags_url = f"{base}/api/tags"
        self._embed_url = f"{base}/api/embed"
        headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "synapse"}
        if config.api_key:  # ollama.com or an authenticating proxy; a local server ignores it
            headers["Authorization"] = f"Bearer {config.api_key}"
        self._headers = headers
        self._get_headers = {k: v for k, v in headers.items() if k != "Content-Type"}

    # --- calls -----------------------------------------------------------------------

    async def chat(self, req: Request) -> Response:
        body = dumps(encode_request(req, stream=False))
        result = await self._send("POST", self._chat_url, body)
        data = self._json(result.body)
        if isinstance(data, Mapping) and "error" in data:
            raise self.stream_error(data["error"])
        try:
            return decode_response(data, self.spec.id, req.model)
        except (ValueError, TypeError, AttributeError) as exc:
            raise self.protocol_error(f"/api/chat: {exc}") from None

    async def stream(self, req: Request) -> AsyncIterator[StreamEvent]:
        body = dumps(encode_request(req, stream=True))
        try:
            resp = await transport.open_stream(self, "POST", self._chat_url, headers=self._headers, body=body)
        except ProviderError as err:
            raise self._unreachable(err) from None
        text: list[str] = []
        reasoning: list[str] = []
        calls: list[ToolCall] = []
        req.streamed_so_far = lambda: streamed_chars(text, reasoning, calls=calls)
        final: Mapping[str, Any] | None = None
        async with resp:
            async for obj in transport.iter_ndjson(resp, self):
                if not isinstance(obj, Mapping):
                    raise self.protocol_error("a stream line that is not a JSON object (mid-stream)")
                if "error" in obj:
                    raise self.stream_error(obj["error"], mid_stream=True)
                msg = obj.get("message")
                if isinstance(msg, Mapping):
                    thinking = msg.get("thinking")
                    if thinking:
                        reasoning.append(thinking)
                        yield ReasoningDelta(thinking)
                    content = msg.get("content")
                    if content:
                        text.append(content)
                        yield TextDelta(content)
                    if msg.get("tool_calls"):
                        try:
                            new = _tool_calls(msg["tool_calls"], len(calls))
                        except (ValueError, TypeError, AttributeError) as exc:
                            raise self.protocol_error(f"{exc} (mid-stream)") from None
                        for call in new:
                            yield ToolCallDelta(len(calls), call.id, call.name, dumps(call.arguments).decode())
                            calls.append(call)
                if obj.get("done"):
                    final = obj
                    break
        if final is None:
            raise UpstreamUnavailableError(
                f"{self.spec.label} ended the stream before its final message (mid-stream)", provider=self.spec.id
            )
        done_reason = final.get("done_reason")
        yield ResponseDone(
            Response(
                text="".join(text),
                tool_calls=calls,
                stop_reason=_stop_reason(done_reason, bool(calls)),
                usage=_usage(final),
                provider=self.spec.id,
                model=str(final.get("model") or req.model),
                raw_stop_reason=done_reason,
                reasoning="".join(reasoning),
            )
        )

    async def list_models(self) -> list[ModelInfo]:
        """GET /api/tags (no pagination). Ids are bare names where a bare name routes here."""
        result = await self._send("GET", self._tags_url, None)
        data = self._json(result.body)
        models = data.get("models") if isinstance(data, Mapping) else None
        if not isinstance(models, list):
            raise self.protocol_error("/api/tags has no models list")
        out: list[ModelInfo] = []
        for m in models:
            name = str(m.get("name") or m.get("model") or "") if isinstance(m, Mapping) else ""
            if not name:
                continue
            short = name[: -len(":latest")] if name.endswith(":latest") else name
            # A name like gpt-oss:20b or deepseek-r1:7b would route to a cloud provider bare,
            # and with `mode` cloud or bedrock no bare name comes here.
            bare_ok = self.config.bare_names and resolve(short).spec.id == self.spec.id
            routed = short if bare_ok else self.spec.route_prefix + short
            details = m.get("details") if isinstance(m.get("details"), Mapping) else {}
            family = str(details.get("family") or "")
            embedding = "embed" in name or family.endswith("bert")
            label = " ".join(str(v) for v in (details.get("parameter_size"), details.get("quantization_level")) if v)
            out.append(ModelInfo(routed, self.spec.id, name, label, embedding))
        return out

    async def verify(self) -> list[ModelInfo]:
        return await self.list_models()

    async def embed(self, model: str, texts: list[str], *, mode: EmbedMode | None = None) -> Embeddings:
        body = dumps({"model": model, "input": texts})
        result = await self._send("POST", self._embed_url, body)
        data = self._json(result.body)
        vectors = data.get("embeddings") if isinstance(data, Mapping) else None
        if not isinstance(vectors, list) or len(vectors) != len(texts):
            raise self.protocol_error(f"/api/embed returned no embeddings for the {len(texts)} inputs")
        tokens = data.get("prompt_eval_count")  # the input tokens of all the texts (reference §10)
        return Embeddings(vectors, tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None)

    # --- errors -----------------------------------------------------------------------

    def key_rejected(self) -> str:
        return (
            f"{self.spec.label} at {self.config.base_url} refused the request as unauthorized: "
            "a local Ollama needs no key, so check that ollama_base_url points at your Ollama server"
        )

    def error_from_response(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        detail = redact(self.error_message(body), self.config.api_key)
        label = self.spec.label
        kw: dict[str, Any] = {"provider": self.spec.id, "status": status}
        suffix = f" ({detail})" if detail else ""
        is_json = body[:1] == b"{"
        if status == 404 and not is_json:
            # "404 page not found" from Go's mux: the base URL is wrong (often ends in /v1).
            err = UpstreamUnavailableError(
                f"{label} at {self.config.base_url} has no such endpoint{suffix}: ollama_base_url must be "
                "the server root (e.g. http://127.0.0.1:11434, without /v1 or /api)",
                **kw,
            )
            err.retryable = False
            return err
        if status == 404:
            return NotFoundError(f"{label} does not have that model{suffix}: pull it with `ollama pull <name>`", **kw)
        if status == 401:
            return AuthenticationError(self.key_rejected() + suffix, **kw)
        if status == 403:
            return PermissionDeniedError(f"{label} at {self.config.base_url} refused access{suffix}", **kw)
        return self.error_for_status(status, detail, headers)

    def stream_error(self, error: Any, *, mid_stream: bool = False) -> ProviderError:
        """An `{"error": ...}` object in a 200 reply (an NDJSON line when streaming)."""
        detail = redact(str(error.get("message", error) if isinstance(error, Mapping) else error)[:500], self.config.api_key)
        label = self.spec.label
        kw: dict[str, Any] = {"provider": self.spec.id}
        where = " (mid-stream)" if mid_stream else ""
        if looks_like_context_overflow(detail):
            return ContextTooLongError(f"the prompt is too long for this model at {label} ({detail}){where}", **kw)
        if "not found" in detail:
            return NotFoundError(f"{label} does not have that model ({detail}){where}", **kw)
        return UpstreamUnavailableError(f"{label} reported an error: {detail}{where}", **kw)

    # --- helpers ----------------------------------------------------------------------

    async def _send(self, method: str, url: str, body: bytes | None) -> transport.HttpResult:
        headers = self._headers if body is not None else self._get_headers
        try:
            return await transport.request(self, method, url, headers=headers, body=body)
        except ProviderError as err:
            raise self._unreachable(err) from None

    def _unreachable(self, err: ProviderError) -> ProviderError:
        """A refused connection means Ollama is not running there: say how to fix it."""
        if isinstance(err, ConnectionFailedError):
            reason = err.message.rsplit(": ", 1)[-1].split(" (check", 1)[0]
            return ConnectionFailedError(
                f"Ollama cannot be reached at {self.config.base_url} ({reason}): start it with `ollama serve` "
                "or fix ollama_base_url",
                provider=self.spec.id,
            )
        return err

    def _json(self, body: bytes) -> Any:
        try:
            return loads(body)
        except ValueError:
            raise self.protocol_error(f"a body that is not JSON ({body[:80]!r})") from None
