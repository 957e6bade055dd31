"""One chat turn: the tool loop, and the one event stream every consumer reads.

    history (stored) + the new user message + system prompt + tools
      -> client.astream / achat (the one call path: caches, ledger, limits, retries)
      -> the reply streams out as events; it is stored exactly (tool-call ids, reasoning
         blocks with their signatures in ToolCall.provider_data)
      -> tool calls run in parallel (each cut off after `tool_timeout` s; an exception
         is an error result the model reads), their results are stored and sent back
      -> ... until a reply has no tool calls, or `max_turns` rounds (then the turn ends
         with "stopped after N tool rounds", not an exception)

Stopping: when the consumer stops reading (the page's Stop, Ctrl+C, a dropped
connection) the upstream stream is closed at once, and what was said so far is stored
marked `stopped`; tool calls left without results get a "stopped" result so the
history stays valid for every provider.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import settings as settings_mod
from ..client import CallContext, CallRecord, achat, add_observer, astream
from ..errors import SynapseError
from ..types import Message, Part, Response, ResponseDone, TextPart, ToolCall, ToolResultPart, Usage
from ..types import ReasoningDelta as _RDelta
from ..types import TextDelta as _TDelta
from ..types import ToolCallDelta as _CDelta
from .events import (
    CallUsage,
    Compacted,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallEvent,
    ToolResultEvent,
    TurnDone,
    TurnError,
    TurnStart,
    event_dict,
)
from .hooks import TurnContext, hooks, log
from .sessions import SessionInfo, SessionStore, replay, title_for
from .spec import AgentSpec, resolve_model
from .tools import FunctionTool, ToolOutcome

__all__ = ["run_turn", "system_parts", "user_message"]

_SESSION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
#: Seconds tools may run before the reply that called them is stored on its own (until
#: then it is stored with their results and the next reply, in the same write).
SAVE_WHILE_TOOLS_RUN = 0.05
STOPPED_RESULT = "stopped by the user before this tool finished"

def _closing(agen: Any) -> Any:
    """`contextlib.aclosing` for any async generator (closing it closes what it holds open)."""
    from contextlib import aclosing

    return aclosing(agen)


# --- usage of each model call, from the call path's observer -----------------------------

_records: dict[int, list[CallRecord]] = {}


def _observe(record: CallRecord) -> None:
    bucket = _records.get(id(record.context))
    if bucket is not None:
        bucket.append(record)


add_observer(_observe)
_priced = False


async def _cost(record: CallRecord) -> float | None:
    """The cost the ledger will record for this call (the same function prices both)."""
    global _priced
    from ..usage.ledger import row_for

    if not _priced:  # the first price loads the price tables: off the event loop
        cost = (await asyncio.to_thread(row_for, record))["cost_usd"]
        _priced = True
        return cost
    return row_for(record)["cost_usd"]


def _add(total: Usage, u: Usage) -> None:
    total.input_tokens += u.input_tokens
    total.output_tokens += u.output_tokens
    total.cache_read_tokens += u.cache_read_tokens
    total.cache_write_tokens += u.cache_write_tokens
    total.reasoning_tokens += u.reasoning_tokens


# --- inputs --------------------------------------------------------------------------------


def user_message(prompt: str | Message | Sequence[Part]) -> Message:
    if isinstance(prompt, Message):
        return prompt
    if isinstance(prompt, str):
        if not prompt.strip():
            raise SynapseError("the message is empty: type something to send")
        return Message("user", [TextPart(prompt)])
    parts = list(prompt)
    if not parts:
        raise SynapseError("the message is empty: type something to send")
    return Message("user", parts)


def system_parts(prompt: str, volatile: Sequence[str] = ()) -> list[TextPart]:
    """The agent's prompt (cached) and, after SYNAPSE_VOLATILE, what changes each turn."""
    from ..caching import SYNAPSE_VOLATILE

    extra = "\n\n".join(v for v in volatile if v)
    if not extra:
        return [TextPart(prompt)] if prompt else []
    return [TextPart(f"{prompt}\n\n{SYNAPSE_VOLATILE}\n{extra}")]


# --- the turn ----------------------------------------------------------------------------


