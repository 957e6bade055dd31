"""Per-turn hooks: how memory (and later features) join a turn without a second loop.

A hook's `before_turn` runs after the history is loaded and before the first model
call; it may add text to `ctx.volatile` (sent in the system prompt after
`SYNAPSE_VOLATILE`, so the cached prefix stays byte-identical from turn to turn) and
events to `ctx.events` (yielded to every consumer). `after_turn` runs once the turn
is done and stored (memory extraction). A hook that raises is logged and skipped: it
never breaks a turn.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..client import CallContext
    from ..types import Message
    from .events import TurnDone
    from .spec import AgentSpec

__all__ = ["TurnContext", "TurnHook", "add_hook", "hooks", "remove_hook"]

log = logging.getLogger("synapse.agents")


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


class TurnHook(Protocol):
    async def before_turn(self, ctx: TurnContext) -> None: ...

    async def after_turn(self, ctx: TurnContext, done: "TurnDone") -> None: ...


_hooks: list[TurnHook] = []


def add_hook(hook: TurnHook) -> None:
    if hook not in _hooks:
        _hooks.append(hook)


def remove_hook(hook: TurnHook) -> None:
    if hook in _hooks:
        _hooks.remove(hook)


def hooks() -> tuple[TurnHook, ...]:
    return tuple(_hooks)
