"""The one call path every caller shares: CLI, web pages, agents and the /v1 gateway.

    achat / astream / aembed
      -> coerce inputs to canonical types
      -> route the model name to a provider and upstream id
      -> build (or reuse) that provider's adapter
      -> response cache lookup (opt-in: `cache=` / CallContext.cache)
      -> cost limit check (only with max_total_cost_usd)
      -> prompt-cache planning (prompt_cache_enabled, on by default)
      -> call it
      -> record it in the usage ledger (a queue put) and tell observers

`arelay` is the same path for a request already in a provider's wire shape (the
gateway's same-protocol fast path): routed, checked, planned, retried and recorded the
same way, with the bytes passed through instead of decoded and re-encoded.

`chat`, `stream` and `embed` are the same calls for synchronous code: they run on one
long-lived background event loop, so connections stay pooled between calls.

Connections are pooled per event loop and closed when that loop closes (`asyncio.run`
closes its loop at the end); `aclose()` / `async with closing():` close them earlier.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import settings as settings_mod
from .caching import cache_mode, plan_anthropic_body, plan_prompt_cache, prompt_chars, wire_prompt_chars
from .embed_mode import EmbedMode, check_mode, prefixed
from .errors import (
    ConnectionFailedError,
    NotFoundError,
    ProviderError,
    ProviderTimeoutError,
    SynapseError,
    UnknownModelError,
    UpstreamUnavailableError,
)
from .providers import adapter_for, transport
from .providers.relay import SAMPLE_BYTES, AnthropicStreamReader, OpenAIStreamReader, StreamReader, body_usage
from .providers.routing import KNOWN_PREFIXES, Route, default_embedding_model, resolve
from .coerce import MessagesInput, SystemInput, ToolsInput, bad_argument, build_request, coerce_messages, coerce_tools
from .types import (
    ReasoningDelta,
    Request,
    Response,
    ResponseDone,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from .usage import ledger as _ledger

__all__ = [
    "CallContext",
    "CallRecord",
    "RelayReply",
    "achat",
    "aclose",
    "add_observer",
    "aembed",
    "arelay",
    "astream",
    "build_request",
    "chat",
    "closing",
    "coerce_messages",
    "coerce_tools",
    "embed",
    "remove_observer",
    "resolve_model",
    "stream",
]


@dataclass(slots=True)
class CallContext:
    """Who a call is for (carried into the usage ledger), and per-run options.

    Reuse one CallContext for every call of a session or an agent run.
    """

    agent: str | None = None
    session: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: Response cache for these calls: None/False (off), True/"exact", or "semantic".
    cache: bool | str | None = None
    #: Refuse the next call once the recorded spend would pass this many USD: the
    #: session's spend in the ledger, or without a session this context's own.
    max_total_cost_usd: float | None = None
    #: USD recorded for calls made with this context (kept by the usage ledger).
    spent_usd: float = 0.0
    #: The usage ledger's `kind` for chat calls made with this context, e.g. "memory" for
    #: memory extraction; None: "chat". Embedding calls stay "embed".
    kind: str | None = None
    #: The name of the gateway API key the calls came with (a usage-ledger column).
    key: str | None = None
    #: Another context that is charged too (an agent turn's calls also count against the
    #: API key's own context, which the key's budget check reads).
    parent: "CallContext | None" = field(default=None, repr=False)


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
    #: Served from the response cache: no provider call; `usage` is what it would have used.
    response_cache_hit: bool = False
    #: The settings the call ran under (the ledger writes to their data folder's database).
    settings: Mapping[str, Any] | None = None
    #: The row's id in the ledger (`usage_calls.call_id`); empty: the ledger makes one.
    call_id: str = ""
    #: The call was cut short before the provider reported all of `usage`: the missing
    #: numbers are estimates (usage/estimate.py). Never true for a completed call.
    estimated: bool = False


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
    _ledger.record(record)
    for fn in tuple(_observers):
        try:
            fn(record)
        except Exception:  # an observer must never break a call
            pass


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
        what = f"Ollama does not have it (pull it with `ollama pull {route.upstream_model}`)"
    else:
        what = f"Ollama cannot be reached at {settings.get('ollama_base_url')}"
    return UnknownModelError(
        f"{route.model!r} matches no provider prefix, so it was sent to Ollama, and {what}. "
        f"Known prefixes: {', '.join(KNOWN_PREFIXES)}"
    )


def _is_bare_miss(route: Route, err: ProviderError) -> bool:
    """A bare name Ollama does not have, or an Ollama that is not running."""
    return route.bare and route.spec.id == "ollama" and isinstance(err, (NotFoundError, ConnectionFailedError))


def _flag(value: Any, default: bool = True) -> bool:
    if isinstance(value, bool):
        return value
    if value is None or value == "":
        return default
    return str(value).strip().lower() in ("1", "true", "yes", "on")


@dataclass(slots=True)
class _CacheSlot:
    """Where a response goes in the response cache once the call succeeds."""

    cache: Any
    key: str
    scope: str | None = None
    vector: list[float] | None = None

    async def store(self, model: str, response: Response) -> None:
        try:
            await self.cache.aput(self.key, model, response, self.scope, self.vector)
        except Exception:  # a full disk (or Redis gone) must not fail a call that worked
            pass


async def _response_cache_lookup(
    mode: str, route: Route, req: Request, cfg: Mapping[str, Any], context: CallContext | None
) -> tuple[Response | None, _CacheSlot | None]:
    from .caching import exact_key, response_cache, semantic_query, semantic_scope

    try:
        rc = response_cache(cfg)
        slot = _CacheSlot(rc, exact_key(route.model, req))
        hit = await rc.aget(slot.key)
    except Exception:  # an unreadable cache means a normal call, not a failure
        return None, None
    if hit is None and mode == "semantic":
        query = semantic_query(req)
        if query:
            try:
                scope = semantic_scope(route.model, req)
                vector = (await aembed(None, [query], settings=cfg, context=context))[0]
                hit = await rc.aget_similar(scope, vector)
                slot.scope, slot.vector = scope, vector
            except Exception:  # the embedding model failed: exact matching still works
                pass
    return hit, slot


async def _prepare(
    route: Route,
    req: Request,
    cfg: Mapping[str, Any],
    context: CallContext | None,
    cache: bool | str | None,
    max_total_cost_usd: float | None,
) -> tuple[Request, Response | None, _CacheSlot | None]:
    """Response-cache lookup, cost-limit check and prompt-cache planning, in that order."""
    hit = slot = None
    mode = cache_mode(cache if cache is not None else (context.cache if context is not None else None))
    if mode is not None:
        hit, slot = await _response_cache_lookup(mode, route, req, cfg, context)
        if hit is not None:
            return req, hit, None
    limit = max_total_cost_usd if max_total_cost_usd is not None else (
        context.max_total_cost_usd if context is not None else None
    )
    if limit is not None:
        from .usage.limits import check_cost_limit

        if isinstance(limit, bool) or not isinstance(limit, (int, float)):
            raise bad_argument("max_total_cost_usd", "a number of USD or None", limit)

        await asyncio.to_thread(check_cost_limit, float(limit), context, cfg, route.spec.id, route.upstream_model, req)
    req = plan_prompt_cache(req, route.spec.protocol, _flag(cfg.get("prompt_cache_enabled", True)))
    return req, None, slot


@dataclass(slots=True)
class _Call:
    """One call's bookkeeping: when it started, and its single CallRecord when it ends."""

    route: Route
    cfg: Mapping[str, Any]
    context: CallContext | None
    stream: bool
    kind: str = "chat"
    started: float = field(default_factory=time.time)
    t0: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def record(self, outcome: str = "ok", usage: Usage | None = None, ttft: float | None = None,
               response_cache_hit: bool = False, estimated: bool = False) -> None:
        r = self.route
        _notify(CallRecord(r.spec.id, r.model, r.upstream_model, self.started, self.elapsed(), ttft,
                           usage or Usage(), outcome, self.stream, self.context, self.kind,
                           response_cache_hit, self.cfg, estimated=estimated))

    def failed(self, err: SynapseError, usage: Usage | None = None) -> SynapseError:
        """Record the failure; the error to raise (a bare-name miss is explained)."""
        self.record(err.kind, usage)
        if isinstance(err, ProviderError) and _is_bare_miss(self.route, err):
            return _bare_name_error(self.route, err, self.cfg)
        return err

    def cut_short(self, exc: BaseException, usage: Usage | None, ttft: float | None, started: bool,
                  prompt_chars: Callable[[], int], streamed: Callable[[], tuple[int, int]] | None) -> None:
        """Record a call that ended in `exc` before it completed. If it reached the provider,
        what the provider had not reported yet is estimated: the input from the request
        (`prompt_chars`), the output from what was `streamed` so far (usage/estimate.py)."""
        estimated = False
        if _reached(exc, started):
            from .usage.estimate import fill

            try:
                usage, estimated = fill(usage, prompt_chars, _streamed(streamed))
            except Exception:  # an estimate must never hide the real outcome
                pass
        self.record(_outcome(exc), usage, ttft, estimated=estimated)


