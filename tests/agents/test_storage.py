"""Agents and sessions in the database: exact history, CRUD, import/export, migrations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
import sqlalchemy as sa

from synapse import storage
from synapse.agents import serialize
from synapse.agents.sessions import SessionStore, replay, title_for
from synapse.agents.spec import AgentError
from synapse.agents.store import AgentNotFound, AgentStore
from synapse.errors import SynapseError
from synapse.types import ImagePart, Message, ReasoningPart, ServerToolPart, Source, TextPart, ToolCall, ToolResultPart

pytestmark = pytest.mark.database

THINKING = [{"type": "thinking", "thinking": "Let me think.", "signature": "EqQBCkYIBxgCKkD=="},
            {"type": "redacted_thinking", "data": "EmwKAhgBEgy..."}]


def sample() -> list[Message]:
    return [
        Message("user", [TextPart("What is in this picture?", cache=True), ImagePart("image/png", data=b"\x89PNG\x00\xff")]),
        Message("assistant", [TextPart("Let me check."),
                              ToolCall("toolu_1", "look", {"deep": [1, {"x": None}]}, provider_data={"anthropic_thinking": THINKING}),
                              ToolCall("fc_2", "zoom", {}, provider_data={"provider": "gemini", "thought_signature": "c2ln"})]),
        Message("user", [ToolResultPart("toolu_1", "a cat", "look"), ToolResultPart("fc_2", "boom", "zoom", is_error=True)]),
        Message("assistant", [
            ReasoningPart("Looked closely.", "openai", {"type": "reasoning", "encrypted_content": "gAAAAB"}),
            ServerToolPart("web_search", "result", "anthropic", id="srvtoolu_1", input={"query": "cats"},
                           sources=[Source("https://example.com/cat", "Cats"), Source("https://example.org")],
                           data=[{"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []}]),
            TextPart("A cat."),
        ]),
    ]


def test_the_serializer_round_trips_every_part_exactly() -> None:
    import json

    messages = sample()
    stored = json.loads(json.dumps(serialize.dump_messages(messages)))  # through real JSON
    assert serialize.load_messages(stored) == messages
    assert stored[1]["content"][1]["provider_data"]["anthropic_thinking"][0]["signature"] == "EqQBCkYIBxgCKkD=="
    assert stored[0]["content"][1]["data"] == {"$bytes": "iVBORwD/"}
    loaded = serialize.load_messages(stored)[3].content[1]
    assert isinstance(loaded, ServerToolPart) and loaded.sources[0] == Source("https://example.com/cat", "Cats")


def test_a_new_part_type_is_stored_by_registering_it() -> None:
    @dataclass(slots=True)
    class ReasoningItem:
        id: str
        encrypted_content: str
        summary: list[str]
        type: Literal["reasoning_item"] = "reasoning_item"

    with pytest.raises(SynapseError, match="register it"):
        serialize.dump_part(ReasoningItem("rs_1", "gAAA", ["s"]))  # type: ignore[arg-type]
    serialize.register_part(ReasoningItem)
    data = serialize.dump_part(ReasoningItem("rs_1", "gAAA", ["s"]))  # type: ignore[arg-type]
    assert data == {"type": "reasoning_item", "id": "rs_1", "encrypted_content": "gAAA", "summary": ["s"]}
    assert serialize.load_part(data) == ReasoningItem("rs_1", "gAAA", ["s"])


def test_an_unknown_stored_part_type_is_a_clear_error() -> None:
    with pytest.raises(SynapseError, match="type 'hologram' that this version of Synapse does not know"):
        serialize.load_part({"type": "hologram"})


def test_sessions_store_history_exactly_and_survive_a_new_engine(synapse_env: Path) -> None:
    store = SessionStore()
    info = store.create("agent-x", "X", title_for("What is in this picture? " * 5))
    assert info.title.endswith("…") and len(info.title) <= 61
    store.append(info.id, [(m, {"n": i}) for i, m in enumerate(sample())])
    storage.dispose_all()
    history, rows = SessionStore().history(info.id)
    assert history == sample() and [r.meta["n"] for r in rows] == [0, 1, 2, 3]


def test_a_summary_row_stands_in_for_what_it_covers(synapse_env: Path) -> None:
    store = SessionStore()
    info = store.create(None, "X")
    store.append(info.id, [(m, {}) for m in sample()])
    store.append(info.id, [(Message("user", [TextPart("Next question")]), {})])
    store.append(info.id, [(Message("user", [TextPart("Summary: a cat was found.")]), {"through": 4})], kind="summary")
    history, rows = store.history(info.id)
    assert [m.text for m in history] == ["Summary: a cat was found.", "Next question"]
    assert len(rows) == 6  # the originals stay stored


def test_replay_drops_tool_results_whose_call_was_summarised_away() -> None:
    from synapse.agents.sessions import StoredMessage

    msgs = sample()
    stored = [StoredMessage(i + 1, "message", m, {}, 0.0) for i, m in enumerate(msgs)]
    stored.append(StoredMessage(5, "summary", Message("user", [TextPart("S")]), {"through": 2}, 0.0))
    out = replay(stored)
    assert [m.role for m in out] == ["user", "assistant"] and out[0].text == "S" and out[1].text == "A cat."


def test_session_list_search_rename_delete_and_totals(synapse_env: Path) -> None:
    store = SessionStore()
    a = store.create(None, "X", "Trip to Paris")
    b = store.create(None, "X", "100% sure_thing")
    assert [s.id for s in store.list(query="paris")] == [a.id]
    assert [s.id for s in store.list(query="100%")] == [b.id]
    assert store.list(query="_")[0].id == b.id and len(store.list(query="_")) == 1
    store.update(a.id, title="  Paris,   in spring ")
    assert store.get(a.id).title == "Paris, in spring"
    assert store.list()[0].id == a.id  # most recently updated first
    assert store.totals(a.id)["calls"] == 0
    store.delete(a.id)
    assert store.find(a.id) is None
    with pytest.raises(SynapseError):
        store.delete(a.id)


def test_a_fresh_data_folder_has_the_assistant_agent(synapse_env: Path) -> None:
    agents = AgentStore().list()
    assert [a.name for a in agents] == ["Assistant"]
    assert agents[0].model == "" and agents[0].tools == ["current_time", "calculator"]
    assert AgentStore().default().name == "Assistant"


def test_agent_crud_names_are_unique_ignoring_case(synapse_env: Path) -> None:
    store = AgentStore()
    r = store.create({"name": "Researcher", "system_prompt": "Dig.", "model": "oaic.meta-llama/llama-3-70b-instruct",
                      "tools": ["http_get"], "max_total_cost_usd": "0.5", "memory": "on"})
    assert r.id.startswith("agent-") and r.max_total_cost_usd == 0.5 and r.memory is True
    with pytest.raises(AgentError, match="exists already"):
        store.create({"name": "researcher"})
    assert store.get("RESEARCHER").id == r.id and store.get(r.id).name == "Researcher"
    edited = store.update("researcher", {"model": "(default)", "temperature": 0.3})
    assert edited.model == "" and edited.temperature == 0.3 and edited.system_prompt == "Dig." and edited.created_at == r.created_at
    copy = store.duplicate("Researcher")
    assert copy.name == "Researcher (copy)" and copy.id != r.id and copy.tools == ["http_get"]
    with pytest.raises(AgentError, match="exists already"):
        store.update(copy.id, {"name": "ReSearcher"})
    store.delete(copy.id)
    with pytest.raises(AgentNotFound, match="known agents: Assistant, Researcher"):
        store.get(copy.id)


@pytest.mark.parametrize(("data", "message"), [
    ({"name": ""}, "name is empty"),
    ({"name": "x", "tools": ["calculator", "rm_rf"]}, "unknown tool 'rm_rf': the tools are current_time, calculator, http_get"),
    ({"name": "x", "max_turns": 0}, "max_turns must be from 1 to 200"),
    ({"name": "x", "temperature": "hot"}, "temperature must be a number"),
    ({"name": "x", "response_cache": "fuzzy"}, "response_cache must be one of: off, exact, semantic"),
    ({"name": "x", "model": "two words"}, "no spaces"),
    ({"name": "x", "colour": "red"}, "agents have no field 'colour'"),
])
def test_bad_agent_fields_get_a_message_that_says_what_to_fix(synapse_env: Path, data: dict[str, Any], message: str) -> None:
    with pytest.raises(AgentError, match=message.replace("(", r"\(")):
        AgentStore().create(data)


def test_export_and_import_one_or_all(synapse_env: Path) -> None:
    store = AgentStore()
    store.create({"name": "Writer", "system_prompt": "Write.", "tools": ["all"]})
    exported = store.export()
    assert [a["name"] for a in exported["agents"]] == ["Assistant", "Writer"]
    assert "id" not in exported["agents"][0]
    with pytest.raises(AgentError, match="exists already"):
        store.import_(exported)
    store.import_({"name": "Writer", "system_prompt": "Write well."}, replace=True)
    assert store.get("writer").system_prompt == "Write well."
    with pytest.raises(AgentError, match="agent #2: unknown tool"):
        store.import_([{"name": "A1"}, {"name": "A2", "tools": ["nope"]}])
    assert store.find("A1") is None  # nothing written when one is bad
    storage.dispose_all()


def test_migration_from_0001_keeps_the_ledger_and_adds_the_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    eng = sa.create_engine(url)
    storage.migrate(eng, "0001")
    with eng.begin() as conn:
        conn.execute(sa.text("INSERT INTO usage_calls (ts, day, provider, model, upstream_model) "
                             "VALUES (1, '2026-01-01', 'anthropic', 'm', 'm')"))
    storage.migrate(eng)
    insp = sa.inspect(eng)
    assert {"agents", "chat_sessions", "session_messages"} <= set(insp.get_table_names())
    with eng.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM usage_calls")).scalar() == 1
    storage.downgrade(eng, "0001")
    assert "agents" not in sa.inspect(eng).get_table_names()
    eng.dispose()