@dataclass(slots=True)
class _State:
    """What a turn has done so far: what to keep if it is stopped midway."""

    session_id: str
    #: Where the next stored message goes, and messages not stored yet (written with the next reply).
    next_seq: int = 1
    unsaved: list[tuple[Message, dict[str, Any]]] = field(default_factory=list)
    #: Where the turn's user message was stored (0: not yet).
    user_seq: int = 0
    round: int = 0
    partial: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    #: Tool calls stored without results yet (call id -> ToolCall).
    open_calls: dict[str, ToolCall] = field(default_factory=dict)
    results: dict[str, ToolOutcome] = field(default_factory=dict)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0
    unpriced: int = 0
    tool_log: list[dict[str, Any]] = field(default_factory=list)
    answer: str = ""


def _open(store: SessionStore, session_id: str | None, spec: AgentSpec,
          stored_agent: bool) -> tuple[SessionInfo | None, list[Message], int]:
    """The session (None: new), its history to replay and the next free seq, in one read."""
    if not session_id:
        return None, [], 1
    if not _SESSION_ID.match(session_id):
        raise SynapseError("a session id is 1-64 letters, digits and . _ : -")
    info, rows = store.open(session_id)
    if info is None:
        return None, [], 1
    agent_id = spec.id if stored_agent else None
    if info.agent_id != agent_id or info.agent_name != spec.name:
        info = store.update(info.id, agent=(agent_id, spec.name))
    return info, replay(rows), (rows[-1].seq + 1 if rows else 1)


def _create(store: SessionStore, session_id: str | None, spec: AgentSpec, stored_agent: bool,
            first_text: str) -> SessionInfo:
    return store.create(spec.id if stored_agent else None, spec.name, title_for(first_text), session_id=session_id)


def _check_model(model: str, cfg: Mapping[str, Any]) -> None:
    """Fail before anything is stored when the model routes nowhere or its provider is not set up."""
    from ..providers import adapter_for
    from ..providers.routing import resolve

    adapter_for(resolve(model, cfg).spec, cfg)


def _images_refused(model: str, user: Message, history: Sequence[Message], cfg: Mapping[str, Any]) -> str:
    """Why the turn cannot go to `model`: it is known to read no images and the turn has some
    ("" when it may go; when nothing knows, the provider decides)."""
    from ..providers.vision import takes_images

    has = lambda m: any(p.type == "image" for p in m.content)  # noqa: E731
    if not (has(user) or any(has(m) for m in history)) or takes_images(model, cfg) is not False:
        return ""
    if has(user):
        return (f"{model} does not read images: remove the image, or choose a model that reads images "
                "(e.g. a Claude model) for this message")
    return (f"this chat has images in it and {model} does not read images: start a new chat, "
            "or choose a model that reads images for this one")


