"""Ollama's native API through the Python API, against the loopback fake (§8.1)."""

from __future__ import annotations

import base64
import json

import pytest

import synapse
from synapse.errors import BadRequestError
from synapse.providers import adapter_for
from synapse.providers.catalog import get as get_spec
from synapse.settings import load as load_settings
from synapse.types import (
    ImagePart,
    Message,
    ReasoningDelta,
    ResponseDone,
    TextDelta,
    TextPart,
    Tool,
    ToolCallDelta,
    ToolResultPart,
    Usage,
)
from tests.conftest import provider_fake
from tests.fakes.base import FakeReply, FakeToolCall, estimate_tokens
from tests.fakes.ollama import OllamaFake

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


@pytest.fixture(scope="module")
def ollama_server():
    yield from provider_fake(OllamaFake)


@pytest.fixture
def fake(ollama_server, configure):
    ollama_server.reset()
    configure(ollama_base_url=ollama_server.url)
    return ollama_server


async def collect(model, messages, **kw):
    events = [e async for e in synapse.astream(model, messages, **kw)]
    assert isinstance(events[-1], ResponseDone)
    assert not any(isinstance(e, ResponseDone) for e in events[:-1])
    return events, events[-1].response


# --- plain chat ----------------------------------------------------------------------------


async def test_plain_chat_wire_and_usage(fake):
    r = await synapse.achat("llama3.2", "hello there")
    assert r.text == "Echo: hello there"
    assert (r.provider, r.model, r.stop_reason, r.raw_stop_reason) == ("ollama", "llama3.2", "end_turn", "stop")
    req = fake.last
    assert (req.method, req.path) == ("POST", "/api/chat")
    assert req.json() == {"model": "llama3.2", "messages": [{"role": "user", "content": "hello there"}], "stream": False}
    assert req.headers["Content-Type"] == "application/json"
    assert "Authorization" not in req.headers
    assert r.usage == Usage(input_tokens=OllamaFake.prompt_tokens(req.json()), output_tokens=estimate_tokens(r.text))
    assert r.usage.input_tokens == estimate_tokens("hello there") == 2


async def test_ollama_prefix_is_stripped_before_the_call(fake):
    r = await synapse.achat("ollama.qwen3:0.6b", "hi")
    assert fake.last.json()["model"] == "qwen3:0.6b"
    assert r.model == "ollama.qwen3:0.6b" and r.provider == "ollama"


