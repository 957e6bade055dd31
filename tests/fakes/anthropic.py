"""A loopback Anthropic Messages API, faithful to the wire (reference §2 and §9).

Point Synapse at it with the bare origin, no `/v1`:

    fake = AnthropicFake().start()           # or: provider_fake(AnthropicFake) in a fixture
    configure(anthropic_key=AnthropicFake.KEY, anthropic_base_url=fake.url)

What it does like the real service:

* `POST /v1/messages` (query string such as `?beta=true` ignored), `POST /v1/messages/count_tokens`,
  `GET /v1/models` (paged: `limit`, `after_id`, `before_id` -> `has_more`, `first_id`, `last_id`),
  `GET /v1/models/{id}`. Every answer carries a `request-id` header.
* Auth: `x-api-key` (or `Authorization: Bearer`) must be one of `valid_keys`; missing or wrong
  gives 401 `authentication_error`. A missing `anthropic-version` gives 400.
* Validation with the real messages for what Synapse can get wrong: required fields, unknown
  top-level fields, empty text blocks, temperature range, tool_use/tool_result pairing, more than
  4 `cache_control` blocks, an unknown model (404), a prompt over `context_window` (400
  "prompt is too long: N tokens > M maximum"). Anthropic-defined client tools
  (`memory_20250818`) are known only with their `anthropic-beta` header; without it the type is an
  unknown tag, as on the real API.
* Streaming is chosen from `"stream": true` in the body, never from `Accept`. SSE frames are
  `event:` + `data:` with LF line ends, most data JSON padded with spaces before its last `}`,
  one `ping` after the first `content_block_start`, tool input starting with `partial_json: ""`,
  thinking ending with an empty `thinking_delta` and one `signature_delta`, and the input-side
  usage repeated in `message_delta`.
* Prompt caching is simulated: see `_cache_usage`. Minimum cacheable prefix is
  `MIN_CACHE_TOKENS` (`MIN_CACHE_TOKENS_HAIKU` for haiku models); the cache survives between
  requests until `reset()` or `clear_cache()`.

Steering: `fake.reply(AnthropicReply(...))` or a plain `FakeReply` scripts the next answer;
`rate_limit_next`, `overloaded_next`, `server_error_next`, `fail_next_error`, `malformed_next`
queue front-door failures with the real bodies; `drop_next` closes the connection.
Without a script the fake answers "You said: <last user text>" (or "The tool said: <first
tool result>" when the last user turn carries tool results) and counts tokens with
`estimate_tokens` (text blocks by their text, images as `IMAGE_TOKENS`, other blocks by their JSON).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .base import FakeReply, FakeServer, estimate_tokens, pace

__all__ = ["ALIASES", "MODELS", "AnthropicFake", "AnthropicReply"]

MODELS: list[dict[str, Any]] = [
    {"type": "model", "id": "claude-opus-4-5-20251101", "display_name": "Claude Opus 4.5", "created_at": "2025-11-24T00:00:00Z"},
    {"type": "model", "id": "claude-haiku-4-5-20251001", "display_name": "Claude Haiku 4.5", "created_at": "2025-10-15T00:00:00Z"},
    {"type": "model", "id": "claude-sonnet-4-5-20250929", "display_name": "Claude Sonnet 4.5", "created_at": "2025-09-29T00:00:00Z"},
    {"type": "model", "id": "claude-opus-4-1-20250805", "display_name": "Claude Opus 4.1", "created_at": "2025-08-05T00:00:00Z"},
    {"type": "model", "id": "claude-sonnet-4-20250514", "display_name": "Claude Sonnet 4", "created_at": "2025-05-22T00:00:00Z"},
    {"type": "model", "id": "claude-3-5-haiku-20241022", "display_name": "Claude Haiku 3.5", "created_at": "2024-10-22T00:00:00Z"},
]

ALIASES: dict[str, str] = {
    "claude-opus-4-5": "claude-opus-4-5-20251101",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-opus-4-1": "claude-opus-4-1-20250805",
    "claude-sonnet-4-0": "claude-sonnet-4-20250514",
    "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
}

#: Provider-side tool types and the name each must have.
_SERVER_TOOL_TYPES = {
    "web_search_20250305": "web_search", "web_fetch_20250910": "web_fetch",
    "code_execution_20250825": "code_execution",
}
#: Tool types Anthropic defines and the client runs: their name, and the beta that enables them
#: (without it the API does not know the type: the same 400 as for any unknown tag).
_CLIENT_TOOL_TYPES = {"memory_20250818": ("memory", "context-management-2025-06-27")}
_RESULT_TYPES = frozenset({"web_search_tool_result", "web_fetch_tool_result", "bash_code_execution_tool_result"})

_TOP_LEVEL = frozenset(
    "model max_tokens messages system temperature top_p top_k stop_sequences stream tools tool_choice metadata "
    "thinking service_tier cache_control output_config container inference_geo mcp_servers context_management".split()
)

RATE_LIMIT_MESSAGE = (
    "This request would exceed the rate limit for your organization of 50 requests per minute. "
    "For details, refer to: https://docs.claude.com/en/api/rate-limits."
)


@dataclass
class AnthropicReply(FakeReply):
    """A FakeReply with the Anthropic-only knobs: which error an in-stream `error` event carries."""

    error_type: str = "overloaded_error"
    error_message: str = "Overloaded"
    #: Answer with a `redacted_thinking` block (opaque `data`) before the reply.
    redacted_thinking: bool = False


@dataclass
class _Block:
    """One prompt block in cache-prefix order, with its token count and cache_control."""

    key: bytes
    tokens: int
    cache_control: dict[str, Any] | None


class _Invalid(Exception):
    def __init__(self, status: int, etype: str, message: str) -> None:
        super().__init__(message)
        self.status, self.etype, self.message = status, etype, message


def _betas(request: web.Request) -> frozenset[str]:
    """The `anthropic-beta` header's comma-separated names."""
    return frozenset(b.strip() for b in request.headers.get("anthropic-beta", "").split(",") if b.strip())