async def run_turn(
    spec: AgentSpec,
    tools: Mapping[str, FunctionTool],
    prompt: str | Message | Sequence[Part],
    *,
    session_id: str | None = None,
    model: str | None = None,
    stream: bool = True,
    settings: Mapping[str, Any] | None = None,
    sessions: SessionStore | None = None,
    stored_agent: bool = True,
    api_key: Any = None,
) -> AsyncIterator[Any]:
    """Run one turn of `spec` and yield its events (see events.py). Never raises for a
    provider, tool or limit problem: those end the turn with a TurnError event.

    `api_key`: the gateway key (`gateway.keys.KeyInfo`) a REST caller came with: its model
    patterns apply to the turn's model and its name goes into the usage ledger."""
    cfg = settings if settings is not None else settings_mod.load()
    store = sessions or SessionStore(cfg)
    try:
        user = user_message(prompt)
        found, history, next_seq = await _db(store, _open, store, session_id, spec, stored_agent)
    except SynapseError as exc:
        yield TurnError(str(exc), exc.kind, session_id)
        return
    known = found.id if found is not None else None
    name = resolve_model(model, found.model if found else None, spec.model) or str(cfg.get("model") or "").strip()
    if not name:
        yield TurnError("no model to answer with: connect a provider in Settings → Models and pick a default "
                        "model there (or give this agent a model)", "no_model", known)
        return
    try:
        _check_model(name, cfg)
    except SynapseError as exc:
        yield TurnError(str(exc), exc.kind, known)
        return
    refused = _images_refused(name, user, history, cfg)
    if refused:
        yield TurnError(refused, "images_unsupported", known)
        return
    if api_key is not None and not api_key.allows(name):
        yield TurnError(f"the API key {api_key.name!r} may not use {name!r} (it allows {', '.join(api_key.models)})",
                        "key_model", known)
        return
    limit = spec.max_total_cost_usd
    if limit is not None and found is not None:
        from ..usage.ledger import spent

        spend = await asyncio.to_thread(spent, CallContext(session=found.id), cfg)
        if spend >= limit:
            yield TurnError(f"cost limit reached: session {found.id} has spent ${spend:.4f} of its ${limit:.4f} "
                            "limit (the agent's max_total_cost_usd); start a new session or raise the agent's limit",
                            "cost_limit", found.id)
            return
    info = found if found is not None else await _db(store, _create, store, session_id, spec, stored_agent, user.text)
    ctx = CallContext(agent=spec.name, session=info.id, max_total_cost_usd=limit,
                      cache=None if spec.response_cache == "off" else spec.response_cache,
                      key=api_key.name if api_key is not None else None,
                      parent=api_key.context if api_key is not None else None)
    yield TurnStart(info.id, spec.name, spec.id if stored_agent else None, name, info.title)

    turn = TurnContext(spec, info.id, name, cfg, user, history, ctx, tools=dict(tools))
    for hook in hooks():
        try:
            await hook.before_turn(turn)
        except Exception as exc:  # a hook never breaks a turn
            log.warning("agent hook %r failed before the turn: %s", hook, exc)
    for event in turn.events:
        yield event
    turn.events.clear()

    tools = turn.tools
    system = system_parts(spec.system_prompt, turn.volatile)
    tool_specs = [t.spec for t in tools.values()]
    if _flag(cfg.get("auto_compact_enabled", True)):
        from .compact import compact

        try:
            history, compacted = await compact(store, info.id, history, user, name, system, tool_specs, cfg, ctx)
        except SynapseError as exc:
            yield TurnError(f"the conversation is too long and could not be summarised: {exc}", exc.kind, info.id)
            return
        if compacted is not None:
            # kept with the user message, so the page can say so again after a reload
            turn.meta["compacted"] = {k: v for k, v in event_dict(compacted).items() if k != "type"}
            yield compacted

    state = _State(info.id, next_seq, [(user, turn.meta)])
    _records[id(ctx)] = []
    try:
        messages = [*history, user]
        after: asyncio.Future[None] | None = None
        rounds = _rounds(spec, tools, name, system, tool_specs, messages, cfg, ctx, store, state, stream)
        async with _closing(rounds):  # closing it closes the upstream stream at once
            async for event in rounds:
                if isinstance(event, TurnDone):
                    turn.history = messages
                    # started before `done` is handed over: a consumer that stops there does not stop it
                    after = _background(_after_turn(turn, event, store, state.user_seq))
                yield event
        if after is not None:
            await asyncio.shield(after)  # a consumer gone now leaves it running to its end
            for event in turn.events:
                yield event
    except BaseException:
        _save_stopped(store, state)
        raise
    finally:
        _records.pop(id(ctx), None)


_tasks: set[asyncio.Future[Any]] = set()


def _background(coro: Any) -> asyncio.Future[Any]:
    """A task that outlives its caller (a strong reference kept until it ends)."""
    task = asyncio.ensure_future(coro)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


async def _after_turn(turn: TurnContext, done: TurnDone, store: SessionStore, user_seq: int) -> None:
    """The hooks' after_turn, then what they added to the user message's meta, stored."""
    import copy

    before = copy.deepcopy(turn.meta)
    for hook in hooks():
        try:
            await hook.after_turn(turn, done)
        except Exception as exc:
            log.warning("agent hook %r failed after the turn: %s", hook, exc)
    if turn.meta != before:
        try:
            await _db(store, store.update_meta, turn.session_id, user_seq, dict(turn.meta))
        except Exception as exc:
            log.warning("could not store what happened after the turn of session %s: %s", turn.session_id, exc)


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


