"""The memory events reach every consumer of the turn: /api/v1/chat's JSON, the SSE stream
(the `memory` event after `done`), and `synapse chat --agent` on stderr."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from synapse.agents.store import AgentStore
from synapse.memory import MemoryStore
from synapse.server.app import create_app
from tests.agents.test_api import program, sse_events
from tests.browser.helpers import ServerThread
from tests.fakes.base import FakeReply

CLAUDE = "claude-sonnet-4-5"
EXTRACT = FakeReply(text=json.dumps({"operations": [{"op": "add", "text": "The user's boat is called Marlin."}]}))


@pytest.fixture
def server(anthropic: Any, fresh_db: Any) -> Iterator[ServerThread]:
    srv = ServerThread(create_app()).start()
    yield srv
    srv.stop()


def test_chat_json_and_stream_carry_the_memory_events(server: ServerThread, anthropic: Any) -> None:
    spec = AgentStore().create({"name": "Sailor", "model": CLAUDE, "memory": True})
    anthropic.reply(FakeReply(text="Nice name!"), EXTRACT)
    r = program(server, "POST", "/api/v1/chat", {"message": "My boat is called Marlin.", "agent": "Sailor"})
    assert r.status == 200, r
    memory = r.json()["memory"]
    assert memory["recalled"] == []
    (added,) = MemoryStore().memories(spec.id)
    assert memory["outcome"]["status"] == "applied"
    assert memory["outcome"]["changes"] == [{"op": "add", "id": added.id, "text": "The user's boat is called Marlin.",
                                             "old_text": None, "by": "extract"}]

    anthropic.reply(FakeReply(text="Marlin, as you said."), FakeReply(text='{"operations": []}'))
    r = program(server, "POST", "/api/v1/chat/stream", {"message": "What's my boat's name?", "agent": "Sailor"})
    events = sse_events(r.body)
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["start", "memory_recalled"] and kinds[-2:] == ["done", "memory"]
    assert events[1]["memories"][0]["id"] == added.id and events[1]["memories"][0]["text"] == added.text
    assert events[-1]["status"] == "nothing" and events[-1]["reason"] == "nothing worth remembering"

    session = events[0]["session_id"]
    stored = program(server, "GET", f"/api/v1/sessions/{session}").json()["messages"][0]["meta"]["memory"]
    assert stored["recalled"][0]["id"] == added.id and stored["outcome"]["status"] == "nothing"


def test_an_agent_without_memory_has_no_memory_field(server: ServerThread, anthropic: Any, configure: Any) -> None:
    configure(model=CLAUDE)
    anthropic.reply(FakeReply(text="Hi."))
    r = program(server, "POST", "/api/v1/chat", {"message": "Hello"})
    assert r.status == 200 and "memory" not in r.json()


def test_the_cli_prints_what_memory_did(cli: Any, anthropic: Any, fresh_db: Any) -> None:
    spec = AgentStore().create({"name": "Sailor", "model": CLAUDE, "memory": True})
    anthropic.reply(FakeReply(text="Nice name!"), EXTRACT)
    r = cli("chat", "--agent", "Sailor", "My boat is called Marlin.")
    assert r.code == 0 and r.out == "Nice name!\n"
    (added,) = MemoryStore().memories(spec.id)
    assert f"[memory: added #{added.id}]" in r.err
    anthropic.reply(FakeReply(text="Marlin."), FakeReply(text="not json"))
    r = cli("chat", "--agent", "Sailor", "Boat name?")
    assert f"[memory: recalled #{added.id}]" in r.err
    assert "[memory: error: the extraction reply could not be used: the reply has no JSON: 'not json']" in r.err
