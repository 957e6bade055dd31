"""synapse.client input coercion: prompt strings, OpenAI- and Anthropic-style dicts, tools.

Pure checks call `coerce_messages` / `coerce_tools` / `build_request`; wire checks send
the coerced request through the Ollama fake and read what arrived.
"""

from __future__ import annotations

import base64

import pytest

import synapse
from synapse.client import build_request, coerce_messages, coerce_tools
from synapse.errors import SynapseError
from synapse.types import ImagePart, Message, TextPart, Tool, ToolCall, ToolResultPart
from tests.conftest import provider_fake
from tests.fakes.ollama import OllamaFake

SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


@pytest.fixture(scope="module")
def ollama_server():
    yield from provider_fake(OllamaFake)


@pytest.fixture
def fake(ollama_server, configure):
    ollama_server.reset()
    configure(ollama_base_url=ollama_server.url, max_retries=0)
    return ollama_server


# --- messages ---------------------------------------------------------------------------------


def test_prompt_string():
    system, messages = coerce_messages("hello", "be brief")
    assert system == [TextPart("be brief")]
    assert messages == [Message("user", [TextPart("hello")])]
    assert coerce_messages("hello") == ([], [Message("user", [TextPart("hello")])])


def test_system_given_as_list_and_system_messages_are_lifted():
    system, messages = coerce_messages(
        [{"role": "system", "content": "from the history"}, {"role": "user", "content": "q"}],
        ["first", TextPart("second", cache=True)],
    )
    assert system == [TextPart("first"), TextPart("second", cache=True), TextPart("from the history")]
    assert messages == [Message("user", [TextPart("q")])]


def test_openai_style_history_with_tool_calls():
    _, messages = coerce_messages(
        [
            {"role": "user", "content": "find it"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "search", "arguments": '{"q": "cats"}'}},
                    {"id": "call_2", "type": "function", "function": {"name": "clock", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "3 cats"},
            {"role": "tool", "tool_call_id": "call_2", "content": "noon"},
        ]
    )
    assert messages == [
        Message("user", [TextPart("find it")]),
        Message("assistant", [ToolCall("call_1", "search", {"q": "cats"}), ToolCall("call_2", "clock", {})]),
        # consecutive tool results merge into one user turn, names filled from the calls
        Message("user", [ToolResultPart("call_1", "3 cats", "search"), ToolResultPart("call_2", "noon", "clock")]),
    ]


def test_anthropic_style_blocks():
    _, messages = coerce_messages(
        [
            {"role": "user", "content": [{"type": "text", "text": "weather?", "cache_control": {"type": "ephemeral"}}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "checking"},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}},
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "cold", "is_error": False}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": {"temp": -3}, "is_error": True}]},
        ]
    )
    assert messages[0] == Message("user", [TextPart("weather?", cache=True)])
    assert messages[1] == Message("assistant", [TextPart("checking"), ToolCall("toolu_1", "weather", {"city": "Oslo"})])
    assert messages[2] == Message(
        "user",
        [ToolResultPart("toolu_1", "cold", "weather"), ToolResultPart("toolu_1", '{"temp":-3}', "weather", is_error=True)],
    )


def test_consecutive_same_role_turns_merge_and_canonical_messages_pass_through():
    given = Message("assistant", [TextPart("b")])
    _, messages = coerce_messages(
        [{"role": "user", "content": "a1"}, {"role": "user", "content": "a2"}, given, {"role": "assistant", "content": "c"}]
    )
    assert messages == [
        Message("user", [TextPart("a1"), TextPart("a2")]),
        Message("assistant", [TextPart("b"), TextPart("c")]),
    ]
    assert given.content == [TextPart("b")]  # the caller's message is not changed


def test_image_parts():
    png = b"\x89PNG fake"
    b64 = base64.b64encode(png).decode()
    _, (m,) = coerce_messages(
        [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{b64}"}},
                    {"type": "image", "data": b64, "media_type": "image/webp"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                ],
            }
        ]
    )
    assert m.content == [
        ImagePart("image/jpeg", data=png),
        ImagePart("image/webp", data=png),
        ImagePart("image/png", url="https://example.com/a.png"),
    ]



def test_anthropic_image_source_block():
    b64 = base64.b64encode(b"img").decode()
    _, (m,) = coerce_messages(
        [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64}}]}]
    )
    assert m.content == [ImagePart("image/png", data=b"img")]



def test_anthropic_tool_result_block_list_content():
    _, (m,) = coerce_messages(
        [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "42"}]}]}]
    )
    assert m.content == [ToolResultPart("t1", "42")]


