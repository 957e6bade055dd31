"""`remember` and `forget`: the tools an agent with memory on gets, so the model can write
and correct its long-term memory itself.

The recalled memories reach the model with their ids (recall.format_recalled), so it can
forget a wrong one by id; it can also name one in words. A model's forget is a soft
delete (the history keeps the text; the Memory page can restore it), and it reaches only
the agent's own memories, never the shared ones every agent reads.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..agents.tools import FunctionTool, ToolError, function_tool
from ..errors import SynapseError
from .records import SHARED, MemoryNotFound

if TYPE_CHECKING:
    from ..client import CallContext
    from .store import MemoryStore

__all__ = ["memory_tools"]

_ID = re.compile(r"^\s*(?:memory\s*)?[\[#]?\s*(\d{1,18})\s*\]?\s*$", re.I)


def memory_tools(
    store: "MemoryStore",
    scope: str,
    session_id: str | None,
    context: "CallContext | None",
    on_change: Callable[[dict[str, Any]], None],
) -> dict[str, FunctionTool]:
    """The two tools for one turn of the agent whose memories are `scope`.
    `on_change` gets each change ({op, id, text, old_text, by}) as it is made."""

    async def remember(text: str) -> str:
        """Save a fact to long-term memory, so it is known in later conversations: facts about the
        user and their work, decisions, preferences. Not small talk, not what can be looked up again.

        Args:
            text: one short standalone sentence with the specifics, e.g. "The user's sister Claire lives in Lyon."
        """
        try:
            stored = await store.insert(scope, [text], source="remember", session_id=session_id, context=context)
        except SynapseError as exc:
            raise ToolError(f"not remembered: {exc}") from None
        memory, new = stored[0]
        if not new:
            return f"Already remembered as memory {memory.id}."
        on_change({"op": "add", "id": memory.id, "text": memory.text, "old_text": None, "by": "remember"})
        return f"Remembered as memory {memory.id}."

    async def forget(memory: str | int) -> str:
        """Forget a long-term memory that is wrong, outdated, or that the user wants forgotten.

        Args:
            memory: the memory's id as shown in brackets before it (e.g. "12"), or words that describe it.
        """
        memory_id = await _find(store, scope, str(memory), context)
        try:
            gone = await store.delete(memory_id, hard=False, actor="forget", agent=scope, session_id=session_id)
        except MemoryNotFound:
            raise ToolError(f"there is no memory {memory_id} of this agent: nothing was forgotten") from None
        on_change({"op": "delete", "id": gone.id, "text": None, "old_text": gone.text, "by": "forget"})
        return f"Forgot memory {gone.id}: {gone.text}"

    return {"remember": function_tool(remember), "forget": function_tool(forget)}


async def _find(store: "MemoryStore", scope: str, ref: str, context: "CallContext | None") -> int:
    """The id a forget means: the id it gives, else the agent's memory that best matches the words."""
    match = _ID.match(ref)
    if match:
        memory_id = int(match.group(1))
        found = (await asyncio.to_thread(store.get_many, [memory_id])).get(memory_id)
        if found is not None and found.agent == SHARED and scope != SHARED:
            raise ToolError(f"memory {memory_id} is shared by every agent: only a person can remove it, on the "
                            "Memory page; tell the user if it is wrong")
        return memory_id
    if not ref.strip():
        raise ToolError("say which memory to forget: its id, or words that describe it")
    from .recall import search

    hits = await search(store, scope, ref, k=1, include_shared=False, context=context)
    if not hits:
        raise ToolError(f"no memory of this agent matches {ref!r}: nothing was forgotten")
    return hits[0].memory.id
