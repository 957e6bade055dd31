"""Anthropic Messages: non-streaming calls through the Python API and the CLI, against the fake.

Each test asserts both what Synapse made of the answer and the exact wire body it sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import synapse
from synapse.providers import transport
from synapse.providers.anthropic import encode_request
from synapse.types import ImagePart, Message, Request, TextPart, Tool, ToolResultPart
from tests.conftest import provider_fake
from tests.fakes.anthropic import AnthropicFake, AnthropicReply
from tests.fakes.base import FakeReply, FakeToolCall, estimate_tokens

MODEL = "claude-sonnet-4-5"
KEY = AnthropicFake.KEY
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


@pytest.fixture(scope="module")
def fake() -> Iterator[AnthropicFake]:
    yield from provider_fake(AnthropicFake)


@pytest.fixture
def anth(fake: AnthropicFake, configure: Any, monkeypatch: pytest.MonkeyPatch) -> AnthropicFake:
    fake.reset()
    monkeypatch.setattr(transport, "BACKOFF_BASE", 0.001)
    # The call path's prompt-cache planner is off here: these tests assert the adapter's exact wire body.
    configure(**fake.settings(max_retries=2, prompt_cache_enabled=False))
    return fake


async def test_plain_text_and_the_exact_wire_request(anth: AnthropicFake) -> None:
    r = await synapse.achat(MODEL, "hello there")
    assert r.text == "You said: hello there"
    assert (r.stop_reason, r.raw_stop_reason) == ("end_turn", "end_turn")
    assert r.provider == "anthropic" and r.model == MODEL and r.id and r.id.startswith("msg_")
    assert r.tool_calls == [] and r.reasoning == ""
    assert r.usage.as_dict() == {
        "input_tokens": estimate_tokens("hello there"),
        "output_tokens": estimate_tokens("You said: hello there"),
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
    }
    req = anth.last
    assert (req.method, req.path, req.query) == ("POST", "/v1/messages", {})
    headers = {k.lower(): v for k, v in req.headers.items()}
    assert headers["x-api-key"] == KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["content-type"] == "application/json"
    assert headers["accept"] == "application/json"
    assert "authorization" not in headers
    assert req.json() == {
        "model": MODEL,
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}],
    }


async def test_system_prompt_max_tokens_temperature_and_stop_sequences_on_the_wire(anth: AnthropicFake) -> None:
    await synapse.achat(MODEL, "hi", system="Be terse.", max_tokens=50, temperature=0.3, stop=["END", "\n\nHuman:"])
    assert anth.last.json() == {
        "model": MODEL,
        "max_tokens": 50,
        "system": [{"type": "text", "text": "Be terse."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "temperature": 0.3,
        "stop_sequences": ["END", "\n\nHuman:"],
    }


async def test_temperature_zero_is_sent_not_dropped(anth: AnthropicFake) -> None:
    await synapse.achat(MODEL, "hi", temperature=0.0)
    assert anth.last.json()["temperature"] == 0.0


async def test_stop_sequence_cuts_the_reply(anth: AnthropicFake) -> None:
    anth.reply(FakeReply(text="one, two END three"))
    r = await synapse.achat(MODEL, "count", stop="END")
    assert r.text == "one, two "
    assert (r.stop_reason, r.raw_stop_reason) == ("stop_sequence", "stop_sequence")
    assert anth.last.json()["stop_sequences"] == ["END"]


async def test_max_tokens_cuts_the_reply(anth: AnthropicFake) -> None:
    r = await synapse.achat(MODEL, "tell me a long story about the sea", max_tokens=3)
    assert r.text == "You said: te"  # 3 tokens = 12 characters by the fake's tokenizer
    assert (r.stop_reason, r.raw_stop_reason) == ("max_tokens", "max_tokens")
    assert r.usage.output_tokens == 3
    assert anth.last.json()["max_tokens"] == 3


async def test_multi_turn_history_with_system_messages_lifted(anth: AnthropicFake) -> None:
    history = [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Arr, hello."},
        {"role": "user", "content": "Where is the treasure?"},
    ]
    r = await synapse.achat(MODEL, history)
    assert r.text == "You said: Where is the treasure?"
    body = anth.last.json()
    assert body["system"] == [{"type": "text", "text": "You are a pirate."}]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Arr, hello."}]},
        {"role": "user", "content": [{"type": "text", "text": "Where is the treasure?"}]},
    ]
    assert r.usage.input_tokens == sum(estimate_tokens(t) for t in ["You are a pirate.", "Hi", "Arr, hello.", "Where is the treasure?"])


async def test_images_inline_and_by_url(anth: AnthropicFake) -> None:
    msg = Message(
        "user",
        [
            ImagePart(media_type="image/png", data=PNG),
            ImagePart(media_type="image/jpeg", url="https://example.com/cat.jpg"),
            TextPart("What are these?"),
        ],
    )
    r = await synapse.achat(MODEL, [msg])
    assert r.text == "You said: What are these?"
    import base64

    assert anth.last.json()["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "What are these?"},
    ]
    assert r.usage.input_tokens == 2 * AnthropicFake.IMAGE_TOKENS + estimate_tokens("What are these?")


WEATHER = Tool(
    "get_weather",
    "Weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        ("get_weather", {"type": "tool", "name": "get_weather"}),
    ],
)
async def test_tool_definitions_and_tool_choice(anth: AnthropicFake, choice: str, wire: dict[str, Any]) -> None:
    await synapse.achat(MODEL, "weather in Paris?", tools=[WEATHER, {"name": "noargs"}], tool_choice=choice)
    body = anth.last.json()
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
        {"name": "noargs", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert body["tool_choice"] == wire


async def test_openai_style_tool_dicts_are_accepted(anth: AnthropicFake) -> None:
    tool = {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}}
    await synapse.achat(MODEL, "go", tools=[tool])
    assert anth.last.json()["tools"] == [
        {"name": "f", "description": "d", "input_schema": {"type": "object", "properties": {"x": {"type": "integer"}}}}
    ]


async def test_tool_call_and_tool_result_round_trip(anth: AnthropicFake) -> None:
    anth.reply(FakeReply(text="Checking.", tool_calls=[FakeToolCall("toolu_01A", "get_weather", {"city": "Paris"})]))
    first = await synapse.achat(MODEL, "What's the weather in Paris?", tools=[WEATHER])
    assert first.text == "Checking."
    assert (first.stop_reason, first.raw_stop_reason) == ("tool_use", "tool_use")
    assert [(c.id, c.name, c.arguments) for c in first.tool_calls] == [("toolu_01A", "get_weather", {"city": "Paris"})]
    assert first.usage.output_tokens == estimate_tokens("Checking.") + estimate_tokens('get_weather{"city": "Paris"}')

    history = [
        Message("user", [TextPart("What's the weather in Paris?")]),
        first.to_message(),
        Message("user", [ToolResultPart("toolu_01A", "18C, sunny"), ToolResultPart("toolu_XX", "n/a", is_error=True)]),
    ]
    # a result for an unknown call is rejected by Anthropic: the fake checks pairing like the real API
    with pytest.raises(synapse.BadRequestError, match="unexpected `tool_use_id`"):
        await synapse.achat(MODEL, history, tools=[WEATHER])
    history[2] = Message("user", [TextPart("Also, be brief."), ToolResultPart("toolu_01A", "18C, sunny", is_error=True)])
    second = await synapse.achat(MODEL, history, tools=[WEATHER])
    assert second.text == "The tool said: 18C, sunny"
    assert anth.last.json()["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
        {
            "role": "user",
            "content": [  # tool_result first: Anthropic requires it before any text
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18C, sunny", "is_error": True},
                {"type": "text", "text": "Also, be brief."},
            ],
        },
    ]


async def test_openai_style_history_with_tool_messages(anth: AnthropicFake) -> None:
    history = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "-3C"},
    ]
    r = await synapse.achat(MODEL, history, tools=[WEATHER])
    assert r.text == "The tool said: -3C"
    assert anth.last.json()["messages"][1:] == [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "-3C"}]},
    ]


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("end_turn", "end_turn"),
        ("max_tokens", "max_tokens"),
        ("stop_sequence", "stop_sequence"),
        ("tool_use", "tool_use"),
        ("refusal", "content_filter"),
        ("pause_turn", "other"),
        ("model_context_window_exceeded", "max_tokens"),
        ("some_future_reason", "other"),
    ],
)
async def test_stop_reasons_map_and_keep_the_raw_word(anth: AnthropicFake, raw: str, canonical: str) -> None:
    anth.reply(FakeReply(text="x", stop_reason=raw))
    r = await synapse.achat(MODEL, "hi")
    assert (r.stop_reason, r.raw_stop_reason) == (canonical, raw)


async def test_usage_is_normalised_exactly(anth: AnthropicFake) -> None:
    # The recorded cache hit of reference §2.8: uncached tail 3, read 1111, written 418.
    anth.reply(FakeReply(text="ok", reasoning="Let me think.", input_tokens=3, cache_read_tokens=1111,
                         cache_write_tokens=418, output_tokens=393, reasoning_tokens=77))
    r = await synapse.achat(MODEL, "hi")
    assert r.usage.as_dict() == {
        "input_tokens": 3,
        "output_tokens": 393,  # thinking included, as billed
        "cache_read_tokens": 1111,
        "cache_write_tokens": 418,
        "reasoning_tokens": 77,
    }
    assert r.usage.prompt_tokens == 3 + 1111 + 418


async def test_reasoning_and_thinking_blocks_go_back_before_tool_use(anth: AnthropicFake) -> None:
    anth.reply(FakeReply(reasoning="The user wants weather.", tool_calls=[FakeToolCall("toolu_9", "get_weather", {"city": "Rome"})]))
    extra = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    first = await synapse.achat(MODEL, "Rome weather?", tools=[WEATHER], extra=extra)
    assert first.reasoning == "The user wants weather."
    assert first.text == ""
    assert first.usage.reasoning_tokens == estimate_tokens("The user wants weather.")
    assert anth.last.json()["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    history = [Message("user", [TextPart("Rome weather?")]), first.to_message(), Message("user", [ToolResultPart("toolu_9", "21C")])]
    await synapse.achat(MODEL, history, tools=[WEATHER], extra=extra)
    assistant = anth.last.json()["messages"][1]["content"]
    assert [b["type"] for b in assistant] == ["thinking", "tool_use"]
    assert assistant[0]["thinking"] == "The user wants weather." and assistant[0]["signature"]


def test_empty_text_parts_are_not_sent_and_tool_choice_needs_tools() -> None:
    req = Request(MODEL, [Message("user", [TextPart(""), TextPart("hi")])], system=[TextPart("")], tool_choice="auto")
    assert encode_request(req) == {
        "model": MODEL,
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }


async def test_extra_is_merged_last(anth: AnthropicFake) -> None:
    await synapse.achat(MODEL, "hi", max_tokens=100, extra={"metadata": {"user_id": "u-1"}, "max_tokens": 7, "top_k": 5})
    body = anth.last.json()
    assert body["metadata"] == {"user_id": "u-1"} and body["max_tokens"] == 7 and body["top_k"] == 5


async def test_sync_chat_works_too(anth: AnthropicFake) -> None:
    import asyncio

    r = await asyncio.to_thread(synapse.chat, MODEL, "sync please")
    assert r.text == "You said: sync please"


# --- CLI --------------------------------------------------------------------------------------


def test_cli_chat_json_streams_by_default(anth: AnthropicFake, cli: Any) -> None:
    res = cli("chat", "-m", MODEL, "--json", "hi")
    assert res.code == 0, res.err
    out = json.loads(res.out)
    assert out["text"] == "You said: hi" and out["model"] == MODEL and out["provider"] == "anthropic"
    assert out["stop_reason"] == "end_turn"
    assert out["usage"]["input_tokens"] == 1 and out["usage"]["output_tokens"] == estimate_tokens("You said: hi")
    assert anth.last.json()["stream"] is True


def test_cli_chat_no_stream_with_system_and_options(anth: AnthropicFake, cli: Any) -> None:
    res = cli("chat", "-m", MODEL, "--no-stream", "-s", "Be brief.", "--max-tokens", "64", "--temperature", "0.5", "Hello", "world")
    assert res.code == 0, res.err
    assert res.out == "You said: Hello world\n"
    body = anth.last.json()
    assert "stream" not in body
    assert body["system"] == [{"type": "text", "text": "Be brief."}]
    assert (body["max_tokens"], body["temperature"]) == (64, 0.5)


def test_cli_plain_streamed_text(anth: AnthropicFake, cli: Any) -> None:
    anth.reply(AnthropicReply(text="Streaming words arrive one by one."))
    res = cli("chat", "-m", MODEL, "go")
    assert res.code == 0 and res.out == "Streaming words arrive one by one.\n"


def test_cli_models_lists_every_page(anth: AnthropicFake, cli: Any) -> None:
    anth.max_page_size = 4
    res = cli("models", "--json")
    assert res.code == 0, res.err
    [entry] = [e for e in json.loads(res.out) if e["provider"] == "anthropic"]
    assert entry["models"] == [m["id"] for m in anth.models]
    assert [r.query for r in anth.requests] == [{"limit": "1000"}, {"limit": "1000", "after_id": anth.models[3]["id"]}]


def test_cli_bad_key_is_one_line_in_a_subprocess(anth: AnthropicFake, configure: Any, run_synapse: Any) -> None:
    bad = "sk-ant-api03-WRONGkeyWRONGkeyWRONG-9999"
    configure(anthropic_key=bad)
    res = run_synapse("chat", "-m", MODEL, "hi")
    assert res.code == 1
    lines = res.err.strip().splitlines()
    assert len(lines) == 1, res.err
    assert lines[0] == (
        "synapse: Anthropic Claude rejected the key in anthropic_key: check it at "
        "console.anthropic.com/settings/keys (invalid x-api-key)"
    )
    assert "Traceback" not in res.err and bad not in res.err and res.out == ""
    assert len(anth.requests) == 1  # 401 is not retried


def test_cli_unknown_model_in_a_subprocess(anth: AnthropicFake, run_synapse: Any) -> None:
    res = run_synapse("chat", "-m", "claude-nope-9", "--no-stream", "hi")
    assert res.code == 1
    assert res.err.strip() == "synapse: Anthropic Claude does not know that model or resource (model: claude-nope-9)"
