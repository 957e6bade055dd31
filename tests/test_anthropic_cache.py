"""Anthropic prompt caching: cache_control on the wire, and the fake's faithful cache simulation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

import synapse
from synapse.providers import transport
from synapse.providers.anthropic import encode_request
from synapse.types import ImagePart, Message, Request, ResponseDone, TextPart, Tool, ToolCall, ToolResultPart
from tests.conftest import provider_fake
from tests.fakes.anthropic import AnthropicFake
from tests.fakes.base import estimate_tokens

MODEL = "claude-sonnet-4-5"
EPHEMERAL = {"type": "ephemeral"}
#: A system prompt of 1,500 tokens by the fakes' tokenizer: above Sonnet's 1,024 minimum, below Haiku's 2,048.
MANUAL = ("The manual says: keep the valve closed. " * 150)[:6000]


@pytest.fixture(scope="module")
def fake() -> Iterator[AnthropicFake]:
    yield from provider_fake(AnthropicFake)


@pytest.fixture
def anth(fake: AnthropicFake, configure: Any, monkeypatch: pytest.MonkeyPatch) -> AnthropicFake:
    fake.reset()
    monkeypatch.setattr(transport, "BACKOFF_BASE", 0.001)
    # Explicit markers only: the call path's cache planner is tested with it on at the end.
    configure(**fake.settings(max_retries=0, prompt_cache_enabled=False))
    return fake


def marked(body: dict[str, Any]) -> list[str]:
    """Where cache_control sits, in prefix order, as short labels."""
    out = [f"tool:{t['name']}" for t in body.get("tools", []) if "cache_control" in t]
    out += [f"system:{i}" for i, b in enumerate(body.get("system", [])) if "cache_control" in b]
    for i, m in enumerate(body["messages"]):
        out += [f"msg{i}:{b['type']}" for b in m["content"] if "cache_control" in b]
    return out


# --- encoding ---------------------------------------------------------------------------------------


def test_cache_flags_become_cache_control_on_each_kind_of_block() -> None:
    req = Request(
        MODEL,
        [
            Message("user", [ImagePart(data=b"img", cache=True), TextPart("look")]),
            Message("assistant", [ToolCall("t1", "f", {}, cache=True)]),
            Message("user", [ToolResultPart("t1", "ok", cache=True)]),
        ],
        system=[TextPart("sys", cache=True)],
        tools=[Tool("f")],
    )
    body = encode_request(req)
    assert marked(body) == ["system:0", "msg0:image", "msg1:tool_use", "msg2:tool_result"]
    assert body["system"][0] == {"type": "text", "text": "sys", "cache_control": EPHEMERAL}
    req.tools[0].cache = True
    req.messages[1].content[0].cache = False
    assert marked(encode_request(req)) == ["tool:f", "system:0", "msg0:image", "msg2:tool_result"]


def test_more_than_four_markers_keep_the_last_four() -> None:
    req = Request(
        MODEL,
        [Message("user", [TextPart("a", cache=True), TextPart("b", cache=True)])],
        system=[TextPart("s1", cache=True), TextPart("s2", cache=True)],
        tools=[Tool("t1", cache=True), Tool("t2", cache=True)],
    )
    body = encode_request(req)
    assert marked(body) == ["system:0", "system:1", "msg0:text", "msg0:text"]
    assert [b.get("cache_control") for b in body["messages"][0]["content"]] == [EPHEMERAL, EPHEMERAL]
    assert all("cache_control" not in t for t in body["tools"])


async def test_six_markers_through_the_api_are_accepted(anth: AnthropicFake) -> None:
    system = [TextPart(f"rule {i}", cache=True) for i in range(6)]
    r = await synapse.achat(MODEL, "hi", system=system)
    assert r.text == "You said: hi"
    assert marked(anth.last.json()) == ["system:2", "system:3", "system:4", "system:5"]


async def test_fake_rejects_five_markers_with_the_real_message(anth: AnthropicFake) -> None:
    body = {
        "model": MODEL,
        "max_tokens": 10,
        "system": [{"type": "text", "text": f"s{i}", "cache_control": EPHEMERAL} for i in range(5)],
        "messages": [{"role": "user", "content": "hi"}],
    }
    headers = {"x-api-key": anth.KEY, "anthropic-version": "2023-06-01"}
    async with aiohttp.ClientSession() as s, s.post(anth.url + "/v1/messages", json=body, headers=headers) as r:
        assert r.status == 400
        err = (await r.json())["error"]
    assert err == {"type": "invalid_request_error", "message": "A maximum of 4 blocks with cache_control may be provided. Found 5."}


# --- the simulation, through Synapse ------------------------------------------------------------------


async def test_two_turns_with_a_cached_system_prompt_write_then_read(anth: AnthropicFake) -> None:
    system = [TextPart(MANUAL, cache=True)]
    sys_tokens = estimate_tokens(MANUAL)
    assert sys_tokens == 1500

    first = await synapse.achat(MODEL, "What does the manual say?", system=system)
    assert first.usage.cache_write_tokens == sys_tokens > 0
    assert first.usage.cache_read_tokens == 0
    assert first.usage.input_tokens == estimate_tokens("What does the manual say?")
    assert anth.last.json()["system"] == [{"type": "text", "text": MANUAL, "cache_control": EPHEMERAL}]

    history = [
        Message("user", [TextPart("What does the manual say?")]),
        first.to_message(),
        Message("user", [TextPart("And the valve?")]),
    ]
    second = await synapse.achat(MODEL, history, system=system)
    assert second.usage.cache_read_tokens == first.usage.cache_write_tokens
    assert second.usage.cache_write_tokens == 0
    uncached = ["What does the manual say?", first.text, "And the valve?"]
    assert second.usage.input_tokens == sum(estimate_tokens(t) for t in uncached)
    assert second.usage.prompt_tokens == sys_tokens + second.usage.input_tokens


async def test_streaming_reports_the_cache_too(anth: AnthropicFake) -> None:
    system = [TextPart(MANUAL, cache=True)]
    first = [e async for e in synapse.astream(MODEL, "q1", system=system)][-1]
    second = [e async for e in synapse.astream(MODEL, "q2", system=system)][-1]
    assert isinstance(first, ResponseDone) and isinstance(second, ResponseDone)
    assert (first.response.usage.cache_write_tokens, first.response.usage.cache_read_tokens) == (1500, 0)
    assert (second.response.usage.cache_write_tokens, second.response.usage.cache_read_tokens) == (0, 1500)


async def test_fake_stream_carries_cache_fields_in_message_start_and_message_delta(anth: AnthropicFake) -> None:
    body = {
        "model": MODEL,
        "max_tokens": 100,
        "stream": True,
        "system": [{"type": "text", "text": MANUAL, "cache_control": EPHEMERAL}],
        "messages": [{"role": "user", "content": "hello"}],
    }
    headers = {"x-api-key": anth.KEY, "anthropic-version": "2023-06-01", "accept": "application/json"}

    async def events() -> dict[str, Any]:
        async with aiohttp.ClientSession() as s, s.post(anth.url + "/v1/messages", json=body, headers=headers) as r:
            assert r.status == 200 and r.headers["content-type"].startswith("text/event-stream")
            raw = (await r.read()).decode()
        assert "\r" not in raw and raw.endswith("\n\n")
        out: dict[str, Any] = {}
        for block in raw.strip().split("\n\n"):
            name, data = block.split("\n")
            out.setdefault(name.removeprefix("event: "), json.loads(data.removeprefix("data: ")))
        assert 'data: {"type": "ping"}' in raw
        return out

    write = await events()
    assert write["message_start"]["message"]["usage"]["cache_creation_input_tokens"] == 1500
    assert write["message_start"]["message"]["usage"]["cache_creation"] == {"ephemeral_5m_input_tokens": 1500, "ephemeral_1h_input_tokens": 0}
    assert write["message_delta"]["usage"]["cache_creation_input_tokens"] == 1500
    assert write["message_delta"]["usage"]["cache_read_input_tokens"] == 0
    read = await events()
    for usage in (read["message_start"]["message"]["usage"], read["message_delta"]["usage"]):
        assert (usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"], usage["input_tokens"]) == (1500, 0, 1)


async def test_a_prefix_below_the_minimum_is_not_cached(anth: AnthropicFake) -> None:
    system = [TextPart("A short system prompt.", cache=True)]
    for _ in range(2):
        r = await synapse.achat(MODEL, "hi", system=system)
        assert (r.usage.cache_write_tokens, r.usage.cache_read_tokens) == (0, 0)
        assert r.usage.input_tokens == estimate_tokens("A short system prompt.") + estimate_tokens("hi")
    assert anth.cache == {}


async def test_haiku_needs_a_longer_prefix(anth: AnthropicFake) -> None:
    system = [TextPart(MANUAL, cache=True)]  # 1,500 tokens: enough for Sonnet, not for Haiku
    r = await synapse.achat("claude-3-5-haiku-latest", "hi", system=system)
    assert (r.usage.cache_write_tokens, r.usage.input_tokens) == (0, 1501)
    longer = [TextPart(MANUAL + MANUAL, cache=True)]
    r = await synapse.achat("claude-3-5-haiku-latest", "hi", system=longer)
    assert r.usage.cache_write_tokens == 3000
    assert AnthropicFake.MIN_CACHE_TOKENS_HAIKU == 2048 and AnthropicFake.MIN_CACHE_TOKENS == 1024


@pytest.mark.parametrize("model", ["claude-haiku-4-5", "claude-opus-4-5"])
async def test_newest_haiku_and_opus_need_4096_tokens(anth: AnthropicFake, model: str) -> None:
    r = await synapse.achat(model, "hi", system=[TextPart(MANUAL + MANUAL, cache=True)])  # 3,000 tokens
    assert r.usage.cache_write_tokens == 0
    r = await synapse.achat(model, "hi", system=[TextPart(MANUAL * 3, cache=True)])  # 4,500 tokens
    assert r.usage.cache_write_tokens == 4500


async def test_the_cache_is_per_model_and_per_exact_prefix(anth: AnthropicFake) -> None:
    system = [TextPart(MANUAL, cache=True)]
    await synapse.achat(MODEL, "hi", system=system)
    other_model = await synapse.achat("claude-opus-4-1", "hi", system=system)
    assert (other_model.usage.cache_read_tokens, other_model.usage.cache_write_tokens) == (0, 1500)
    changed = await synapse.achat(MODEL, "hi", system=[TextPart(MANUAL[:-1] + "!", cache=True)])
    assert (changed.usage.cache_read_tokens, changed.usage.cache_write_tokens) == (0, 1500)
    same = await synapse.achat(MODEL, "different question", system=system)
    assert (same.usage.cache_read_tokens, same.usage.cache_write_tokens) == (1500, 0)


async def test_tools_are_part_of_the_cached_prefix(anth: AnthropicFake) -> None:
    tool = Tool("lookup", "Look things up. " * 300, {"type": "object", "properties": {}}, cache=True)
    tool_tokens = estimate_tokens(json.dumps(
        {"name": "lookup", "description": tool.description, "input_schema": tool.parameters}, sort_keys=True))
    r1 = await synapse.achat(MODEL, "hi", tools=[tool])
    assert r1.usage.cache_write_tokens == tool_tokens >= 1024
    assert "cache_control" in anth.last.json()["tools"][0]
    # a system prompt after the cached tools: the tools prefix is read, the rest is uncached
    r2 = await synapse.achat(MODEL, "hi", tools=[tool], system="Be brief.")
    assert (r2.usage.cache_read_tokens, r2.usage.cache_write_tokens) == (tool_tokens, 0)
    assert r2.usage.input_tokens == estimate_tokens("Be brief.") + estimate_tokens("hi")


async def test_a_moving_breakpoint_reads_the_previous_turn_and_writes_the_new_tail(anth: AnthropicFake) -> None:
    """Conversation caching: each turn marks its newest user message; the lookback finds the last turn's entry."""
    system = [TextPart(MANUAL)]
    turn1 = [Message("user", [TextPart("First question about valves?", cache=True)])]
    r1 = await synapse.achat(MODEL, turn1, system=system)
    prefix1 = 1500 + estimate_tokens("First question about valves?")
    assert (r1.usage.cache_write_tokens, r1.usage.cache_read_tokens, r1.usage.input_tokens) == (prefix1, 0, 0)

    turn2 = [
        Message("user", [TextPart("First question about valves?")]),
        r1.to_message(),
        Message("user", [TextPart("Second question?", cache=True)]),
    ]
    r2 = await synapse.achat(MODEL, turn2, system=system)
    tail = estimate_tokens(r1.text) + estimate_tokens("Second question?")
    assert (r2.usage.cache_read_tokens, r2.usage.cache_write_tokens, r2.usage.input_tokens) == (prefix1, tail, 0)
    assert marked(anth.last.json()) == ["msg2:text"]


