"""The /v1 gateway as a plain ASGI app (no framework on the hot path: DESIGN.md).

    POST /v1/chat/completions        OpenAI Chat Completions, any routed model
    POST /v1/messages                Anthropic Messages, any routed model
    POST /v1/messages/count_tokens   Anthropic models only (others: 400)
    GET  /v1/models[/{id}]           OpenAI list shape; Anthropic's with `anthropic-version`
    POST /v1/embeddings              OpenAI shape; `local` is the bundled model

Every request needs a Synapse API key (`Authorization: Bearer` or `x-api-key`), on
loopback too, unless `gateway_open_on_loopback` is true and both this server and the
caller are on loopback. A key's model patterns and budget are checked before the call.

Same protocol in and out (OpenAI shape -> an OpenAI-protocol provider, Anthropic ->
Anthropic) is relayed by `client.arelay`: bytes pass through, usage is read on the way.
Everything else goes through `client.achat` / `astream` and is encoded in the caller's
shape. Errors are in the shape of the API being spoken; after a stream has started they
are that API's in-stream error event, then the stream ends. A client that goes away
mid-stream cancels the upstream request (the ledger records the usage seen so far).
"""

from __future__ import annotations

import asyncio
import base64
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from .. import client
from .. import settings as settings_mod
from ..errors import SynapseError
from ..server.auth import is_loopback
from . import anthropic_shape, keys, openai_shape
from .problems import Problem, problem_for
from .request import Invalid

__all__ = ["DEFAULT_MAX_BODY", "Gateway"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: The largest request body accepted (setting `gateway_max_body_bytes`): 20 MiB, what
#: fits a few large images; the Anthropic API itself takes up to 32 MB.
DEFAULT_MAX_BODY = 20 * 1024 * 1024
#: Seconds between checks of settings.json on the request path (saves by this process show at once).
SETTINGS_MAX_AGE = 1.0
_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no")]
#: Request headers passed on to Anthropic by the relay.
_ANTHROPIC_FORWARD = ("anthropic-beta", "anthropic-version")


@dataclass(slots=True)
class _Shape:
    """What differs between the two APIs the gateway speaks."""

    protocol: str
    error_body: Callable[[Problem], bytes]
    stream_error: Callable[[Problem], bytes]


OPENAI = _Shape("openai", openai_shape.error_body, openai_shape.stream_error)
ANTHROPIC = _Shape("anthropic", anthropic_shape.error_body, anthropic_shape.stream_error)


class _Call:
    """One request: its scope, headers (lower-case names), settings and key."""

    __slots__ = ("scope", "receive", "send", "headers", "shape", "settings", "key", "lease")

    def __init__(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], shape: _Shape) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.headers = headers
        self.shape = shape
        self.settings: Any = None
        self.key: keys.KeyInfo | None = None
        self.lease: Any = None

    @property
    def context(self) -> client.CallContext | None:
        if self.lease is not None:
            return self.lease.context  # a child of the key's context: its calls are priced for the budget
        return self.key.context if self.key is not None else None