async def _rounds(
    spec: AgentSpec, tools: Mapping[str, FunctionTool], model: str, system: list[TextPart], tool_specs: list[Any],
    messages: list[Message], cfg: Mapping[str, Any], ctx: CallContext, store: SessionStore, state: _State, stream: bool,
) -> AsyncIterator[Any]:
    kwargs: dict[str, Any] = {"system": system, "tools": tool_specs or None, "temperature": spec.temperature,
                              "extra": spec.extra or None, "context": ctx, "settings": cfg}
    timeout = float(cfg.get("tool_timeout") or 60)
    stop_reason = "end_turn"
    note = ""
    for rnd in range(1, spec.max_turns + 1):
        state.round = rnd
        state.partial, state.reasoning = [], []
        response: Response | None = None
        try:
            if stream:
                async with _closing(astream(model, messages, **kwargs)) as events:
                    async for ev in events:
                        if isinstance(ev, _TDelta):
                            state.partial.append(ev.text)
                            yield TextDelta(ev.text, rnd)
                        elif isinstance(ev, _RDelta):
                            state.reasoning.append(ev.text)
                            yield ReasoningDelta(ev.text, rnd)
                        elif isinstance(ev, _CDelta):
                            yield ToolCallDelta(ev.index, ev.id, ev.name, ev.arguments, rnd)
                        elif isinstance(ev, ResponseDone):
                            response = ev.response
            else:
                response = await achat(model, messages, **kwargs)
                if response.reasoning:
                    yield ReasoningDelta(response.reasoning, rnd)
                if response.text:
                    yield TextDelta(response.text, rnd)
        except SynapseError as exc:
            _save_partial(store, state, {"error": str(exc)})
            yield TurnError(str(exc), exc.kind, state.session_id)
            return
        if response is None:  # adapters always end with ResponseDone; be safe anyway
            yield TurnError("the model's stream ended without a final response", "unavailable", state.session_id)
            return
        state.partial = []
        records = _records.get(id(ctx)) or []
        record = records[-1] if records else None
        cost = await _cost(record) if record is not None else None
        _add(state.usage, response.usage)
        if cost is None:
            state.unpriced += 1
        else:
            state.cost += cost
        yield CallUsage(response.model or model, response.usage, cost, rnd)
        assistant = response.to_message()
        meta: dict[str, Any] = {"model": response.model or model, "usage": response.usage.as_dict(), "cost_usd": cost,
                                "stop_reason": response.stop_reason, "round": rnd}
        if response.reasoning:
            meta["reasoning"] = response.reasoning
        if response.text:
            state.answer = response.text
        if assistant.content:
            state.unsaved.append((assistant, meta))
            messages.append(assistant)
        stop_reason = response.stop_reason
        if not response.tool_calls:
            break
        # A reply with tool calls is stored with the tools' results and the next reply,
        # in one write, unless the tools take longer than SAVE_WHILE_TOOLS_RUN: then it
        # is stored while they run (a long tool round is not lost to a crash).
        if state.unsaved and not store.local:
            await _db(store, _save, store, state)
        for call in response.tool_calls:
            yield ToolCallEvent(call.id, call.name, call.arguments, rnd)
        state.open_calls = {c.id: c for c in response.tool_calls}
        state.results = {}
        saver = asyncio.get_running_loop().call_later(SAVE_WHILE_TOOLS_RUN, _save_quietly, store, state) \
            if state.unsaved else None
        try:
            async with _closing(_run_tools(response.tool_calls, tools, timeout, state, rnd)) as running:
                async for result in running:
                    yield result
        finally:
            if saver is not None:
                saver.cancel()
        results = Message("user", [ToolResultPart(c.id, state.results[c.id].content, c.name, state.results[c.id].is_error)
                                   for c in response.tool_calls])
        state.unsaved.append((results, {"round": rnd}))
        state.open_calls = {}
        messages.append(results)
        if rnd == spec.max_turns:
            stop_reason = "max_turns"
            note = (f"stopped after {spec.max_turns} tool rounds (the agent's max_turns): the model still wanted "
                    "to call tools. Send another message to let it go on, or raise max_turns.")
    if state.unsaved:
        await _db(store, _save, store, state)
    usage = state.usage
    cost_total: float | None = state.cost if (state.cost or not state.unpriced) else None
    yield TurnDone(state.session_id, stop_reason, state.answer, model, usage, cost_total, state.tool_log,
                   state.round, note)


