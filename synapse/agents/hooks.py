"""Per-turn hooks: how memory (and later features) join a turn without a second loop.

A hook's `before_turn` runs after the history is loaded and before the first model
call; it may add text to `ctx.volatile` (sent in the system prompt after
`SYNAPSE_VOLATILE`, so the cached prefix stays byte-identical from turn to turn), tools
to `ctx.tools` (memory's `remember` and `forget`), JSON to `ctx.meta` (stored with the
turn's user message, so a reloaded session shows it) and events to `ctx.events`
(yielded to every consumer). `after_turn` runs once the turn is done and stored (memory
extraction); it starts before `done` is handed to the consumer, so a consumer that stops
reading at `done` does not cut it short, and its events and `ctx.meta` changes follow
`done` in the stream and in the store. A hook that raises is logged and skipped: it
never breaks a turn.

Built-in hooks (`BUILTIN`) are imported on the first turn, so `import synapse.agents`
stays light; a hook that has nothing to do for an agent returns at once.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..client import CallContext
    from ..types import Message
    from .events import TurnDone
    from .spec import AgentSpec
    from .tools import FunctionTool

__all__ = ["BUILTIN", "TurnContext", "TurnHook", "add_hook", "hooks", "remove_hook"]

log = logging.getLogger("synapse.agents")

#: Hooks every turn runs, as "module:attribute" (imported on first use).
BUILTIN: tuple[str, ...] = ("synapse.memory.turn:hook",)


@dataclass(slots=True)
class TurnContext:
    agent: "AgentSpec"
    session_id: str
    model: str
    settings: Mapping[str, Any]
    user_message: "Message"
    #: The conversation before this turn, as it will be sent.
    history: list["Message"]
    call_context: "CallContext"
    #: Text for the system prompt after SYNAPSE_VOLATILE (recalled memories, the time).
    volatile: list[str] = field(default_factory=list)
    #: Events a hook wants every consumer to see (dataclasses with a `type` field).
    events: list[Any] = field(default_factory=list)
    #: Scratch space shared between a hook's before_turn and after_turn.
    state: dict[str, Any] = field(default_factory=dict)
    #: The tools the model is offered this turn, by name; a hook may add its own.
    tools: dict[str, "FunctionTool"] = field(default_factory=dict)
    #: JSON stored with the turn's user message (session_messages.meta).
    meta: dict[str, Any] = field(default_factory=dict)


class TurnHook(Protocol):
    async def before_turn(self, ctx: TurnContext) -> None: ...

    async def after_turn(self, ctx: TurnContext, done: "TurnDone") -> None: ...


_hooks: list[TurnHook] = []
_builtin_loaded = False


def _load_builtin() -> None:
    global _builtin_loaded
    _builtin_loaded = True
    for ref in reversed(BUILTIN):
        module, _, attr = ref.partition(":")
        try:
            hook = getattr(importlib.import_module(module), attr)
        except Exception as exc:  # a broken feature must not stop chat
            log.warning("built-in agent hook %s could not be loaded: %s", ref, exc)
            continue
        if hook not in _hooks:
            _hooks.insert(0, hook)


def add_hook(hook: TurnHook) -> None:
    if hook not in _hooks:
        _hooks.append(hook)


def remove_hook(hook: TurnHook) -> None:
    if hook in _hooks:
        _hooks.remove(hook)


def hooks() -> tuple[TurnHook, ...]:
    if not _builtin_loaded:
        _load_builtin()
    return tuple(_hooks)
