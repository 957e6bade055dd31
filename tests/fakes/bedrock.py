"""A fake AWS Bedrock (runtime + control plane) on 127.0.0.1, faithful to the real wire.

Point Synapse at it with (both hosts are this one server):

    configure(**fake.settings())
    # = bedrock_api_key=<a valid key>, bedrock_runtime_url=fake.url,
    #   bedrock_control_url=fake.url, aws_region=fake.region

Routes (reference/provider-protocols.md §6):

* `POST /model/{modelId}/converse`, `/converse-stream`, `/invoke` — the model id is one
  path segment, percent-decoded (`:` raw or `%3A`; an ARN's `/` must be `%2F`).
* `GET /foundation-models` (no pagination), `GET /inference-profiles` (`maxResults`,
  `nextToken`; pages of at most `PROFILES_PAGE_SIZE`).

Auth: `Authorization: Bearer <key>` with a key in `valid_keys`, or SigV4 (service
`bedrock`, region `self.region`) with an access key in `sigv4_credentials`
({access key: secret} or {access key: (secret, session token)}); the signature is
recomputed with botocore. Failures answer 403 with the real error types.

Streams are AWS event-stream frames built by this module's own encoder (`encode_message`),
written independently of synapse.providers.eventstream: every event carries the "p"
padding field, text/reasoning blocks get no contentBlockStart, every block gets a
contentBlockStop, and the stream ends messageStop -> metadata (usage). Set
`stream_chunk_size` to re-split the bytes into small writes, or `stream_coalesce` to send
every frame in one write.

Prompt caching is simulated: the prefix before each `cachePoint` (tools -> system ->
messages) is hashed; the longest cached prefix is reported as `cacheReadInputTokens`, the
newly cached part up to the last cachePoint as `cacheWriteInputTokens` (then stored), the
rest as `inputTokens`. Prefixes under `MIN_CACHE_TOKENS` are not cached. `reset()` clears
the cache.

Steering beyond the base class: `BedrockReply(exception_type=..., malformed=True)`,
`fail_next_aws(status, "ThrottlingException", "message", retry_after="0")`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import random
import re
import struct
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from .base import FakeReply, FakeServer, estimate_tokens

__all__ = ["BedrockFake", "BedrockReply", "encode_message", "event_frame", "exception_frame"]

PADDING_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_ERROR_NS = ":http://internal.amazon.com/coral/com.amazon.bedrock/"


# --- event-stream encoder (independent of the decoder under test) ---------------------------


def _encode_header(name: str, value: Any) -> bytes:
    """One header. str -> type 7, bytes -> 6, bool -> 0/1, int -> int32 (4),
    ("int8"|"int16"|"int64"|"timestamp", n) and uuid.UUID for the rest."""
    raw_name = name.encode("utf-8")
    out = bytes([len(raw_name)]) + raw_name
    if isinstance(value, bool):
        return out + (b"\x00" if value else b"\x01")
    if isinstance(value, str):
        v = value.encode("utf-8")
        return out + b"\x07" + struct.pack(">H", len(v)) + v
    if isinstance(value, bytes):
        return out + b"\x06" + struct.pack(">H", len(value)) + value
    if isinstance(value, int):
        return out + b"\x04" + struct.pack(">i", value)
    if isinstance(value, uuid.UUID):
        return out + b"\x09" + value.bytes
    kind, number = value
    code, fmt = {"int8": (2, ">b"), "int16": (3, ">h"), "int64": (5, ">q"), "timestamp": (8, ">q")}[kind]
    return out + bytes([code]) + struct.pack(fmt, number)


def encode_message(headers: Sequence[tuple[str, Any]], payload: bytes) -> bytes:
    """total_length | headers_length | prelude CRC | headers | payload | message CRC (big-endian)."""
    encoded = b"".join(_encode_header(n, v) for n, v in headers)
    total = 4 + 4 + 4 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    body = prelude + encoded + payload
    return body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")


def event_frame(event_type: str, payload: dict[str, Any], pad: str | None = "abc") -> bytes:
    """A normal event, headers in the recorded order, payload compact with sorted keys + "p"."""
    data = dict(payload)
    if pad:
        data["p"] = pad
    headers = [(":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")]
    return encode_message(headers, _compact(data))


def exception_frame(exception_type: str, message: str) -> bytes:
    headers = [
        (":exception-type", exception_type),
        (":content-type", "application/json"),
        (":message-type", "exception"),
    ]
    return encode_message(headers, _compact({"message": message}))


def error_frame(code: str, message: str) -> bytes:
    """An unmodeled error: `:message-type: error` with `:error-code` / `:error-message`."""
    headers = [(":error-code", code), (":error-message", message), (":message-type", "error")]
    return encode_message(headers, b"")


# --- replies ---------------------------------------------------------------------------------------


@dataclass
class BedrockReply(FakeReply):
    """A FakeReply with Bedrock-only steering."""

    #: The `:exception-type` sent when `error_after_events` is set.
    exception_type: str = "modelStreamErrorException"
    exception_message: str = "The model stream had an error. Try again."
    #: Send an unmodeled `:message-type: error` frame instead of an exception frame.
    unmodeled_error: bool = False
    #: Non-streaming: a truncated JSON body. Streaming: a frame with a bad message CRC.
    malformed: bool = False
    #: Signature of a reasoning block (Claude extended thinking).
    reasoning_signature: str = "c2lnbmF0dXJl"


class _Reject(Exception):
    def __init__(self, status: int, error_type: str, message: str, capital: bool = False) -> None:
        self.response = _aws_error(status, error_type, message, capital)


def _aws_error(status: int, error_type: str, message: str, capital: bool = False) -> web.Response:
    body = {"Message" if capital else "message": message}
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "x-amzn-ErrorType": error_type + _ERROR_NS,
            "x-amzn-RequestId": str(uuid.uuid4()),
        },
    )


def _model(model_id: str, name: str, provider: str, outputs: list[str], kinds: list[str], inputs: list[str] | None = None) -> dict[str, Any]:
    return {
        "modelArn": f"arn:aws:bedrock:us-east-1::foundation-model/{model_id}",
        "modelId": model_id,
        "modelName": name,
        "providerName": provider,
        "inputModalities": inputs or ["TEXT"],
        "outputModalities": outputs,
        "responseStreamingSupported": "TEXT" in outputs,
        "customizationsSupported": [],
        "inferenceTypesSupported": kinds,
        "modelLifecycle": {"status": "ACTIVE"},
    }


DEFAULT_MODELS = [
    _model("anthropic.claude-sonnet-4-5-20250929-v1:0", "Claude Sonnet 4.5", "Anthropic", ["TEXT"], ["INFERENCE_PROFILE"], ["TEXT", "IMAGE"]),
    _model("anthropic.claude-3-haiku-20240307-v1:0", "Claude 3 Haiku", "Anthropic", ["TEXT"], ["ON_DEMAND"], ["TEXT", "IMAGE"]),
    _model("anthropic.claude-3-haiku-20240307-v1:0:200k", "Claude 3 Haiku", "Anthropic", ["TEXT"], ["PROVISIONED"], ["TEXT", "IMAGE"]),
    _model("amazon.nova-pro-v1:0", "Nova Pro", "Amazon", ["TEXT"], ["ON_DEMAND", "INFERENCE_PROFILE"], ["TEXT", "IMAGE"]),
    _model("amazon.titan-embed-text-v2:0", "Titan Text Embeddings V2", "Amazon", ["EMBEDDING"], ["ON_DEMAND"]),
    _model("cohere.embed-english-v3", "Embed English", "Cohere", ["EMBEDDING"], ["ON_DEMAND"]),
    _model("stability.sd3-5-large-v1:0", "SD3.5 Large", "Stability AI", ["IMAGE"], ["ON_DEMAND"]),
]


def _profile(pid: str, name: str, model_ids: list[str], region: str, ptype: str = "SYSTEM_DEFINED", account: str = "") -> dict[str, Any]:
    kind = "application-inference-profile" if ptype == "APPLICATION" else "inference-profile"
    return {
        "inferenceProfileName": name,
        "description": f"Routes requests to {name}",
        "createdAt": "2025-01-01T00:00:00Z",
        "updatedAt": "2025-01-01T00:00:00Z",
        "inferenceProfileArn": f"arn:aws:bedrock:{region}:{account or '123456789012'}:{kind}/{pid}",
        "models": [{"modelArn": f"arn:aws:bedrock:{region}::foundation-model/{m}"} for m in model_ids],
        "inferenceProfileId": pid,
        "status": "ACTIVE",
        "type": ptype,
    }


def default_profiles(region: str) -> list[dict[str, Any]]:
    sonnet = "anthropic.claude-sonnet-4-5-20250929-v1:0"
    return [
        _profile("us." + sonnet, "US Anthropic Claude Sonnet 4.5", [sonnet], region),
        _profile("global." + sonnet, "Global Anthropic Claude Sonnet 4.5", [sonnet], region),
        _profile("us.amazon.nova-pro-v1:0", "US Nova Pro", ["amazon.nova-pro-v1:0"], region),
        _profile("us.anthropic.claude-3-haiku-20240307-v1:0", "US Anthropic Claude 3 Haiku", ["anthropic.claude-3-haiku-20240307-v1:0"], region),
        _profile("us.cohere.embed-english-v3", "US Cohere Embed English", ["cohere.embed-english-v3"], region),
        _profile("otnfa2ysixqd", "my-team-sonnet", [sonnet], region, "APPLICATION"),
    ]


_SIGV4 = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<akid>[^/\s]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/(?P<service>[a-z0-9-]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[a-z0-9;\-]+),\s*Signature=(?P<sig>[0-9a-f]{64})$"
)
_TEXT_TYPES = ("text", "image", "document", "video", "audio", "toolUse", "toolResult", "guardContent", "cachePoint", "reasoningContent")


class BedrockFake(FakeServer):
    name = "bedrock"
    #: Prefixes shorter than this (estimated tokens) are not cached.
    MIN_CACHE_TOKENS = 1024
    #: At most this many cachePoint blocks per request.
    MAX_CACHE_POINTS = 4
    #: ListInferenceProfiles never returns more than this many per page.
    PROFILES_PAGE_SIZE = 2

    def __init__(
        self,
        valid_keys: set[str] | None = None,
        sigv4_credentials: dict[str, Any] | None = None,
        region: str = "us-east-1",
        context_window: int = 200_000,
    ) -> None:
        super().__init__(valid_keys or {"absk-test-key-bedrock-0001"})
        self.region = region
        self.context_window = self._context_window = context_window
        self.sigv4_credentials: dict[str, tuple[str, str]] = {}
        for akid, value in (sigv4_credentials or {}).items():
            self.sigv4_credentials[akid] = (value, "") if isinstance(value, str) else (value[0], value[1] or "")
        self.models: list[dict[str, Any]] = [dict(m) for m in DEFAULT_MODELS]
        self.profiles: list[dict[str, Any]] = default_profiles(region)
        #: Model ids (or profile ids) this account has not been granted access to.
        self.no_access: set[str] = set()
        #: Answer ListInferenceProfiles with 403 (an IAM policy without bedrock:ListInferenceProfiles).
        self.deny_profiles = False
        self.cache: dict[str, int] = {}
        self.raw_paths: list[str] = []
        self.stream_chunk_size: int | None = None
        self.stream_coalesce = False
        self._counter = 0
        #: Reasoning signatures this fake handed out; a reasoning block sent back must carry one.
        self.issued_signatures: set[str] = set()

    # --- helpers for tests -------------------------------------------------------------------

    @property
    def key(self) -> str:
        return sorted(self.valid_keys)[0]

    def settings(self, **extra: Any) -> dict[str, Any]:
        """The settings that point Synapse at this fake (bearer key auth)."""
        return {
            "bedrock_api_key": self.key,
            "bedrock_runtime_url": self.url,
            "bedrock_control_url": self.url,
            "aws_region": self.region,
            **extra,
        }

    def reset(self) -> None:
        super().reset()
        self.cache.clear()
        self.raw_paths.clear()
        self.issued_signatures.clear()
        self.no_access.clear()
        self.deny_profiles = False
        self.context_window = self._context_window
        self.stream_chunk_size = None
        self.stream_coalesce = False

    def fail_next_aws(
        self, status: int, error_type: str, message: str, retry_after: str | None = None, times: int = 1
    ) -> None:
        """The next request fails the way Bedrock's front door answers: x-amzn-ErrorType + {"message"}."""
        headers = {"x-amzn-ErrorType": error_type + _ERROR_NS, "x-amzn-RequestId": str(uuid.uuid4())}
        if retry_after is not None:
            headers["retry-after"] = retry_after
        self.fail_next(status, {"message": message}, headers, times=times)

    # --- app -----------------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/model/{tail:.+}", self._runtime),
            web.get("/foundation-models", self._foundation_models),
            web.get("/inference-profiles", self._inference_profiles),
        ]

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.raw_paths.append(request.raw_path)
        return await super()._middleware(request, handler)

    # --- auth ------------------------------------------------------------------------------------

    def _check_auth(self, request: web.Request, body: bytes) -> None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            if auth[7:] not in self.valid_keys:
                raise _Reject(403, "AccessDeniedException", "Authentication failed: Please make sure your API Key is valid.", capital=True)
            return
        if auth.startswith("AWS4-HMAC-SHA256"):
            self._check_sigv4(request, auth, body)
            return
        raise _Reject(403, "MissingAuthenticationTokenException", "Missing Authentication Token")

    def _check_sigv4(self, request: web.Request, auth: str, body: bytes) -> None:
        m = _SIGV4.match(auth)
        if not m:
            raise _Reject(403, "IncompleteSignatureException", "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.")
        amz_date = request.headers.get("X-Amz-Date", "")
        if not re.fullmatch(r"\d{8}T\d{6}Z", amz_date) or amz_date[:8] != m["date"]:
            raise _Reject(403, "IncompleteSignatureException", "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.")
        if m["service"] != "bedrock":
            raise _Reject(403, "InvalidSignatureException", "Credential should be scoped to correct service: 'bedrock'.")
        if m["region"] != self.region:
            raise _Reject(403, "InvalidSignatureException", f"Credential should be scoped to a valid region, not '{m['region']}'.")
        signed = m["signed"].split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            raise _Reject(403, "IncompleteSignatureException", "'Host' and 'X-Amz-Date' must be signed.")
        creds = self.sigv4_credentials.get(m["akid"])
        if creds is None:
            raise _Reject(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        secret, token = creds
        sent_token = request.headers.get("X-Amz-Security-Token", "")
        if token and (sent_token != token or "x-amz-security-token" not in signed):
            raise _Reject(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        headers = {h: request.headers.get(h, "") for h in signed}
        req = AWSRequest(method=request.method, url=f"http://{request.host}{request.raw_path}", data=body, headers=headers)
        req.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(m["akid"], secret, token or None), "bedrock", self.region)
        canonical = signer.canonical_request(req)
        expected = signer.signature(signer.string_to_sign(req, canonical), req)
        if expected != m["sig"]:
            raise _Reject(
                403,
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
            )

    # --- control plane ------------------------------------------------------------------------------

    async def _foundation_models(self, request: web.Request) -> web.Response:
        try:
            self._check_auth(request, b"")
        except _Reject as r:
            return r.response
        return web.json_response({"modelSummaries": self.models}, headers={"x-amzn-RequestId": str(uuid.uuid4())})

    async def _inference_profiles(self, request: web.Request) -> web.Response:
        try:
            self._check_auth(request, b"")
        except _Reject as r:
            return r.response
        if self.deny_profiles:
            return _aws_error(
                403, "AccessDeniedException",
                "User: arn:aws:iam::123456789012:user/dev is not authorized to perform: bedrock:ListInferenceProfiles "
                "because no identity-based policy allows the bedrock:ListInferenceProfiles action",
            )
        try:
            max_results = int(request.query.get("maxResults", "1000"))
        except ValueError:
            return _aws_error(400, "ValidationException", "1 validation error detected: maxResults must be an integer")
        if not 1 <= max_results <= 1000:
            return _aws_error(400, "ValidationException", "1 validation error detected: Value at 'maxResults' failed to satisfy constraint")
        profiles = self.profiles
        if "type" in request.query:
            profiles = [p for p in profiles if p["type"] == request.query["type"]]
        start = 0
        token = request.query.get("nextToken")
        if token:
            try:
                start = int(base64.b64decode(token.encode(), validate=True).split(b"/")[1])
            except (ValueError, IndexError, binascii.Error):
                return _aws_error(400, "ValidationException", "The nextToken is invalid.")
        size = min(max_results, self.PROFILES_PAGE_SIZE)
        page = profiles[start:start + size]
        data: dict[str, Any] = {"inferenceProfileSummaries": page}
        if start + size < len(profiles):
            # opaque, and full of characters that must be percent-encoded in a query
            data["nextToken"] = base64.b64encode(f"~~page?/{start + size}/??>>".encode()).decode()
        return web.json_response(data, headers={"x-amzn-RequestId": str(uuid.uuid4())})

    # --- runtime ---------------------------------------------------------------------------------------

    def _resolve_model(self, model_id: str, operation: str) -> dict[str, Any]:
        if model_id in self.no_access:
            raise _Reject(403, "AccessDeniedException", "You don't have access to the model with the specified model ID.")
        for p in self.profiles:
            if model_id in (p["inferenceProfileId"], p["inferenceProfileArn"]):
                base_id = p["models"][0]["modelArn"].rsplit("/", 1)[-1]
                if base_id in self.no_access:
                    raise _Reject(403, "AccessDeniedException", "You don't have access to the model with the specified model ID.")
                return next(m for m in self.models if m["modelId"] == base_id)
        for m in self.models:
            if m["modelId"] == model_id:
                kinds = m["inferenceTypesSupported"]
                if "ON_DEMAND" not in kinds:
                    raise _Reject(
                        400,
                        "ValidationException",
                        f"Invocation of model ID {model_id} with on-demand throughput isn't supported. Retry your "
                        "request with the ID or ARN of an inference profile that contains this model.",
                    )
                return m
        raise _Reject(400, "ValidationException", "The provided model identifier is invalid.")

    async def _runtime(self, request: web.Request) -> web.StreamResponse:
        raw = request.raw_path.split("?", 1)[0]
        parts = raw.split("/")
        if len(parts) != 4 or parts[1] != "model" or parts[3] not in ("converse", "converse-stream", "invoke"):
            return _aws_error(404, "UnknownOperationException", "")
        model_id, operation = unquote(parts[2]), parts[3]
        body = await request.read()
        try:
            self._check_auth(request, body)
            model = self._resolve_model(model_id, operation)
            try:
                data = json.loads(body)
            except ValueError:
                raise _Reject(400, "SerializationException", "Unexpected character in the request body") from None
            if not isinstance(data, dict):
                raise _Reject(400, "SerializationException", "The request body must be a JSON object")
            if operation == "invoke":
                return self._invoke(model, data)
            if "TEXT" not in model["outputModalities"]:
                raise _Reject(400, "ValidationException", "This action doesn't support the model that you provided. Try again with a supported text or chat model.")
            self._validate(data)
            self._check_reasoning(data, model_id)
            usage_in = self._prompt_usage(model_id, data)
        except _Reject as r:
            return r.response
        if operation == "converse":
            return self._converse(data, usage_in)
        return await self._converse_stream(request, data, usage_in)

    # --- request validation (400 ValidationException like the real service) -------------------------------

    def _validate(self, data: dict[str, Any]) -> None:
        def bad(msg: str) -> _Reject:
            return _Reject(400, "ValidationException", msg)

        unknown = set(data) - {"messages", "system", "toolConfig", "inferenceConfig", "additionalModelRequestFields",
                               "additionalModelResponseFieldPaths", "guardrailConfig", "promptVariables",
                               "requestMetadata", "performanceConfig", "serviceTier"}
        if unknown:
            raise bad(f"Unknown parameter in input: {sorted(unknown)[0]!r}")
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            raise bad("A conversation must start with a user message. Try again with a conversation that starts with a user message.")
        cache_points = 0
        tool_ids: set[str] = set()
        uses_tools = False
        for i, m in enumerate(messages):
            role = m.get("role")
            if role not in ("user", "assistant"):
                raise bad(f"Value at 'messages.{i + 1}.member.role' failed to satisfy constraint")
            if i == 0 and role != "user":
                raise bad("A conversation must start with a user message. Try again with a conversation that starts with a user message.")
            if i and messages[i - 1].get("role") == role:
                raise bad("A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.")
            content = m.get("content")
            if not isinstance(content, list) or not content:
                raise bad(f"The content field in the Message object at messages.{i} is empty. Add a ContentBlock object to the content field and try again.")
            for j, block in enumerate(content):
                if not isinstance(block, dict) or len(block) != 1 or next(iter(block)) not in _TEXT_TYPES:
                    raise bad(f"Malformed content block at messages.{i}.content.{j}: exactly one member is required")
                kind, value = next(iter(block.items()))
                if kind == "text" and not str(value).strip():
                    raise bad(f"The text field in the ContentBlock object at messages.{i}.content.{j} is blank. Add text to the text field, and try again.")
                elif kind == "cachePoint":
                    cache_points += 1
                    if value.get("type") != "default":
                        raise bad("cachePoint type must be 'default'")
                elif kind == "image":
                    if value.get("format") not in ("png", "jpeg", "gif", "webp"):
                        raise bad(f"Invalid image format at messages.{i}.content.{j}")
                    src = value.get("source") or {}
                    if "bytes" in src:
                        try:
                            base64.b64decode(src["bytes"], validate=True)
                        except (binascii.Error, ValueError):
                            raise bad("Invalid base64 image bytes") from None
                    elif "s3Location" not in src:
                        raise bad("The image source must be bytes or s3Location")
                elif kind == "toolUse":
                    uses_tools = True
                    if role != "assistant" or not isinstance(value.get("input"), dict):
                        raise bad(f"Malformed toolUse at messages.{i}.content.{j}")
                    tool_ids.add(value.get("toolUseId"))
                elif kind == "toolResult":
                    uses_tools = True
                    if value.get("toolUseId") not in tool_ids:
                        raise bad("The toolUseId in the toolResult does not match a toolUse in the previous turn.")
                    if value.get("status") not in (None, "success", "error"):
                        raise bad("toolResult status must be success or error")
        for s in data.get("system") or []:
            if not isinstance(s, dict) or len(s) != 1 or next(iter(s)) not in ("text", "guardContent", "cachePoint"):
                raise bad("Malformed system content block")
            if "cachePoint" in s:
                cache_points += 1
        config = data.get("toolConfig")
        if config is not None:
            tools = config.get("tools")
            if not isinstance(tools, list) or not tools:
                raise bad("The toolConfig field must contain at least one tool.")
            for t in tools:
                if "cachePoint" in t:
                    cache_points += 1
                    continue
                spec = t.get("toolSpec") or {}
                if not spec.get("name") or not isinstance((spec.get("inputSchema") or {}).get("json"), dict):
                    raise bad("Malformed toolSpec: name and inputSchema.json are required")
            choice = config.get("toolChoice")
            if choice is not None and (len(choice) != 1 or next(iter(choice)) not in ("auto", "any", "tool")):
                raise bad("toolChoice must be one of auto, any, tool")
        elif uses_tools:
            raise bad("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
        if cache_points > self.MAX_CACHE_POINTS:
            raise bad(f"A maximum of {self.MAX_CACHE_POINTS} cache checkpoints is supported; the request has {cache_points}.")
        inference = data.get("inferenceConfig") or {}
        if "maxTokens" in inference and not (isinstance(inference["maxTokens"], int) and inference["maxTokens"] >= 1):
            raise bad("The maximum tokens you requested must be at least 1.")

    def _check_reasoning(self, data: dict[str, Any], model_id: str) -> None:
        """Claude with extended thinking, as Bedrock relays Anthropic's checks: the assistant turn
        before the newest tool results must start with its reasoning block, and every reasoning
        block sent back must carry a signature this service issued."""
        def bad(msg: str) -> _Reject:
            return _Reject(400, "ValidationException", "The model returned the following errors: " + msg)

        fields = data.get("additionalModelRequestFields") or {}
        thinking = (fields.get("thinking") or {}).get("type") in ("enabled", "adaptive") or bool(fields.get("reasoning_config"))
        messages = data["messages"]
        for i, m in enumerate(messages):
            for j, block in enumerate(m.get("content") or []):
                text = (block.get("reasoningContent") or {}).get("reasoningText")
                if text is not None and ("signature" in text or "anthropic" in model_id) \
                        and text.get("signature") not in self.issued_signatures:
                    raise bad(f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block")
        if not thinking or "anthropic" not in model_id or len(messages) < 2:
            return
        last, before = messages[-1], messages[-2]
        if any("toolResult" in b for b in last["content"]) and before.get("role") == "assistant":
            first = next(iter(before["content"][0]))
            if first != "reasoningContent":
                found = {"toolUse": "tool_use", "text": "text"}.get(first, first)
                raise bad(
                    f"messages.{len(messages) - 2}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                    f"`{found}`. When `thinking` is enabled, a final `assistant` message must start with a thinking block "
                    "(preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking "
                    "blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult our "
                    "documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
                )

    # --- prompt accounting + cache simulation -----------------------------------------------------------------

    @staticmethod
    def _block_tokens(block: dict[str, Any]) -> int:
        kind, value = next(iter(block.items()))
        if kind == "text":
            return estimate_tokens(str(value))
        if kind == "image":
            return 85
        if kind == "toolUse":
            return estimate_tokens(value.get("name", "") + json.dumps(value.get("input"), sort_keys=True))
        if kind == "toolResult":
            return estimate_tokens("".join(str(c.get("text") or json.dumps(c.get("json"))) for c in value.get("content") or []))
        return estimate_tokens(json.dumps(value, sort_keys=True))

    def _prompt_usage(self, model_id: str, data: dict[str, Any]) -> tuple[int, int, int]:
        """(uncached input, cache read, cache write) for this prompt, updating the cache."""
        h = hashlib.sha256(model_id.encode())
        total = 0
        points: list[tuple[str, int]] = []

        def walk(where: str, blocks: list[dict[str, Any]]) -> None:
            nonlocal total
            for block in blocks:
                if "cachePoint" in block:
                    points.append((h.copy().hexdigest(), total))
                    continue
                h.update(where.encode() + _compact(block))
                total += self._block_tokens(block)

        walk("tool", (data.get("toolConfig") or {}).get("tools") or [])
        walk("system", data.get("system") or [])
        for i, m in enumerate(data["messages"]):
            walk(f"{i}:{m['role']}", m["content"])
        if total > self.context_window:
            raise _Reject(400, "ValidationException", "Input is too long for requested model.")
        read = max((tokens for digest, tokens in points if digest in self.cache), default=0)
        write = 0
        if points:
            last_digest, last_tokens = points[-1]
            if last_tokens >= self.MIN_CACHE_TOKENS and last_digest not in self.cache:
                write = last_tokens - read
            for digest, tokens in points:
                if tokens >= self.MIN_CACHE_TOKENS:
                    self.cache[digest] = tokens
        return total - read - write, read, write

    # --- replies -------------------------------------------------------------------------------------------------

    def _compose(self, data: dict[str, Any], usage_in: tuple[int, int, int]) -> tuple[BedrockReply, str, str, dict[str, Any]]:
        reply = self.next_reply() or BedrockReply()
        if not isinstance(reply, BedrockReply):
            fields = {k: getattr(reply, k) for k in FakeReply.__dataclass_fields__}
            reply = BedrockReply(**fields)
        text = reply.text
        if not text and not reply.tool_calls:
            text = self._default_text(data)
        stop = reply.stop_reason
        inference = data.get("inferenceConfig") or {}
        for seq in inference.get("stopSequences") or []:
            at = text.find(seq)
            if seq and at >= 0:
                text, stop = text[:at], stop or "stop_sequence"
        max_tokens = inference.get("maxTokens")
        if max_tokens is not None and estimate_tokens(text) > max_tokens:
            text, stop = text[: max_tokens * 4], stop or "max_tokens"
        if stop is None:
            stop = "tool_use" if reply.tool_calls else "end_turn"
        uncached, read, write = usage_in
        args = "".join(json.dumps(c.arguments) for c in reply.tool_calls)
        output = reply.output_tokens
        if output is None:
            output = max(1, estimate_tokens(text) + estimate_tokens(reply.reasoning) + estimate_tokens(args))
        usage: dict[str, Any] = {
            "inputTokens": reply.input_tokens if reply.input_tokens is not None else uncached,
            "outputTokens": output,
            "cacheReadInputTokens": reply.cache_read_tokens if reply.cache_read_tokens is not None else read,
            "cacheWriteInputTokens": reply.cache_write_tokens if reply.cache_write_tokens is not None else write,
        }
        usage["cacheReadInputTokenCount"] = usage["cacheReadInputTokens"]
        usage["cacheWriteInputTokenCount"] = usage["cacheWriteInputTokens"]
        usage["totalTokens"] = (
            usage["inputTokens"] + usage["outputTokens"] + usage["cacheReadInputTokens"] + usage["cacheWriteInputTokens"]
        )
        if usage["cacheWriteInputTokens"]:
            usage["cacheDetails"] = [{"inputTokens": usage["cacheWriteInputTokens"], "ttl": "5m"}]
        usage["serverToolUsage"] = {}
        return reply, text, stop, usage

    @staticmethod
    def _default_text(data: dict[str, Any]) -> str:
        last = data["messages"][-1]
        texts = [b["text"] for b in last["content"] if "text" in b]
        if not texts:
            texts = [c.get("text", "") for b in last["content"] if "toolResult" in b for c in b["toolResult"].get("content") or []]
        prompt = " ".join(t.strip() for t in texts if t.strip())
        return f"Bedrock says: {prompt[:120]}" if prompt else "Bedrock says: (no text)"

    def _converse(self, data: dict[str, Any], usage_in: tuple[int, int, int]) -> web.Response:
        reply, text, stop, usage = self._compose(data, usage_in)
        rid = str(uuid.uuid4())
        if reply.malformed:
            return web.Response(status=200, body=b'{"output":{"message":{"role":"assistant","content":[{"te', content_type="application/json", headers={"x-amzn-RequestId": rid})
        content: list[dict[str, Any]] = []
        if reply.reasoning:
            self.issued_signatures.add(reply.reasoning_signature)
            content.append({"reasoningContent": {"reasoningText": {"text": reply.reasoning, "signature": reply.reasoning_signature}}})
        if text:
            content.append({"text": text})
        for call in reply.tool_calls:
            content.append({"toolUse": {"toolUseId": call.id, "name": call.name, "input": call.arguments, "type": "tool_use"}})
        body = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "usage": usage,
            "metrics": {"latencyMs": 42},
        }
        return web.Response(status=200, body=json.dumps(body).encode(), content_type="application/json", headers={"x-amzn-RequestId": rid})

    def _pad(self) -> str:
        self._counter += 1
        return PADDING_ALPHABET[: 1 + (self._counter * 7) % len(PADDING_ALPHABET)]

    def _events(self, reply: BedrockReply, text: str, stop: str, usage: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        events: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
        index = 0
        if reply.reasoning:
            self.issued_signatures.add(reply.reasoning_signature)
            for piece in _pieces(reply.reasoning, 12):
                events.append(("contentBlockDelta", {"contentBlockIndex": index, "delta": {"reasoningContent": {"text": piece}}}))
            events.append(("contentBlockDelta", {"contentBlockIndex": index, "delta": {"reasoningContent": {"signature": reply.reasoning_signature}}}))
            events.append(("contentBlockStop", {"contentBlockIndex": index}))
            index += 1
        if text:
            for piece in _pieces(text, 10):
                events.append(("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": piece}}))
            events.append(("contentBlockStop", {"contentBlockIndex": index}))
            index += 1
        for call in reply.tool_calls:
            events.append(("contentBlockStart", {"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": call.id, "name": call.name, "type": "tool_use"}}}))
            for piece in _pieces(json.dumps(call.arguments) if call.arguments else "", 7):
                events.append(("contentBlockDelta", {"contentBlockIndex": index, "delta": {"toolUse": {"input": piece}}}))
            events.append(("contentBlockStop", {"contentBlockIndex": index}))
            index += 1
        events.append(("messageStop", {"stopReason": stop}))
        events.append(("metadata", {"usage": usage, "metrics": {"latencyMs": 42}}))
        return events

    async def _converse_stream(self, request: web.Request, data: dict[str, Any], usage_in: tuple[int, int, int]) -> web.StreamResponse:
        reply, text, stop, usage = self._compose(data, usage_in)
        frames: list[bytes] = []
        drop = False
        for i, (etype, payload) in enumerate(self._events(reply, text, stop, usage)):
            if reply.error_after_events is not None and i == reply.error_after_events:
                if reply.unmodeled_error:
                    frames.append(error_frame(reply.exception_type, reply.exception_message))
                else:
                    frames.append(exception_frame(reply.exception_type, reply.exception_message))
                break
            if reply.break_after_events is not None and i == reply.break_after_events:
                drop = True
                break
            frames.append(event_frame(etype, payload, self._pad()))
        if reply.malformed and len(frames) > 1:
            bad = bytearray(frames[1])
            bad[-1] ^= 0xFF  # message CRC no longer matches
            frames[1] = bytes(bad)
        resp = web.StreamResponse(
            status=200,
            headers={"Content-Type": "application/vnd.amazon.eventstream", "x-amzn-RequestId": str(uuid.uuid4())},
        )
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        if self.stream_coalesce:
            writes = [b"".join(frames)]
        elif self.stream_chunk_size:
            blob = b"".join(frames)
            writes = [blob[i:i + self.stream_chunk_size] for i in range(0, len(blob), self.stream_chunk_size)]
        else:
            writes = frames
        for chunk in writes:
            if chunk:
                await resp.write(chunk)
        if drop:
            assert request.transport is not None
            request.transport.close()
            raise ConnectionResetError("fake dropped the stream")
        await resp.write_eof()
        return resp

    # --- embeddings ------------------------------------------------------------------------------------------------------

    def _invoke(self, model: dict[str, Any], data: dict[str, Any]) -> web.Response:
        rid = str(uuid.uuid4())
        model_id = model["modelId"]
        if "EMBEDDING" not in model["outputModalities"]:
            raise _Reject(400, "ValidationException", "Malformed input request, please reformat your input and try again.")
        if model_id.startswith("cohere."):
            texts = data.get("texts")
            if not isinstance(texts, list) or not texts or "input_type" not in data:
                raise _Reject(400, "ValidationException", "Malformed input request: #: required key [texts] not found, please reformat your input and try again.")
            if data["input_type"] not in ("search_document", "search_query", "classification", "clustering"):
                raise _Reject(400, "ValidationException", f"Malformed input request: #/input_type: {data['input_type']} is not a valid enum value, please reformat your input and try again.")
            body: dict[str, Any] = {
                "embeddings": [_vector(str(t), 1024) for t in texts],
                "id": rid,
                "response_type": "embeddings_floats",
                "texts": texts,
            }
            tokens = sum(estimate_tokens(str(t)) for t in texts)
        else:
            text = data.get("inputText")
            if not isinstance(text, str):
                raise _Reject(400, "ValidationException", "Malformed input request: #: required key [inputText] not found, please reformat your input and try again.")
            dims = data.get("dimensions", 1024)
            if dims not in (256, 512, 1024):
                raise _Reject(400, "ValidationException", "Malformed input request: #/dimensions: 1000 is not a valid enum value, please reformat your input and try again.")
            vector = _vector(text, dims)
            tokens = estimate_tokens(text)
            body = {"embedding": vector, "embeddingsByType": {"float": vector}, "inputTextTokenCount": tokens}
        headers = {
            "x-amzn-RequestId": rid,
            "x-amzn-bedrock-input-token-count": str(tokens),
            "x-amzn-bedrock-invocation-latency": "12",
        }
        return web.Response(status=200, body=json.dumps(body).encode(), content_type="application/json", headers=headers)


def _pieces(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or ([""] if text == "" else [])


def _vector(text: str, dims: int) -> list[float]:
    """A deterministic unit vector for a text."""
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    raw = [rng.gauss(0.0, 1.0) for _ in range(dims)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 6) for x in raw]

