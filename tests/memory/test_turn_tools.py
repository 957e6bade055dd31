"""The memory tools a model gets (remember, forget by id or by words, never a shared memory),
what the turn reports when extraction fails or is off, and extraction that finishes when
the consumer stops reading at `done`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from synapse.agents import Agent
from synapse.agents.store import AgentStore
from synapse.memory import SHARED, MemoryStore
from tests.fakes.base import FakeReply, FakeToolCall

CLAUDE = "claude-sonnet-4-5"


def agent(**fields: Any) -> Agent:
    return Agent.from_spec(AgentStore().create({"name": "Tooly", "model": CLAUDE, "memory": True, **fields}))


async def events_of(a: Agent, text: str) -> list[Any]:
    return [e async for e in a.astream(text)]


def one(events: list[Any], kind: str) -> Any:
    (found,) = [e for e in events if e.type == kind]
    return found


async def test_remember_stores_once_and_forget_finds_by_words(anthropic: Any, fresh_db: Any, configure: Any) -> None:
    configure(memory_auto_extract=False)
    a = agent()
    store = MemoryStore()
    anthropic.reply(FakeReply(tool_calls=[
        FakeToolCall("t1", "remember", {"text": "The user's dentist is Dr Okafor."}),
        FakeToolCall("t2", "remember", {"text": "the user's dentist is dr okafor."}),
    ]))
    anthropic.reply(FakeReply(text="Saved."))
    events = await events_of(a, "My dentist is Dr Okafor.")
    results = sorted(e.content for e in events if e.type == "tool_result")
    (memory,) = store.memories(a.spec.id)
    # the two calls ran in parallel: the second saw the first's row inside its write transaction
    assert results == [f"Already remembered as memory {memory.id}.", f"Remembered as memory {memory.id}."]
    assert memory.source == "remember"
    outcome = one(events, "memory")
    assert outcome.status == "off" and [c["by"] for c in outcome.changes] == ["remember"]

    anthropic.reply(FakeReply(tool_calls=[FakeToolCall("t3", "forget", {"memory": "my dentist"})]))
    anthropic.reply(FakeReply(text="Forgotten."))
    events = await events_of(a, "Forget who my dentist is.")
    assert one(events, "tool_result").content == f"Forgot memory {memory.id}: {memory.text}"  # whichever call won
    assert store.memories(a.spec.id) == []


async def test_forget_refuses_shared_and_unknown_memories(anthropic: Any, fresh_db: Any, configure: Any) -> None:
    configure(memory_auto_extract=False)
    a = agent()
    shared = await MemoryStore().add(SHARED, "The household's wifi password is on the fridge.")
    anthropic.reply(FakeReply(tool_calls=[FakeToolCall("t1", "forget", {"memory": shared.id}),
                                          FakeToolCall("t2", "forget", {"memory": "[99999]"})]))
    anthropic.reply(FakeReply(text="I could not."))
    events = await events_of(a, "Forget the wifi note.")
    results = {e.id: e for e in events if e.type == "tool_result"}
    assert results["t1"].is_error and "shared by every agent" in results["t1"].content
    assert results["t2"].is_error and results["t2"].content == \
        "there is no memory 99999 of this agent: nothing was forgotten"
    assert MemoryStore().get(shared.id).text == "The household's wifi password is on the fridge."
    assert not any(e.type == "memory" for e in events)  # nothing changed, extraction off: nothing to report


async def test_a_failed_extraction_is_an_event_not_silence(anthropic: Any, fresh_db: Any, configure: Any) -> None:
    a = agent()
    anthropic.reply(FakeReply(text="Sure."))
    anthropic.reply(FakeReply(text="I think the user likes tea"))  # not JSON
    outcome = one(await events_of(a, "I like tea."), "memory")
    assert outcome.status == "error" and outcome.reason.startswith("the extraction reply could not be used")

    anthropic.reply(FakeReply(text="Sure."))
    anthropic.reply(FakeReply(text=json.dumps({"operations": [{"op": "delete", "id": 424242}]})))
    outcome = one(await events_of(a, "Forget everything about tea."), "memory")
    assert outcome.status == "rejected"
    assert outcome.rejected == [{"operation": {"op": "delete", "id": 424242},
                                 "reason": "delete names memory 424242, which this extraction was not shown"}]

    configure(memory_model="claude-no-such-model")  # the upstream answers 404
    anthropic.reply(FakeReply(text="Sure."))
    outcome = one(await events_of(a, "Coffee, then."), "memory")
    assert outcome.status == "error" and outcome.reason.startswith("the extraction call failed")
    assert outcome.model == "claude-no-such-model"


async def test_extraction_finishes_when_the_consumer_stops_at_done(anthropic: Any, fresh_db: Any) -> None:
    a = agent()
    anthropic.reply(FakeReply(text="Noted."))
    anthropic.reply(FakeReply(text=json.dumps({"operations": [{"op": "add", "text": "The user runs on Sundays."}]})))
    stream = a.astream("I run every Sunday.")
    async for event in stream:
        if event.type == "done":
            break
    await stream.aclose()  # a page closed right after the reply
    for _ in range(200):
        if MemoryStore().memories(a.spec.id):
            break
        await asyncio.sleep(0.02)
    assert [m.text for m in MemoryStore().memories(a.spec.id)] == ["The user runs on Sundays."]