async def test_system_history_and_options_on_the_wire(fake):
    history = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
    ]
    r = await synapse.achat("llama3.2", history, system="Answer in English.", max_tokens=50, temperature=0.2, stop=["END"])
    assert r.text == "Echo: second question"
    assert fake.last.json() == {
        "model": "llama3.2",
        "messages": [
            {"role": "system", "content": "Answer in English.\n\nYou are terse."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": "second question"},
        ],
        "stream": False,
        "options": {"num_predict": 50, "temperature": 0.2, "stop": ["END"]},
    }


async def test_extra_fields_and_options_merge(fake):
    await synapse.achat("llama3.2", "hi", temperature=0.5, extra={"think": True, "keep_alive": "5m", "options": {"num_ctx": 8192}})
    body = fake.last.json()
    assert body["think"] is True and body["keep_alive"] == "5m"
    assert body["options"] == {"temperature": 0.5, "num_ctx": 8192}


async def test_stop_sequence_cuts_the_reply(fake):
    r = await synapse.achat("llama3.2", "alpha END beta", stop="END")
    assert r.text == "Echo: alpha "
    # Ollama says "stop" for a stop sequence and for a natural end alike.
    assert (r.stop_reason, r.raw_stop_reason) == ("end_turn", "stop")
    assert fake.last.json()["options"] == {"stop": ["END"]}


async def test_max_tokens_maps_length(fake):
    r = await synapse.achat("llama3.2", "a prompt that is long enough to be cut", max_tokens=2)
    assert (r.stop_reason, r.raw_stop_reason) == ("max_tokens", "length")
    assert r.text == "Echo: a "  # 2 tokens of the fake's 4-chars-a-token
    assert r.usage.output_tokens == 2
    _, sr = await collect("llama3.2", "a prompt that is long enough to be cut", max_tokens=2)
    assert (sr.stop_reason, sr.raw_stop_reason, sr.text) == ("max_tokens", "length", "Echo: a ")


async def test_unknown_done_reason_is_other(fake):
    fake.reply(FakeReply(text="x", stop_reason="unload"))
    r = await synapse.achat("llama3.2", "hi")
    assert (r.stop_reason, r.raw_stop_reason) == ("other", "unload")


# --- streaming -------------------------------------------------------------------------------


async def test_stream_text_deltas_and_final_usage(fake):
    events, r = await collect("llama3.2", "stream me please")
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 1 and "".join(deltas) == r.text == "Echo: stream me please"
    assert r.usage == Usage(input_tokens=estimate_tokens("stream me please"), output_tokens=estimate_tokens(r.text))
    assert fake.last.json()["stream"] is True
    assert fake.last.path == "/api/chat"


async def test_stream_reasoning_then_text(fake):
    fake.reply(FakeReply(text="The answer is 4.", reasoning="2 plus 2 is 4", input_tokens=30, output_tokens=25))
    events, r = await collect("qwen3:0.6b", "2+2?", extra={"think": True})
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("ReasoningDelta") < kinds.index("TextDelta")
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == r.reasoning == "2 plus 2 is 4"
    assert r.text == "The answer is 4."
    # eval_count already includes the thinking tokens; Ollama reports no split (§1.1).
    assert r.usage == Usage(input_tokens=30, output_tokens=25)


async def test_non_streaming_reasoning(fake):
    fake.reply(FakeReply(text="4", reasoning="adding"))
    r = await synapse.achat("qwen3:0.6b", "2+2?")
    assert (r.text, r.reasoning) == ("4", "adding")
    assert r.usage.output_tokens == estimate_tokens("4") + estimate_tokens("adding")


async def test_usage_has_no_cache_fields_and_tolerates_omitted_counts(fake):
    # Cache fields in the script are ignored: Ollama reports none.
    fake.reply(FakeReply(text="ok", input_tokens=1234, output_tokens=56, cache_read_tokens=999, cache_write_tokens=5))
    r = await synapse.achat("llama3.2", "hi")
    assert r.usage == Usage(input_tokens=1234, output_tokens=56)
    # A prompt served entirely from Ollama's KV cache has no prompt_eval_count (omitempty).
    fake.reply(FakeReply(text="ok", input_tokens=0, output_tokens=3))
    _, sr = await collect("llama3.2", "hi")
    assert sr.usage == Usage(input_tokens=0, output_tokens=3)


def test_sync_chat_and_stream(fake):
    r = synapse.chat("llama3.2", "sync hello")
    assert r.text == "Echo: sync hello"
    events = list(synapse.stream("llama3.2", "sync stream"))
    assert isinstance(events[-1], ResponseDone) and events[-1].response.text == "Echo: sync stream"


# --- images ------------------------------------------------------------------------------------


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))


async def test_images_are_base64_on_the_message(fake):
    msg = Message("user", [TextPart("what is this?"), ImagePart("image/png", data=PNG)])
    await synapse.achat("llava", [msg])
    assert fake.last.json()["messages"] == [
        {"role": "user", "content": "what is this?", "images": [base64.b64encode(PNG).decode()]}
    ]
    # OpenAI-style data URL parts arrive the same way.
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    await synapse.achat("llava", [{"role": "user", "content": [{"type": "text", "text": "and this?"}, {"type": "image_url", "image_url": {"url": url}}]}])
    assert fake.last.json()["messages"][0]["images"] == [base64.b64encode(PNG).decode()]


async def test_image_by_url_is_refused_before_sending(fake):
    msg = Message("user", [TextPart("look"), ImagePart(url="https://example.com/cat.png")])
    with pytest.raises(BadRequestError, match="inline"):
        await synapse.achat("llava", [msg])
    assert fake.requests == []


# --- tools ---------------------------------------------------------------------------------------


async def test_tool_definitions_on_the_wire(fake):
    tools = [Tool("get_weather", "Weather in a city", WEATHER)]
    await synapse.achat("llama3.2", "weather in Paris?", tools=tools)
    assert fake.last.json()["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": WEATHER}}
    ]
    await synapse.achat("llama3.2", "no tools now", tools=tools, tool_choice="none")
    assert "tools" not in fake.last.json()