def _outcome(exc: BaseException) -> str:
    """The ledger outcome of a call that ended in `exc`."""
    if isinstance(exc, SynapseError):
        return exc.kind
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit, KeyboardInterrupt)):
        return "cancelled"  # wait_for timed out, the task was cancelled, or the caller stopped reading
    return "error"


def _reached(exc: BaseException, started: bool) -> bool:
    """Whether a call that ended in `exc` had reached the provider, which may bill it.

    A started answer (the response had begun) did. Before that, a cancelled call (or an
    interrupted one) had its request out, and so had a timeout, unless the connection
    itself timed out; any other provider error (connection refused, a 4xx or 5xx answer)
    means nothing was generated.
    """
    if started:
        return True
    if isinstance(exc, ProviderTimeoutError):
        import aiohttp

        return not isinstance(exc.__context__, aiohttp.ConnectionTimeoutError)
    return isinstance(exc, (asyncio.CancelledError, GeneratorExit, KeyboardInterrupt))


def _streamed(streamed: Callable[[], tuple[int, int]] | None) -> tuple[int, int] | None:
    return streamed() if streamed is not None else None


def _prompt_chars(req: Request) -> Callable[[], int]:
    """The request's prompt size, counted only if an estimate needs it."""
    return lambda: prompt_chars(req.messages, req.system, req.tools)