@pytest.mark.parametrize(
    "bad, match",
    [
        ([{"role": "robot", "content": "hi"}], "message role must be user, assistant, system, developer or tool, not 'robot'"),
        ([{"content": "hi"}], "not None"),
        ([{"role": "user", "content": [{"type": "audio", "data": "x"}]}], "unknown message part type 'audio'"),
        ([], "no messages to send"),
        ([{"role": "system", "content": "only a system prompt"}], "no messages to send"),
    ],
)
def test_bad_input_is_a_clear_synapse_error(bad, match):
    with pytest.raises(SynapseError, match=match):
        coerce_messages(bad)


# --- tools ------------------------------------------------------------------------------------


def test_tools_in_every_accepted_shape():
    tools = coerce_tools(
        [
            Tool("canonical", "as is"),
            {"type": "function", "function": {"name": "openai", "description": "o", "parameters": SCHEMA}},
            {"name": "anthropic", "description": "a", "input_schema": SCHEMA, "cache": True},
            {"name": "plain", "parameters": SCHEMA},
            {"name": "bare"},
        ]
    )
    assert tools == [
        Tool("canonical", "as is"),
        Tool("openai", "o", SCHEMA),
        Tool("anthropic", "a", SCHEMA, cache=True),
        Tool("plain", "", SCHEMA),
        Tool("bare", "", {"type": "object", "properties": {}}),
    ]
    assert coerce_tools(None) == []
    with pytest.raises(SynapseError, match="every tool needs a name"):
        coerce_tools([{"description": "nameless"}])


def test_build_request_options():
    req = build_request("m", "hi", stop="END", max_tokens=5, temperature=0.1, tool_choice="auto", extra={"k": 1})
    assert (req.model, req.stop, req.max_tokens, req.temperature, req.tool_choice, req.extra) == ("m", ["END"], 5, 0.1, "auto", {"k": 1})
    assert build_request("m", "hi", stop=("a", "b")).stop == ["a", "b"]
    assert build_request("m", "hi").stop == []


# --- through the wire ---------------------------------------------------------------------------


async def test_openai_style_round_trip_on_the_wire(fake):
    await synapse.achat(
        "llama3.2",
        [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "part one"},
            {"role": "user", "content": [{"type": "text", "text": "part two"}]},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "c9", "type": "function", "function": {"name": "search", "arguments": '{"q":"x"}'}}]},
            {"role": "tool", "tool_call_id": "c9", "content": "found"},
        ],
        tools=[{"type": "function", "function": {"name": "search", "description": "d", "parameters": SCHEMA}}],
    )
    body = fake.last.json()
    assert body["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "part one\npart two"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c9", "function": {"name": "search", "arguments": {"q": "x"}}}]},
        {"role": "tool", "content": "found", "tool_call_id": "c9", "tool_name": "search"},
    ]
    assert body["tools"] == [{"type": "function", "function": {"name": "search", "description": "d", "parameters": SCHEMA}}]


async def test_anthropic_style_round_trip_on_the_wire(fake):
    r = await synapse.achat(
        "llama3.2",
        [
            {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "cold"}, {"type": "text", "text": "thanks"}]},
        ],
        tools=[{"name": "weather", "description": "w", "input_schema": SCHEMA}],
    )
    assert r.text == "Echo: thanks"
    body = fake.last.json()
    assert body["messages"][1:] == [
        {"role": "assistant", "content": "", "tool_calls": [{"id": "toolu_1", "function": {"name": "weather", "arguments": {"city": "Oslo"}}}]},
        {"role": "tool", "content": "cold", "tool_call_id": "toolu_1", "tool_name": "weather"},
        {"role": "user", "content": "thanks"},
    ]
    assert body["tools"][0]["function"] == {"name": "weather", "description": "w", "parameters": SCHEMA}


async def test_bad_role_fails_before_any_request(fake):
    with pytest.raises(SynapseError, match="role"):
        await synapse.achat("llama3.2", [{"role": "robot", "content": "x"}])
    assert fake.requests == []


def test_developer_role_is_a_system_prompt():
    system, msgs = coerce_messages([{"role": "developer", "content": "be terse"}, {"role": "user", "content": "hi"}])
    assert [p.text for p in system] == ["be terse"] and len(msgs) == 1


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ([{"role": "assistant", "content": [{"type": "tool_use", "name": "f", "input": {}}]}], "needs an `id`"),
        ([{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]}],
         "needs an `id`"),
        ([{"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{oops"}}]}],
         "not valid JSON"),
        ([{"role": "tool", "content": "42"}], "tool_call_id"),
        ([{"role": "user", "content": [{"type": "image"}]}], "an image part needs"),
    ],
)
def test_incomplete_parts_are_clear_errors(bad, match):
    with pytest.raises(SynapseError, match=match):
        coerce_messages(bad)


def test_callers_tool_result_objects_are_not_changed():
    from synapse.types import Message, ToolCall, ToolResultPart

    result = ToolResultPart("c1", "42")
    history = [Message("assistant", [ToolCall("c1", "lookup", {})]), Message("user", [result])]
    _, msgs = coerce_messages(history)
    assert msgs[1].content[0].name == "lookup"
    assert result.name is None
