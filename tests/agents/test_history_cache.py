"""A process keeps the sessions it read or wrote between turns (sessions.py), and a turn
with fast tools is stored in one write (loop.py). Neither may change what is stored or
sent: a kept history is never served after another process (or another store object)
wrote the session, and a slow tool round is stored while its tools run."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import synapse
from synapse import storage
from synapse.agents import events as ev
from synapse.agents.sessions import SessionStore
from synapse.types import Message, TextPart
from tests.fakes.base import FakeToolCall

from .conftest import Proto

pytestmark = pytest.mark.database

ROOT = Path(__file__).parents[2]


def other_process(code: str) -> None:
    """Run `code` in another Python process on the same data folder."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            env=dict(os.environ), timeout=60, cwd=str(ROOT))
    assert result.returncode == 0, result.stderr


async def turn(agent: synapse.Agent, prompt: str, session_id: str | None = None) -> ev.TurnDone:
    events = [e async for e in agent.astream(prompt, session_id=session_id)]
    assert isinstance(events[-1], ev.TurnDone), events[-1]
    return events[-1]


def sent_texts(proto: Proto) -> list[str]:
    """The message texts of the last chat request the fake received."""
    body = [r for r in proto.fake.requests if r.method == "POST"][-1].json()
    return [m["content"] if isinstance(m["content"], str) else json.dumps(m["content"]) for m in body["messages"]]


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """Every SQL statement run on the data folder's database while the test runs."""
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()))

    eng = storage.engine()
    sa.event.listen(eng, "before_cursor_execute", before)
    yield seen
    sa.event.remove(eng, "before_cursor_execute", before)


async def test_a_kept_history_is_never_served_after_another_process_wrote_the_session(use_proto: Any) -> None:
    proto: Proto = use_proto("openai")
    agent = synapse.Agent(name="a")
    proto.fake.reply(proto.reply(text="one"), proto.reply(text="two"), proto.reply(text="three"))
    sid = (await turn(agent, "first")).session_id
    other_process(f"""
        from synapse.agents.sessions import SessionStore
        from synapse.types import Message, TextPart
        SessionStore().append({sid!r}, [(Message("user", [TextPart("written elsewhere")]), {{}}),
                                        (Message("assistant", [TextPart("noted elsewhere")]), {{}})])
    """)
    await turn(agent, "second", sid)
    assert sent_texts(proto)[-5:] == ["first", "one", "written elsewhere", "noted elsewhere", "second"]
    # a summary written elsewhere stands in for what it covers on the next turn here
    other_process(f"""
        from synapse.agents.sessions import SessionStore
        from synapse.types import Message, TextPart
        SessionStore().append({sid!r}, [(Message("user", [TextPart("SUMMARY of four")]), {{"through": 4}})], "summary")
    """)
    await turn(agent, "third", sid)
    sent = " | ".join(sent_texts(proto))  # (adjacent user messages may be sent as one)
    assert sent.index("SUMMARY of four") < sent.index("second") < sent.index("two") < sent.index("third")
    assert "first" not in sent and "written elsewhere" not in sent
    rows = SessionStore().messages(sid)
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))  # no seq clash between the writers


async def test_a_session_deleted_and_made_again_elsewhere_is_read_again(use_proto: Any) -> None:
    proto: Proto = use_proto("openai")
    agent = synapse.Agent(name="a")
    proto.fake.reply(proto.reply(text="one"), proto.reply(text="two"))
    await turn(agent, "first", "s-fixed-id")
    other_process("""
        from synapse.agents.sessions import SessionStore
        from synapse.types import Message, TextPart
        store = SessionStore()
        store.delete("s-fixed-id")
        store.create(None, "a", "again", session_id="s-fixed-id")
        store.append("s-fixed-id", [(Message("user", [TextPart("new start")]), {}),
                                    (Message("assistant", [TextPart("new reply")]), {})])
    """)
    await turn(agent, "second", "s-fixed-id")
    assert sent_texts(proto)[-3:] == ["new start", "new reply", "second"]
    assert "first" not in sent_texts(proto)


async def test_a_changed_meta_is_read_again(use_proto: Any) -> None:
    """update_meta changes no seq: it must still give the session a new version."""
    proto: Proto = use_proto("openai")
    agent = synapse.Agent(name="a")
    proto.fake.reply(proto.reply(text="one"), proto.reply(text="two"))
    sid = (await turn(agent, "first")).session_id
    store = SessionStore()
    store.append(sid, [(Message("user", [TextPart("SUMMARY")]), {"through": 0})], "summary")
    seq = store.messages(sid)[-1].seq
    other_process(f"""
        from synapse.agents.sessions import SessionStore
        SessionStore().update_meta({sid!r}, {seq}, {{"through": 2}})
    """)
    await turn(agent, "second", sid)
    sent = " | ".join(sent_texts(proto))
    assert "SUMMARY" in sent and "second" in sent and "first" not in sent  # "first" and "one" are covered now