async def _run_tools(calls: Sequence[ToolCall], tools: Mapping[str, FunctionTool], timeout: float, state: _State,
                     rnd: int) -> AsyncIterator[ToolResultEvent]:
    """Run the calls in parallel; yield each result as it finishes."""

    async def one(call: ToolCall) -> tuple[ToolCall, ToolOutcome, float]:
        t0 = time.perf_counter()
        tool = tools.get(call.name)
        if tool is None:
            known = ", ".join(tools) or "none"
            outcome = ToolOutcome(f"there is no tool named {call.name!r}; the tools are: {known}", True)
        else:
            outcome = await tool.run(call.arguments, timeout)
        return call, outcome, time.perf_counter() - t0

    state.tasks = [asyncio.ensure_future(one(c)) for c in calls]
    try:
        for fut in asyncio.as_completed(state.tasks):
            call, outcome, seconds = await fut
            state.results[call.id] = outcome
            state.tool_log.append({"id": call.id, "name": call.name, "arguments": call.arguments,
                                   "result": outcome.content, "is_error": outcome.is_error})
            yield ToolResultEvent(call.id, call.name, outcome.content, outcome.is_error, round(seconds, 3), rnd)
    finally:
        for task in state.tasks:
            task.cancel()
        state.tasks = []


async def _db(store: SessionStore, fn: Any, *args: Any) -> Any:
    """Run a session-store call: inline on SQLite (a local file, well under a millisecond,
    cheaper than a thread hop; measured in bench/bench_agent.py), in a thread on a
    database across the network, so the event loop never waits on it."""
    if store.local:
        return fn(*args)
    return await asyncio.to_thread(fn, *args)


def _save(store: SessionStore, state: _State) -> None:
    """Store what is not stored yet, in one transaction."""
    if state.unsaved:
        items, state.unsaved = state.unsaved, []
        try:
            seqs = store.append(state.session_id, items, first_seq=state.next_seq)
        except BaseException:
            state.unsaved[:0] = items  # kept, in order, for the next write
            raise
        state.next_seq = seqs[-1] + 1
        if not state.user_seq:
            state.user_seq = seqs[0]  # the user message is the first one a turn stores


def _save_quietly(store: SessionStore, state: _State) -> None:
    """The reply before slow tools, stored from a timer on the loop (SQLite: inline, quick)."""
    try:
        _save(store, state)
    except Exception as exc:  # the turn's next write tries again
        log.warning("could not store the reply of session %s before its tools finished: %s", state.session_id, exc)


def _save_partial(store: SessionStore, state: _State, meta: Mapping[str, Any]) -> None:
    """Keep the text a cut-short reply had so far (no awaits: this runs while being cancelled)."""
    text = "".join(state.partial)
    if text:
        m: dict[str, Any] = {"round": state.round, **meta}
        if state.reasoning:
            m["reasoning"] = "".join(state.reasoning)
        state.unsaved.append((Message("assistant", [TextPart(text)]), m))
    state.partial = []
    try:
        _save(store, state)
    except Exception as exc:
        log.warning("could not store the partial reply of session %s: %s", state.session_id, exc)


def _save_stopped(store: SessionStore, state: _State) -> None:
    """The turn was stopped: store the partial reply, and results for calls left open."""
    for task in state.tasks:
        task.cancel()
    _save_partial(store, state, {"stopped": True})
    if state.open_calls:
        parts: list[Part] = []
        for call in state.open_calls.values():
            done = state.results.get(call.id)
            outcome = done if done is not None else ToolOutcome(STOPPED_RESULT, True)
            parts.append(ToolResultPart(call.id, outcome.content, call.name, outcome.is_error))
        state.unsaved.append((Message("user", parts), {"round": state.round, "stopped": True}))
        state.open_calls = {}
    try:
        _save(store, state)
    except Exception as exc:
        log.warning("could not store the stopped turn of session %s: %s", state.session_id, exc)
