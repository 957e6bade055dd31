"""The prompt-cache planner on canonical types: where breakpoints go, and where not."""

from __future__ import annotations

import copy

import pytest

from synapse.caching import (
    DEFAULT_MIN_CACHE_TOKENS,
    MAX_BREAKPOINTS,
    SYNAPSE_VOLATILE,
    min_cache_tokens,
    plan_prompt_cache,
    split_volatile,
)
from synapse.client import build_request
from synapse.types import ImagePart, Message, TextPart, Tool, ToolCall, ToolResultPart

LONG = "Stable instructions about the task, repeated to make a long prefix. " * 80  # ~5,440 chars ~1,360 tokens
SHORT = "Be brief."
TOOLS = [
    Tool("get_weather", "Weather for a city", {"type": "object", "properties": {"city": {"type": "string"}}}),
    Tool("get_time", "Time in a city", {"type": "object", "properties": {"city": {"type": "string"}}}),
]
#: Tool definitions long enough (~1,400 tokens) to be worth a breakpoint of their own.
BIG_TOOLS = [
    Tool("search_docs", "Search the documentation. " + LONG, {"type": "object", "properties": {"q": {"type": "string"}}}),
    Tool("get_time", "Time in a city", {"type": "object", "properties": {"city": {"type": "string"}}}),
]


def marks(req):
    """Where the cache flags are: ('tool', i) / ('system', i) / ('msg', i, j)."""
    out = [("tool", i) for i, t in enumerate(req.tools) if t.cache]
    out += [("system", i) for i, p in enumerate(req.system) if p.cache]
    out += [("msg", i, j) for i, m in enumerate(req.messages) for j, p in enumerate(m.content) if p.cache]
    return out


def conversation():
    return [
        Message("user", [TextPart("What is the weather in Paris?")]),
        Message("assistant", [ToolCall("call_1", "get_weather", {"city": "Paris"})]),
        Message("user", [ToolResultPart("call_1", "18C and sunny", "get_weather")]),
        Message("assistant", [TextPart("It is 18C and sunny in Paris.")]),
        Message("user", [TextPart("And in Rome?")]),
    ]


# --- the volatile separator -----------------------------------------------------------------


def test_split_volatile_removes_the_marker_and_splits_stable_from_volatile() -> None:
    parts = [TextPart(f"{LONG}\n{SYNAPSE_VOLATILE}\nNow: 2025-01-01 12:00")]
    out, stable = split_volatile(parts)
    assert stable == 1
    assert [p.text for p in out] == [LONG.rstrip(), "Now: 2025-01-01 12:00"]
    assert all(SYNAPSE_VOLATILE not in p.text for p in out)
    assert parts[0].text.endswith("12:00") and SYNAPSE_VOLATILE in parts[0].text  # caller's part untouched


def test_split_volatile_counts_earlier_parts_as_stable_and_later_ones_as_volatile() -> None:
    parts = [TextPart("A" * 10), TextPart(f"B{SYNAPSE_VOLATILE}C"), TextPart(f"D {SYNAPSE_VOLATILE} E")]
    out, stable = split_volatile(parts)
    assert [p.text for p in out] == ["A" * 10, "B", "C", "D  E"]
    assert stable == 2


def test_split_volatile_without_a_marker_leaves_everything_stable() -> None:
    parts = [TextPart("x"), TextPart("y")]
    out, stable = split_volatile(parts)
    assert out is parts and stable == 2


def test_marker_at_the_start_means_nothing_is_stable() -> None:
    req = build_request("claude-sonnet-4-5", "hi", system=f"{SYNAPSE_VOLATILE}{LONG}")
    plan_prompt_cache(req, "anthropic")
    assert [p.text for p in req.system] == [LONG]
    assert not req.system[0].cache  # the volatile part never gets a breakpoint


# --- Anthropic / Bedrock breakpoints -------------------------------------------------------------


def test_anthropic_breakpoints_on_system_newest_previous_turn_and_last_tool() -> None:
    req = build_request("claude-sonnet-4-5", conversation(), system=f"{LONG}{SYNAPSE_VOLATILE}Now: 12:00", tools=BIG_TOOLS)
    plan_prompt_cache(req, "anthropic")
    assert [p.text for p in req.system] == [LONG.rstrip(), "Now: 12:00"]
    assert sorted(marks(req)) == sorted([("system", 0), ("msg", 4, 0), ("msg", 2, 0), ("tool", 1)])
    assert len(marks(req)) == MAX_BREAKPOINTS


def test_small_tools_get_no_breakpoint_of_their_own() -> None:
    req = build_request("claude-sonnet-4-5", conversation(), system=LONG, tools=TOOLS)
    plan_prompt_cache(req, "anthropic")
    assert not any(m[0] == "tool" for m in marks(req))  # tools alone are ~60 tokens
    assert ("system", 0) in marks(req)  # the system breakpoint caches tools + system


def test_breakpoints_below_the_minimum_prefix_are_skipped() -> None:
    # Tools + a short system are far below 1,024 tokens: no tool/system breakpoints.
    req = build_request("claude-sonnet-4-5", conversation(), system=SHORT, tools=TOOLS)
    plan_prompt_cache(req, "anthropic")
    assert marks(req) == []
    # A long last user message lifts only the newest turn's prefix over the minimum.
    msgs = conversation()
    msgs[-1] = Message("user", [TextPart("Summarise: " + LONG)])
    req = build_request("claude-sonnet-4-5", msgs, system=SHORT, tools=TOOLS)
    plan_prompt_cache(req, "anthropic")
    assert marks(req) == [("msg", 4, 0)]