async def test_the_next_turn_in_this_process_reads_one_row_not_the_history(use_proto: Any, statements: list[str]) -> None:
    proto: Proto = use_proto("openai")
    agent = synapse.Agent(name="a")
    proto.fake.reply(proto.reply(text="one"), proto.reply(text="two"))
    sid = (await turn(agent, "first")).session_id
    statements.clear()
    await turn(agent, "second", sid)
    reads = [s for s in statements if s.startswith("SELECT") and "session_messages.content" in s]
    assert reads == [], reads  # the rows came from what this process wrote
    assert sent_texts(proto)[-3:] == ["first", "one", "second"]
    assert [r.message.text for r in SessionStore().messages(sid)] == ["first", "one", "second", "two"]


def quick(city: str) -> str:
    """Answers at once.

    Args:
        city: a city.
    """
    return f"{city}: sunny"


@pytest.mark.sqlite_only  # a database across the network stores each round before its tools run (loop.py)
async def test_a_turn_whose_tools_answer_at_once_is_stored_in_one_write(use_proto: Any, statements: list[str]) -> None:
    proto: Proto = use_proto("openai")
    proto.fake.reply(proto.reply(text="", tool_calls=[FakeToolCall("c1", "quick", {"city": "Oslo"})]),
                     proto.reply(text="", tool_calls=[FakeToolCall("c2", "quick", {"city": "Rome"})]),
                     proto.reply(text="Sunny in both."))
    done = await turn(synapse.Agent(name="w", tools=[quick]), "Weather?")
    inserts = [s for s in statements if s.startswith("INSERT INTO session_messages")]
    assert len(inserts) == 1
    rows = SessionStore().messages(done.session_id)
    assert [r.message.role for r in rows] == ["user", "assistant", "user", "assistant", "user", "assistant"]
    assert rows[-1].message.text == "Sunny in both."


async def test_a_slow_tool_round_is_stored_while_the_tool_runs(use_proto: Any) -> None:
    proto: Proto = use_proto("openai")
    proto.fake.reply(proto.reply(text="", tool_calls=[FakeToolCall("c1", "slow", {"city": "Oslo"})]),
                     proto.reply(text="Rainy."))
    session: list[str] = []
    seen: list[list[str]] = []

    async def slow(city: str) -> str:
        """Answers after a while, and looks at what is stored meanwhile.

        Args:
            city: a city.
        """
        await asyncio.sleep(0.3)  # past the loop's SAVE_WHILE_TOOLS_RUN
        seen.append([r.message.role for r in SessionStore().messages(session[0])])
        return f"{city}: rainy"

    async for e in synapse.Agent(name="w", tools=[slow]).astream("Weather?"):
        if isinstance(e, ev.TurnStart):
            session.append(e.session_id)
    assert seen == [["user", "assistant"]]  # the question and the tool call were stored mid-round
    rows = SessionStore().messages(session[0])
    assert [r.message.role for r in rows] == ["user", "assistant", "user", "assistant"]


async def test_a_write_elsewhere_during_a_turn_is_not_hidden_by_this_turns_own_write(use_proto: Any) -> None:
    """Another process changes the session while a turn runs (here: a summary's range,
    from a tool); this turn's write must not make the rows it holds look current."""
    proto: Proto = use_proto("openai")
    proto.fake.reply(proto.reply(text="one"), proto.reply(text="", tool_calls=[FakeToolCall("c1", "meddle", {})]),
                     proto.reply(text="two"), proto.reply(text="three"))
    agent = synapse.Agent(name="a")
    sid = (await turn(agent, "first")).session_id
    store = SessionStore()
    store.append(sid, [(Message("user", [TextPart("SUMMARY")]), {"through": 0})], "summary")
    seq = store.messages(sid)[-1].seq

    def meddle() -> str:
        """Changes the session from another process."""
        other_process(f"""
            from synapse.agents.sessions import SessionStore
            SessionStore().update_meta({sid!r}, {seq}, {{"through": 2}})
        """)
        return "done"

    await turn(synapse.Agent(name="a", tools=[meddle]), "second", sid)
    await turn(agent, "third", sid)
    sent = " | ".join(sent_texts(proto))
    assert "SUMMARY" in sent and "third" in sent and "first" not in sent


async def test_a_meta_changed_by_this_process_is_kept_without_a_read(use_proto: Any, statements: list[str]) -> None:
    """What memory stores after a turn (update_meta in this process) changes the kept rows
    too: the next turn sees it and still reads no history."""
    proto: Proto = use_proto("openai")
    agent = synapse.Agent(name="a")
    proto.fake.reply(proto.reply(text="one"), proto.reply(text="two"))
    sid = (await turn(agent, "first")).session_id
    store = SessionStore()
    store.append(sid, [(Message("user", [TextPart("SUMMARY")]), {"through": 0})], "summary")
    store.update_meta(sid, store.messages(sid)[-1].seq, {"through": 2})
    statements.clear()
    await turn(agent, "second", sid)
    assert not [s for s in statements if s.startswith("SELECT") and "session_messages.content" in s]
    sent = " | ".join(sent_texts(proto))
    assert "SUMMARY" in sent and "second" in sent and "first" not in sent