def _usage_so_far(req: Request) -> Usage | None:
    """What the provider had reported when a stream stopped early (see Request.usage_so_far)."""
    if req.usage_so_far is None:
        return None
    try:
        return req.usage_so_far()
    except Exception:  # a half-read usage object must not hide the real error
        return None


def _check_call(model: Any, settings: Any, context: Any) -> None:
    """The arguments every call takes, checked before anything is sent (BadRequestError)."""
    if model is not None and not isinstance(model, str):
        raise bad_argument("model", "a model name such as 'claude-sonnet-4-5' (a string) or None", model)
    if settings is not None and not isinstance(settings, Mapping):
        raise bad_argument("settings", "a settings mapping (synapse.settings.load()) or None", settings)
    if context is not None and not isinstance(context, CallContext):
        raise bad_argument("context", "a synapse.CallContext or None", context)


def _begin(
    model: str | None,
    messages: MessagesInput,
    settings: Mapping[str, Any] | None,
    context: CallContext | None,
    stream: bool,
    **request: Any,
) -> tuple[_Call, Any, Request]:
    """Settings, route, adapter and canonical request for one chat call."""
    _check_call(model, settings, context)
    cfg = settings if settings is not None else settings_mod.load()
    route = _route(model, cfg)
    adapter = adapter_for(route.spec, cfg, route.protocol)
    req = build_request(route.upstream_model, messages, **request)
    if req.server_tools:
        adapter.check_server_tools(req)
    return _Call(route, cfg, context, stream), adapter, req


def _serve_hit(call: _Call, hit: Response) -> Response:
    """A response-cache hit: recorded with the usage it would have had, returned with none billed."""
    latency = call.elapsed()
    call.record(usage=hit.usage, ttft=latency, response_cache_hit=True)
    hit.model = call.route.model
    hit.usage = Usage()
    return hit