def test_minimum_is_per_model() -> None:
    assert min_cache_tokens("claude-sonnet-4-5-20250929") == DEFAULT_MIN_CACHE_TOKENS == 1024
    assert min_cache_tokens("claude-haiku-4-5") == 4096
    assert min_cache_tokens("claude-opus-4-5-20251101") == 4096
    assert min_cache_tokens("claude-3-5-haiku-20241022") == 2048
    assert min_cache_tokens("us.anthropic.claude-haiku-4-5-20251001-v1:0") == 4096
    assert min_cache_tokens("claude-opus-4-1") == 1024
    # ~1,360 tokens of system: cached for Sonnet 4.5, not for Haiku 4.5 (4,096 minimum).
    sonnet = build_request("claude-sonnet-4-5", "hi", system=LONG)
    haiku = build_request("claude-haiku-4-5", "hi", system=LONG)
    plan_prompt_cache(sonnet, "anthropic")
    plan_prompt_cache(haiku, "anthropic")
    assert ("system", 0) in marks(sonnet)
    assert marks(haiku) == []


def test_explicit_marks_are_respected_and_counted_first() -> None:
    msgs = conversation()
    msgs[0] = Message("user", [TextPart("What is the weather in Paris?", cache=True)])
    tools = [TOOLS[0], Tool("get_time", "Time", {"type": "object", "properties": {}}, cache=True)]
    req = build_request("claude-sonnet-4-5", msgs, system=LONG, tools=tools)
    plan_prompt_cache(req, "anthropic")
    found = marks(req)
    assert len(found) == MAX_BREAKPOINTS
    assert ("msg", 0, 0) in found and ("tool", 1) in found  # the caller's two
    assert ("system", 0) in found and ("msg", 4, 0) in found  # the planner's two, by priority
    assert ("msg", 2, 0) not in found  # no budget left for the previous turn


def test_four_explicit_marks_leave_nothing_to_plan() -> None:
    sys_parts = [TextPart(LONG, cache=True), TextPart("b", cache=True), TextPart("c", cache=True), TextPart("d", cache=True)]
    req = build_request("claude-sonnet-4-5", conversation(), system=sys_parts)
    plan_prompt_cache(req, "anthropic")
    assert marks(req) == [("system", 0), ("system", 1), ("system", 2), ("system", 3)]


def test_an_explicit_mark_on_the_newest_block_is_not_doubled() -> None:
    msgs = conversation()
    msgs[-1] = Message("user", [TextPart("And in Rome?", cache=True)])
    req = build_request("claude-sonnet-4-5", msgs, system=LONG)
    plan_prompt_cache(req, "anthropic")
    assert sorted(marks(req)) == sorted([("system", 0), ("msg", 4, 0), ("msg", 2, 0)])


def test_the_planner_never_mutates_the_callers_objects() -> None:
    system = [TextPart(f"{LONG}{SYNAPSE_VOLATILE}now")]
    msgs = conversation()
    tools = list(BIG_TOOLS)
    before = copy.deepcopy((system, msgs, tools))
    req = build_request("claude-sonnet-4-5", msgs, system=system, tools=tools)
    plan_prompt_cache(req, "anthropic")
    assert len(marks(req)) == 4
    assert (system, msgs, tools) == before  # same values: nothing flagged, marker still there
    # and a second call from the same objects plans the same way from a clean slate
    again = build_request("claude-sonnet-4-5", msgs, system=system, tools=tools)
    plan_prompt_cache(again, "anthropic")
    assert marks(again) == marks(req)


def test_images_count_toward_the_prefix() -> None:
    img = ImagePart("image/png", data=b"\x89PNG fake")
    msgs = [Message("user", [img, img, TextPart("What do these show?")])]
    req = build_request("claude-sonnet-4-5", msgs, system=SHORT)
    plan_prompt_cache(req, "anthropic")
    assert marks(req) == [("msg", 0, 2)]  # two images (~3,200 tokens) put the turn over 1,024


def test_disabled_planning_sends_no_marks_but_still_drops_the_marker() -> None:
    req = build_request("claude-sonnet-4-5", conversation(), system=f"{LONG}{SYNAPSE_VOLATILE}now", tools=TOOLS)
    plan_prompt_cache(req, "anthropic", breakpoints=False)
    assert marks(req) == []
    assert [p.text for p in req.system] == [LONG.rstrip(), "now"]


@pytest.mark.parametrize("protocol", ["openai", "gemini", "ollama"])
def test_self_caching_providers_get_a_byte_stable_prefix_and_no_marks(protocol: str) -> None:
    tools = [TOOLS[1], TOOLS[0]]  # the caller's order is kept, never re-sorted
    req = build_request("gpt-5", conversation(), system=f"{LONG}{SYNAPSE_VOLATILE}Now: 12:00", tools=tools)
    plan_prompt_cache(req, protocol)
    assert marks(req) == []
    assert [p.text for p in req.system] == [LONG.rstrip(), "Now: 12:00"]
    assert [t.name for t in req.tools] == ["get_time", "get_weather"]


def test_bedrock_claude_gets_breakpoints_nova_no_tool_breakpoint_others_none() -> None:
    claude = build_request("anthropic.claude-sonnet-4-5-20250929-v1:0", conversation(), system=LONG, tools=BIG_TOOLS)
    plan_prompt_cache(claude, "bedrock")
    assert ("tool", 1) in marks(claude) and ("system", 0) in marks(claude)
    nova = build_request("amazon.nova-pro-v1:0", conversation(), system=LONG, tools=BIG_TOOLS)
    plan_prompt_cache(nova, "bedrock")
    assert ("system", 0) in marks(nova) and not any(m[0] == "tool" for m in marks(nova))
    llama = build_request("meta.llama3-70b-instruct-v1:0", conversation(), system=LONG, tools=TOOLS)
    plan_prompt_cache(llama, "bedrock")
    assert marks(llama) == []
