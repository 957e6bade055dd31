"""Memory through the agent's own turn loop, against the Anthropic fake: a fact said in
session 1 is extracted and stored; it is recalled into session 2's request after
SYNAPSE_VOLATILE (read from the fake's request log), while the cached prefix is still
read although the recalled memories differ; an update replaces the text, a forget (the
model's tool) removes it; the extraction calls are in the ledger as the agent's memory
work; deleting a session keeps what was learned from it."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from synapse.agents import Agent
from synapse.agents.sessions import SessionStore
from synapse.agents.store import AgentStore
from synapse.caching import SYNAPSE_VOLATILE
from synapse.memory import MemoryStore
from synapse.usage import ledger
from tests.fakes.base import FakeReply, FakeToolCall

CLAUDE = "claude-sonnet-4-5"
STABLE = "You are the household assistant. Be concise and kind, and check facts before answering. " * 60


def ops(*operations: dict[str, Any]) -> FakeReply:
    return FakeReply(text=json.dumps({"operations": list(operations)}))


def system_text(body: dict[str, Any]) -> str:
    return "".join(b["text"] for b in body["system"]) if isinstance(body["system"], list) else body["system"]


def chat_requests(fake: Any) -> list[dict[str, Any]]:
    """The turn's own requests (the extraction's system prompt is the extraction prompt)."""
    return [r.json() for r in fake.requests if r.path == "/v1/messages" and STABLE[:40] in system_text(r.json())]


async def run(agent: Agent, text: str, session: str | None = None) -> tuple[list[Any], Any]:
    events = [e async for e in agent.astream(text, session_id=session)]
    done = next(e for e in events if e.type == "done")
    return events, done


def of_type(events: list[Any], kind: str) -> Any:
    found = [e for e in events if e.type == kind]
    assert len(found) == 1, [e.type for e in events]
    return found[0]


async def test_a_fact_from_session_one_is_recalled_in_session_two(anthropic: Any, fresh_db: Any) -> None:
    spec = AgentStore().create({"name": "Helper", "system_prompt": STABLE, "model": CLAUDE, "memory": True})
    agent = Agent.from_spec(spec)
    store = MemoryStore()

    # session 1: the user states a fact; the extraction after the turn stores it
    anthropic.reply(FakeReply(text="Lyon is lovely in spring!"))
    anthropic.reply(ops({"op": "add", "text": "The user's sister Claire lives in Lyon."}))
    events, done = await run(agent, "My sister Claire just moved to Lyon.")
    types = [e.type for e in events]
    assert types.index("memory_recalled") < types.index("text") < types.index("done") < types.index("memory")
    assert of_type(events, "memory_recalled").memories == []
    outcome = of_type(events, "memory")
    assert outcome.status == "applied" and outcome.reason == "1 added"
    fact = outcome.changes[0]["id"]
    assert outcome.changes == [{"op": "add", "id": fact, "text": "The user's sister Claire lives in Lyon.",
                                "old_text": None, "by": "extract"}]
    stored = store.get(fact)
    assert (stored.agent, stored.source, stored.session_id, stored.turn) == (spec.id, "extract", done.session_id, 1)
    extraction = anthropic.last.json()
    assert extraction["model"] == CLAUDE  # the agent's own model (memory_model is empty)
    assert "My sister Claire just moved to Lyon." in extraction["messages"][0]["content"][0]["text"]

    # session 2: a paraphrased question; the memory is in the request, after the volatile marker
    anthropic.reply(FakeReply(text="She lives in Lyon."))
    anthropic.reply(ops())
    events, done2 = await run(agent, "Where does my sibling live these days?")
    assert done2.session_id != done.session_id
    recalled = of_type(events, "memory_recalled").memories
    assert [m["id"] for m in recalled] == [fact] and recalled[0]["shared"] is False
    assert of_type(events, "memory").status == "nothing"
    body = chat_requests(anthropic)[-1]
    assert body["system"][0]["text"] == STABLE.strip()  # the stable part alone carries the breakpoint
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert f"- [{fact}] The user's sister Claire lives in Lyon." in body["system"][1]["text"]
    assert SYNAPSE_VOLATILE not in system_text(body)
    assert [t["name"] for t in body["tools"]] == ["remember", "forget"]

    # session 2, next turn: other memories recalled, the stable prefix still read from the cache
    cat = await store.add(spec.id, "The user's cat Biscuit is twelve years old.")
    anthropic.reply(FakeReply(text="Twelve is a good age for a cat."))
    anthropic.reply(ops())
    events, done3 = await run(agent, "How old is my cat Biscuit?", done2.session_id)
    assert of_type(events, "memory_recalled").memories[0]["id"] == cat.id
    first, second = chat_requests(anthropic)[-2:]
    assert system_text(second) != system_text(first)
    assert second["system"][0] == first["system"][0] and second["tools"] == first["tools"]
    assert done3.usage.cache_read_tokens > 1024

    # an update replaces the text (the old one stays in the history)
    anthropic.reply(FakeReply(text="Oh nice."))
    anthropic.reply(ops({"op": "update", "id": fact, "text": "The user's sister Claire lives in Paris."}))
    events, _ = await run(agent, "Claire moved again, to Paris.")
    assert of_type(events, "memory").changes[0] == {
        "op": "update", "id": fact, "text": "The user's sister Claire lives in Paris.",
        "old_text": "The user's sister Claire lives in Lyon.", "by": "extract"}
    anthropic.reply(FakeReply(text="Paris!"))
    anthropic.reply(ops())
    await run(agent, "Which city is my sister in?")
    system = system_text(chat_requests(anthropic)[-1])
    assert f"- [{fact}] The user's sister Claire lives in Paris." in system and "Lyon" not in system

    # the model forgets it with its tool, by the id it was shown
    anthropic.reply(FakeReply(tool_calls=[FakeToolCall("toolu_f1", "forget", {"memory": str(fact)})]))
    anthropic.reply(FakeReply(text="Done, I forgot it."))
    anthropic.reply(ops())
    events, _ = await run(agent, "Forget where my sister lives, please.")
    result = of_type(events, "tool_result")
    assert not result.is_error and result.content == f"Forgot memory {fact}: The user's sister Claire lives in Paris."
    memory_event = of_type(events, "memory")
    assert memory_event.status == "applied"
    assert memory_event.changes == [{"op": "delete", "id": fact, "text": None,
                                     "old_text": "The user's sister Claire lives in Paris.", "by": "forget"}]
    assert store.get_many([fact]) == {}
    assert [h.op for h in store.history(memory_id=fact)] == ["delete", "update", "add"]  # a model's delete is soft
    anthropic.reply(FakeReply(text="I don't know."))
    anthropic.reply(ops())
    await run(agent, "Which city is my sister in?")
    assert "Claire" not in system_text(chat_requests(anthropic)[-1])

    # the extraction calls are in the ledger, as memory work of the agent, in their sessions
    ledger.flush()
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT kind, agent, count(*) FROM usage_calls WHERE provider = 'anthropic' "
                                    "GROUP BY kind, agent ORDER BY kind")).all()
        sessions = conn.execute(sa.text("SELECT DISTINCT session FROM usage_calls WHERE kind = 'memory'")).scalars()
        assert done.session_id in set(sessions)
    assert [tuple(r) for r in rows] == [("chat", "Helper", 8), ("memory", "Helper", 7)]

    # deleting the session the fact came from keeps what was learned from it
    SessionStore().delete(done2.session_id)
    assert store.get(cat.id).text == "The user's cat Biscuit is twelve years old."


async def test_the_recall_and_outcome_are_stored_with_the_turn(anthropic: Any, fresh_db: Any) -> None:
    spec = AgentStore().create({"name": "Keeper", "model": CLAUDE, "memory": True})
    fact = await MemoryStore().add(spec.id, "The user is allergic to peanuts.")
    anthropic.reply(FakeReply(text="Noted, no peanuts."))
    anthropic.reply(ops({"op": "add", "text": "The user cooks dinner for four on Fridays."}))
    _, done = await run(Agent.from_spec(spec), "I cook for four on Fridays; any peanut-free ideas?")
    rows = SessionStore().messages(done.session_id)
    meta = rows[0].meta["memory"]
    assert rows[0].message.role == "user"
    assert [m["id"] for m in meta["recalled"]] == [fact.id]
    assert meta["outcome"]["status"] == "applied"
    assert meta["outcome"]["changes"][0]["text"] == "The user cooks dinner for four on Fridays."


async def test_agents_without_memory_get_no_memory_tools_or_events(anthropic: Any, fresh_db: Any) -> None:
    spec = AgentStore().create({"name": "Plain", "model": CLAUDE})
    await MemoryStore().add(spec.id, "The user is allergic to peanuts.")
    anthropic.reply(FakeReply(text="Hello."))
    events, _ = await run(Agent.from_spec(spec), "Any peanut-free ideas?")
    assert {e.type for e in events}.isdisjoint({"memory", "memory_recalled"})
    assert len(anthropic.requests) == 1 and "tools" not in anthropic.last.json()
    assert "peanuts" not in json.dumps(anthropic.last.json())