class Gateway:
    """The ASGI app for /v1. `loopback`: this server listens on a loopback address only."""

    def __init__(self, *, loopback: bool = True) -> None:
        self.loopback = loopback
        self._routes: dict[tuple[str, str], Callable[[_Call], Awaitable[None]]] = {
            ("POST", "/v1/chat/completions"): self._chat_completions,
            ("POST", "/v1/messages"): self._messages,
            ("POST", "/v1/messages/count_tokens"): self._count_tokens,
            ("GET", "/v1/models"): self._models,
            ("POST", "/v1/embeddings"): self._embeddings,
        }
        self._paths = {path for _, path in self._routes}
        #: The routes whose requests count against a key's rate limit and budget.
        self._costly = {self._chat_completions, self._messages, self._embeddings}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        anthropic = path.startswith("/v1/messages") or ("anthropic-version" in headers and not path.startswith("/v1/chat"))
        call = _Call(scope, receive, send, headers, ANTHROPIC if anthropic else OPENAI)
        handler = self._routes.get((scope["method"], path))
        if handler is None and scope["method"] == "GET" and path.startswith("/v1/models/"):
            handler = self._model
        try:
            if handler is None:
                if path in self._paths:
                    raise _Refused(Problem(405, f"{scope['method']} is not allowed on {path}"))
                raise _Refused(Problem(404, f"no such endpoint: {path[:200]} (see /v1/chat/completions, /v1/messages, "
                                            "/v1/models, /v1/embeddings)", code="unknown_url", anthropic_type="not_found_error"))
            call.settings = settings_mod.load(max_age=SETTINGS_MAX_AGE)
            call.key = self._authorize(call)
            key = call.key
            if key is not None and (key.rpm or key.budget_usd is not None) and handler in self._costly:
                call.lease = await _admit(call, key)
            try:
                await handler(call)
            finally:
                if call.lease is not None:
                    await call.lease.settle()
        except _Gone:
            return  # the client left before its request was read: nobody to answer
        except _Refused as exc:
            await _answer_problem(call, exc.problem)
        except Exception as exc:  # before the answer started (streams handle their own)
            if not isinstance(exc, SynapseError):
                import logging

                logging.getLogger("synapse.gateway").exception("gateway error on %s", path)
            await _answer_problem(call, problem_for(exc))

    # --- checks ------------------------------------------------------------------------------

    def _authorize(self, call: _Call) -> keys.KeyInfo | None:
        """The request's key; None when the gateway is open on loopback and the request has none.

        Open means: the setting is on, this server and the caller are on loopback, and
        the Host header is a loopback name (so a web page cannot reach it by DNS rebinding).
        """
        if keys.key_from_headers(call.headers) is None and self.loopback and _from_loopback(call.scope):
            if _flag(call.settings.get("gateway_open_on_loopback")) and _loopback_host(call.headers.get("host", "")):
                return None
        return keys.check(call.headers, call.settings)

    def _allow(self, call: _Call, requested: str, route_model: str) -> None:
        key = call.key
        if key is None:
            return
        if not key.allows(requested, route_model):
            raise _Refused(Problem(403, f"the API key {key.name!r} may not use {requested!r}: it allows "
                                        f"{', '.join(key.models)}", code="model_not_allowed",
                                   anthropic_type="permission_error", param="model"))
        if key.over_budget():
            raise _Refused(Problem(429, f"the API key {key.name!r} has spent its budget of ${key.budget_usd:.2f} "
                                        f"(${key.spent():.4f} so far): make a new key with a larger --budget-usd",
                                   "insufficient_quota", "budget_exceeded", "rate_limit_error"))

    async def _json_body(self, call: _Call) -> dict[str, Any]:
        limit = _max_body(call.settings)
        declared = call.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _Refused(_too_large(limit))
        chunks: list[bytes] = []
        size = 0
        while True:
            msg = await call.receive()
            if msg["type"] == "http.disconnect":
                raise _Gone()
            chunk = msg.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise _Refused(_too_large(limit))
                chunks.append(chunk)
            if not msg.get("more_body"):
                break
        raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if not raw.strip():
            raise Invalid("the request body is empty: send a JSON object")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise Invalid(f"the request body is not valid JSON ({exc.args[0] if exc.args else 'parse error'})") from None
        if not isinstance(body, dict):
            raise Invalid("the request body must be a JSON object")
        return body

    def _model_of(self, call: _Call, body: dict[str, Any]) -> tuple[str, Any]:
        model = body.get("model")
        if not isinstance(model, str) or not model.strip():
            raise Invalid("model: a model name is required (e.g. claude-sonnet-4-5, gpt-5, gemini-2.5-flash)", "model")
        route = client.resolve_model(model, call.settings)
        self._allow(call, model, route.model)
        return model, route

    # --- chat ---------------------------------------------------------------------------------

    async def _chat_completions(self, call: _Call) -> None:
        await self._chat(call, openai_shape)

    async def _messages(self, call: _Call) -> None:
        await self._chat(call, anthropic_shape)

    async def _chat(self, call: _Call, shape: Any) -> None:
        body = await self._json_body(call)
        model, route = self._model_of(call, body)
        if route.spec.protocol == call.shape.protocol:
            await self._relay(call, body, route)
            return
        args = shape.decode(body, route.spec.protocol, route.upstream_model)
        _coerce(args)
        kwargs = args.kwargs()
        if not args.stream:
            response = await client.achat(model, args.messages, context=call.context, settings=call.settings, **kwargs)
            await _answer(call.send, 200, shape.encode_response(response, response.model))
            return
        events = client.astream(model, args.messages, context=call.context, settings=call.settings, **kwargs)
        first = await events.__anext__()  # errors before the first event are a plain HTTP error
        encoder = (openai_shape.StreamEncoder(route.model, args.include_usage) if shape is openai_shape
                   else anthropic_shape.StreamEncoder(route.model))

        async def chunks() -> AsyncIterator[bytes]:
            yield encoder.event(first)
            async for ev in events:
                yield encoder.event(ev)

        await _stream(call, chunks(), getattr(events, "aclose", None))

    async def _relay(self, call: _Call, body: dict[str, Any], route: Any, endpoint: str = "chat") -> None:
        forward = None
        if call.shape is ANTHROPIC:
            forward = {h: call.headers[h] for h in _ANTHROPIC_FORWARD if h in call.headers} or None
        reply = await client.arelay(call.shape.protocol, body, route=route, endpoint=endpoint, headers=forward,
                                    context=call.context, settings=call.settings)
        if reply.chunks is None:
            await _answer(call.send, reply.status, reply.body)
        else:
            chunks = reply.chunks
            await _stream(call, chunks, getattr(chunks, "aclose", None))

    async def _count_tokens(self, call: _Call) -> None:
        body = await self._json_body(call)
        model, route = self._model_of(call, body)
        if route.spec.protocol != "anthropic":
            raise Invalid(f"count_tokens works for Anthropic models only; {model!r} is served by {route.spec.label}",
                          "model")
        await self._relay(call, body, route, "count_tokens")

    # --- models and embeddings ----------------------------------------------------------------

    async def _listed(self, call: _Call) -> list[Any]:
        from .models import listed_models

        models = await listed_models(call.settings)
        key = call.key
        return [m for m in models if key is None or key.allows(m.id)]

    async def _models(self, call: _Call) -> None:
        models = await self._listed(call)
        if "anthropic-version" in call.headers:
            data = [{"type": "model", "id": m.id, "display_name": m.label or m.id, "created_at": "1970-01-01T00:00:00Z"}
                    for m in models]
            body = {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None}
        else:
            body = {"object": "list", "data": [{"id": m.id, "object": "model", "created": 0, "owned_by": m.owned_by}
                                               for m in models]}
        await _answer(call.send, 200, orjson.dumps(body))

    async def _model(self, call: _Call) -> None:
        wanted = call.scope["path"][len("/v1/models/"):]
        for m in await self._listed(call):
            if m.id == wanted:
                if "anthropic-version" in call.headers:
                    out = {"type": "model", "id": m.id, "display_name": m.label or m.id, "created_at": "1970-01-01T00:00:00Z"}
                else:
                    out = {"id": m.id, "object": "model", "created": 0, "owned_by": m.owned_by}
                await _answer(call.send, 200, orjson.dumps(out))
                return
        raise _Refused(Problem(404, f"no model {wanted[:200]!r} here: GET /v1/models lists them", code="model_not_found",
                               anthropic_type="not_found_error", param="model"))

    async def _embeddings(self, call: _Call) -> None:
        from .models import LOCAL_EMBEDDING_MODEL

        body = await self._json_body(call)
        model = body.get("model")
        if not isinstance(model, str) or not model.strip():
            raise Invalid(f"model: an embedding model name is required (`{LOCAL_EMBEDDING_MODEL}` is the bundled one)",
                          "model")
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise Invalid("input must be a string or a non-empty array of strings (token arrays are not supported)",
                          "input")
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64", None):
            raise Invalid("encoding_format must be float or base64", "encoding_format")
        if model != LOCAL_EMBEDDING_MODEL:
            from ..providers.routing import resolve

            route = resolve(model, call.settings, "embed")
            self._allow(call, model, route.model)
        elif call.key is not None:
            self._allow(call, model, model)
        vectors = await client.aembed(model, texts, settings=call.settings, context=call.context)
        data = [{"object": "embedding", "index": i, "embedding": _b64(v) if fmt == "base64" else v}
                for i, v in enumerate(vectors)]
        out = {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": 0, "total_tokens": 0}}
        await _answer(call.send, 200, orjson.dumps(out))


# --- helpers ----------------------------------------------------------------------------------


class _Gone(Exception):
    """The client disconnected while its request body was being read."""


class _Refused(Exception):
    """A refusal decided by the gateway itself (not an error on the call path)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


async def _admit(call: _Call, key: keys.KeyInfo) -> Any:
    """The key's rate limit and budget: Redis when there is one (atomic across instances,
    synapse/scale/limits.py), else this process's own count; the lease to settle, or None."""
    from ..scale import limits
    from ..scale.shared import link

    try:
        shared = link(call.settings)
        if shared is None:
            limits.local_rpm(key)
            return None
        return await limits.admit(shared, key, call.settings)
    except limits.Limited as exc:
        code = "rate_limited" if exc.reason == "rpm" else "budget_exceeded"
        raise _Refused(Problem(429, exc.message, "rate_limit_error" if exc.reason == "rpm" else "insufficient_quota",
                               code, "rate_limit_error", retry_after=exc.retry_after)) from None