async def achat(
    model: str | None = None,
    messages: MessagesInput = (),
    *,
    system: SystemInput = None,
    tools: ToolsInput | None = None,
    tool_choice: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    stop: str | Iterable[str] | None = None,
    extra: Mapping[str, Any] | None = None,
    context: CallContext | None = None,
    settings: Mapping[str, Any] | None = None,
    cache: bool | str | None = None,
    max_total_cost_usd: float | None = None,
) -> Response:
    """One non-streaming chat call through the routed provider.

    `cache`: response cache for this call ("exact", "semantic", True = exact, False =
    off; default: `context.cache`, else off). `max_total_cost_usd`: refuse the call
    when the context's recorded spend would pass it (default: `context.max_total_cost_usd`).
    """
    call, adapter, req = _begin(model, messages, settings, context, False, system=system, tools=tools,
                                tool_choice=tool_choice, max_tokens=max_tokens, temperature=temperature,
                                stop=stop, extra=extra)
    route, cfg = call.route, call.cfg
    req, hit, slot = await _prepare(route, req, cfg, context, cache, max_total_cost_usd)
    if hit is not None:
        return _serve_hit(call, hit)
    try:
        response = await adapter.chat(req)
    except ProviderTimeoutError as err:  # the request was out: its input is estimated
        call.cut_short(err, None, None, False, _prompt_chars(req), None)
        raise err from None
    except ProviderError as err:
        raise call.failed(err) from None
    except BaseException as exc:  # cancelled (asyncio.wait_for, a closed page), or a bug
        call.cut_short(exc, None, None, False, _prompt_chars(req), None)  # nothing came back: estimated
        raise
    response.model = route.model
    call.record(usage=response.usage, ttft=call.elapsed())
    if slot is not None:
        await slot.store(route.model, response)
    return response


async def _replay(response: Response) -> AsyncIterator[StreamEvent]:
    """A cached response as stream events."""
    import orjson

    if response.reasoning:
        yield ReasoningDelta(response.reasoning)
    if response.text:
        yield TextDelta(response.text)
    for i, tool_call in enumerate(response.tool_calls):
        yield ToolCallDelta(i, tool_call.id, tool_call.name, orjson.dumps(tool_call.arguments).decode())
    yield ResponseDone(response)


async def astream(
    model: str | None = None,
    messages: MessagesInput = (),
    *,
    system: SystemInput = None,
    tools: ToolsInput | None = None,
    tool_choice: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    stop: str | Iterable[str] | None = None,
    extra: Mapping[str, Any] | None = None,
    context: CallContext | None = None,
    settings: Mapping[str, Any] | None = None,
    cache: bool | str | None = None,
    max_total_cost_usd: float | None = None,
) -> AsyncIterator[StreamEvent]:
    """A streaming chat call: text and tool-call deltas, then `ResponseDone` with final usage.

    `cache` and `max_total_cost_usd` as for `achat`; a response-cache hit is replayed
    as events. Usage (and so cost) comes from the usage the provider streamed.
    """
    call, adapter, req = _begin(model, messages, settings, context, True, system=system, tools=tools,
                                tool_choice=tool_choice, max_tokens=max_tokens, temperature=temperature,
                                stop=stop, extra=extra)
    route, cfg = call.route, call.cfg
    req, hit, slot = await _prepare(route, req, cfg, context, cache, max_total_cost_usd)
    if hit is not None:
        async for event in _replay(_serve_hit(call, hit)):
            yield event
        return
    ttft: float | None = None
    done: Response | None = None
    try:
        async for event in adapter.stream(req):
            if ttft is None and isinstance(event, TextDelta):
                ttft = call.elapsed()
            if isinstance(event, ResponseDone):
                event.response.model = route.model
                done = event.response
            yield event
    except ProviderError as err:
        started = ttft is not None or req.streamed_so_far is not None  # the answer had begun
        if not started and not isinstance(err, ProviderTimeoutError):  # nothing was generated
            raise call.failed(err, _usage_so_far(req)) from None
        call.cut_short(err, _usage_so_far(req), ttft, started, _prompt_chars(req), req.streamed_so_far)
        raise
    except BaseException as exc:
        if done is None:  # the caller stopped reading (or was cancelled) before the end, or a bug
            started = ttft is not None or req.streamed_so_far is not None
            call.cut_short(exc, _usage_so_far(req), ttft, started, _prompt_chars(req), req.streamed_so_far)
        else:  # the caller stopped at the final event: the call completed
            store = _stream_done(call, done, ttft, slot)
            if store is not None:  # no more awaits in a closing generator: the write runs as a task
                task = asyncio.get_running_loop().create_task(store)
                _storing.add(task)
                task.add_done_callback(_storing.discard)
        raise
    store = _stream_done(call, done, ttft, slot)
    if store is not None:
        await store


def _stream_done(call: _Call, done: Response | None, ttft: float | None,
                 slot: _CacheSlot | None) -> Coroutine[Any, Any, None] | None:
    """Record the stream; the response-cache write to run, if there is one."""
    call.record(usage=done.usage if done is not None else None, ttft=ttft)
    if slot is None or done is None:
        return None
    return slot.store(call.route.model, done)