class AnthropicFake(FakeServer):
    """The Anthropic Messages API on 127.0.0.1. See the module docstring."""

    name = "anthropic"
    #: The key the fake accepts unless `valid_keys` says otherwise.
    KEY = "sk-ant-api03-fake-anthropic-test-key-0001"
    MIN_CACHE_TOKENS = 1024
    MIN_CACHE_TOKENS_HAIKU = 2048
    MAX_CACHE_BREAKPOINTS = 4
    #: How many blocks before a breakpoint are checked for an earlier cache entry.
    CACHE_LOOKBACK_BLOCKS = 20
    CONTEXT_WINDOW = 200_000
    MAX_PAGE_SIZE = 1000
    IMAGE_TOKENS = 100

    def __init__(self, valid_keys: set[str] | None = None, models: list[dict[str, Any]] | None = None) -> None:
        super().__init__(valid_keys or {self.KEY})
        self._default_models = list(models or MODELS)
        self.models = list(self._default_models)
        self.aliases = dict(ALIASES)
        self.context_window = self.CONTEXT_WINDOW
        self.max_page_size = self.MAX_PAGE_SIZE
        #: prefix hash -> (tokens, expiry on time.monotonic(), ttl in seconds)
        self.cache: dict[str, tuple[int, float, float]] = {}
        self._ids = itertools.count(1)
        #: Thinking signatures and redacted_thinking data this fake issued; only these come back valid.
        self.issued: set[str] = set()
        #: Streams the client closed before their end.

    # --- steering ----------------------------------------------------------------------------

    def reset(self) -> None:
        super().reset()
        self.cache.clear()
        self.issued.clear()
        self.models = list(self._default_models)
        self.context_window = self.CONTEXT_WINDOW
        self.max_page_size = self.MAX_PAGE_SIZE

    def settings(self, **extra: Any) -> dict[str, Any]:
        """The settings that point Synapse at this fake: `configure(**fake.settings())`."""
        return {"anthropic_key": sorted(self.valid_keys)[0], "anthropic_base_url": self.url, **extra}

    def clear_cache(self) -> None:
        self.cache.clear()

    @staticmethod
    def error_body(etype: str, message: str, request_id: str = "req_011CFakeError") -> dict[str, Any]:
        return {"type": "error", "error": {"type": etype, "message": message}, "request_id": request_id}

    def fail_next_error(
        self, status: int, etype: str, message: str, headers: dict[str, str] | None = None, times: int = 1
    ) -> None:
        """The next request(s) fail with Anthropic's error body."""
        self.fail_next(status, self.error_body(etype, message), {"request-id": "req_011CFakeError", **(headers or {})}, times)

    def rate_limit_next(self, retry_after: str = "0", times: int = 1, etype: str = "rate_limit_error") -> None:
        headers = {
            "retry-after": retry_after,
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:30Z",
        }
        message = RATE_LIMIT_MESSAGE if etype == "rate_limit_error" else "Overloaded"
        self.fail_next_error(429, etype, message, headers, times)

    def overloaded_next(self, times: int = 1) -> None:
        self.fail_next_error(529, "overloaded_error", "Overloaded", times=times)

    def server_error_next(self, times: int = 1, status: int = 500) -> None:
        self.fail_next_error(status, "api_error", "Internal server error", times=times)

    def malformed_next(self, stream: bool = False) -> None:
        """A 200 whose body is not the protocol: broken JSON, or an SSE event with broken JSON."""
        if stream:
            body = b'event: message_start\ndata: {"type":"message_start","message":{"id":\n\n'
            self.fail_next(200, body, {"Content-Type": "text/event-stream; charset=utf-8"})
        else:
            self.fail_next(200, b'{"id":"msg_01","type":"message","content":[{"type":"text","text":"Hel', {})

    # --- routes ------------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/messages", self.messages),
            web.post("/v1/messages/count_tokens", self.count_tokens),
            web.get("/v1/models", self.list_models),
            web.get("/v1/models/{model_id}", self.get_model),
        ]

    def _request_id(self) -> str:
        return f"req_011CFake{next(self._ids):08d}"

    def _error(self, status: int, etype: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
        rid = self._request_id()
        return web.json_response(self.error_body(etype, message, rid), status=status, headers={"request-id": rid, **(headers or {})})

    def _auth(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("x-api-key")
        if key is None:
            auth = request.headers.get("authorization", "")
            key = auth[7:] if auth.lower().startswith("bearer ") else None
        if key is None:
            return self._error(401, "authentication_error", "x-api-key header is required")
        if key not in self.valid_keys:
            return self._error(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return self._error(400, "invalid_request_error", "anthropic-version: header is required")
        return None

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            raise _Invalid(400, "invalid_request_error", "There was an error parsing the body of your request") from None
        if not isinstance(body, dict):
            raise _Invalid(400, "invalid_request_error", "body: Input should be a valid dictionary")
        return body

    def _model(self, name: Any) -> dict[str, Any]:
        upstream = self.aliases.get(name, name)
        for m in self.models:
            if m["id"] == upstream:
                return m
        raise _Invalid(404, "not_found_error", f"model: {name}")

    async def messages(self, request: web.Request) -> web.StreamResponse:
        denied = self._auth(request)
        if denied is not None:
            return denied
        try:
            body = await self._body(request)
            self._validate(body, count_only=False, betas=_betas(request))
            self._check_thinking(body)
            model = self._model(body["model"])
            blocks, breakpoints = self._prompt_blocks(body)
            total = sum(b.tokens for b in blocks)
            if total > self.context_window:
                raise _Invalid(400, "invalid_request_error", f"prompt is too long: {total} tokens > {self.context_window} maximum")
            cached = self._cache_usage(model["id"], blocks, breakpoints)
        except _Invalid as exc:
            return self._error(exc.status, exc.etype, exc.message)
        reply = self.next_reply() or FakeReply(text=self.default_text(body))
        message = self._message(body, model, reply, cached)
        rid = self._request_id()
        if body.get("stream"):
            return await self._stream(request, message, reply, rid)
        return web.json_response(message, headers={"request-id": rid, "anthropic-organization-id": "org-fake"})

    async def count_tokens(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        try:
            body = await self._body(request)
            self._validate(body, count_only=True, betas=_betas(request))
            self._model(body["model"])
            blocks, _ = self._prompt_blocks(body)
        except _Invalid as exc:
            return self._error(exc.status, exc.etype, exc.message)
        return web.json_response({"input_tokens": sum(b.tokens for b in blocks)}, headers={"request-id": self._request_id()})

    async def list_models(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        try:
            limit = int(request.query.get("limit", "20"))
        except ValueError:
            return self._error(400, "invalid_request_error", "limit: Input should be a valid integer")
        if not 1 <= limit <= 1000:
            return self._error(400, "invalid_request_error", "limit: Input should be between 1 and 1000")
        ids = [m["id"] for m in self.models]
        start, end = 0, len(ids)
        after, before = request.query.get("after_id"), request.query.get("before_id")
        if after:
            start = ids.index(after) + 1 if after in ids else len(ids)
        if before:
            end = ids.index(before) if before in ids else 0
        size = min(limit, self.max_page_size)
        if before and not after:
            page = self.models[max(start, end - size):end]
            has_more = end - size > start
        else:
            page = self.models[start:min(end, start + size)]
            has_more = start + size < end
        return web.json_response(
            {
                "data": page,
                "has_more": has_more,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
            },
            headers={"request-id": self._request_id()},
        )

    async def get_model(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        try:
            return web.json_response(self._model(request.match_info["model_id"]), headers={"request-id": self._request_id()})
        except _Invalid as exc:
            return self._error(exc.status, exc.etype, exc.message)

    # --- validation --------------------------------------------------------------------------

    def _validate(self, body: dict[str, Any], count_only: bool, betas: frozenset[str] = frozenset()) -> None:
        bad = lambda msg: _Invalid(400, "invalid_request_error", msg)  # noqa: E731
        for key in body:
            if key not in _TOP_LEVEL:
                raise bad(f"{key}: Extra inputs are not permitted")
        required = ("model", "messages") if count_only else ("model", "max_tokens", "messages")
        for key in required:
            if key not in body:
                raise bad(f"{key}: Field required")
        if not count_only:
            mt = body["max_tokens"]
            if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
                raise bad("max_tokens: Input should be greater than or equal to 1")
        temp = body.get("temperature")
        if temp is not None and (not isinstance(temp, (int, float)) or not 0 <= temp <= 1):
            raise bad("temperature: Input should be less than or equal to 1")
        stops = body.get("stop_sequences")
        if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
            raise bad("stop_sequences: Input should be a valid list")
        system = body.get("system")
        if isinstance(system, list):
            for i, block in enumerate(system):
                if not isinstance(block, dict) or block.get("type") != "text":
                    raise bad(f"system.{i}.type: Input should be 'text'")
                if not block.get("text"):
                    raise bad("system: text content blocks must be non-empty")
        elif system is not None and not isinstance(system, str):
            raise bad("system: Input should be a valid string")
        tool_names = set()
        for i, tool in enumerate(body.get("tools") or []):
            if not isinstance(tool, dict) or not tool.get("name"):
                raise bad(f"tools.{i}.name: Field required")
            if "input_schema" not in tool and tool.get("type") in (None, "custom"):
                raise bad(f"tools.{i}.custom.input_schema: Field required")
            kind = tool.get("type")
            client = _CLIENT_TOOL_TYPES.get(kind)
            if client is not None and client[1] in betas:
                if tool["name"] != client[0]:
                    raise bad(f"tools.{i}.{kind}.name: Input should be '{client[0]}'")
            elif kind not in (None, "custom"):
                expected = _SERVER_TOOL_TYPES.get(kind)
                if expected is None:
                    raise bad(f"tools.{i}: Input tag '{kind}' found using 'type' does not match any of the expected tags")
                if tool["name"] != expected:
                    raise bad(f"tools.{i}.{kind}.name: Input should be '{expected}'")
            tool_names.add(tool["name"])
        choice = body.get("tool_choice")
        if choice is not None:
            if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
                raise bad("tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'")
            if choice["type"] == "tool" and choice.get("name") not in tool_names:
                raise bad(f"Tool '{choice.get('name')}' not found in provided tools")
        messages = body["messages"]
        if not isinstance(messages, list) or not messages:
            raise bad("messages: at least one message is required")
        pending: set[str] = set()
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
                raise bad(f"messages.{i}.role: Input should be 'user' or 'assistant'")
            content = m.get("content")
            if isinstance(content, str):
                content = [{"type": "text", "text": content}]
            if not isinstance(content, list):
                raise bad(f"messages.{i}.content: Input should be a valid list")
            if not content and not (i == len(messages) - 1 and m["role"] == "assistant"):
                raise bad(f"messages.{i}: all messages must have non-empty content except for the optional final assistant message")
            results = [b.get("tool_use_id") for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
            if pending:
                missing = sorted(pending - set(results))
                if missing:
                    raise bad(
                        f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                        f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block "
                        "in the next message."
                    )
            for j, rid in enumerate(results):
                if rid not in pending:
                    raise bad(
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: {rid}. "
                        "Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                    )
            seen_other = False
            server_ids: set[Any] = set()
            for j, block in enumerate(content):
                if not isinstance(block, dict):
                    raise bad(f"messages.{i}.content.{j}: Input should be a valid dictionary")
                kind = block.get("type")
                if kind == "text":
                    if not block.get("text"):
                        raise bad("messages: text content blocks must be non-empty")
                elif kind == "image":
                    source = block.get("source") or {}
                    if source.get("type") == "base64":
                        if source.get("media_type") not in ("image/jpeg", "image/png", "image/gif", "image/webp"):
                            raise bad(f"messages.{i}.content.{j}.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'")
                        if not source.get("data"):
                            raise bad(f"messages.{i}.content.{j}.image.source.base64.data: Field required")
                    elif source.get("type") == "url":
                        if not source.get("url"):
                            raise bad(f"messages.{i}.content.{j}.image.source.url.url: Field required")
                    else:
                        raise bad(f"messages.{i}.content.{j}.image.source: Input tag does not match any of the expected tags: 'base64', 'url'")
                elif kind == "tool_use":
                    if m["role"] != "assistant":
                        raise bad(f"messages.{i}.content.{j}: tool_use blocks can only appear in assistant messages")
                    if not isinstance(block.get("input"), dict):
                        raise bad(f"messages.{i}.content.{j}.tool_use.input: Input should be a valid dictionary")
                elif kind == "tool_result":
                    if m["role"] != "user":
                        raise bad(f"messages.{i}.content.{j}: tool_result blocks can only appear in user messages")
                    if seen_other:
                        raise bad(
                            f"messages.{i}: `tool_result` blocks must come first in the content of a user message, "
                            "before any other content"
                        )
                elif kind == "server_tool_use" or kind in _RESULT_TYPES:
                    if m["role"] != "assistant":
                        raise bad(f"messages.{i}.content.{j}: {kind} blocks can only appear in assistant messages")
                    if kind == "server_tool_use":
                        server_ids.add(block.get("id"))
                    elif block.get("tool_use_id") not in server_ids:
                        raise bad(
                            f"messages.{i}.content.{j}: `{kind}` block with tool_use_id {block.get('tool_use_id')} "
                            "must follow the `server_tool_use` block with that id"
                        )
                elif kind not in ("thinking", "redacted_thinking", "document", "search_result"):
                    raise bad(f"messages.{i}.content.{j}.type: Input tag '{kind}' found using 'type' does not match any of the expected tags")
                if kind != "tool_result":
                    seen_other = True
            pending = {b["id"] for b in content if isinstance(b, dict) and b.get("type") == "tool_use"} if m["role"] == "assistant" else set()

    def _check_thinking(self, body: dict[str, Any]) -> None:
        """Extended thinking, as the real API checks it (its error texts): a thinking block sent
        back must carry the signature it was issued with (redacted_thinking its exact `data`),
        and with `thinking` on, the assistant turn before the newest tool results must start
        with its thinking block."""
        bad = lambda msg: _Invalid(400, "invalid_request_error", msg)  # noqa: E731
        messages = body["messages"]
        for i, m in enumerate(messages):
            content = m.get("content")
            for j, block in enumerate(content if isinstance(content, list) else []):
                kind = block.get("type")
                if kind == "thinking" and block.get("signature") not in self.issued:
                    raise bad(f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block")
                if kind == "redacted_thinking" and block.get("data") not in self.issued:
                    raise bad(f"messages.{i}.content.{j}: Invalid `data` in `redacted_thinking` block")
        thinking = body.get("thinking")
        if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "adaptive") or len(messages) < 2:
            return
        last, before = messages[-1], messages[-2]
        last_content = last.get("content") if isinstance(last.get("content"), list) else []
        if last.get("role") == "user" and any(b.get("type") == "tool_result" for b in last_content):
            content = before.get("content")
            first = content[0].get("type") if isinstance(content, list) and content else "text"
            if first not in ("thinking", "redacted_thinking"):
                raise bad(
                    f"messages.{len(messages) - 2}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                    f"`{first}`. When `thinking` is enabled, a final `assistant` message must start with a thinking block "
                    "(preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking "
                    "blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult our "
                    "documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
                )

    # --- prompt accounting and the cache --------------------------------------------------------

    def _block_tokens(self, block: dict[str, Any]) -> int:
        kind = block.get("type")
        if kind == "text":
            return estimate_tokens(block.get("text") or "")
        if kind == "image":
            return self.IMAGE_TOKENS
        if kind == "tool_result":
            content = block.get("content", "")
            return estimate_tokens(content if isinstance(content, str) else json.dumps(content))
        if kind == "tool_use":
            return estimate_tokens(str(block.get("name")) + json.dumps(block.get("input"), sort_keys=True))
        if kind == "thinking":
            return estimate_tokens(block.get("thinking") or "")
        clean = {k: v for k, v in block.items() if k != "cache_control"}
        return estimate_tokens(json.dumps(clean, sort_keys=True))

    def _prompt_blocks(self, body: dict[str, Any]) -> tuple[list[_Block], list[int]]:
        """The prompt as blocks in cache order (tools -> system -> messages) and the breakpoints.

        Raises the real 400 when more than 4 blocks carry cache_control.
        """
        raw: list[tuple[str, dict[str, Any]]] = []
        for tool in body.get("tools") or []:
            raw.append(("tool", tool))
        system = body.get("system")
        if isinstance(system, str) and system:
            raw.append(("system", {"type": "text", "text": system}))
        elif isinstance(system, list):
            raw.extend(("system", b) for b in system)
        for i, m in enumerate(body.get("messages") or []):
            content = m.get("content")
            if isinstance(content, str):
                content = [{"type": "text", "text": content}]
            raw.extend((f"messages.{i}.{m.get('role')}", b) for b in content or [])
        blocks: list[_Block] = []
        for where, block in raw:
            clean = {k: v for k, v in block.items() if k != "cache_control"}
            tokens = self._block_tokens(block) if where != "tool" else estimate_tokens(json.dumps(clean, sort_keys=True))
            key = json.dumps([where, clean], sort_keys=True, separators=(",", ":")).encode()
            blocks.append(_Block(key, tokens, block.get("cache_control")))
        breakpoints = [i for i, b in enumerate(blocks) if b.cache_control]
        found = len(breakpoints) + (1 if body.get("cache_control") else 0)
        if found > self.MAX_CACHE_BREAKPOINTS:
            raise _Invalid(
                400, "invalid_request_error",
                f"A maximum of {self.MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found {found}.",
            )
        if body.get("cache_control") and blocks:  # automatic caching: breakpoint on the last block
            last = len(blocks) - 1
            if not blocks[last].cache_control:
                blocks[last].cache_control = body["cache_control"]
                breakpoints.append(last)
        return blocks, breakpoints

    #: Models whose minimum cacheable prefix is 4096 tokens (Anthropic's prompt-caching docs).
    LARGE_MINIMUM_MODELS = ("claude-opus-4-5", "claude-opus-4-6", "claude-haiku-4-5")

    def min_cache_tokens(self, model_id: str) -> int:
        if any(model_id.startswith(m) for m in self.LARGE_MINIMUM_MODELS):
            return 4096
        return self.MIN_CACHE_TOKENS_HAIKU if "haiku" in model_id else self.MIN_CACHE_TOKENS

    def _cache_usage(self, model_id: str, blocks: list[_Block], breakpoints: list[int]) -> dict[str, int]:
        """Simulate Anthropic prompt caching for one request and return its input-side usage.

        Each block's key is a hash of the model and the exact serialised prefix up to and
        including that block. For every breakpoint the fake looks for the longest cached
        prefix, at the breakpoint or up to CACHE_LOOKBACK_BLOCKS blocks before it: its
        tokens are `cache_read_input_tokens`. The tokens between that and the last breakpoint
        are written (`cache_creation_input_tokens`) and every breakpoint prefix is stored,
        unless it is shorter than the model's minimum. The rest is `input_tokens`.
        """
        h = hashlib.sha256(model_id.encode())
        keys: list[str] = []
        cum: list[int] = []
        running = 0
        for b in blocks:
            h.update(len(b.key).to_bytes(4, "big") + b.key)
            keys.append(h.hexdigest())
            running += b.tokens
            cum.append(running)
        total = running
        now = time.monotonic()
        read, read_pos = 0, -1
        for bp in sorted(breakpoints):
            for pos in range(bp, max(-1, bp - self.CACHE_LOOKBACK_BLOCKS - 1), -1):
                if cum[pos] <= read:
                    break
                entry = self.cache.get(keys[pos])
                if entry is not None and entry[1] > now:
                    read, read_pos = cum[pos], pos
                    break
        if read_pos >= 0:  # a hit refreshes the entry's lifetime
            ttl = self.cache[keys[read_pos]][2]
            self.cache[keys[read_pos]] = (read, now + ttl, ttl)
        minimum = self.min_cache_tokens(model_id)
        eligible = sorted(bp for bp in breakpoints if cum[bp] >= minimum)
        write, write_1h = 0, 0
        for bp in eligible:
            ttl = 3600.0 if (blocks[bp].cache_control or {}).get("ttl") == "1h" else 300.0
            self.cache[keys[bp]] = (cum[bp], now + ttl, ttl)
        if eligible and cum[eligible[-1]] > read:
            write = cum[eligible[-1]] - read
            if (blocks[eligible[-1]].cache_control or {}).get("ttl") == "1h":
                write_1h = write
        return {
            "input_tokens": total - read - write,
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": write,
            "ephemeral_5m_input_tokens": write - write_1h,
            "ephemeral_1h_input_tokens": write_1h,
        }

    # --- the model's answer ---------------------------------------------------------------------

    @staticmethod
    def default_text(body: dict[str, Any]) -> str:
        """A deterministic reply derived from the last user message."""
        for m in reversed(body.get("messages") or []):
            if m.get("role") != "user":
                continue
            content = m.get("content")
            if isinstance(content, str):
                return f"You said: {content[:100]}"
            results = [b.get("content") for b in content if b.get("type") == "tool_result"]
            if results:
                first = results[0] if isinstance(results[0], str) else json.dumps(results[0])
                return f"The tool said: {first[:100]}"
            texts = [b.get("text", "") for b in content if b.get("type") == "text"]
            if texts:
                return f"You said: {' '.join(texts)[:100]}"
            return "You sent an image."
        return "Hello."

    def _message(self, body: dict[str, Any], model: dict[str, Any], reply: FakeReply, cached: dict[str, int]) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        stop_reason = reply.stop_reason
        stop_sequence = None
        thinking_tokens = 0
        if reply.reasoning:
            signature = hashlib.sha256(reply.reasoning.encode()).hexdigest()
            self.issued.add(signature)
            content.append({"type": "thinking", "thinking": reply.reasoning, "signature": signature})
            thinking_tokens = reply.reasoning_tokens if reply.reasoning_tokens is not None else estimate_tokens(reply.reasoning)
        if getattr(reply, "redacted_thinking", False):
            data = "EmwKAhgBEgy" + hashlib.sha256(str(next(self._ids)).encode()).hexdigest()
            self.issued.add(data)
            content.append({"type": "redacted_thinking", "data": data})
        text = reply.text
        if stop_reason is None:
            hits = sorted((text.find(s), s) for s in body.get("stop_sequences") or [] if s and s in text)
            if hits:
                text, stop_sequence, stop_reason = text[: hits[0][0]], hits[0][1], "stop_sequence"
        budget = body["max_tokens"] - thinking_tokens
        if stop_reason is None and estimate_tokens(text) > budget:
            text, stop_reason = text[: max(0, budget) * 4], "max_tokens"
        server_use = self._server_blocks(body, reply, content)
        if text or not (reply.tool_calls and stop_reason is None):
            block = {"type": "text", "text": text}
            if server_use.get("web_search_requests") and reply.sources:
                block["citations"] = [
                    {"type": "web_search_result_location", "url": url, "title": title, "cited_text": text[:40],
                     "encrypted_index": base64.b64encode(url.encode()).decode()}
                    for url, title in reply.sources
                ]
            content.append(block)
        out_tokens = estimate_tokens(text) + thinking_tokens
        if stop_reason is None and reply.tool_calls:
            for call in reply.tool_calls:
                content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments})
                out_tokens += estimate_tokens(call.name + json.dumps(call.arguments))
            stop_reason = "tool_use"
        usage: dict[str, Any] = {
            "input_tokens": cached["input_tokens"] if reply.input_tokens is None else reply.input_tokens,
            "cache_creation_input_tokens": cached["cache_creation_input_tokens"]
            if reply.cache_write_tokens is None else reply.cache_write_tokens,
            "cache_read_input_tokens": cached["cache_read_input_tokens"]
            if reply.cache_read_tokens is None else reply.cache_read_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": cached["ephemeral_5m_input_tokens"]
                if reply.cache_write_tokens is None else reply.cache_write_tokens,
                "ephemeral_1h_input_tokens": cached["ephemeral_1h_input_tokens"] if reply.cache_write_tokens is None else 0,
            },
            "output_tokens": max(1, out_tokens) if reply.output_tokens is None else reply.output_tokens,
            "service_tier": "standard",
        }
        if reply.reasoning:
            usage["output_tokens_details"] = {"thinking_tokens": thinking_tokens}
        if reply.raw_content is not None:  # blocks of kinds a client may not know
            content = list(reply.raw_content)
        if server_use:
            usage["server_tool_use"] = server_use
        return {
            "id": f"msg_01Fake{next(self._ids):016d}",
            "type": "message",
            "role": "assistant",
            "model": model["id"],
            "content": content,
            "stop_reason": stop_reason or "end_turn",
            "stop_sequence": stop_sequence,
            "usage": usage,
        }

    def _server_blocks(self, body: dict[str, Any], reply: FakeReply, content: list[dict[str, Any]]) -> dict[str, int]:
        """The provider-side tool blocks the model produced (only for tools the request enabled)."""
        enabled = {t.get("name") for t in body.get("tools") or [] if t.get("type") in _SERVER_TOOL_TYPES}
        use: dict[str, int] = {}
        if not enabled:
            return use
        n = next(self._ids)
        if "web_search" in enabled and reply.search_query:
            tid = f"srvtoolu_01Search{n:08d}"
            content.append({"type": "server_tool_use", "id": tid, "name": "web_search", "input": {"query": reply.search_query}})
            content.append({"type": "web_search_tool_result", "tool_use_id": tid, "content": [
                {"type": "web_search_result", "url": url, "title": title, "page_age": "2 days ago",
                 "encrypted_content": base64.b64encode(f"{url}|{title}".encode()).decode()}
                for url, title in reply.sources
            ]})
            use = {"web_search_requests": 1, "web_fetch_requests": 0}
        if "code_execution" in enabled and reply.code:
            tid = f"srvtoolu_01Code{n:08d}"
            content.append({"type": "server_tool_use", "id": tid, "name": "bash_code_execution", "input": {"command": reply.code}})
            content.append({"type": "bash_code_execution_tool_result", "tool_use_id": tid, "content": {
                "type": "bash_code_execution_result", "stdout": reply.code_output, "stderr": "", "return_code": 0, "content": []}})
            use = use or {"web_search_requests": 0, "web_fetch_requests": 0}
        return use

    # --- streaming ---------------------------------------------------------------------------

    @staticmethod
    def _pieces(text: str) -> list[str]:
        return re.findall(r"\S+\s*|\s+", text)

    def stream_events(self, message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """The SSE events of one message, in the real order (§2.4)."""
        usage = message["usage"]
        start_usage = {**usage, "output_tokens": 1}
        start_usage.pop("output_tokens_details", None)
        head = {**message, "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}
        events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": head})]
        for index, block in enumerate(message["content"]):
            kind = block["type"]
            start: dict[str, Any]
            deltas: list[dict[str, Any]] = []
            if kind == "text":
                start = {"type": "text", "text": ""}
                deltas = [{"type": "text_delta", "text": p} for p in self._pieces(block["text"])]
                if block.get("citations"):
                    start["citations"] = []
                    deltas += [{"type": "citations_delta", "citation": c} for c in block["citations"]]
            elif kind == "server_tool_use":
                start = {**block, "input": {}}
                args = json.dumps(block["input"])
                deltas = [{"type": "input_json_delta", "partial_json": ""}]
                deltas += [{"type": "input_json_delta", "partial_json": args[i : i + 7]} for i in range(0, len(args), 7)]
            elif kind in _RESULT_TYPES or kind not in ("thinking", "tool_use"):
                start = dict(block)  # redacted_thinking, a result block (or a kind added later) arrives whole, with no deltas
            elif kind == "thinking":
                start = {"type": "thinking", "thinking": "", "signature": ""}
                deltas = [{"type": "thinking_delta", "thinking": p} for p in self._pieces(block["thinking"])]
                deltas += [{"type": "thinking_delta", "thinking": ""}, {"type": "signature_delta", "signature": block["signature"]}]
            else:
                start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                args = json.dumps(block["input"]) if block["input"] else ""
                deltas = [{"type": "input_json_delta", "partial_json": ""}]
                deltas += [{"type": "input_json_delta", "partial_json": args[i : i + 9]} for i in range(0, len(args), 9)]
            events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}))
            if index == 0:
                events.append(("ping", {"type": "ping"}))
            events.extend(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas)
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        final_usage = {
            k: usage[k]
            for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens", "output_tokens_details",
                      "server_tool_use")
            if k in usage
        }
        events.append((
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
                "usage": final_usage,
            },
        ))
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    @staticmethod
    def frame(name: str, data: dict[str, Any], n: int) -> bytes:
        """One SSE event; most data JSON is padded with spaces before its last `}` like the real one."""
        if name == "ping":
            payload = '{"type": "ping"}'
        else:
            payload = json.dumps(data, separators=(",", ":"))
            pad = (n * 7) % 11
            if pad:
                payload = payload[:-1] + " " * pad + "}"
        return f"event: {name}\ndata: {payload}\n\n".encode()

    async def _stream(self, request: web.Request, message: dict[str, Any], reply: FakeReply, rid: str) -> web.StreamResponse:
        resp = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "request-id": rid,
                "anthropic-organization-id": "org-fake",
            },
        )
        await resp.prepare(request)
        for n, (name, data) in enumerate(self.stream_events(message)):
            if reply.break_after_events is not None and n >= reply.break_after_events:
                assert request.transport is not None
                # Let the client read what was sent (aiohttp raises a pending payload error before
                # returning buffered bytes), then drop without the terminating chunk.
                await asyncio.sleep(0.01)
                request.transport.close()
                return resp
            if reply.error_after_events is not None and n >= reply.error_after_events:
                etype = getattr(reply, "error_type", "overloaded_error")
                emsg = getattr(reply, "error_message", "Overloaded")
                await resp.write(self.frame("error", {"type": "error", "error": {"type": etype, "message": emsg}}, 0))
                break
            await pace(self, reply, data.get("delta", {}).get("type") == "text_delta")
            await resp.write(self.frame(name, data, n))
        await resp.write_eof()
        return resp
