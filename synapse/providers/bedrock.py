"""AWS Bedrock: Converse / ConverseStream, the control plane, Titan embeddings.

Settings (resolved by the catalog into `ProviderConfig`):

* `bedrock_api_key` -> `Authorization: Bearer <key>`. Without a key, SigV4 with the
  `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` credentials
  (signing name `bedrock`, region `aws_region`); botocore is imported only then.
* `aws_region` picks the regional hosts; `bedrock_runtime_url` / `bedrock_control_url`
  override them (`config.base_url`, `config.control_url`).
* `bedrock_inference_profile` is applied by routing (the upstream model is the profile).

Wire facts: reference/provider-protocols.md §6. Model ids go into the path
percent-encoded (`:` -> `%3A`, `/` in ARNs -> `%2F`), and the URL is handed to aiohttp
as already encoded so it is sent (and signed) byte for byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

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
from .base import Adapter, looks_like_context_overflow, merge_extra, redact, streamed_chars
from .catalog import ProviderConfig, ProviderSpec
from .eventstream import EventStreamDecoder, EventStreamError, EventStreamMessage
from .transport import iter_chunks, open_stream, parse_retry_after, request

__all__ = ["BedrockAdapter", "build"]

_dumps = orjson.dumps
_loads = orjson.loads

#: Bedrock (for Claude) takes at most four cache checkpoints per request (§6.9).
MAX_CACHE_POINTS = 4
_CACHE_POINT: dict[str, Any] = {"cachePoint": {"type": "default"}}

_STOP_REASONS: dict[str, StopReason] = {
    "end_turn": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    # the reply ran into the end of the context window: it was cut short
    "model_context_window_exceeded": "max_tokens",
}

_IMAGE_FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "gif": "gif", "webp": "webp"}

#: Error types that mean "these credentials are not valid" (as opposed to "no access").
_AUTH_ERROR_TYPES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
    }
)
_AUTH_PHRASES = (
    "authentication failed",
    "security token included in the request is invalid",
    "signature we calculated does not match",
    "api key is valid",
    "invalid api key",
    "missing authentication token",
    "token has expired",
    "bearer token",
)


def build(spec: ProviderSpec, config: ProviderConfig) -> "BedrockAdapter":
    return BedrockAdapter(spec, config)


def _stop_reason(raw: str | None) -> StopReason:
    return _STOP_REASONS.get(raw or "", "other")


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _usage(u: Mapping[str, Any] | None) -> Usage:
    """TokenUsage -> canonical Usage. `inputTokens` is already the uncached part (§1.1)."""
    if not u:
        return Usage()
    read = u.get("cacheReadInputTokens")
    if read is None:
        read = u.get("cacheReadInputTokenCount")
    write = u.get("cacheWriteInputTokens")
    if write is None:
        write = u.get("cacheWriteInputTokenCount")
    return Usage(
        input_tokens=_int(u.get("inputTokens")),
        output_tokens=_int(u.get("outputTokens")),
        cache_read_tokens=_int(read),
        cache_write_tokens=_int(write),
    )


def _error_type(headers: Mapping[str, str]) -> str:
    """`x-amzn-ErrorType: ThrottlingException:http://internal...` -> `ThrottlingException`."""
    raw = headers.get("x-amzn-ErrorType") or headers.get("x-amzn-errortype") or ""
    return raw.split(":", 1)[0].rsplit("#", 1)[-1].strip()


def _model_path(model: str) -> str:
    return quote(model, safe="")


#: Where a reply's reasoning blocks ride on its first ToolCall, to be sent back.
_REASONING_KEY = "bedrock_reasoning"


def _reasoning_block(b: dict[str, Any]) -> dict[str, Any]:
    """A streamed reasoning block, reassembled as Converse returns it whole."""
    if b["redacted"]:
        return {"reasoningContent": {"redactedContent": b["redacted"]}}
    text: dict[str, Any] = {"text": "".join(b["text"])}
    if b["signature"]:
        text["signature"] = b["signature"]
    return {"reasoningContent": {"reasoningText": text}}


def _attach_reasoning(calls: list[ToolCall], blocks: list[dict[str, Any]]) -> None:
    """Claude with extended thinking and tools needs the turn's reasoning blocks (with their
    signatures) back before its toolUse blocks; keep them on the first call (like anthropic.py)."""
    if calls and blocks:
        calls[0].provider_data = {**(calls[0].provider_data or {}), _REASONING_KEY: blocks}


class BedrockAdapter(Adapter):
    """Bedrock Runtime (Converse, ConverseStream, InvokeModel) and control plane."""

    def __init__(self, spec: ProviderSpec, config: ProviderConfig) -> None:
        super().__init__(spec, config)
        self._runtime = config.base_url.rstrip("/")
        self._control = (config.control_url or config.base_url).rstrip("/")
        self._region = config.region or "us-east-1"
        self._signer: Any = None
        self._secrets: tuple[str, ...] = (config.api_key,)
        auth: dict[str, str] = {}
        if config.api_key:
            auth["Authorization"] = f"Bearer {config.api_key}"
        elif config.aws_credentials:
            from botocore.auth import SigV4Auth  # only on the SigV4 path
            from botocore.credentials import Credentials

            access, secret, token = config.aws_credentials
            self._signer = SigV4Auth(Credentials(access, secret, token or None), "bedrock", self._region)
            self._secrets = (secret, token)
        self._json_headers = {**auth, "Content-Type": "application/json", "Accept": "application/json"}
        self._stream_headers = {
            **auth,
            "Content-Type": "application/json",
            "Accept": "application/vnd.amazon.eventstream",
        }
        self._get_headers = {**auth, "Accept": "application/json"}
        # URL prefixes per model: the quoting is done once per model id, not per call.
        self._url_cache: dict[tuple[str, str], URL] = {}

    # --- HTTP ---------------------------------------------------------------------------

    def _runtime_url(self, model: str, op: str) -> URL:
        key = (model, op)
        url = self._url_cache.get(key)
        if url is None:
            url = URL(f"{self._runtime}/model/{_model_path(model)}/{op}", encoded=True)
            if len(self._url_cache) > 256:
                self._url_cache.clear()
            self._url_cache[key] = url
        return url

    def _control_url(self, path: str, query: Mapping[str, str] | None = None) -> URL:
        qs = ""
        if query:
            # Encoded strictly (RFC 3986 unreserved only) so the SigV4 canonical query matches.
            qs = "?" + "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items()))
        return URL(f"{self._control}{path}{qs}", encoded=True)

    def _sign(self, method: str, url: URL, headers: Mapping[str, str], body: bytes | None) -> dict[str, str]:
        from botocore.awsrequest import AWSRequest

        req = AWSRequest(method=method, url=str(url), data=body or b"", headers=dict(headers))
        self._signer.add_auth(req)
        return dict(req.headers.items())

    async def _send(
        self, method: str, url: URL, headers: Mapping[str, str], body: bytes | None = None, *, stream: bool = False
    ) -> Any:
        """An already-encoded URL through the shared transport, SigV4-signed afresh on each attempt."""
        sign = self._sign if self._signer is not None else None
        if stream:
            return await open_stream(self, method, url, headers=headers, body=body, sign=sign)
        return await request(self, method, url, headers=headers, body=body, sign=sign)

    async def _get_json(self, url: URL) -> Any:
        result = await self._send("GET", url, self._get_headers)
        try:
            return _loads(result.body)
        except orjson.JSONDecodeError:
            raise self.protocol_error("the control-plane answer is not JSON") from None

    # --- errors -------------------------------------------------------------------------

    def error_message(self, body: bytes) -> str:
        try:
            data = _loads(body)
        except orjson.JSONDecodeError:
            return body.decode("utf-8", "replace").strip()[:300]
        if isinstance(data, dict):
            msg = data.get("message") or data.get("Message")
            if msg:
                return str(msg)[:500]
        return super().error_message(body)

    def _key_rejected(self) -> str:
        if self._signer is not None:
            return (
                f"{self.spec.label} rejected the AWS credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY: "
                "check them in the IAM console, or set bedrock_api_key instead"
            )
        return self.key_rejected()

    def error_from_response(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        detail = redact(self.error_message(body), *self._secrets)
        return self._error(status, _error_type(headers), detail, headers)

    def _error(
        self, status: int | None, etype: str, detail: str, headers: Mapping[str, str] | None = None
    ) -> ProviderError:
        """A typed error from a Bedrock error type (header or `:exception-type`) and its message."""
        label, pid = self.spec.label, self.spec.id
        kw: dict[str, Any] = {"provider": pid, "status": status}
        if headers is not None:
            kw["retry_after"] = parse_retry_after(headers)
            kw["request_id"] = headers.get("x-amzn-RequestId") or headers.get("x-amzn-requestid")
        suffix = f" ({detail})" if detail else ""
        t = etype[:1].upper() + etype[1:]  # event-stream types are camelCase: throttlingException
        low = detail.lower()
        if t in _AUTH_ERROR_TYPES or status == 401 or (
            status == 403 and any(p in low for p in _AUTH_PHRASES)
        ):
            return AuthenticationError(self._key_rejected() + suffix, **kw)
        if (t == "AccessDeniedException" or status == 403) and "not authorized to perform" in low:
            return PermissionDeniedError(
                f"{label} refused access{suffix}: the IAM policy behind this key must allow that action", **kw
            )
        if t == "AccessDeniedException" or status == 403:
            return PermissionDeniedError(
                f"{label} refused access{suffix}: request access to this model in region {self._region} "
                "(Bedrock console → Model access), or use an inference profile that serves it",
                **kw,
            )
        if t == "ServiceQuotaExceededException":
            return BadRequestError(f"{label}: a service quota is exhausted{suffix}; raise it in Service Quotas", **kw)
        if looks_like_context_overflow(detail) and (t == "ValidationException" or (not t and status in (400, 413))):
            return ContextTooLongError(
                f"the prompt is too long for this model at {label}{suffix}: shorten it or pick a larger model", **kw
            )
        if t == "ValidationException" and "model identifier is invalid" in low:
            return NotFoundError(
                f"{label} does not know that model id in region {self._region}{suffix}: "
                "see `synapse models` for the ids and inference profiles you can use",
                **kw,
            )
        if t == "ResourceNotFoundException" or status == 404:
            return NotFoundError(f"{label} does not know that model or resource{suffix}", **kw)
        if t == "ThrottlingException" or (status == 429 and t != "ModelNotReadyException"):
            wait = kw.get("retry_after")
            hint = f"; retry in {wait:g} s" if wait is not None else "; slow down or raise your Bedrock quotas"
            return RateLimitError(f"{label} rate limit reached{suffix}{hint}", **kw)
        if t in ("ServiceUnavailableException", "ModelNotReadyException") or status in (503, 529):
            return OverloadedError(f"{label} is overloaded or the model is not ready{suffix}; try again shortly", **kw)
        if t == "ModelTimeoutException" or status in (408, 504):
            return ProviderTimeoutError(f"{label}: the model timed out{suffix}; try again", **kw)
        if t in ("ModelStreamErrorException", "ModelErrorException", "InternalServerException") or (
            status is not None and (status >= 500 or status == 424)
        ):
            what = "the model failed" if t.startswith("Model") or status == 424 else "had a server error"
            return UpstreamUnavailableError(f"{label}: {what}{suffix}; try again", **kw)
        if t in ("ValidationException", "ConflictException"):
            return BadRequestError(f"{label} rejected the request{suffix}", **kw)
        if status is None:
            return UpstreamUnavailableError(f"{label} reported {etype or 'an error'}{suffix}", **kw)
        return BadRequestError(f"{label} rejected the request (HTTP {status}{', ' + t if t else ''}){suffix}", **kw)

    # --- request encoding ---------------------------------------------------------------------

    def encode(self, req: Request) -> dict[str, Any]:
        """The Converse request body (shared by converse and converse-stream)."""
        wanted = sum(1 for t in req.tools if t.cache) + sum(1 for p in req.system if p.cache)
        wanted += sum(1 for m in req.messages for p in m.content if p.cache)
        if wanted > MAX_CACHE_POINTS:
            # keep the first three (the stable tools/system prefix) and the last (the moving end)
            keep = {0, 1, 2, wanted - 1}
        else:
            keep = None
        counter = 0

        def mark(out: list[Any]) -> None:
            nonlocal counter
            if keep is None or counter in keep:
                out.append(_CACHE_POINT)
            counter += 1

        body: dict[str, Any] = {}
        has_tool_blocks = False
        messages: list[dict[str, Any]] = []
        system: list[dict[str, Any]] = []
        tools: list[dict[str, Any]] = []
        for t in req.tools:
            tools.append(
                {
                    "toolSpec": {
                        "name": t.name,
                        "description": t.description or t.name,
                        "inputSchema": {"json": t.parameters or {"type": "object", "properties": {}}},
                    }
                }
            )
            if t.cache:
                mark(tools)
        for s in req.system:
            if s.text:
                system.append({"text": s.text})
            if s.cache:
                mark(system)
        for m in req.messages:
            content: list[dict[str, Any]] = []
            for p in m.content:
                if isinstance(p, TextPart):
                    if p.text or len(m.content) == 1:
                        content.append({"text": p.text})
                elif isinstance(p, ToolCall):
                    has_tool_blocks = True
                    reasoning = (p.provider_data or {}).get(_REASONING_KEY)
                    if reasoning:  # Claude thinking: must open the turn, signature intact
                        content[0:0] = [dict(b) for b in reasoning]
                    content.append({"toolUse": {"toolUseId": p.id, "name": p.name, "input": p.arguments}})
                elif isinstance(p, ToolResultPart):
                    has_tool_blocks = True
                    content.append(
                        {
                            "toolResult": {
                                "toolUseId": p.tool_call_id,
                                "content": [{"text": p.content}],
                                "status": "error" if p.is_error else "success",
                            }
                        }
                    )
                elif isinstance(p, ImagePart):
                    content.append(self._image(p))
                elif isinstance(p, (ReasoningPart, ServerToolPart)):
                    continue  # another API's opaque reasoning or provider-side tool blocks
                else:  # pragma: no cover - the canonical types are closed
                    raise BadRequestError(f"{self.spec.label} cannot send a {type(p).__name__}", provider=self.spec.id)
                if p.cache:
                    mark(content)
            messages.append({"role": m.role, "content": content})
        body["messages"] = messages
        if system:
            body["system"] = system
        if tools and (req.tool_choice != "none" or has_tool_blocks):
            config: dict[str, Any] = {"tools": tools}
            choice = req.tool_choice
            if choice == "auto":
                config["toolChoice"] = {"auto": {}}
            elif choice in ("required", "any"):
                config["toolChoice"] = {"any": {}}
            elif choice and choice != "none":
                config["toolChoice"] = {"tool": {"name": choice}}
            body["toolConfig"] = config
        inference: dict[str, Any] = {}
        if req.max_tokens is not None:
            inference["maxTokens"] = req.max_tokens
        if req.temperature is not None:
            inference["temperature"] = req.temperature
        if req.stop:
            inference["stopSequences"] = list(req.stop)
        if inference:
            body["inferenceConfig"] = inference
        merge_extra(body, req.extra)
        return body

    def _image(self, p: ImagePart) -> dict[str, Any]:
        fmt = _IMAGE_FORMATS.get(p.media_type.rsplit("/", 1)[-1].lower())
        if fmt is None:
            raise BadRequestError(
                f"{self.spec.label} takes png, jpeg, gif or webp images, not {p.media_type}", provider=self.spec.id
            )
        if p.data is not None:
            return {"image": {"format": fmt, "source": {"bytes": p.b64()}}}
        if p.url and p.url.startswith("s3://"):
            return {"image": {"format": fmt, "source": {"s3Location": {"uri": p.url}}}}
        raise BadRequestError(
            f"{self.spec.label} takes images inline or from s3://, not from {p.url!r}: pass the image bytes",
            provider=self.spec.id,
        )

    # --- chat -----------------------------------------------------------------------------------

    async def chat(self, req: Request) -> Response:
        body = _dumps(self.encode(req))
        result = await self._send("POST", self._runtime_url(req.model, "converse"), self._json_headers, body)
        try:
            data = _loads(result.body)
            return self._decode(data, req.model, result.headers.get("x-amzn-RequestId"))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
            raise self.protocol_error("the Converse answer is not a ConverseResponse") from None

    def _decode(self, data: dict[str, Any], model: str, request_id: str | None) -> Response:
        text: list[str] = []
        reasoning: list[str] = []
        blocks: list[dict[str, Any]] = []
        calls: list[ToolCall] = []
        for block in data["output"]["message"]["content"]:
            if "text" in block:
                text.append(block["text"])
            elif "toolUse" in block:
                tu = block["toolUse"]
                args = tu.get("input")
                if args is None:
                    args = {}
                if not isinstance(args, dict):
                    raise ValueError("tool input is not an object")
                calls.append(ToolCall(tu["toolUseId"], tu["name"], args))
            elif "reasoningContent" in block:
                blocks.append(block)
                rt = block["reasoningContent"].get("reasoningText")
                if rt and rt.get("text"):
                    reasoning.append(rt["text"])
        _attach_reasoning(calls, blocks)
        raw = data["stopReason"]
        return Response(
            text="".join(text),
            tool_calls=calls,
            stop_reason=_stop_reason(raw),
            usage=_usage(data["usage"]),
            provider=self.spec.id,
            model=model,
            raw_stop_reason=raw,
            reasoning="".join(reasoning),
            id=request_id,
        )

    async def stream(self, req: Request) -> AsyncIterator[StreamEvent]:
        body = _dumps(self.encode(req))
        url = self._runtime_url(req.model, "converse-stream")
        resp: aiohttp.ClientResponse = await self._send("POST", url, self._stream_headers, body, stream=True)
        request_id = resp.headers.get("x-amzn-RequestId")
        text: list[str] = []
        reasoning: list[str] = []
        # contentBlockIndex -> [tool ordinal, id, name, argument fragments]
        tools: dict[int, list[Any]] = {}
        # contentBlockIndex -> reasoning text pieces, signature, redacted content (Claude thinking)
        thinking: dict[int, dict[str, Any]] = {}
        raw_stop: str | None = None
        usage: Usage | None = None
        req.streamed_so_far = lambda: streamed_chars((*text, *(e[2] or "" for e in tools.values())), reasoning,
                                                     (f for e in tools.values() for f in e[3]))
        decoder = EventStreamDecoder()
        try:
            async for frame in self._frames(resp, decoder):
                mtype = frame.headers.get(":message-type")
                if mtype != "event":
                    raise self._stream_error(frame)
                etype = frame.headers.get(":event-type")
                try:
                    ev = _loads(frame.payload)
                except orjson.JSONDecodeError:
                    raise self.protocol_error(f"a {etype} event is not JSON") from None
                if etype == "contentBlockDelta":
                    delta = ev.get("delta") or {}
                    if "text" in delta:
                        piece = delta["text"]
                        if piece:
                            text.append(piece)
                            yield TextDelta(piece)
                    elif "toolUse" in delta:
                        idx = ev.get("contentBlockIndex", 0)
                        entry = tools.get(idx)
                        if entry is None:
                            raise self.protocol_error("tool input arrived before its contentBlockStart")
                        frag = delta["toolUse"].get("input") or ""
                        if frag:
                            entry[3].append(frag)
                            yield ToolCallDelta(entry[0], arguments=frag)
                    elif "reasoningContent" in delta:
                        rc = delta["reasoningContent"]
                        block = thinking.setdefault(ev.get("contentBlockIndex", 0), {"text": [], "signature": "", "redacted": ""})
                        piece = rc.get("text")
                        if rc.get("signature"):
                            block["signature"] += rc["signature"]
                        if rc.get("redactedContent"):
                            block["redacted"] += rc["redactedContent"]
                        if piece:
                            block["text"].append(piece)
                            reasoning.append(piece)
                            yield ReasoningDelta(piece)
                elif etype == "contentBlockStart":
                    tu = (ev.get("start") or {}).get("toolUse")
                    if tu is not None:
                        entry = [len(tools), tu.get("toolUseId"), tu.get("name"), []]
                        tools[ev.get("contentBlockIndex", len(tools))] = entry
                        yield ToolCallDelta(entry[0], id=entry[1], name=entry[2])
                elif etype == "messageStop":
                    raw_stop = ev.get("stopReason")
                elif etype == "metadata":
                    usage = _usage(ev.get("usage"))
                # messageStart, contentBlockStop and unknown events carry nothing we need
        finally:
            resp.release()
        if raw_stop is None or usage is None:
            missing = "messageStop" if raw_stop is None else "metadata"
            raise UpstreamUnavailableError(
                f"{self.spec.label} ended the stream before its {missing} event (mid-stream)", provider=self.spec.id
            )
        calls: list[ToolCall] = []
        for entry in sorted(tools.values(), key=lambda e: e[0]):
            raw_args = "".join(entry[3])
            try:
                args = _loads(raw_args) if raw_args.strip() else {}
            except orjson.JSONDecodeError:
                raise self.protocol_error(f"the streamed input of tool {entry[2]!r} is not JSON") from None
            if not isinstance(args, dict):
                raise self.protocol_error(f"the streamed input of tool {entry[2]!r} is not a JSON object")
            calls.append(ToolCall(entry[1] or "", entry[2] or "", args))
        _attach_reasoning(calls, [_reasoning_block(thinking[i]) for i in sorted(thinking)])
        yield ResponseDone(
            Response(
                text="".join(text),
                tool_calls=calls,
                stop_reason=_stop_reason(raw_stop),
                usage=usage,
                provider=self.spec.id,
                model=req.model,
                raw_stop_reason=raw_stop,
                reasoning="".join(reasoning),
                id=request_id,
            )
        )

    async def _frames(self, resp: aiohttp.ClientResponse, decoder: EventStreamDecoder) -> AsyncIterator[EventStreamMessage]:
        async for chunk in iter_chunks(resp, self):
            try:
                frames = decoder.feed(chunk)
            except EventStreamError as exc:
                raise self.protocol_error(f"a bad event-stream frame ({exc})") from None
            for frame in frames:
                yield frame
        if decoder.pending:
            raise UpstreamUnavailableError(
                f"{self.spec.label} cut the stream inside an event (mid-stream)", provider=self.spec.id
            )

    def _stream_error(self, frame: EventStreamMessage) -> ProviderError:
        headers = frame.headers
        if headers.get(":message-type") == "exception":
            etype = str(headers.get(":exception-type") or "")
            try:
                data = _loads(frame.payload)
                detail = str(data.get("message") or data.get("Message") or "") if isinstance(data, dict) else ""
            except orjson.JSONDecodeError:
                detail = frame.payload.decode("utf-8", "replace")[:300]
        else:
            etype = str(headers.get(":error-code") or "")
            detail = str(headers.get(":error-message") or "")
        detail = redact(detail, *self._secrets)
        err = self._error(None, etype, detail)
        err.message = f"{err.message} (in-stream {etype or 'error'}, mid-stream)"
        err.args = (err.message,)
        return err

    # --- control plane -------------------------------------------------------------------------

    async def _foundation_models(self) -> list[dict[str, Any]]:
        data = await self._get_json(self._control_url("/foundation-models"))
        summaries = data.get("modelSummaries") if isinstance(data, dict) else None
        if not isinstance(summaries, list):
            raise self.protocol_error("ListFoundationModels has no modelSummaries")
        return summaries

    async def _inference_profiles(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        token: str | None = None
        for _ in range(1000):  # a server that never stops paging must not hang us
            query = {"maxResults": "1000"}
            if token:
                query["nextToken"] = token
            data = await self._get_json(self._control_url("/inference-profiles", query))
            page = data.get("inferenceProfileSummaries") if isinstance(data, dict) else None
            if not isinstance(page, list):
                raise self.protocol_error("ListInferenceProfiles has no inferenceProfileSummaries")
            out.extend(page)
            nxt = data.get("nextToken")
            if not nxt or nxt == token:
                break
            token = nxt
        return out

    async def list_inference_profiles(self) -> list[dict[str, Any]]:
        """Every inference profile (system-defined and application), for the card's dropdown."""
        return [
            {
                "id": p.get("inferenceProfileId", ""),
                "name": p.get("inferenceProfileName") or p.get("inferenceProfileId", ""),
                "arn": p.get("inferenceProfileArn", ""),
                "type": p.get("type", ""),
            }
            for p in await self._inference_profiles()
        ]

    def _foundation_infos(self, summaries: list[dict[str, Any]]) -> list[ModelInfo]:
        out: list[ModelInfo] = []
        for m in summaries:
            model_id = m.get("modelId")
            if not model_id:
                continue
            outputs = m.get("outputModalities") or []
            kinds = m.get("inferenceTypesSupported") or []
            if outputs and "TEXT" not in outputs and "EMBEDDING" not in outputs:
                continue  # image / video generators cannot chat or embed
            if kinds and set(kinds) <= {"PROVISIONED"}:
                continue  # only callable through provisioned throughput
            inputs = m.get("inputModalities")
            images = "IMAGE" in inputs if isinstance(inputs, list) and inputs else None
            out.append(self.model_info(model_id, m.get("modelName") or "", "EMBEDDING" in outputs, images))
        return out

    async def list_models(self) -> list[ModelInfo]:
        found: list[Any] = await asyncio.gather(
            self._foundation_models(), self._inference_profiles(), return_exceptions=True
        )
        summaries, profiles = found
        if isinstance(summaries, BaseException):
            raise summaries
        if isinstance(profiles, PermissionDeniedError):
            profiles = []  # an IAM policy may allow the models but not ListInferenceProfiles
        elif isinstance(profiles, BaseException):
            raise profiles
        models = self._foundation_infos(summaries)
        embedding_ids = {m.upstream_id for m in models if m.embedding}
        images = {m.upstream_id: m.images for m in models}
        for p in profiles:
            pid = p.get("inferenceProfileId")
            if not pid:
                continue
            # application profiles are called by ARN; system-defined ones by id
            upstream = p.get("inferenceProfileArn") or pid if p.get("type") == "APPLICATION" else pid
            arns = [str(x.get("modelArn", "")) for x in p.get("models") or () if isinstance(x, dict)]
            embedding = bool(arns) and all(a.rsplit("/", 1)[-1] in embedding_ids for a in arns)
            seen = {images.get(a.rsplit("/", 1)[-1]) for a in arns}
            reads = seen.pop() if len(seen) == 1 else None  # the profile's models agree, or it is not known
            models.append(self.model_info(upstream, p.get("inferenceProfileName") or "", embedding, reads))
        return models

    async def verify(self) -> list[ModelInfo]:
        """ListFoundationModels: one cheap GET that proves the key (or SigV4 credentials) work."""
        return self._foundation_infos(await self._foundation_models())

    # --- embeddings ----------------------------------------------------------------------------

    async def embed(self, model: str, texts: list[str], *, mode: EmbedMode | None = None) -> Embeddings:
        url = self._runtime_url(model, "invoke")
        if "cohere.embed" in model:
            input_type = "search_query" if mode == "query" else "search_document"
            data, tokens = await self._invoke(url, {"texts": texts, "input_type": input_type})
            vectors = data.get("embeddings")
            if isinstance(vectors, dict):
                vectors = vectors.get("float")
            if not isinstance(vectors, list) or len(vectors) != len(texts):
                raise self.protocol_error("the Cohere embedding answer has no embeddings")
            return Embeddings(vectors, tokens)
        results = await asyncio.gather(*(self._invoke(url, {"inputText": t}) for t in texts))
        out: list[list[float]] = []
        total: int | None = 0
        for data, tokens in results:
            vector = data.get("embedding")
            if not isinstance(vector, list):
                raise self.protocol_error("the embedding answer has no embedding")
            out.append(vector)
            count = data.get("inputTextTokenCount", tokens)  # Titan counts in the body too (§6.6)
            total = total + count if total is not None and isinstance(count, int) else None
        return Embeddings(out, total)

    async def _invoke(self, url: URL, payload: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
        """The InvokeModel answer and its input tokens (the `x-amzn-bedrock-input-token-count` header)."""
        result = await self._send("POST", url, self._json_headers, _dumps(payload))
        try:
            data = _loads(result.body)
        except orjson.JSONDecodeError:
            raise self.protocol_error("the InvokeModel answer is not JSON") from None
        if not isinstance(data, dict):
            raise self.protocol_error("the InvokeModel answer is not a JSON object")
        try:
            tokens: int | None = int(result.headers.get("x-amzn-bedrock-input-token-count", ""))
        except ValueError:
            tokens = None
        return data, tokens