async def test_streamed_tool_calls_and_round_trip(fake):
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER}}]
    fake.reply(
        FakeReply(
            text="Let me check.",
            tool_calls=[
                FakeToolCall("call_a1", "get_weather", {"city": "Paris"}),
                FakeToolCall("call_b2", "get_weather", {"city": "Oslo"}),
            ],
        )
    )
    events, r = await collect("llama3.2", "weather in Paris and Oslo?", tools=tools)
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [(d.index, d.id, d.name) for d in deltas] == [(0, "call_a1", "get_weather"), (1, "call_b2", "get_weather")]
    assert [json.loads(d.arguments) for d in deltas] == [{"city": "Paris"}, {"city": "Oslo"}]
    assert r.stop_reason == "tool_use" and r.raw_stop_reason == "stop"
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == [
        ("call_a1", "get_weather", {"city": "Paris"}),
        ("call_b2", "get_weather", {"city": "Oslo"}),
    ]
    assert r.text == "Let me check."

    history = [
        Message("user", [TextPart("weather in Paris and Oslo?")]),
        r.to_message(),
        Message("user", [ToolResultPart("call_a1", "11 degrees"), ToolResultPart("call_b2", "boom", is_error=True)]),
    ]
    r2 = await synapse.achat("llama3.2", history, tools=tools)
    assert r2.text == "Tool said: Error: boom"
    msgs = fake.last.json()["messages"]
    assert msgs[1] == {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {"id": "call_a1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
            {"id": "call_b2", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}},
        ],
    }
    # The tool name is filled from the matching call by the client.
    assert msgs[2:] == [
        {"role": "tool", "content": "11 degrees", "tool_call_id": "call_a1", "tool_name": "get_weather"},
        {"role": "tool", "content": "Error: boom", "tool_call_id": "call_b2", "tool_name": "get_weather"},
    ]


async def test_tool_call_without_id_gets_a_synthesised_one(fake):
    fake.reply(FakeReply(tool_calls=[FakeToolCall("", "now", {})]))
    events, r = await collect("llama3.2", "time?", tools=[Tool("now")])
    (delta,) = [e for e in events if isinstance(e, ToolCallDelta)]
    assert delta.id and delta.id.startswith("call_") and delta.id == r.tool_calls[0].id
    assert delta.arguments == "{}" and r.tool_calls[0].arguments == {}
    fake.reply(FakeReply(tool_calls=[FakeToolCall("", "now", {}), FakeToolCall("", "now", {})]))
    r = await synapse.achat("llama3.2", "time twice?", tools=[Tool("now")])
    ids = [c.id for c in r.tool_calls]
    assert len(set(ids)) == 2 and all(i.startswith("call_") for i in ids)
    assert r.stop_reason == "tool_use"


async def test_tool_result_then_user_text_keeps_order(fake):
    history = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "20 degrees"},
        {"role": "user", "content": "and tomorrow?"},
    ]
    await synapse.achat("llama3.2", history)
    assert fake.last.json()["messages"][1:] == [
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]},
        {"role": "tool", "content": "20 degrees", "tool_call_id": "c1", "tool_name": "get_weather"},
        {"role": "user", "content": "and tomorrow?"},
    ]


# --- models, verify, embeddings ---------------------------------------------------------------------


async def test_list_models_and_verify(fake):
    adapter = adapter_for(get_spec("ollama"), load_settings())
    models = await adapter.list_models()
    assert (fake.last.method, fake.last.path) == ("GET", "/api/tags")
    by_id = {m.id: m for m in models}
    assert set(by_id) == {"llama3.2", "qwen3:0.6b", "llava", "ollama.gpt-oss:20b", "nomic-embed-text"}
    # gpt-oss would route to OpenAI as a bare name, so it keeps the ollama. prefix.
    assert by_id["ollama.gpt-oss:20b"].upstream_id == "gpt-oss:20b"
    assert by_id["llama3.2"].upstream_id == "llama3.2:latest"
    assert by_id["nomic-embed-text"].embedding and not by_id["llama3.2"].embedding
    assert all(m.provider == "ollama" for m in models)
    assert [m.id for m in await adapter.verify()] == [m.id for m in models]
    # Every listed id routes back to this Ollama.
    r = await synapse.achat("ollama.gpt-oss:20b", "hi")
    assert fake.last.json()["model"] == "gpt-oss:20b" and r.provider == "ollama"


async def test_embeddings_via_prefix_and_setting(fake, configure):
    vectors = await synapse.aembed("ollama.nomic-embed-text", ["alpha", "beta"])
    assert vectors == [fake.vector("alpha"), fake.vector("beta")]
    assert (fake.last.path, fake.last.json()) == ("/api/embed", {"model": "nomic-embed-text", "input": ["alpha", "beta"]})
    configure(embedding_model="ollama.nomic-embed-text")
    assert await synapse.aembed(None, "gamma") == [fake.vector("gamma")]
    assert fake.last.json() == {"model": "nomic-embed-text", "input": ["gamma"]}
    assert synapse.embed(None, ["delta"]) == [fake.vector("delta")]
    assert len(fake.requests) == 3
