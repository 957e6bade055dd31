"""The turn loop against every protocol's loopback fake: tool rounds, stored history,
reasoning continuity, limits, stopping."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import synapse
from synapse.agents import events as ev
from synapse.agents.sessions import SessionStore
from tests.fakes.base import FakeToolCall

from .conftest import Proto

pytestmark = pytest.mark.database

PROTOCOLS = ["anthropic", "openai", "gemini", "bedrock", "ollama", "deepseek"]


def lookup(city: str) -> str:
    """The population of a city.

    Args:
        city: the city's name.
    """
    return {"Paris": "2.1 million", "Lyon": "0.5 million"}.get(city, "unknown")


async def run(agent: synapse.Agent, prompt: str, **kw: Any) -> list[Any]:
    return [e async for e in agent.astream(prompt, **kw)]


def done_of(events: list[Any]) -> ev.TurnDone:
    assert isinstance(events[-1], ev.TurnDone), events[-1]
    return events[-1]


def tool_results_sent(proto: Proto, body: dict[str, Any]) -> list[str]:
    """The tool-result texts in a request body, whatever the protocol."""
    import json

    text = json.dumps(body)
    return [v for v in ("2.1 million", "0.5 million") if v in text]


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "nostream"])
@pytest.mark.parametrize("name", PROTOCOLS)
async def test_two_round_tool_conversation(use_proto: Any, name: str, stream: bool) -> None:
    proto: Proto = use_proto(name)
    proto.fake.reply(proto.reply(text="", tool_calls=[FakeToolCall("call_1", "lookup", {"city": "Paris"})]),
                     proto.reply(text="Paris has 2.1 million people."))
    agent = synapse.Agent(name="geo", system="You answer with numbers.", tools=[lookup])
    events = [e async for e in agent.astream("How many people live in Paris?", stream=stream)]
    done = done_of(events)
    assert done.stop_reason == "end_turn" and done.text == "Paris has 2.1 million people."
    assert done.tool_calls == [{"id": done.tool_calls[0]["id"], "name": "lookup", "arguments": {"city": "Paris"},
                                "result": "2.1 million", "is_error": False}]
    kinds = [e.type for e in events]
    assert kinds[0] == "start" and kinds.count("usage") == 2 and kinds.index("tool_call") < kinds.index("tool_result")
    if stream:
        assert "tool_call_delta" in kinds
    chats = [r for r in proto.fake.requests if r.method == "POST"]
    assert len(chats) == 2
    assert tool_results_sent(proto, chats[1].json()) == ["2.1 million"]
    assert done.usage.input_tokens > 0 and done.usage.output_tokens > 0
    # the whole conversation is stored, tool call and result included
    rows = SessionStore().messages(done.session_id)
    assert [r.message.role for r in rows] == ["user", "assistant", "user", "assistant"]
    assert rows[1].message.content[-1].type == "tool_call" and rows[2].message.content[0].type == "tool_result"


@pytest.mark.parametrize("name", PROTOCOLS)
async def test_a_session_continues_after_a_restart(use_proto: Any, name: str) -> None:
    proto: Proto = use_proto(name)
    proto.fake.reply(proto.reply(text="", tool_calls=[FakeToolCall("call_9", "lookup", {"city": "Lyon"})]),
                     proto.reply(text="Lyon: 0.5 million."))
    first = done_of(await run(synapse.Agent(name="geo", tools=[lookup]), "Lyon?"))
    # "restart": every engine, adapter and settings cache dropped; a new Agent object
    from synapse import providers, settings, storage

    storage.dispose_all()
    providers._adapters.clear()
    settings._cache.clear()
    proto.fake.requests.clear()
    proto.fake.reply(proto.reply(text="As I said, 0.5 million."))
    second = done_of(await run(synapse.Agent(name="geo", tools=[lookup]), "Say it again", session_id=first.session_id))
    assert second.session_id == first.session_id and second.text == "As I said, 0.5 million."
    body = [r for r in proto.fake.requests if r.method == "POST"][-1].json()
    import json

    sent = json.dumps(body)
    assert "Lyon?" in sent and "0.5 million" in sent and "Say it again" in sent
    assert len(SessionStore().messages(first.session_id)) == 6


REASONING = {
    "anthropic": "Thinking about which tool to use.",
    "gemini": "Thinking about which tool to use.",
    "bedrock": "Thinking about which tool to use.",
    "deepseek": "Thinking about which tool to use.",
}


def _reasoning_setup(proto: Proto) -> None:
    if proto.name == "gemini":
        proto.fake.require_thought_signatures = True


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "nostream"])
@pytest.mark.parametrize("name", sorted(REASONING))
async def test_reasoning_model_tool_loop_keeps_signatures(use_proto: Any, name: str, stream: bool) -> None:
    """Two tool rounds with a reasoning model: every request after the first carries the
    reasoning blocks the fake signed, or the fake rejects it like the real API."""
    proto: Proto = use_proto(name)
    _reasoning_setup(proto)
    thought = REASONING[name]
    extra: dict[str, Any] = {}
    if proto.name == "anthropic":
        extra["redacted_thinking"] = True
    proto.fake.reply(
        proto.reply(reasoning=thought, tool_calls=[FakeToolCall("call_a", "lookup", {"city": "Paris"})], **extra),
        proto.reply(reasoning=thought + " Again.", tool_calls=[FakeToolCall("call_b", "lookup", {"city": "Lyon"})]),
        proto.reply(reasoning="Done.", text="Paris 2.1 million, Lyon 0.5 million."),
    )
    agent = synapse.Agent(name="r", tools=[lookup], extra=proto.thinking_extra, model=proto.reasoning_model)
    events = [e async for e in agent.astream("Paris and Lyon?", stream=stream)]
    done = done_of(events)
    assert done.text == "Paris 2.1 million, Lyon 0.5 million." and done.rounds == 3
    assert thought in "".join(e.text for e in events if isinstance(e, ev.ReasoningDelta))
    # a follow-up turn replays the stored history, signatures and all
    proto.fake.reply(proto.reply(text="You're welcome."))
    again = done_of(await run(agent, "Thanks", session_id=done.session_id, stream=stream))
    assert again.text == "You're welcome."


@pytest.mark.parametrize("name", sorted(REASONING))
async def test_the_fakes_reject_a_missing_or_altered_signature(use_proto: Any, name: str) -> None:
    """The fakes check reasoning continuity the way the real APIs do (their error texts)."""
    from synapse.types import Message, TextPart, ToolCall, ToolResultPart

    proto: Proto = use_proto(name)
    _reasoning_setup(proto)
    proto.fake.reply(proto.reply(reasoning="hmm", tool_calls=[FakeToolCall("call_a", "lookup", {"city": "Paris"})]))
    tools = [synapse.Tool("lookup", "", {"type": "object", "properties": {"city": {"type": "string"}}})]
    first = await synapse.achat(proto.reasoning_model, "Paris?", tools=tools, extra=proto.thinking_extra or None)
    call = first.tool_calls[0]
    assert call.provider_data, "the adapter keeps the reasoning it must send back"
    data = dict(call.provider_data)
    key = next(k for k in data if k not in ("provider", "id"))
    if name == "gemini":
        data[key] = "AAAA" + data[key][4:]  # altered
    else:
        data.pop(key)  # missing
    stripped = ToolCall(call.id, call.name, call.arguments, provider_data=data)
    history = [Message("user", [TextPart("Paris?")]), Message("assistant", [stripped]),
               Message("user", [ToolResultPart(call.id, "2.1 million", "lookup")])]
    with pytest.raises(synapse.BadRequestError) as info:
        await synapse.achat(proto.reasoning_model, history, tools=tools, extra=proto.thinking_extra or None)
    expected = {
        "anthropic": "Expected `thinking` or `redacted_thinking`, but found `tool_use`",
        "bedrock": "Expected `thinking` or `redacted_thinking`, but found `tool_use`",
        "gemini": "Corrupted thought signature",
        "deepseek": "The reasoning_content in the thinking mode must be passed back to the API",
    }[name]
    assert expected in str(info.value)


async def test_an_altered_anthropic_signature_is_rejected(use_proto: Any) -> None:
    from synapse.types import Message, TextPart, ToolCall, ToolResultPart

    proto: Proto = use_proto("anthropic")
    proto.fake.reply(proto.reply(reasoning="hmm", tool_calls=[FakeToolCall("toolu_a", "lookup", {"city": "Paris"})]))
    tools = [synapse.Tool("lookup")]
    first = await synapse.achat(proto.model, "Paris?", tools=tools, extra=proto.thinking_extra)
    call = first.tool_calls[0]
    blocks = [dict(b, signature="forged") for b in call.provider_data["anthropic_thinking"]]
    forged = ToolCall(call.id, call.name, call.arguments, provider_data={"anthropic_thinking": blocks})
    history = [Message("user", [TextPart("Paris?")]), Message("assistant", [forged]),
               Message("user", [ToolResultPart(call.id, "2.1 million", "lookup")])]
    with pytest.raises(synapse.BadRequestError, match="Invalid `signature` in `thinking` block"):
        await synapse.achat(proto.model, history, tools=tools, extra=proto.thinking_extra)


async def test_max_turns_ends_the_turn_with_a_message_and_a_valid_history(use_proto: Any) -> None:
    proto: Proto = use_proto("anthropic")
    proto.fake.reply(*[proto.reply(tool_calls=[FakeToolCall(f"toolu_{i}", "lookup", {"city": "Paris"})]) for i in range(3)])
    agent = synapse.Agent(name="loopy", tools=[lookup], max_turns=3)
    done = done_of(await run(agent, "Go"))
    assert done.stop_reason == "max_turns" and done.rounds == 3
    assert "stopped after 3 tool rounds" in done.message
    assert len([r for r in proto.fake.requests if r.method == "POST"]) == 3
    # every tool call has its result stored, so the next turn is a valid request
    proto.fake.reply(proto.reply(text="ok"))
    assert done_of(await run(agent, "Carry on", session_id=done.session_id)).text == "ok"


async def test_the_cost_limit_refuses_the_next_turn_with_the_limit_and_the_spend(use_proto: Any) -> None:
    proto: Proto = use_proto("anthropic")
    agent = synapse.Agent(name="thrifty", max_total_cost_usd=0.0001)
    proto.fake.reply(proto.reply(text="A long answer " * 50, output_tokens=5000))
    first = done_of(await run(agent, "Hello"))
    assert first.cost_usd and first.cost_usd > 0.0001
    events = await run(agent, "More", session_id=first.session_id)
    assert isinstance(events[-1], ev.TurnError) and events[-1].kind == "cost_limit"
    assert "$0.0001 limit" in events[-1].message and f"${first.cost_usd:.4f}" in events[-1].message
    assert len([r for r in proto.fake.requests if r.method == "POST"]) == 1  # no call was made
    assert len(SessionStore().messages(first.session_id)) == 2  # and nothing was stored


async def test_a_tool_that_raises_or_hangs_becomes_an_error_result(use_proto: Any, configure: Any) -> None:
    proto: Proto = use_proto("openai")
    configure(tool_timeout=0.2)

    def broken(x: int) -> str:
        """Always fails."""
        raise RuntimeError("disk on fire")

    async def slow() -> str:
        """Never answers in time."""
        await asyncio.sleep(30)
        return "late"

    proto.fake.reply(
        proto.reply(tool_calls=[FakeToolCall("c1", "broken", {"x": 1}), FakeToolCall("c2", "slow", {}),
                                FakeToolCall("c3", "nosuch", {}), FakeToolCall("c4", "broken", {"x": "not a number"})]),
        proto.reply(text="Sorry."),
    )
    done = done_of(await run(synapse.Agent(name="t", tools=[broken, slow]), "Try"))
    results = {c["id"]: c for c in done.tool_calls}
    assert results["c1"]["is_error"] and "RuntimeError: disk on fire" in results["c1"]["result"]
    assert results["c2"]["is_error"] and "took longer than 0.2 s" in results["c2"]["result"]
    assert results["c3"]["is_error"] and "no tool named 'nosuch'" in results["c3"]["result"]
    assert results["c4"]["is_error"] and "invalid arguments for broken" in results["c4"]["result"]
    assert done.text == "Sorry."


async def test_several_tool_calls_run_in_parallel(use_proto: Any) -> None:
    proto: Proto = use_proto("anthropic")
    arrived: list[str] = []
    both = asyncio.Event()

    async def meet(who: str) -> str:
        """Waits until both calls are running: deadlocks if the calls ran one after the other."""
        arrived.append(who)
        if len(arrived) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 5)
        return f"{who} met"

    proto.fake.reply(proto.reply(tool_calls=[FakeToolCall("t1", "meet", {"who": "a"}), FakeToolCall("t2", "meet", {"who": "b"})]),
                     proto.reply(text="Both met."))
    done = done_of(await run(synapse.Agent(name="p", tools=[meet]), "Meet"))
    assert {c["result"] for c in done.tool_calls} == {"a met", "b met"}


async def test_stopping_mid_stream_keeps_the_partial_reply_and_closes_the_upstream(use_proto: Any) -> None:
    proto: Proto = use_proto("anthropic")
    proto.fake.reply(proto.reply(text="word " * 400, event_delay=0.02))
    agent = synapse.Agent(name="s")
    stream = agent.astream("Talk")
    seen = ""
    session = ""
    async for e in stream:
        if isinstance(e, ev.TurnStart):
            session = e.session_id
        if isinstance(e, ev.TextDelta):
            seen += e.text
            if len(seen) > 20:
                break
    await stream.aclose()
    for _ in range(100):  # the fake notices the closed connection on its next write
        if proto.fake.aborted:
            break
        await asyncio.sleep(0.02)
    assert proto.fake.aborted == 1
    rows = SessionStore().messages(session)
    assert rows[-1].message.role == "assistant" and rows[-1].meta.get("stopped") is True
    assert rows[-1].message.text == seen
    # the stopped session goes on
    proto.fake.reply(proto.reply(text="Resumed."))
    assert done_of(await run(agent, "Go on", session_id=session)).text == "Resumed."


async def test_a_cancelled_task_during_tools_stores_stopped_results(use_proto: Any) -> None:
    proto: Proto = use_proto("anthropic")
    started = asyncio.Event()

    async def wait_forever() -> str:
        """Blocks."""
        started.set()
        await asyncio.sleep(60)
        return "never"

    proto.fake.reply(proto.reply(tool_calls=[FakeToolCall("toolu_w", "wait_forever", {})]))
    agent = synapse.Agent(name="c", tools=[wait_forever])
    session: list[str] = []

    async def consume() -> None:
        async for e in agent.astream("Wait"):
            if isinstance(e, ev.TurnStart):
                session.append(e.session_id)

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    rows = SessionStore().messages(session[0])
    assert rows[-1].message.content[0].type == "tool_result"
    assert rows[-1].message.content[0].is_error and "stopped" in rows[-1].message.content[0].content
    proto.fake.reply(proto.reply(text="Fine."))
    assert done_of(await run(agent, "Never mind", session_id=session[0])).text == "Fine."


async def test_no_model_configured_says_where_to_fix_it(synapse_env: Any) -> None:
    events = await run(synapse.Agent(name="x"), "Hi")
    assert isinstance(events[-1], ev.TurnError) and events[-1].kind == "no_model"
    assert "Settings → Models" in events[-1].message
    assert SessionStore().list() == []  # nothing is stored for a turn that could not start


async def test_model_resolution_call_override_then_agent_then_setting(use_proto: Any) -> None:
    proto: Proto = use_proto("anthropic")
    agent = synapse.Agent(name="m", model="claude-haiku-4-5")
    await run(agent, "a")
    assert proto.fake.last.json()["model"] == "claude-haiku-4-5"
    await run(agent, "b", model="claude-opus-4-5")
    assert proto.fake.last.json()["model"] == "claude-opus-4-5"
    await run(synapse.Agent(name="n", model="(default)"), "c")
    assert proto.fake.last.json()["model"] == "claude-sonnet-4-5"


async def test_hooks_add_volatile_text_after_the_cached_prefix(use_proto: Any) -> None:
    from synapse.agents import hooks

    proto: Proto = use_proto("anthropic")

    class Recall:
        async def before_turn(self, ctx: hooks.TurnContext) -> None:
            ctx.volatile.append("Remembered: the user likes tea.")

        async def after_turn(self, ctx: hooks.TurnContext, done: ev.TurnDone) -> None:
            ctx.state["after"] = done.text

    hook = Recall()
    hooks.add_hook(hook)
    try:
        await run(synapse.Agent(name="h", system="Stable prompt."), "Hi")
    finally:
        hooks.remove_hook(hook)
    system = proto.fake.last.json()["system"]
    assert [b["text"] for b in system] == ["Stable prompt.", "Remembered: the user likes tea."]
