"""The extraction call against the Anthropic fake: the request it sends, the operations it
applies or refuses and why, the outcome of every failure, the ledger row it leaves."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from synapse.client import CallContext
from synapse.memory import MemoryStore
from synapse.memory.extract import EXTRACTION_PROMPT, extract, parse_operations
from synapse.usage import ledger
from tests.fakes.base import FakeReply

MODEL = "claude-haiku-4-5"


def ops(*operations: dict[str, Any]) -> FakeReply:
    return FakeReply(text=json.dumps({"operations": list(operations)}))


async def run(store: MemoryStore, user: str, reply: str = "Noted.", **kw: Any) -> Any:
    return await extract(store, "agent-a", user, reply, model=MODEL, session_id="s-1", turn=2, **kw)


async def test_a_new_fact_is_added_and_the_call_is_memory_work_in_the_ledger(anthropic: Any, fresh_db: Any) -> None:
    store = MemoryStore()
    anthropic.reply(ops({"op": "add", "text": "The user's sister Claire lives in Lyon."}))
    ctx = CallContext(agent="Helper", session="s-1")
    outcome = await run(store, "My sister Claire moved to Lyon last month.", "How exciting!", context=ctx)
    assert outcome.status == "applied" and outcome.reason == "1 added"
    [change] = outcome.changes
    memory = store.get(change.id)
    assert (memory.text, memory.source, memory.session_id, memory.turn) == \
        ("The user's sister Claire lives in Lyon.", "extract", "s-1", 2)
    body = anthropic.last.json()
    assert body["model"].startswith("claude-haiku-4-5") and body["temperature"] == 0
    system = "".join(b["text"] for b in body["system"]) if isinstance(body["system"], list) else body["system"]
    assert system == EXTRACTION_PROMPT
    prompt = body["messages"][0]["content"]
    prompt = prompt if isinstance(prompt, str) else "".join(b["text"] for b in prompt)
    assert "(none)" in prompt and "<user>\nMy sister Claire moved to Lyon last month.\n</user>" in prompt
    assert "<assistant>\nHow exciting!\n</assistant>" in prompt
    ledger.flush()
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT kind, agent, session, input_tokens, output_tokens FROM usage_calls "
                                    "WHERE provider = 'anthropic'")).all()
    assert [(k, a, s) for k, a, s, _, _ in rows] == [("memory", "Helper", "s-1")]
    assert rows[0][3] > 0 and rows[0][4] > 0
    assert outcome.usage is not None and outcome.usage.input_tokens == rows[0][3]


async def test_update_and_delete_apply_to_shown_memories_and_keep_history(anthropic: Any, fresh_db: Any) -> None:
    store = MemoryStore()
    job = await store.add("agent-a", "The user works at Initech as a tester.")
    pet = await store.add("agent-a", "The user has a cat.")
    anthropic.reply(ops({"op": "update", "id": job.id, "text": "The user works at Globex as a QA lead."},
                        {"op": "delete", "id": str(pet.id)}))
    outcome = await run(store, "I left Initech, I'm QA lead at Globex now. Also the cat thing was wrong, no cat.")
    assert outcome.status == "applied" and outcome.reason == "1 updated, 1 deleted"
    assert {job.id, pet.id} <= set(outcome.shown)
    prompt = anthropic.last.json()["messages"][0]["content"]
    prompt = prompt if isinstance(prompt, str) else "".join(b["text"] for b in prompt)
    assert f"[{job.id}] The user works at Initech as a tester." in prompt  # shown with its id
    assert store.get(job.id).text == "The user works at Globex as a QA lead."
    assert [(c.op, c.id, c.old_text) for c in outcome.changes] == [
        ("update", job.id, "The user works at Initech as a tester."), ("delete", pet.id, "The user has a cat.")]
    assert store.count("agent-a") == 1
    deleted = store.history(memory_id=pet.id)[0]
    assert (deleted.op, deleted.actor, deleted.old_text) == ("delete", "extract", "The user has a cat.")
    assert (await store.restore(deleted.id)).text == "The user has a cat."


async def test_ids_it_was_not_shown_are_refused_and_nothing_is_touched(anthropic: Any, fresh_db: Any) -> None:
    store = MemoryStore()
    mine = await store.add("agent-a", "The user likes jazz.")
    other = await store.add("agent-b", "Agent b's user likes opera.")
    anthropic.reply(ops({"op": "delete", "id": other.id}, {"op": "update", "id": 999, "text": "x"},
                        {"op": "update", "text": "no id"}, {"op": "merge", "id": mine.id}))
    outcome = await run(store, "What music do I like?")
    assert outcome.status == "rejected" and outcome.changes == []
    reasons = [r.reason for r in outcome.rejected]
    assert reasons == [f"delete names memory {other.id}, which this extraction was not shown",
                       "update names memory 999, which this extraction was not shown",
                       "update needs the id of a memory it was shown",
                       "unknown op 'merge': use add, update or delete"]
    assert outcome.reason.startswith("every operation was refused: delete names memory")
    assert store.get(other.id).text == "Agent b's user likes opera." and store.get(mine.id).text == "The user likes jazz."


async def test_a_duplicate_add_is_refused_and_a_second_change_of_one_id_too(anthropic: Any, fresh_db: Any) -> None:
    store = MemoryStore()
    m = await store.add("agent-a", "The user drinks green tea.")
    anthropic.reply(ops({"op": "add", "text": "the user drinks  green tea."},
                        {"op": "update", "id": m.id, "text": "The user drinks green tea every morning."},
                        {"op": "delete", "id": m.id}, {"op": "add", "text": "The user lives in Oslo."}))
    outcome = await run(store, "Green tea every morning for me. I live in Oslo.")
    assert outcome.status == "applied" and outcome.reason == "1 added, 1 updated, 2 refused"
    assert [r.reason for r in outcome.rejected] == [f"already remembered as memory {m.id}",
                                                    f"memory {m.id} is changed twice in one extraction"]
    assert sorted(x.text for x in store.memories("agent-a")) == ["The user drinks green tea every morning.",
                                                                 "The user lives in Oslo."]


@pytest.mark.parametrize(
    ("reply", "status", "reason"),
    [
        (FakeReply(text='{"operations": []}'), "nothing", "nothing worth remembering"),
        (FakeReply(text='[{"op": "none"}]'), "nothing", "nothing worth remembering"),
        (FakeReply(text="I think the user likes tea."), "error", "the extraction reply could not be used: the reply has no JSON"),
        (FakeReply(text='{"operations": [{"op": "add", "text": '), "error", "the reply is not valid JSON"),
        (FakeReply(text='{"memories": []}'), "error", 'the JSON has no "operations" list'),
    ],
)
async def test_every_way_of_storing_nothing_says_why(anthropic: Any, fresh_db: Any, reply: FakeReply, status: str,
                                                       reason: str, caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    anthropic.reply(reply)
    with caplog.at_level("INFO", logger="synapse.memory"):
        outcome = await run(store, "hi there")
    assert outcome.status == status and reason in outcome.reason and outcome.changes == []
    assert store.count("agent-a") == 0
    assert f"memory extraction for agent-a: {status}" in caplog.text  # in the log too


async def test_a_failed_call_is_an_outcome_not_an_exception(anthropic: Any, fresh_db: Any) -> None:
    store = MemoryStore()
    anthropic.fail_next(400, {"type": "error", "error": {"type": "invalid_request_error", "message": "bad thing"}})
    outcome = await run(store, "I live in Oslo.")
    assert outcome.status == "error" and "the extraction call failed" in outcome.reason and "bad thing" in outcome.reason
    assert store.count("agent-a") == 0


async def test_memory_model_setting_wins_over_the_agents_model(anthropic: Any, configure: Any, fresh_db: Any) -> None:
    configure(memory_model="claude-sonnet-4-5")
    store = MemoryStore()
    anthropic.reply(ops())
    outcome = await run(store, "hello")
    assert outcome.model == "claude-sonnet-4-5" and anthropic.last.json()["model"].startswith("claude-sonnet-4-5")


def test_parse_operations_tolerates_fences_and_prose() -> None:
    assert parse_operations('Sure!\n```json\n{"operations": [{"op": "add", "text": "a"}]}\n```') == \
        [{"op": "add", "text": "a"}]
    assert parse_operations('{"op": "delete", "id": 3}') == [{"op": "delete", "id": 3}]
    assert parse_operations('Here: [{"op": "add", "text": "b"}] done') == [{"op": "add", "text": "b"}]
    with pytest.raises(ValueError, match="empty"):
        parse_operations("  ")
    with pytest.raises(ValueError, match="not a list"):
        parse_operations('{"operations": {"op": "add"}}')


async def test_a_turn_that_came_with_an_api_key_bills_its_memory_work_to_the_key(anthropic: Any, fresh_db: Any) -> None:
    store = MemoryStore()
    anthropic.reply(ops({"op": "add", "text": "The user is left-handed."}))
    key_ctx = CallContext(key="laptop")
    outcome = await run(store, "I'm left-handed.", context=CallContext(agent="Helper", session="s-1", key="laptop",
                                                                        parent=key_ctx))
    assert outcome.status == "applied"
    ledger.flush()
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT kind, key_name, cost_usd FROM usage_calls WHERE provider = 'anthropic'")).all()
    assert [(k, n) for k, n, _ in rows] == [("memory", "laptop")]
    assert key_ctx.spent_usd == pytest.approx(rows[0][2])  # the key's budget check reads its own context