def _coerce(args: Any) -> None:
    """Messages and tools -> canonical types now, so a value of the wrong type anywhere in
    them is a 400 that says where, not a failure deep in an adapter."""
    try:
        args.system, args.messages = client.coerce_messages(args.messages, args.system)
        args.tools = client.coerce_tools(args.tools)
    except SynapseError as exc:
        raise Invalid(exc.message, "messages") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        what = f"{type(exc).__name__}: {str(exc)[:120]}" if not isinstance(exc, KeyError) else f"missing field {exc}"
        raise Invalid(f"messages or tools hold a value of the wrong type or form ({what})", "messages") from None


def _too_large(limit: int) -> Problem:
    return Problem(413, f"the request body is larger than {limit:,} bytes (setting gateway_max_body_bytes)",
                   code="request_too_large", anthropic_type="request_too_large")


def _max_body(settings: Any) -> int:
    try:
        return int(settings.get("gateway_max_body_bytes") or DEFAULT_MAX_BODY)
    except (TypeError, ValueError):
        return DEFAULT_MAX_BODY


def _from_loopback(scope: Scope) -> bool:
    peer: Any = scope.get("client")
    return bool(peer) and is_loopback(str(peer[0]))


def _loopback_host(host: str) -> bool:
    from urllib.parse import urlsplit

    return is_loopback(urlsplit("//" + host).hostname or "")


