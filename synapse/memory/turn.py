"""Memory in an agent's turn (an `agents.hooks` built-in): recall before, tools during,
extraction after.

    before the first model call (agents with memory on)
      recall(user message + the last reply)  -> "[id] text" lines after SYNAPSE_VOLATILE
                                                 (the cached prefix stays byte-identical)
      + the `remember` and `forget` tools     -> event `memory_recalled`
    (agents with memory_tool on, answering with a Claude model over the Anthropic API)
      + Anthropic's `memory` tool on the agent's /memories folder (files.py)
    after the turn is done and stored
      extraction (memory_auto_extract)        -> event `memory`: what the tools and the
                                                 extraction changed, or why nothing, or the error

Both events follow the turn's event stream to every consumer (the Chat page, /api/v1,
the CLI) and are kept in the user message's stored meta, so a reloaded session shows
them; the extraction's outcome is logged too. Privacy: memories go only to the model
answering the turn (and the extraction's: `memory_model`, else that same model) and to
the embedding model.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..errors import SynapseError

if TYPE_CHECKING:
    from ..agents.events import TurnDone
    from ..agents.hooks import TurnContext

__all__ = ["MemoryHook", "MemoryOutcome", "MemoryRecalled", "hook"]

log = logging.getLogger("synapse.memory")


@dataclass(slots=True)
class MemoryRecalled:
    """The memories put before this turn's first model call ({id, text, score, similarity, shared})."""

    memories: list[dict[str, Any]]
    #: Why recall found nothing it could use, when it failed (the turn goes on without memories).
    error: str = ""
    seconds: float = 0.0
    type: Literal["memory_recalled"] = "memory_recalled"


@dataclass(slots=True)
class MemoryOutcome:
    """What the turn changed in long-term memory.

    `status`: applied (something changed) | nothing (the extraction found nothing to keep) |
    rejected (every operation it proposed was refused) | error (the extraction failed) |
    off (memory_auto_extract is off; `changes` holds what the model's tools did).
    Each change: {op: add | update | delete | create | str_replace | insert | rename, id?,
    text?, old_text?, path?, by: extract | remember | forget | memory_tool}.
    """

    status: str
    reason: str
    changes: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None
    type: Literal["memory"] = "memory"


@dataclass(slots=True)
class _TurnMemory:
    store: Any
    scope: str
    #: The turn's number in its session (memories extracted from it carry it).
    turn: int
    changes: list[dict[str, Any]] = field(default_factory=list)