#: Response-cache writes of streams in flight (held so they are not collected early).
_storing: set["asyncio.Task[None]"] = set()


async def aembed(
    model: str | None,
    texts: str | Sequence[str],
    *,
    settings: Mapping[str, Any] | None = None,
    context: CallContext | None = None,
    mode: EmbedMode | None = None,
) -> list[list[float]]:
    """Embed texts. With no model: `embedding_model`, else the default of the `mode` setting
    (local: the bundled model).

    The `mode` argument (not the setting): "query" for search queries, "document" for what
    is searched, in the form the model expects (prefixes, Gemini task types: see
    synapse/embed_mode.py); None embeds as before.
    """
    _check_call(model, settings, context)
    mode = check_mode(mode)
    items = _texts(texts)
    if not items:
        return []  # nothing to embed: no call, no row
    cfg = settings if settings is not None else settings_mod.load()
    name = (model or "").strip() or default_embedding_model(cfg)
    if not name or name == "local":
        from .embeddings_local import embed_local

        return await embed_local(items, query=mode == "query")
    route = resolve(name, cfg, "embed")
    adapter = adapter_for(route.spec, cfg)
    call = _Call(route, cfg, context, stream=False, kind="embed")
    try:
        result = await adapter.embed(route.upstream_model, prefixed(route.upstream_model, items, mode), mode=mode)
    except ProviderError as err:
        raise call.failed(err) from None
    except BaseException as exc:
        call.record(_outcome(exc))
        raise
    # no count from the provider: 0 tokens, and the ledger prices the call as unknown
    call.record(usage=Usage(input_tokens=result.input_tokens or 0))
    return result.vectors


def _texts(texts: Any) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, (list, tuple)) and all(isinstance(t, str) for t in texts):
        return list(texts)
    raise bad_argument("texts", "a string or a list of strings", texts)


# --- connections -------------------------------------------------------------------


async def aclose() -> None:
    """Close the running event loop's pooled provider connections now.

    Not needed with `asyncio.run`: a loop's connections close when the loop does. Use it
    in code that keeps its loop (a server, a notebook) and wants the sockets back, or
    before closing a loop that will not call `loop.close()`. The next call reconnects.
    """
    await transport.close_session()


@contextlib.asynccontextmanager
async def closing() -> AsyncIterator[None]:
    """`async with synapse.closing(): ...`: calls inside share pooled connections, which
    are closed when the block ends (`aclose()`), even if it raises."""
    try:
        yield
    finally:
        await aclose()


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


# --- same-protocol relay: the gateway's fast path -------------------------------------------


def resolve_model(model: str | None, settings: Mapping[str, Any] | None = None) -> Route:
    """Where a chat call for `model` would go (aliases applied), without making it."""
    return _route(model, settings if settings is not None else settings_mod.load())


@dataclass(slots=True)
class RelayReply:
    """A relayed reply as the provider sent it: a 2xx `body`, or `chunks` of a stream to pass on."""

    status: int
    content_type: str
    body: bytes = b""
    chunks: AsyncIterator[bytes] | None = None


