"""Auto-compaction: keep a long session inside the model's context window.

Before a turn, the history's size is estimated (about four characters a token, like
the prompt-cache planner). When it passes the model's context window (the
`context_window` setting, else the model's from the genai-prices tables, else
128,000) minus `reply_reserve_tokens`:

1. the oldest tool results are shortened first (in what is sent only);
2. if that is not enough, the older turns are summarised by the agent's own model into
   one message, stored as a `summary` row that stands in for them from now on.

The full original history always stays stored. `auto_compact_enabled` turns this off.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from ..caching import CHARS_PER_TOKEN, prompt_chars
from ..types import ImagePart, Message, Part, TextPart, Tool, ToolCall, ToolResultPart
from .events import Compacted

if TYPE_CHECKING:
    from ..client import CallContext
    from .sessions import SessionStore

__all__ = ["DEFAULT_CONTEXT_WINDOW", "compact", "context_window", "estimate_tokens", "shorten_tool_results"]

DEFAULT_CONTEXT_WINDOW = 128_000
#: A tool result longer than this may be shortened to its first KEEP_CHARS characters.
SHORTEN_OVER = 2_000
KEEP_CHARS = 500
SUMMARY_PREFIX = "Summary of the earlier conversation (written by Synapse to save space):\n\n"
_SUMMARY_PROMPT = (
    "Summarise the conversation below for the assistant who will continue it. Keep every fact, decision, "
    "number, name, file, preference and open question that may matter later; drop chit-chat. Write it as "
    "compact notes in the conversation's language."
)


def estimate_tokens(messages: Sequence[Message], system: Sequence[TextPart] = (), tools: Sequence[Tool] = ()) -> int:
    return prompt_chars(messages, system, tools) // CHARS_PER_TOKEN


def context_window(model: str, settings: Mapping[str, Any]) -> int:
    """The setting, else the model's own window from the price tables, else the default."""
    try:
        configured = int(settings.get("context_window") or 0)
    except (TypeError, ValueError):
        configured = 0
    if configured > 0:
        return configured
    try:
        from ..providers.routing import resolve
        from ..usage.prices import _find

        route = resolve(model, settings)
        found = _find(route.spec.id, route.upstream_model)
        window = getattr(found[1], "context_window", None) if found else None
        if window:
            return int(window)
    except Exception:
        pass
    return DEFAULT_CONTEXT_WINDOW


def shorten_tool_results(messages: list[Message], over: int, keep_last: int = 0) -> tuple[list[Message], int, int]:
    """Shorten the oldest long tool results until `over` tokens are saved.

    Returns (new messages, results shortened, tokens saved); the given messages are not changed.
    """
    out = list(messages)
    shortened = saved = 0
    for i, m in enumerate(out[: max(0, len(out) - keep_last)]):
        if saved >= over:
            break
        if m.role != "user" or not any(isinstance(p, ToolResultPart) and len(p.content) > SHORTEN_OVER for p in m.content):
            continue
        parts: list[Part] = []
        for p in m.content:
            if isinstance(p, ToolResultPart) and len(p.content) > SHORTEN_OVER and saved < over:
                cut = len(p.content) - KEEP_CHARS
                note = f"\n[… shortened by Synapse to save space: {cut:,} more characters are stored, not sent]"
                parts.append(dataclasses.replace(p, content=p.content[:KEEP_CHARS] + note))
                saved += (cut - len(note)) // CHARS_PER_TOKEN
                shortened += 1
            else:
                parts.append(p)
        out[i] = Message(m.role, parts)
    return out, shortened, saved


def _transcript(messages: Sequence[Message], limit_chars: int) -> str:
    lines: list[str] = []
    for m in messages:
        for p in m.content:
            if isinstance(p, TextPart) and p.text:
                lines.append(f"{'User' if m.role == 'user' else 'Assistant'}: {p.text}")
            elif isinstance(p, ToolCall):
                lines.append(f"Assistant called {p.name}({orjson.dumps(p.arguments).decode()[:500]})")
            elif isinstance(p, ToolResultPart):
                lines.append(f"Tool {p.name or ''} answered: {p.content[:1000]}")
            elif isinstance(p, ImagePart):
                lines.append(f"{'User' if m.role == 'user' else 'Assistant'}: [an image]")
    text = "\n\n".join(lines)
    return text[-limit_chars:] if len(text) > limit_chars else text


async def compact(
    store: "SessionStore", session_id: str, history: list[Message], user: Message, model: str,
    system: Sequence[TextPart], tools: Sequence[Tool], settings: Mapping[str, Any], context: "CallContext",
) -> tuple[list[Message], Compacted | None]:
    """The history to send this turn, compacted when it does not fit (see the module docstring)."""
    window = context_window(model, settings)
    try:
        reserve = int(settings.get("reply_reserve_tokens") or 8192)
    except (TypeError, ValueError):
        reserve = 8192
    budget = max(1024, window - min(reserve, window // 2))
    before = estimate_tokens([*history, user], system, tools)
    if before <= budget:
        return history, None
    shortened, count, _ = shorten_tool_results(history, before - budget)
    after = estimate_tokens([*shortened, user], system, tools)
    if after <= budget:
        return shortened, Compacted(before, after, shortened_tool_results=count)
    history2, summarised = await _summarise(store, session_id, shortened, model, budget, settings, context)
    if not count and not summarised:  # nothing older to shorten or summarise: the model judges the size
        return history, None
    after = estimate_tokens([*history2, user], system, tools)
    return history2, Compacted(before, after, shortened_tool_results=count, summarised_messages=summarised)


async def _summarise(
    store: "SessionStore", session_id: str, history: list[Message], model: str, budget: int,
    settings: Mapping[str, Any], context: "CallContext",
) -> tuple[list[Message], int]:
    """Summarise all but the newest messages (kept up to a quarter of the budget) into one stored message."""
    import asyncio

    from ..client import achat

    keep_tokens = budget // 4
    cut = len(history)
    kept = 0
    while cut > 0:  # keep whole newest turns: a cut lands before a user message that is not tool results
        size = estimate_tokens([history[cut - 1]])
        if kept + size > keep_tokens and cut < len(history):
            break
        kept += size
        cut -= 1
    while cut < len(history) and not (history[cut].role == "user" and not any(isinstance(p, ToolResultPart) for p in history[cut].content)):
        cut += 1
    older, newer = history[:cut], history[cut:]
    if not older:
        return history, 0
    text = _transcript(older, max(4000, (budget // 2) * CHARS_PER_TOKEN))
    reply = await achat(model, [{"role": "user", "content": f"{_SUMMARY_PROMPT}\n\n<conversation>\n{text}\n</conversation>"}],
                        context=context, settings=settings)
    summary = Message("user", [TextPart(SUMMARY_PREFIX + (reply.text.strip() or "(nothing to keep)"))])
    rows = await asyncio.to_thread(store.messages, session_id)
    through = _seq_through(rows, newer)
    await asyncio.to_thread(store.append, session_id, [(summary, {"through": through, "summarised": len(older)})], "summary")
    return [summary, *newer], len(older)


def _seq_through(rows: Sequence[Any], newer: Sequence[Message]) -> int:
    """The seq of the last stored message before the kept ones."""
    messages = [r for r in rows if r.kind == "message" and r.message.content]
    if not newer:
        return messages[-1].seq if messages else 0
    index = len(messages) - len(newer)
    if index <= 0:
        return 0
    return int(messages[index - 1].seq)