def _on(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _last_reply(ctx: "TurnContext") -> str:
    for message in reversed(ctx.history):
        if message.role == "assistant" and message.text.strip():
            return message.text
    return ""


def _turn_number(ctx: "TurnContext") -> int:
    """This turn's number in its session: user messages before it (tool results aside), plus one."""
    from ..types import ToolResultPart

    return 1 + sum(1 for m in ctx.history
                   if m.role == "user" and not any(isinstance(p, ToolResultPart) for p in m.content))


def _anthropic(ctx: "TurnContext") -> bool:
    """Whether the turn's model speaks the Anthropic Messages protocol (the memory tool's home)."""
    from ..providers.routing import resolve

    try:
        return resolve(ctx.model, ctx.settings).protocol == "anthropic"
    except SynapseError:
        return False


class MemoryHook:
    """See the module docstring. One instance serves every turn (state lives in the context)."""

    async def before_turn(self, ctx: "TurnContext") -> None:
        spec = ctx.agent
        if spec.memory_tool and _anthropic(ctx):
            self._add_memory_tool(ctx)
        if not spec.memory:
            return
        from .store import MemoryStore
        from .tools import memory_tools

        mem = _TurnMemory(MemoryStore(ctx.settings), spec.id, _turn_number(ctx))
        ctx.state["memory"] = mem
        for name, tool in memory_tools(mem.store, mem.scope, ctx.session_id, ctx.call_context,
                                       mem.changes.append).items():
            if name in ctx.tools:
                log.warning("agent %s has its own %r tool: memory's is left out", spec.name, name)
                continue
            ctx.tools[name] = tool
        event = await self._recall(ctx, mem)
        ctx.events.append(event)
        ctx.meta["memory"] = {"recalled": event.memories, **({"error": event.error} if event.error else {})}

    async def _recall(self, ctx: "TurnContext", mem: _TurnMemory) -> MemoryRecalled:
        from .recall import format_recalled, recall
        from .records import SHARED

        text = ctx.user_message.text.strip()
        if not text:
            return MemoryRecalled([])
        t0 = time.perf_counter()
        try:
            hits = await recall(mem.store, mem.scope, text, _last_reply(ctx), context=ctx.call_context)
        except SynapseError as exc:
            log.warning("memory recall for %s failed: %s", ctx.agent.name, exc)
            return MemoryRecalled([], f"recall failed: {exc}", round(time.perf_counter() - t0, 4))
        block = format_recalled(hits)
        if block:
            ctx.volatile.append(block)
        return MemoryRecalled(
            [{"id": h.memory.id, "text": h.memory.text, "score": round(h.score, 6),
              "similarity": None if h.similarity is None else round(h.similarity, 4),
              "shared": h.memory.agent == SHARED} for h in hits],
            seconds=round(time.perf_counter() - t0, 4),
        )

    def _add_memory_tool(self, ctx: "TurnContext") -> None:
        from .files import TOOL_NAME, MemoryFolder, folder_for, memory_tool

        if TOOL_NAME in ctx.tools:
            log.warning("agent %s has its own %r tool: Anthropic's memory tool is left out", ctx.agent.name, TOOL_NAME)
            return
        changes: list[dict[str, Any]] = ctx.state.setdefault("memory_files", [])

        def changed(args: dict[str, Any]) -> None:
            change = {"op": args.get("command"), "path": args.get("path") or args.get("new_path"), "by": "memory_tool"}
            if args.get("command") == "rename":
                change["old_path"] = args.get("old_path")
            changes.append(change)

        ctx.tools[TOOL_NAME] = memory_tool(MemoryFolder(folder_for(ctx.settings, ctx.agent.id)), changed)

    async def after_turn(self, ctx: "TurnContext", done: "TurnDone") -> None:
        mem: _TurnMemory | None = ctx.state.get("memory")
        files: list[dict[str, Any]] = ctx.state.get("memory_files") or []
        if mem is None and not files:
            return
        changes = [*(mem.changes if mem is not None else []), *files]
        if changes:  # the extraction logs its own outcome (extract.py)
            log.info("memory of %s changed by the model's tools in session %s: %s", ctx.agent.name, ctx.session_id,
                     ", ".join(f"{c['op']} {c.get('id', c.get('path'))}" for c in changes))
        if mem is None or not _on(ctx.settings.get("memory_auto_extract", True)):
            if not changes:
                return
            why = "changed by the memory tool" if mem is None else \
                "automatic extraction is off; changed by the model's tools"
            event = MemoryOutcome("off", why, changes)
        else:
            event = await self._extract(ctx, done, mem, changes)
        ctx.events.append(event)
        from dataclasses import asdict

        view = asdict(event)
        view.pop("type")
        ctx.meta.setdefault("memory", {})["outcome"] = view

    async def _extract(self, ctx: "TurnContext", done: "TurnDone", mem: _TurnMemory,
                       changes: list[dict[str, Any]]) -> MemoryOutcome:
        from .extract import extract

        user, reply = ctx.user_message.text.strip(), done.text.strip()
        if not user or not reply:
            return MemoryOutcome("applied" if changes else "nothing",
                                 "nothing to read: the exchange has no text on one side", changes)
        outcome = await extract(mem.store, mem.scope, user, reply, model=ctx.model, session_id=ctx.session_id,
                                turn=mem.turn, context=ctx.call_context)
        extracted = [dict(c.as_dict(), by="extract") for c in outcome.changes]
        status = outcome.status
        reason = outcome.reason
        if changes and status in ("nothing", "rejected"):
            status, reason = "applied", f"by the model's tools; extraction: {reason}"
        return MemoryOutcome(status, reason, changes + extracted, [r.as_dict() for r in outcome.rejected],
                             outcome.model)


#: The instance agents.hooks loads.
hook = MemoryHook()
