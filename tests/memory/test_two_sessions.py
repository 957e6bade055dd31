"""Two sessions against the Anthropic fake, with the pieces an agent turn will call
(the agent loop itself wires them in with agents): a fact stated in session 1 is
extracted and stored, recalled into session 2's request after SYNAPSE_VOLATILE (read
from the fake's request log), the cached prefix is still read while the recalled
memories differ, an update replaces the text, a forget removes it."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

import synapse
from synapse.caching import SYNAPSE_VOLATILE
from synapse.client import CallContext
from synapse.memory import MemoryStore
from synapse.memory.extract import extract
from synapse.memory.recall import format_recalled, recall
from synapse.usage import ledger
from tests.fakes.base import FakeReply

CLAUDE = "claude-sonnet-4-5"
STABLE = "You are the household assistant. Be concise and kind, and check facts before answering. " * 60


def system_with(hits: Any) -> str:
    return f"{STABLE}\n{SYNAPSE_VOLATILE}\n{format_recalled(hits)}"


def system_text(body: dict[str, Any]) -> str:
    return "".join(b["text"] for b in body["system"]) if isinstance(body["system"], list) else body["system"]


async def turn(store: MemoryStore, anthropic: Any, session: str, message: str) -> tuple[Any, list[Any]]:
    """What an agent turn does with memory on: recall, answer, extract."""
    ctx = CallContext(agent="Helper", session=session)
    hits = await recall(store, "agent-h", message, context=ctx)
    reply = await synapse.achat(CLAUDE, message, system=system_with(hits), context=ctx)
    return reply, hits


async def test_a_fact_from_session_one_is_recalled_in_session_two(anthropic: Any, fresh_db: Any) -> None:
    store = MemoryStore()
    # session 1: the user states a fact; the extraction stores it
    anthropic.reply(FakeReply(text="Lyon is lovely in spring!"))
    reply, hits = await turn(store, anthropic, "s-1", "My sister Claire just moved to Lyon.")
    assert hits == []
    anthropic.reply(FakeReply(text=json.dumps({"operations": [
        {"op": "add", "text": "The user's sister Claire lives in Lyon."}]})))
    outcome = await extract(store, "agent-h", "My sister Claire just moved to Lyon.", reply.text, model=CLAUDE,
                            session_id="s-1", turn=1, context=CallContext(agent="Helper", session="s-1"))
    assert outcome.status == "applied"
    fact = outcome.changes[0].id

    # session 2: a paraphrased question; the memory is in the request, after the volatile marker
    anthropic.reply(FakeReply(text="She lives in Lyon."))
    _, hits = await turn(store, anthropic, "s-2", "Where does my sibling live these days?")
    assert [h.memory.id for h in hits] == [fact]
    body = anthropic.last.json()
    system = system_text(body)
    assert system.index(f"- [{fact}] The user's sister Claire lives in Lyon.") > system.index(STABLE.strip()[-40:])
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}  # the stable part carries the breakpoint
    assert "Claire" not in body["system"][0]["text"]  # and no memory is inside it

    # session 2, next turn: other memories recalled, the stable prefix is still read from the cache
    await store.add("agent-h", "The user's cat Biscuit is twelve years old.")
    anthropic.reply(FakeReply(text="Twelve is a good age for a cat."))
    r3, hits3 = await turn(store, anthropic, "s-2", "How old is my cat Biscuit?")
    assert [h.memory.text for h in hits3][0] == "The user's cat Biscuit is twelve years old."
    assert system_text(anthropic.last.json()) != system
    assert r3.usage.cache_read_tokens > 1024

    # an update replaces the text, a forget removes it
    anthropic.reply(FakeReply(text=json.dumps({"operations": [
        {"op": "update", "id": fact, "text": "The user's sister Claire lives in Paris."}]})))
    await extract(store, "agent-h", "Claire moved again, to Paris.", "Oh nice.", model=CLAUDE, session_id="s-2")
    anthropic.reply(FakeReply(text="Paris!"))
    _, hits = await turn(store, anthropic, "s-3", "Which city is my sister in?")
    assert "- [%d] The user's sister Claire lives in Paris." % fact in system_text(anthropic.last.json())
    assert "Lyon" not in system_text(anthropic.last.json())
    await store.delete(fact, hard=True)
    anthropic.reply(FakeReply(text="I don't know."))
    await turn(store, anthropic, "s-4", "Which city is my sister in?")
    assert "Claire" not in system_text(anthropic.last.json())

    # the extraction calls are in the ledger, as memory work of the agent
    ledger.flush()
    with store.engine.connect() as conn:
        kinds = conn.execute(sa.text("SELECT kind, agent, count(*) FROM usage_calls WHERE provider = 'anthropic' "
                                     "GROUP BY kind, agent ORDER BY kind")).all()
    assert [tuple(k) for k in kinds] == [("chat", "Helper", 5), ("memory", "Helper", 1), ("memory", "agent-h", 1)]