async def test_read_and_write_in_one_request_with_two_breakpoints(anth: AnthropicFake) -> None:
    system = [TextPart(MANUAL, cache=True)]
    await synapse.achat(MODEL, "warm up", system=system)
    doc = "Appendix: " + "pressure table row. " * 80
    msg = [Message("user", [TextPart(doc, cache=True), TextPart("Summarise.")])]
    r = await synapse.achat(MODEL, msg, system=system)
    assert r.usage.cache_read_tokens == 1500
    assert r.usage.cache_write_tokens == estimate_tokens(doc)
    assert r.usage.input_tokens == estimate_tokens("Summarise.")


async def test_reset_clears_the_cache(anth: AnthropicFake) -> None:
    system = [TextPart(MANUAL, cache=True)]
    await synapse.achat(MODEL, "hi", system=system)
    assert anth.cache
    anth.reset()
    r = await synapse.achat(MODEL, "hi", system=system)
    assert (r.usage.cache_read_tokens, r.usage.cache_write_tokens) == (0, 1500)


async def test_with_the_planner_on_a_long_system_prompt_is_cached_automatically(anth: AnthropicFake, configure: Any) -> None:
    configure(prompt_cache_enabled=True)
    first = await synapse.achat(MODEL, "What does the manual say?", system=MANUAL)
    assert "cache_control" in anth.last.json()["system"][-1]
    assert first.usage.cache_write_tokens >= 1500 and first.usage.cache_read_tokens == 0
    second = await synapse.achat(MODEL, "And the valve?", system=MANUAL)
    assert second.usage.cache_read_tokens >= 1500
