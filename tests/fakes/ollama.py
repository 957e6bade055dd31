"""A loopback Ollama speaking the native API (reference/provider-protocols.md §8.1).

Point Synapse at it with the server root, no `/api` and no `/v1`:

    fake = OllamaFake().start()
    configure(ollama_base_url=fake.url)          # e.g. http://127.0.0.1:54321
    synapse.chat("llama3.2", "hi")               # a bare name routes to Ollama
    synapse.chat("ollama.qwen3:0.6b", "hi")      # so does the ollama. prefix

Served: `GET /` ("Ollama is running"), `GET /api/version`, `GET /api/tags`,
`POST /api/chat` (NDJSON stream unless the body says `"stream": false`; streaming is
Ollama's default), `POST /api/embed`, the legacy `POST /api/embeddings`, and Go's
plain-text "404 page not found" for any other path.

Like the real server: no key is needed (pass `require_key=True` to act like ollama.com,
which answers 401 `{"error": "unauthorized"}` without `Authorization: Bearer <valid key>`);
an unknown model is 404 `{"error": "model 'x' not found"}`; a name without a tag means
`:latest`; tool-call arguments must be JSON objects (a string is a 400, as Go's decoder
says); images must be base64; errors after the 200 are an NDJSON `{"error": ...}` line;
`prompt_eval_count` is left out when 0 (Go `omitempty`).

Default replies are deterministic: "Echo: <last user text>" (or "Tool said: <result>"
after a tool turn), cut at a stop sequence (done_reason "stop") or at `num_predict`
tokens (done_reason "length"). Usage is `estimate_tokens` of `prompt_text(body)` in and
of the reply out. `FakeReply` scripts anything else; its cache fields are ignored
(Ollama has none) and reasoning tokens count inside `eval_count`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from .base import FakeReply, FakeServer, estimate_tokens

__all__ = ["DEFAULT_MODELS", "OllamaFake"]

#: name -> (family, parameter size); "bert" families are embedding models.
DEFAULT_MODELS: dict[str, tuple[str, str]] = {
    "llama3.2:latest": ("llama", "3.2B"),
    "qwen3:0.6b": ("qwen3", "751.63M"),
    "llava:latest": ("llama", "7B"),
    "gpt-oss:20b": ("gptoss", "20.9B"),
    "nomic-embed-text:latest": ("nomic-bert", "137M"),
}

_PIECES = re.compile(r"\S+\s*|\s+")
_ROLES = {"system", "user", "assistant", "tool"}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _err(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _pieces(text: str) -> list[str]:
    return _PIECES.findall(text)


class _BadRequest(Exception):
    pass


class OllamaFake(FakeServer):
    """Ollama's native API on loopback; see the module docstring for how to use it."""

    name = "ollama"

    def __init__(
        self,
        valid_keys: set[str] | None = None,
        models: dict[str, tuple[str, str]] | Iterable[str] | None = None,
        *,
        require_key: bool = False,
        embedding_dim: int = 16,
        context_length: int | None = None,
    ) -> None:
        super().__init__(valid_keys)
        if models is None:
            models = DEFAULT_MODELS
        self.models: dict[str, tuple[str, str]] = (
            dict(models) if isinstance(models, dict) else {m: ("llama", "1B") for m in models}
        )
        self.require_key = require_key
        self.embedding_dim = embedding_dim
        #: When set, a chat prompt longer than this many tokens is a 400 (embeddings: with truncate false).
        self.context_length = context_length

    # --- helpers tests use -----------------------------------------------------------------

    def settings(self, **extra: Any) -> dict[str, Any]:
        """The settings that point Synapse at this fake: `configure(**fake.settings())`."""
        return {"ollama_base_url": self.url, **extra}

    @staticmethod
    def prompt_text(body: dict[str, Any]) -> str:
        """Everything the fake counts as prompt: message texts, tool calls and tool schemas."""
        parts: list[str] = []
        for m in body.get("messages") or ():
            parts.append(str(m.get("content") or ""))
            for call in m.get("tool_calls") or ():
                parts.append(json.dumps(call.get("function", {}), sort_keys=True))
        for tool in body.get("tools") or ():
            parts.append(json.dumps(tool, sort_keys=True))
        return "\n".join(parts)

    @classmethod
    def prompt_tokens(cls, body: dict[str, Any]) -> int:
        return estimate_tokens(cls.prompt_text(body))

    def vector(self, text: str) -> list[float]:
        """The fake's deterministic, L2-normalised embedding of `text`."""
        raw: list[float] = []
        counter = 0
        while len(raw) < self.embedding_dim:
            digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
            raw.extend((b - 127.5) / 127.5 for b in digest)
            counter += 1
        raw = raw[: self.embedding_dim]
        norm = math.sqrt(sum(v * v for v in raw)) or 1.0
        return [v / norm for v in raw]

    def resolve(self, name: str) -> str | None:
        if name in self.models:
            return name
        if ":" not in name and f"{name}:latest" in self.models:
            return f"{name}:latest"
        return None

    def is_embedding(self, name: str) -> bool:
        return self.models.get(name, ("", ""))[0].endswith("bert")

    # --- routes -----------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self._root),
            web.get("/api/version", self._version),
            web.get("/api/tags", self._tags),
            web.post("/api/chat", self._chat),
            web.post("/api/embed", self._embed),
            web.post("/api/embeddings", self._embeddings_legacy),
            web.route("*", "/{tail:.*}", self._not_found),
        ]

    async def _not_found(self, request: web.Request) -> web.Response:
        return web.Response(status=404, text="404 page not found", content_type="text/plain")

    async def _root(self, request: web.Request) -> web.Response:
        return web.Response(text="Ollama is running", content_type="text/plain")

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "0.12.6"})

    def _auth(self, request: web.Request) -> web.Response | None:
        if not self.require_key:
            return None
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or header[7:] not in self.valid_keys:
            return _err(401, "unauthorized")
        return None

    async def _body(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError as exc:
            raise _BadRequest(f"invalid character at offset {exc.pos} looking for beginning of value") from None
        if not isinstance(body, dict):
            raise _BadRequest("EOF" if body is None else "json: cannot unmarshal into Go value of type api.ChatRequest")
        return body

    async def _tags(self, request: web.Request) -> web.Response:
        if (denied := self._auth(request)) is not None:
            return denied
        models = []
        for i, (name, (family, size)) in enumerate(self.models.items()):
            digest = hashlib.sha256(name.encode()).hexdigest()
            models.append(
                {
                    "name": name,
                    "model": name,
                    "modified_at": "2025-10-01T12:00:00.000000000Z",
                    "size": 1_000_000_000 + i,
                    "digest": digest,
                    "details": {
                        "parent_model": "",
                        "format": "gguf",
                        "family": family,
                        "families": [family],
                        "parameter_size": size,
                        "quantization_level": "F16" if family.endswith("bert") else "Q4_K_M",
                    },
                }
            )
        return web.json_response({"models": models})

    # --- chat -------------------------------------------------------------------------------

    def _validate(self, body: dict[str, Any]) -> web.Response | None:
        model = body.get("model")
        if not model:
            return _err(400, "model is required")
        resolved = self.resolve(str(model))
        if resolved is None:
            return _err(404, f"model '{model}' not found")
        if self.is_embedding(resolved):
            return _err(400, f'"{model}" does not support chat')
        messages = body.get("messages")
        if not isinstance(messages, list):
            return _err(400, "json: cannot unmarshal messages into Go struct field ChatRequest.messages")
        for m in messages:
            if m.get("role") not in _ROLES:
                return _err(400, f"invalid role: {m.get('role')!r}")
            if not isinstance(m.get("content", ""), str):
                return _err(400, "json: cannot unmarshal array into Go struct field Message.messages.content of type string")
            for img in m.get("images") or ():
                try:
                    base64.b64decode(img, validate=True)
                except (binascii.Error, TypeError, ValueError):
                    return _err(400, "illegal base64 data at input byte 0")
            for call in m.get("tool_calls") or ():
                if not isinstance(call.get("function", {}).get("arguments", {}), dict):
                    return _err(
                        400,
                        "json: cannot unmarshal string into Go struct field ToolCallFunction.messages.tool_calls."
                        "function.arguments of type api.ToolCallFunctionArguments",
                    )
        if self.context_length is not None and self.prompt_tokens(body) > self.context_length:
            over = self.prompt_tokens(body) - self.context_length
            return _err(400, f"prompt too long; exceeded max context length by {over} tokens")
        return None

    @staticmethod
    def default_reply(body: dict[str, Any]) -> FakeReply:
        messages = body.get("messages") or [{}]
        last = messages[-1]
        if last.get("role") == "tool":
            return FakeReply(text=f"Tool said: {last.get('content', '')}")
        user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        return FakeReply(text=f"Echo: {user.get('content', '')}")

    def _render(self, body: dict[str, Any], reply: FakeReply) -> tuple[str, str, list[dict[str, Any]], dict[str, Any]]:
        """(text, thinking, wire tool calls, final metrics incl. done_reason)."""
        options = body.get("options") or {}
        text = reply.text
        done_reason = reply.stop_reason
        if done_reason is None:
            done_reason = "stop"
            for stop in options.get("stop") or ():
                if stop and stop in text:
                    text = text[: text.index(stop)]
            limit = options.get("num_predict")
            if isinstance(limit, int) and limit > 0 and estimate_tokens(text) > limit:
                text = text[: limit * 4]
                done_reason = "length"
        # Older servers send no call id: script FakeToolCall(id="") to act like one.
        calls = [
            {**({"id": c.id} if c.id else {}), "function": {"index": i, "name": c.name, "arguments": c.arguments}}
            for i, c in enumerate(reply.tool_calls)
        ]
        prompt = reply.input_tokens if reply.input_tokens is not None else self.prompt_tokens(body)
        if reply.output_tokens is not None:
            output = reply.output_tokens
        else:
            output = estimate_tokens(text) + estimate_tokens(reply.reasoning)
            output += sum(estimate_tokens(json.dumps(c["function"])) for c in calls)
        final: dict[str, Any] = {
            "done_reason": done_reason,
            "done": True,
            "total_duration": 1_234_567_890,
            "load_duration": 12_345_678,
        }
        if prompt:  # Go omitempty: a fully cached prompt reports no prompt_eval_count
            final["prompt_eval_count"] = prompt
            final["prompt_eval_duration"] = 23_456_789
        final["eval_count"] = output
        final["eval_duration"] = 345_678_901
        return text, reply.reasoning, calls, final

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._auth(request)) is not None:
            return denied
        try:
            body = await self._body(request)
        except _BadRequest as exc:
            return _err(400, str(exc))
        if (invalid := self._validate(body)) is not None:
            return invalid
        reply = self.next_reply() or self.default_reply(body)
        text, thinking, calls, final = self._render(body, reply)
        model = body["model"]
        if body.get("stream", True) is False:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if thinking:
                message["thinking"] = thinking
            if calls:
                message["tool_calls"] = calls
            return web.json_response({"model": model, "created_at": _now(), "message": message, **final})
        return await self._stream(request, model, text, thinking, calls, final, reply)

    async def _stream(
        self,
        request: web.Request,
        model: str,
        text: str,
        thinking: str,
        calls: list[dict[str, Any]],
        final: dict[str, Any],
        reply: FakeReply,
    ) -> web.StreamResponse:
        lines: list[dict[str, Any]] = []

        def chunk(**message: Any) -> dict[str, Any]:
            return {"model": model, "created_at": _now(), "message": {"role": "assistant", "content": "", **message}, "done": False}

        lines.extend(chunk(thinking=p) for p in _pieces(thinking))
        lines.extend(chunk(content=p) for p in _pieces(text))
        lines.extend(chunk(tool_calls=[c]) for c in calls)
        lines.append({"model": model, "created_at": _now(), "message": {"role": "assistant", "content": ""}, **final})

        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for n, line in enumerate(lines):
            if reply.break_after_events is not None and n >= reply.break_after_events:
                assert request.transport is not None
                request.transport.close()
                return resp
            if reply.error_after_events is not None and n >= reply.error_after_events:
                await resp.write(b'{"error":"an error was encountered while running the model: unexpected EOF"}\n')
                await resp.write_eof()
                return resp
            await resp.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
        await resp.write_eof()
        return resp

    # --- embeddings -----------------------------------------------------------------------------

    async def _embed(self, request: web.Request) -> web.Response:
        if (denied := self._auth(request)) is not None:
            return denied
        try:
            body = await self._body(request)
        except _BadRequest as exc:
            return _err(400, str(exc))
        model = body.get("model")
        if not model:
            return _err(400, "model is required")
        if self.resolve(str(model)) is None:
            return _err(404, f"model '{model}' not found")
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return _err(400, "invalid input type")
        limit = self.context_length or 8192
        if body.get("truncate") is False and any(estimate_tokens(t) > limit for t in texts):
            return _err(400, "the input length exceeds the context length")
        return web.json_response(
            {
                "model": model,
                "embeddings": [self.vector(t) for t in texts],
                "total_duration": 14_143_917,
                "load_duration": 1_019_500,
                "prompt_eval_count": sum(estimate_tokens(t) for t in texts),
            }
        )

    async def _embeddings_legacy(self, request: web.Request) -> web.Response:
        if (denied := self._auth(request)) is not None:
            return denied
        try:
            body = await self._body(request)
        except _BadRequest as exc:
            return _err(400, str(exc))
        if self.resolve(str(body.get("model") or "")) is None:
            return _err(404, f"model '{body.get('model')}' not found")
        return web.json_response({"embedding": self.vector(str(body.get("prompt") or ""))})