def _flag(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("1", "true", "yes", "on")


def _b64(vector: list[float]) -> str:
    import sys

    values = array("f", vector)
    if sys.byteorder != "little":
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode("ascii")


async def _answer(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = _JSON + (extra or []) + [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _answer_problem(call: _Call, p: Problem) -> None:
    await _answer(call.send, p.status, call.shape.error_body(p), p.headers())


async def _stream(call: _Call, chunks: AsyncIterator[bytes], close: Callable[[], Awaitable[None]] | None) -> None:
    """Send `chunks` as an SSE body as they come. A client that goes away cancels the
    producer (and so the upstream request); a failure mid-stream becomes the API's error event."""
    send = call.send
    await send({"type": "http.response.start", "status": 200, "headers": _SSE})
    task = asyncio.current_task()
    gone = False

    async def watch() -> None:
        nonlocal gone
        while True:
            msg = await call.receive()
            if msg["type"] == "http.disconnect":
                gone = True
                if task is not None:
                    task.cancel()
                return

    watcher = asyncio.ensure_future(watch())
    try:
        try:
            async for data in chunks:
                await send({"type": "http.response.body", "body": data, "more_body": True})
        except SynapseError as err:
            await send({"type": "http.response.body", "body": call.shape.stream_error(problem_for(err)), "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    except asyncio.CancelledError:
        if not gone:
            raise
        if task is not None:
            task.uncancel()
    finally:
        watcher.cancel()
        if close is not None:
            try:
                await close()
            except Exception:
                pass
