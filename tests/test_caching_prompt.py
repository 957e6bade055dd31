"""Prompt caching on by default, end to end against the Anthropic, Bedrock and OpenAI fakes.

A two-turn conversation with a long system prompt writes the cache on the first call
and reads it on the second, through `synapse.achat` / `astream` / the CLI with
`prompt_cache_enabled` at its default (true); with it false no marker is sent.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import synapse
from synapse.caching import SYNAPSE_VOLATILE
from synapse.types import ResponseDone, Tool
from synapse.usage import flush
from tests.fakes.anthropic import AnthropicFake
from tests.fakes.bedrock import BedrockFake
from tests.fakes.openai import OpenAIFake

STABLE = "You are Synapse's test assistant. Follow the house style guide carefully. " * 70  # ~1,300 tokens
SYSTEM_T1 = f"{STABLE}\n{SYNAPSE_VOLATILE}\nCurrent time: 2025-12-06 10:00"
SYSTEM_T2 = f"{STABLE}\n{SYNAPSE_VOLATILE}\nCurrent time: 2025-12-06 10:05"
CLAUDE = "claude-sonnet-4-5"
BEDROCK_CLAUDE = "bedrock.us.anthropic.claude-sonnet-4-5-20250929-v1:0"


def cache_controls(body: dict[str, Any]) -> list[str]:
    """Where the wire body carries cache_control: tools.i / system.i / messages.i.j."""
    out = [f"tools.{i}" for i, t in enumerate(body.get("tools") or []) if "cache_control" in t]
    system = body.get("system")
    if isinstance(system, list):
        out += [f"system.{i}" for i, b in enumerate(system) if "cache_control" in b]
    for i, m in enumerate(body["messages"]):
        if isinstance(m["content"], list):
            out += [f"messages.{i}.{j}" for j, b in enumerate(m["content"]) if "cache_control" in b]
    return out


def turn_two(first_text: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "Summarise the style guide."},
        {"role": "assistant", "content": first_text},
        {"role": "user", "content": "Now list its three main rules."},
    ]


# --- Anthropic ---------------------------------------------------------------------------------------


async def test_anthropic_two_turns_write_then_read_the_cache(anthropic: AnthropicFake) -> None:
    r1 = await synapse.achat(CLAUDE, "Summarise the style guide.", system=SYSTEM_T1)
    body = anthropic.last.json()
    assert body["system"][0] == {"type": "text", "text": STABLE.rstrip(), "cache_control": {"type": "ephemeral"}}
    assert body["system"][1] == {"type": "text", "text": "Current time: 2025-12-06 10:00"}  # after the breakpoint
    assert SYNAPSE_VOLATILE not in anthropic.last.body.decode()
    assert cache_controls(body) == ["system.0", "messages.0.0"]
    assert r1.usage.cache_write_tokens > 1024 and r1.usage.cache_read_tokens == 0

    r2 = await synapse.achat(CLAUDE, turn_two(r1.text), system=SYSTEM_T2)
    body = anthropic.last.json()
    assert cache_controls(body) == ["system.0", "messages.0.0", "messages.2.0"]
    stable_tokens = len(STABLE.rstrip()) // 4
    # the stable system prompt is read back; the changed time sits after it
    assert r2.usage.cache_read_tokens == stable_tokens
    # everything after it, up to the newest turn's breakpoint, is written for the next turn
    assert r2.usage.input_tokens == 0
    assert r2.usage.cache_write_tokens == r2.usage.prompt_tokens - stable_tokens > 0


async def test_anthropic_history_is_cached_incrementally(anthropic: AnthropicFake) -> None:
    """With a stable system prompt the second turn reads everything the first wrote."""
    r1 = await synapse.achat(CLAUDE, "Summarise the style guide.", system=STABLE)
    r2 = await synapse.achat(CLAUDE, turn_two(r1.text), system=STABLE)
    assert r2.usage.cache_read_tokens == r1.usage.cache_write_tokens  # the whole first prompt
    assert r2.usage.input_tokens == 0 and r2.usage.cache_write_tokens > 0  # the new turn is written for next time
    third = turn_two(r1.text) + [{"role": "assistant", "content": r2.text}, {"role": "user", "content": "Thanks!"}]
    r3 = await synapse.achat(CLAUDE, third, system=STABLE)
    assert r3.usage.cache_read_tokens == r2.usage.cache_read_tokens + r2.usage.cache_write_tokens


async def test_anthropic_streamed_two_turns_and_the_ledger_costs_them_from_streamed_usage(
    anthropic: AnthropicFake,
) -> None:
    from synapse.usage.prices import price
    from tests.test_usage_ledger import rows

    async def run(messages: Any, system: str) -> Any:
        done = None
        async for ev in synapse.astream(CLAUDE, messages, system=system):
            if isinstance(ev, ResponseDone):
                done = ev.response
        assert anthropic.last.json()["stream"] is True
        return done

    r1 = await run("Summarise the style guide.", SYSTEM_T1)
    r2 = await run(turn_two(r1.text), SYSTEM_T2)
    assert r1.usage.cache_write_tokens > 0 and r2.usage.cache_read_tokens > 0
    assert flush(30)
    got = rows()
    assert [(r["cache_read_tokens"], r["cache_write_tokens"], r["input_tokens"], r["output_tokens"]) for r in got] == [
        (r.usage.cache_read_tokens, r.usage.cache_write_tokens, r.usage.input_tokens, r.usage.output_tokens)
        for r in (r1, r2)
    ]
    for row, r in zip(got, (r1, r2)):
        expected = price("anthropic", CLAUDE, r.usage, when=row["ts"])
        assert expected is not None
        assert row["stream"] is True and row["ttft_ms"] is not None
        assert row["cost_usd"] == pytest.approx(expected.cost_usd)
        assert row["savings_usd"] == pytest.approx(expected.savings_usd)
    assert got[1]["savings_usd"] > 0  # the read outweighs the small new write


async def test_anthropic_tools_get_a_breakpoint_when_they_are_long(anthropic: AnthropicFake) -> None:
    tools = [Tool("lookup", "Look things up in the handbook. " + STABLE, {"type": "object", "properties": {"q": {"type": "string"}}}),
             Tool("now", "The current time", {"type": "object", "properties": {}})]
    r1 = await synapse.achat(CLAUDE, "hello", system="Be brief.", tools=tools)
    body = anthropic.last.json()
    assert [t["name"] for t in body["tools"]] == ["lookup", "now"]  # the caller's order
    assert "tools.1" in cache_controls(body)
    assert r1.usage.cache_write_tokens > 1024


async def test_anthropic_with_prompt_cache_disabled_sends_no_markers(anthropic: AnthropicFake, configure: Any) -> None:
    configure(prompt_cache_enabled=False)
    r1 = await synapse.achat(CLAUDE, "Summarise the style guide.", system=SYSTEM_T1)
    r2 = await synapse.achat(CLAUDE, turn_two(r1.text), system=SYSTEM_T2)
    for req in anthropic.requests:
        assert "cache_control" not in req.body.decode()
        assert SYNAPSE_VOLATILE not in req.body.decode()
    assert (r1.usage.cache_write_tokens, r1.usage.cache_read_tokens) == (0, 0)
    assert (r2.usage.cache_write_tokens, r2.usage.cache_read_tokens) == (0, 0)
    assert r2.usage.input_tokens > 1300


def test_cli_chat_twice_reads_the_cache_the_first_call_wrote(anthropic: AnthropicFake, cli: Any) -> None:
    first = cli("chat", "-m", CLAUDE, "--json", "-s", STABLE, "Summarise the style guide.")
    assert first.code == 0, first.err
    second = cli("chat", "-m", CLAUDE, "--json", "-s", STABLE, "Summarise the style guide.")
    assert second.code == 0, second.err
    u1, u2 = json.loads(first.out)["usage"], json.loads(second.out)["usage"]
    assert u1["cache_write_tokens"] > 1024 and u1["cache_read_tokens"] == 0
    assert u2["cache_read_tokens"] == u1["cache_write_tokens"] and u2["cache_write_tokens"] == 0


# --- Bedrock -------------------------------------------------------------------------------------------


def cache_points(body: dict[str, Any]) -> list[str]:
    out = [f"system.{i}" for i, b in enumerate(body.get("system") or []) if "cachePoint" in b]
    for i, m in enumerate(body["messages"]):
        out += [f"messages.{i}.{j}" for j, b in enumerate(m["content"]) if "cachePoint" in b]
    tools = (body.get("toolConfig") or {}).get("tools") or []
    out += [f"tools.{i}" for i, t in enumerate(tools) if "cachePoint" in t]
    return out


async def test_bedrock_two_turns_write_then_read_the_cache(bedrock: BedrockFake) -> None:
    r1 = await synapse.achat(BEDROCK_CLAUDE, "Summarise the style guide.", system=SYSTEM_T1)
    body = bedrock.last.json()
    assert body["system"][0] == {"text": STABLE.rstrip()}
    assert body["system"][1] == {"cachePoint": {"type": "default"}}
    assert body["system"][2] == {"text": "Current time: 2025-12-06 10:00"}
    assert SYNAPSE_VOLATILE not in bedrock.last.body.decode()
    assert r1.usage.cache_write_tokens > 1024 and r1.usage.cache_read_tokens == 0

    r2 = await synapse.achat(BEDROCK_CLAUDE, turn_two(r1.text), system=SYSTEM_T2)
    assert len(cache_points(bedrock.last.json())) == 3
    assert r2.usage.cache_read_tokens >= len(STABLE.rstrip()) // 4
    assert r2.usage.input_tokens + r2.usage.cache_read_tokens + r2.usage.cache_write_tokens == r2.usage.prompt_tokens


async def test_bedrock_streamed_second_turn_reads_the_cache(bedrock: BedrockFake) -> None:
    r1 = await synapse.achat(BEDROCK_CLAUDE, "Summarise the style guide.", system=STABLE)
    done = None
    async for ev in synapse.astream(BEDROCK_CLAUDE, turn_two(r1.text), system=STABLE):
        if isinstance(ev, ResponseDone):
            done = ev.response
    assert bedrock.last.path.endswith("/converse-stream")
    assert done is not None and done.usage.cache_read_tokens == r1.usage.cache_write_tokens > 1024


async def test_bedrock_with_prompt_cache_disabled_sends_no_cache_points(bedrock: BedrockFake, configure: Any) -> None:
    configure(prompt_cache_enabled=False)
    r1 = await synapse.achat(BEDROCK_CLAUDE, "Summarise the style guide.", system=SYSTEM_T1)
    await synapse.achat(BEDROCK_CLAUDE, turn_two(r1.text), system=SYSTEM_T2)
    for req in bedrock.requests:
        assert "cachePoint" not in req.body.decode() and SYNAPSE_VOLATILE not in req.body.decode()
    assert r1.usage.cache_write_tokens == 0


# --- OpenAI: caches by itself; the prefix only has to stay byte-stable ------------------------------------


async def test_openai_gets_a_byte_stable_prefix_and_no_cache_markers(openai_fake: OpenAIFake, configure: Any) -> None:
    openai_fake.reset()
    configure(**openai_fake.settings())
    tools = [Tool("b_tool", "second"), Tool("a_tool", "first")]
    await synapse.achat("gpt-5", "hi", system=SYSTEM_T1, tools=tools)
    await synapse.achat("gpt-5", "hi", system=SYSTEM_T2, tools=tools)
    b1, b2 = (r.json() for r in openai_fake.requests)
    for body in (b1, b2):
        assert "cache_control" not in json.dumps(body) and SYNAPSE_VOLATILE not in json.dumps(body)
        assert [t["function"]["name"] for t in body["tools"]] == ["b_tool", "a_tool"]
    # everything up to the volatile text is identical between the two calls
    s1, s2 = json.dumps(b1["messages"][0]), json.dumps(b2["messages"][0])
    assert STABLE.rstrip() in s1 and s1.index("Current time") == s2.index("Current time")
    assert s1[: s1.index("Current time")] == s2[: s2.index("Current time")]
    assert json.dumps(b1["tools"]) == json.dumps(b2["tools"])