async def arelay(
    protocol: str,
    body: dict[str, Any],
    *,
    route: Route | None = None,
    endpoint: str = "chat",
    headers: Mapping[str, str] | None = None,
    context: CallContext | None = None,
    settings: Mapping[str, Any] | None = None,
) -> RelayReply:
    """Send a request already in `protocol`'s wire shape ("openai" or "anthropic") to a
    provider that speaks it, with only the model field rewritten, on the same path as achat.

    Routing (aliases), the provider check, prompt-cache planning (Anthropic bodies),
    retries (transport) and the usage ledger happen as for `achat`; the reply's bytes are
    not decoded and re-encoded: usage is read off them on the way (`providers/relay.py`).
    `headers` are added to the provider's (the gateway forwards `anthropic-beta`).
    A stream's chunks must be read to the end or closed (`aclose()`): closing early
    cancels the upstream request and records the usage seen so far as "cancelled".
    `endpoint="count_tokens"` (Anthropic) is relayed without a ledger row: it costs nothing.
    """
    cfg = settings if settings is not None else settings_mod.load()
    route = route if route is not None else _route(str(body.get("model") or ""), cfg)
    if route.spec.protocol != protocol:
        raise UnknownModelError(f"{route.model!r} is served by {route.spec.label}, which does not speak the {protocol} protocol")
    adapter: Any = adapter_for(route.spec, cfg)
    url, base_headers = adapter.relay_endpoint(endpoint)
    send_headers = {**base_headers, **headers} if headers else base_headers
    body["model"] = route.upstream_model
    stream = bool(body.get("stream")) and endpoint == "chat"
    reader: StreamReader | None = None
    if protocol == "anthropic" and endpoint == "chat":
        plan_anthropic_body(body, _flag(cfg.get("prompt_cache_enabled", True)))
        reader = AnthropicStreamReader() if stream else None
    elif stream:
        options = body.get("stream_options")
        asked = isinstance(options, dict) and bool(options.get("include_usage"))
        if not asked and adapter.stream_usage:
            body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        reader = OpenAIStreamReader(hide_usage=not asked)
    data = transport.dumps(body)
    call = _Call(route, cfg, context, stream)
    if endpoint != "chat":
        result = await transport.request(adapter, "POST", url, headers=send_headers, body=data)
        return RelayReply(result.status, "application/json", result.body)
    try:
        if reader is None:
            result = await transport.request(adapter, "POST", url, headers=send_headers, body=data)
        else:
            resp = await transport.open_stream(adapter, "POST", url, headers=send_headers, body=data)
    except ProviderTimeoutError as err:  # the request was out: its input is estimated
        call.cut_short(err, None, None, False, lambda: wire_prompt_chars(body), None)
        raise err from None
    except ProviderError as err:
        raise call.failed(err) from None
    except BaseException as exc:  # the client left while the provider had not answered yet
        call.cut_short(exc, None, None, False, lambda: wire_prompt_chars(body), None)
        raise
    if reader is None:
        call.record(usage=body_usage(protocol, result.body), ttft=call.elapsed())
        return RelayReply(result.status, "application/json", result.body)
    return RelayReply(resp.status, "text/event-stream; charset=utf-8",
                      chunks=_relay_chunks(resp, reader, call, adapter, body))


async def _relay_chunks(resp: Any, reader: Any, call: _Call, adapter: Any, body: dict[str, Any]) -> AsyncIterator[bytes]:
    """The relayed stream's bytes; exactly one ledger record however it ends (a stream cut
    short is recorded with what the provider had not reported estimated)."""
    ttft: float | None = None
    sample: list[bytes] = []  # the first SAMPLE_BYTES passed on: counted if the stream is cut short
    kept = 0
    try:
        chunks = transport.iter_chunks(resp, adapter)
        async for chunk in chunks:
            if ttft is None:
                ttft = call.elapsed()
            out = reader.feed(chunk)
            if out:
                sample.append(out)
                kept += len(out)
                yield out
                if kept >= SAMPLE_BYTES:
                    break
        async for chunk in chunks:  # the rest (a long stream): passed on as they come
            out = reader.feed(chunk)
            if out:
                yield out
        rest = reader.close()
        if rest:
            yield rest
    except BaseException as exc:  # the connection broke mid-stream, or the caller stopped reading
        resp.close()  # (client gone): cancel the upstream request
        _relay_cut_short(call, exc, reader, ttft, adapter, body, resp, sample)
        raise
    resp.release()
    if reader.error is not None:
        _relay_cut_short(call, adapter.relay_error(reader.error), reader, ttft, adapter, body, resp, sample)
    elif not reader.done:
        err = UpstreamUnavailableError(
            f"{adapter.spec.label} closed the stream before it ended; try again (mid-stream)", provider=adapter.spec.id
        )
        _relay_cut_short(call, err, reader, ttft, adapter, body, resp, sample)
        raise err
    else:
        call.record(usage=reader.usage(), ttft=ttft)


def _relay_cut_short(call: _Call, exc: BaseException, reader: StreamReader, ttft: float | None, adapter: Any,
                     body: dict[str, Any], resp: Any, sample: list[bytes]) -> None:
    call.cut_short(exc, reader.usage_so_far(), ttft, True, lambda: wire_prompt_chars(body),
                   lambda: reader.streamed(adapter, sample, _received(resp)))


def _received(resp: Any) -> int:
    """Bytes of the body received so far (aiohttp counts them anyway); 0 if unknown."""
    return int(getattr(getattr(resp, "content", None), "total_bytes", 0) or 0)
