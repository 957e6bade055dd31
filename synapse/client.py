"""The one call path every caller shares: CLI, web pages, agents and the /v1 gateway.

    achat / astream / aembed
      -> coerce inputs to canonical types
      -> route the model name to a provider and upstream id
      -> build (or reuse) that provider's adapter
      -> call it
      -> tell observers what happened (usage ledger; off the hot path)

`chat`, `stream` and `embed` are the same calls for synchronous code: they run on one
long-lived background event loop, so connections stay pooled between calls.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import settings as settings_mod
from .errors import NotFoundError, ProviderError, SynapseError, UnknownModelError, UpstreamUnavailableError
from .providers import adapter_for
from .providers.routing import KNOWN_PREFIXES, Route, resolve
from .types import (
    ImagePart,
    Message,
    Part,
    Request,
    Response,
    ResponseDone,
    StreamEvent,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolResultPart,
    Usage,
)

__all__ = [
    "CallContext",
    "CallRecord",
    "achat",
    "add_observer",
    "aembed",
    "astream",
    "build_request",
    "chat",
    "coerce_messages",
    "coerce_tools",
    "embed",
    "remove_observer",
    "stream",
]


@dataclass(slots=True)
class CallContext:
    """Who a call is for: carried into the usage ledger."""

    agent: str | None = None
    session: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class CallRecord:
    """What one provider call did; handed to every observer when it ends."""

    provider: str
    model: str
    upstream_model: str
    started_at: float
    latency: float
    ttft: float | None
    usage: Usage
    outcome: str  # "ok" or an error kind
    stream: bool
    context: CallContext | None = None
    kind: str = "chat"  # "chat" | "embed"


Observer = Callable[[CallRecord], None]
_observers: list[Observer] = []


def add_observer(fn: Observer) -> None:
    """Call `fn(record)` after every provider call. It must be quick and must not raise."""
    if fn not in _observers:
        _observers.append(fn)


def remove_observer(fn: Observer) -> None:
    if fn in _observers:
        _observers.remove(fn)


def _notify(record: CallRecord) -> None:
    for fn in tuple(_observers):
        try:
            fn(record)
        except Exception:  # an observer must never break a call
            pass


# --- input coercion --------------------------------------------------------------

MessagesInput = str | Sequence[Message | Mapping[str, Any]]
ToolsInput = Sequence[Tool | Mapping[str, Any]]


def _part_from_dict(d: Mapping[str, Any]) -> Part:
    kind = d.get("type", "text")
    if kind == "text":
        return TextPart(str(d.get("text", "")), cache=bool(d.get("cache") or d.get("cache_control")))
    if kind in ("image", "image_url"):
        import base64

        url = d.get("url") or (d.get("image_url") or {}).get("url") if kind == "image_url" else d.get("url")
        if isinstance(url, str) and url.startswith("data:"):
            header, _, payload = url.partition(",")
            return ImagePart(media_type=header[5:].split(";")[0] or "image/png", data=base64.b64decode(payload))
        data = d.get("data")
        if isinstance(data, str):
            data = base64.b64decode(data)
        return ImagePart(media_type=str(d.get("media_type", "image/png")), data=data, url=url)
    if kind in ("tool_call", "tool_use"):
        return ToolCall(str(d["id"]), str(d["name"]), dict(d.get("arguments") or d.get("input") or {}))
    if kind == "tool_result":
        content = d.get("content", "")
        if not isinstance(content, str):
            import orjson

            content = orjson.dumps(content).decode()
        return ToolResultPart(
            str(d.get("tool_call_id") or d.get("tool_use_id")), content, d.get("name"), bool(d.get("is_error"))
        )
    raise SynapseError(f"unknown message part type {kind!r}: use text, image, tool_call or tool_result")


def _message_from_dict(d: Mapping[str, Any]) -> tuple[str, list[Part]]:
    role = d.get("role")
    content = d.get("content")
    parts: list[Part] = []
    if isinstance(content, str):
        if content:
            parts.append(TextPart(content))
    elif isinstance(content, Sequence):
        parts.extend(_part_from_dict(p) if isinstance(p, Mapping) else p for p in content)
    if role == "tool":  # OpenAI style tool result
        text = content if isinstance(content, str) else "".join(getattr(p, "text", "") for p in parts)
        return "user", [ToolResultPart(str(d.get("tool_call_id")), text, d.get("name"))]
    for call in d.get("tool_calls") or ():  # OpenAI style assistant tool calls
        fn = call.get("function", call)
        args = fn.get("arguments") or {}
        if isinstance(args, str):
            import orjson

            args = orjson.loads(args) if args.strip() else {}
        parts.append(ToolCall(str(call.get("id")), str(fn.get("name")), dict(args)))
    if role not in ("user", "assistant", "system"):
        raise SynapseError(f"message role must be user, assistant, system or tool, not {role!r}")
    return str(role), parts


def coerce_messages(messages: MessagesInput, system: str | Sequence[str | TextPart] | None = None) -> tuple[list[TextPart], list[Message]]:
    """Accept a prompt string, canonical Messages, or OpenAI/Anthropic-style dicts.

    System messages are lifted into the system prompt; consecutive turns of the same
    role are merged (Anthropic and Bedrock require alternation); a tool result's name
    is filled from the tool call it answers.
    """
    sys_parts: list[TextPart] = []
    if isinstance(system, str):
        if system:
            sys_parts.append(TextPart(system))
    elif system:
        sys_parts.extend(TextPart(s) if isinstance(s, str) else s for s in system)
    if isinstance(messages, str):
        return sys_parts, [Message("user", [TextPart(messages)])]
    out: list[Message] = []
    call_names: dict[str, str] = {}
    for m in messages:
        if isinstance(m, Message):
            role, parts = m.role, list(m.content)
        else:
            role, parts = _message_from_dict(m)
        if role == "system":
            sys_parts.extend(p for p in parts if isinstance(p, TextPart))
            continue
        for p in parts:
            if isinstance(p, ToolCall):
                call_names[p.id] = p.name
            elif isinstance(p, ToolResultPart) and not p.name:
                p.name = call_names.get(p.tool_call_id)
        if out and out[-1].role == role:
            out[-1] = Message(out[-1].role, out[-1].content + parts)  # type: ignore[arg-type]
        else:
            out.append(Message(role, parts))  # type: ignore[arg-type]
    if not out:
        raise SynapseError("no messages to send: give a prompt")
    return sys_parts, out


def coerce_tools(tools: ToolsInput | None) -> list[Tool]:
    """Accept Tool objects, {name, description, parameters}, OpenAI or Anthropic tool dicts."""
    out: list[Tool] = []
    for t in tools or ():
        if isinstance(t, Tool):
            out.append(t)
            continue
        fn = t.get("function", t)
        schema = fn.get("parameters") or fn.get("input_schema") or {"type": "object", "properties": {}}
        if not fn.get("name"):
            raise SynapseError("every tool needs a name")
        out.append(Tool(str(fn["name"]), str(fn.get("description") or ""), dict(schema), bool(t.get("cache"))))
    return out


def build_request(
    upstream_model: str,
    messages: MessagesInput,
    *,
    system: str | Sequence[str | TextPart] | None = None,
    tools: ToolsInput | None = None,
    tool_choice: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    stop: str | Iterable[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Request:
    sys_parts, msgs = coerce_messages(messages, system)
    return Request(
        model=upstream_model,
        messages=msgs,
        system=sys_parts,
        tools=coerce_tools(tools),
        tool_choice=tool_choice,
        max_tokens=max_tokens,
        temperature=temperature,
        stop=[stop] if isinstance(stop, str) else list(stop or ()),
        extra=dict(extra or {}),
    )


# --- the call path -----------------------------------------------------------------


def _route(model: str | None, settings: Mapping[str, Any], purpose: str = "chat") -> Route:
    name = (model or "").strip() or str(settings.get("model") or "").strip()
    if not name:
        raise UnknownModelError(
            "no model given: pass -m/--model (e.g. claude-sonnet-4-5) or set the default with "
            "`synapse config set model NAME`"
        )
    return resolve(name, settings, purpose)  # type: ignore[arg-type]


def _bare_name_error(route: Route, err: ProviderError, settings: Mapping[str, Any]) -> SynapseError:
    """A bare name fell through to Ollama and Ollama could not serve it: say so plainly."""
    if isinstance(err, NotFoundError):
        what = "Ollama does not have it (pull it with `ollama pull NAME`)"
    else:
        what = f"Ollama cannot be reached at {settings.get('ollama_base_url')}"
    return UnknownModelError(
        f"{route.model!r} matches no provider prefix, so it was sent to Ollama, and {what}. "
        f"Known prefixes: {', '.join(KNOWN_PREFIXES)}"
    )


def _is_bare_miss(route: Route, err: ProviderError) -> bool:
    return route.bare and (isinstance(err, NotFoundError) or isinstance(err, UpstreamUnavailableError))


async def achat(
    model: str | None = None,
    messages: MessagesInput = (),
    *,
    system: str | Sequence[str | TextPart] | None = None,
    tools: ToolsInput | None = None,
    tool_choice: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    stop: str | Iterable[str] | None = None,
    extra: Mapping[str, Any] | None = None,
    context: CallContext | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Response:
    """One non-streaming chat call through the routed provider."""
    cfg = settings if settings is not None else settings_mod.load()
    route = _route(model, cfg)
    adapter = adapter_for(route.spec, cfg)
    req = build_request(
        route.upstream_model, messages, system=system, tools=tools, tool_choice=tool_choice,
        max_tokens=max_tokens, temperature=temperature, stop=stop, extra=extra,
    )
    started = time.time()
    t0 = time.perf_counter()
    try:
        response = await adapter.chat(req)
    except ProviderError as err:
        _notify(CallRecord(route.spec.id, route.model, route.upstream_model, started,
                           time.perf_counter() - t0, None, Usage(), err.kind, False, context))
        if _is_bare_miss(route, err):
            raise _bare_name_error(route, err, cfg) from None
        raise
    latency = time.perf_counter() - t0
    response.model = route.model
    _notify(CallRecord(route.spec.id, route.model, route.upstream_model, started, latency, latency,
                       response.usage, "ok", False, context))
    return response


async def astream(
    model: str | None = None,
    messages: MessagesInput = (),
    *,
    system: str | Sequence[str | TextPart] | None = None,
    tools: ToolsInput | None = None,
    tool_choice: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    stop: str | Iterable[str] | None = None,
    extra: Mapping[str, Any] | None = None,
    context: CallContext | None = None,
    settings: Mapping[str, Any] | None = None,
) -> AsyncIterator[StreamEvent]:
    """A streaming chat call: text and tool-call deltas, then `ResponseDone` with final usage."""
    cfg = settings if settings is not None else settings_mod.load()
    route = _route(model, cfg)
    adapter = adapter_for(route.spec, cfg)
    req = build_request(
        route.upstream_model, messages, system=system, tools=tools, tool_choice=tool_choice,
        max_tokens=max_tokens, temperature=temperature, stop=stop, extra=extra,
    )
    started = time.time()
    t0 = time.perf_counter()
    ttft: float | None = None
    usage = Usage()
    outcome = "ok"
    try:
        async for event in adapter.stream(req):
            if ttft is None and isinstance(event, TextDelta):
                ttft = time.perf_counter() - t0
            if isinstance(event, ResponseDone):
                event.response.model = route.model
                usage = event.response.usage
            yield event
    except ProviderError as err:
        outcome = err.kind
        if ttft is None and _is_bare_miss(route, err):
            raise _bare_name_error(route, err, cfg) from None
        raise
    except BaseException:
        outcome = "cancelled"
        raise
    finally:
        _notify(CallRecord(route.spec.id, route.model, route.upstream_model, started,
                           time.perf_counter() - t0, ttft, usage, outcome, True, context))


async def aembed(
    model: str | None,
    texts: str | Sequence[str],
    *,
    settings: Mapping[str, Any] | None = None,
    context: CallContext | None = None,
) -> list[list[float]]:
    """Embed texts. With no model (and `embedding_model` empty) the bundled local model is used."""
    cfg = settings if settings is not None else settings_mod.load()
    items = [texts] if isinstance(texts, str) else list(texts)
    name = (model or "").strip() or str(cfg.get("embedding_model") or "").strip()
    if not name or name == "local":
        from .embeddings_local import embed_local

        return await embed_local(items)
    route = resolve(name, cfg, "embed")
    adapter = adapter_for(route.spec, cfg)
    started = time.time()
    t0 = time.perf_counter()
    try:
        vectors = await adapter.embed(route.upstream_model, items)
    except ProviderError as err:
        _notify(CallRecord(route.spec.id, route.model, route.upstream_model, started,
                           time.perf_counter() - t0, None, Usage(), err.kind, False, context, "embed"))
        if _is_bare_miss(route, err):
            raise _bare_name_error(route, err, cfg) from None
        raise
    _notify(CallRecord(route.spec.id, route.model, route.upstream_model, started,
                       time.perf_counter() - t0, None, Usage(), "ok", False, context, "embed"))
    return vectors


# --- synchronous forms ---------------------------------------------------------------


def chat(model: str | None = None, messages: MessagesInput = (), **kwargs: Any) -> Response:
    """`achat` for synchronous code."""
    from ._loop import run

    return run(achat(model, messages, **kwargs))


def stream(model: str | None = None, messages: MessagesInput = (), **kwargs: Any) -> Iterator[StreamEvent]:
    """`astream` for synchronous code: a plain iterator of events."""
    from ._loop import iterate

    return iterate(astream(model, messages, **kwargs))


def embed(model: str | None, texts: str | Sequence[str], **kwargs: Any) -> list[list[float]]:
    """`aembed` for synchronous code."""
    from ._loop import run

    return run(aembed(model, texts, **kwargs))
