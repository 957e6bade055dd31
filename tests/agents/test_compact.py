"""Auto-compaction: long tool results shortened first, then older turns summarised."""

from __future__ import annotations

import json
from typing import Any

import synapse
from synapse.agents import events as ev
from synapse.agents.sessions import SessionStore
from tests.fakes.base import FakeToolCall

from .conftest import Proto


def big(n: int) -> str:
    """Returns a long text.

    Args:
        n: how many lines.
    """
    return "\n".join(f"line {i} of a very long tool output" for i in range(n))


async def run(agent: synapse.Agent, prompt: str, **kw: Any) -> list[Any]:
    return [e async for e in agent.astream(prompt, **kw)]


async def test_long_tool_results_are_shortened_first_and_kept_whole_in_storage(use_proto: Any, configure: Any) -> None:
    proto: Proto = use_proto("openai")
    agent = synapse.Agent(name="c", tools=[big])
    proto.fake.reply(proto.reply(tool_calls=[FakeToolCall("c1", "big", {"n": 400})]), proto.reply(text="Read it."))
    first = (await run(agent, "Read the file"))[-1]
    configure(context_window=3000, reply_reserve_tokens=500)
    proto.fake.reply(proto.reply(text="Sure."))
    events = await run(agent, "And now?", session_id=first.session_id)
    compacted = [e for e in events if isinstance(e, ev.Compacted)]
    assert compacted and compacted[0].shortened_tool_results == 1 and compacted[0].summarised_messages == 0
    assert compacted[0].tokens_after < compacted[0].tokens_before
    sent = json.dumps(proto.fake.last.json())
    assert "shortened by Synapse" in sent and "line 399 of" not in sent
    rows = SessionStore().messages(first.session_id)
    assert "line 399 of" in rows[2].message.content[0].content  # the original stays stored
    # what was done is kept with the question, for the Chat page to say again after a reload
    question = [r for r in rows if r.message.role == "user"][-1]
    assert question.message.content[0].text == "And now?"
    assert question.meta["compacted"] == {"tokens_before": compacted[0].tokens_before, "tokens_after": compacted[0].tokens_after,
                                          "shortened_tool_results": 1, "summarised_messages": 0}


async def test_older_turns_are_summarised_by_the_model_when_shortening_is_not_enough(use_proto: Any, configure: Any) -> None:
    proto: Proto = use_proto("anthropic")
    agent = synapse.Agent(name="s")
    session = None
    for i in range(6):
        proto.fake.reply(proto.reply(text=f"Answer {i}: " + "detail " * 150))
        done = (await run(agent, f"Question {i}: " + "context " * 150, session_id=session))[-1]
        session = done.session_id
    configure(context_window=2000, reply_reserve_tokens=400)
    proto.fake.reply(proto.reply(text="The user asked six questions."), proto.reply(text="Answer 6."))
    events = await run(agent, "Question 6", session_id=session)
    compacted = [e for e in events if isinstance(e, ev.Compacted)][0]
    assert compacted.summarised_messages >= 8 and compacted.tokens_after <= 2000 - 400
    posts = [r for r in proto.fake.requests if r.method == "POST"]
    summary_request, turn_request = posts[-2].json(), posts[-1].json()
    assert "Summarise the conversation" in json.dumps(summary_request)
    assert turn_request["messages"][0]["content"][0]["text"].startswith("Summary of the earlier conversation")
    assert "The user asked six questions." in json.dumps(turn_request)
    rows = SessionStore().messages(session)
    assert sum(r.kind == "summary" for r in rows) == 1 and sum(r.kind == "message" for r in rows) == 14
    # the next turn replays from the summary, without summarising again
    proto.fake.reply(proto.reply(text="Answer 7."))
    before = len(posts)
    await run(agent, "Question 7", session_id=session)
    assert len([r for r in proto.fake.requests if r.method == "POST"]) == before + 1


async def test_compaction_can_be_turned_off(use_proto: Any, configure: Any) -> None:
    proto: Proto = use_proto("openai")
    configure(context_window=1000, auto_compact_enabled=False)
    agent = synapse.Agent(name="o")
    proto.fake.reply(proto.reply(text="ok"))
    events = await run(agent, "x " * 3000)
    assert not [e for e in events if isinstance(e, ev.Compacted)] and events[-1].type == "done"


async def test_a_first_message_too_long_on_its_own_is_left_to_the_model(use_proto: Any, configure: Any) -> None:
    """Nothing older to shorten or summarise: no "compacted" event that did nothing."""
    proto: Proto = use_proto("openai")
    configure(context_window=1000)
    proto.fake.reply(proto.reply(text="ok"))
    events = await run(synapse.Agent(name="one"), "x " * 3000)
    assert not [e for e in events if isinstance(e, ev.Compacted)] and events[-1].type == "done"
