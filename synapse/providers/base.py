"""The adapter contract every wire-protocol module implements, and the shared error mapping."""

from __future__ import annotations

import abc
import re
from collections.abc import AsyncIterator, Iterable, Mapping
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
    ProviderTimeoutError,
    RateLimitError,
    UpstreamUnavailableError,
)
from ..types import Embeddings, ModelInfo, Request, Response, StreamEvent, ToolCall
from .catalog import ProviderConfig, ProviderSpec
from .transport import dumps, loads, parse_retry_after

__all__ = ["Adapter", "looks_like_context_overflow", "merge_extra", "redact", "streamed_chars"]

_CONTEXT_PATTERNS = re.compile(
    r"prompt is too long|context length|context_length|context window|maximum context|"
    r"exceed context limit|too many tokens|input is too long|input too long|"
    r"exceeds the maximum number of tokens|maximum number of tokens|token limit",
    re.IGNORECASE,
)
_KEYLIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{10,}|xai-[A-Za-z0-9]{8,}|absk-?[A-Za-z0-9+/=]{8,}|ABSK[A-Za-z0-9+/=]{8,})")


def merge_extra(body: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `Request.extra` into a wire body, last: a dict value merges into the body's
    dict of the same name one level deep (`{"options": {"top_k": 5}}` keeps the other
    options); anything else replaces."""
    for key, value in extra.items():
        old = body.get(key)
        body[key] = {**old, **value} if isinstance(old, dict) and isinstance(value, Mapping) else value
    return body


def streamed_chars(text: Iterable[str], reasoning: Iterable[str], tool_input: Iterable[str] = (),
                   calls: Iterable[ToolCall] = ()) -> tuple[int, int]:
    """(output characters, the reasoning part) of a stream so far: its text, reasoning,
    tool-call input fragments and whole tool calls (name and JSON arguments). What an
    adapter's `Request.streamed_so_far` returns, read only for a stream cut short."""
    thought = sum(map(len, reasoning))
    out = sum(map(len, text)) + thought + sum(map(len, tool_input))
    for call in calls:
        out += len(call.name) + (len(dumps(call.arguments)) if call.arguments else 0)
    return out, thought


def looks_like_context_overflow(message: str) -> bool:
    return bool(_CONTEXT_PATTERNS.search(message))


def redact(text: str, *secrets: str) -> str:
    """Remove anything key-like from text that will be shown or logged."""
    from ..settings import mask

    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, mask(secret))
    return _KEYLIKE.sub(lambda m: mask(m.group(0)), text)


class Adapter(abc.ABC):
    """One provider, speaking one wire protocol. Built once per configuration, reused."""

    #: Provider-side tools this adapter can enable (`synapse.server_tool(name)`).
    server_tools: frozenset[str] = frozenset()

    def __init__(self, spec: ProviderSpec, config: ProviderConfig) -> None:
        self.spec = spec
        self.config = config

    # --- calls -------------------------------------------------------------------

    @abc.abstractmethod
    async def chat(self, req: Request) -> Response:
        """One non-streaming call."""

    @abc.abstractmethod
    def stream(self, req: Request) -> AsyncIterator[StreamEvent]:
        """A streaming call; the last event is always `ResponseDone` with final usage."""

    async def list_models(self) -> list[ModelInfo]:
        """The models this provider offers, with routed ids (`oaic.<name>`)."""
        return [self.model_info(m) for m in self.config.models]

    async def verify(self) -> list[ModelInfo]:
        """A cheap check that the key (or base URL) works; returns the models on success."""
        return await self.list_models()

    async def embed(self, model: str, texts: list[str], *, mode: EmbedMode | None = None) -> Embeddings:
        """One vector per text, in order, with the input tokens the provider billed for them.
        `mode` ("query" / "document") sets the provider's own task field, where it has one;
        text prefixes were already applied by the client."""
        raise BadRequestError(f"{self.spec.label} offers no embedding models", provider=self.spec.id)

    def check_server_tools(self, req: Request) -> None:
        """Refuse, before any request, a provider-side tool this provider cannot run."""
        missing = [t.name for t in req.server_tools if t.name not in self.server_tools]
        if missing:
            offered = f"it offers {', '.join(sorted(self.server_tools))}" if self.server_tools else "it runs no tools itself"
            raise BadRequestError(
                f"{self.spec.label} cannot run {', '.join(missing)} on its side ({offered}): "
                "drop that server_tool or pick another provider's model",
                provider=self.spec.id,
            )

    # --- helpers -----------------------------------------------------------------

    def model_info(self, upstream_id: str, label: str = "", embedding: bool = False,
                   images: bool | None = None) -> ModelInfo:
        return ModelInfo(
            id=self.spec.route_prefix + upstream_id,
            provider=self.spec.id,
            upstream_id=upstream_id,
            label=label,
            embedding=embedding,
            images=images,
        )

    def key_rejected(self) -> str:
        where = f": check it at {self.spec.console_url.split('://', 1)[-1]}" if self.spec.console_url else ""
        return f"{self.spec.label} rejected the key in {self.spec.key_setting}{where}"

    def error_message(self, body: bytes) -> str:
        """The human part of an error body. Override for the provider's body shape."""
        try:
            data = loads(body)
        except Exception:
            return body.decode("utf-8", "replace").strip()[:300]
        if isinstance(data, dict):
            err = data.get("error", data)
            if isinstance(err, dict):
                return str(err.get("message") or err.get("msg") or err)[:500]
            if isinstance(err, str):
                return err[:500]
            if "message" in data:
                return str(data["message"])[:500]
        return str(data)[:300]

    def error_from_response(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        """Map an HTTP error to a typed error. Adapters refine this for their provider's quirks."""
        detail = redact(self.error_message(body), self.config.api_key)
        return self.error_for_status(status, detail, headers)

    def error_for_status(self, status: int, detail: str, headers: Mapping[str, str] | None = None) -> ProviderError:
        label, pid = self.spec.label, self.spec.id
        kw: dict[str, Any] = {"provider": pid, "status": status}
        if headers is not None:
            kw["retry_after"] = parse_retry_after(headers)
            kw["request_id"] = headers.get("request-id") or headers.get("x-request-id") or headers.get("x-amzn-requestid")
        suffix = f" ({detail})" if detail else ""
        if status == 401:
            return AuthenticationError(self.key_rejected() + suffix, **kw)
        if status == 403:
            if looks_like_context_overflow(detail):
                return ContextTooLongError(f"the prompt is too long for this model at {label}{suffix}", **kw)
            return PermissionDeniedError(f"{label} refused access with this key{suffix}", **kw)
        if status == 404:
            return NotFoundError(f"{label} does not know that model or resource{suffix}", **kw)
        if status in (408, 504):
            return ProviderTimeoutError(f"{label} timed out{suffix}; try again", **kw)
        if status == 413 or (status == 400 and looks_like_context_overflow(detail)):
            return ContextTooLongError(
                f"the prompt is too long for this model at {label}{suffix}: shorten it or pick a larger model", **kw
            )
        if status == 429:
            wait = kw.get("retry_after")
            hint = f"; retry in {wait:g} s" if wait is not None else "; slow down or raise your limits"
            return RateLimitError(f"{label} rate limit reached{suffix}{hint}", **kw)
        if status == 529:
            return OverloadedError(f"{label} is overloaded{suffix}; try again shortly", **kw)
        if status >= 500:
            return UpstreamUnavailableError(f"{label} had a server error (HTTP {status}){suffix}; try again", **kw)
        return BadRequestError(f"{label} rejected the request (HTTP {status}){suffix}", **kw)

    def protocol_error(self, what: str) -> UpstreamUnavailableError:
        """The provider sent something that is not its protocol (malformed body, cut stream)."""
        return UpstreamUnavailableError(f"{self.spec.label} sent a malformed response: {what}", provider=self.spec.id)
