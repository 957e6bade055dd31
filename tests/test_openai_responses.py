"""OpenAI's Responses API (`POST /v1/responses`) against the loopback fake: routing,
request encoding, replies, streaming, reasoning items carried across an agent's tool
loop, usage, provider-side tools and errors."""

from __future__ import annotations

from typing import Any

import pytest

import synapse
from synapse.errors import (
    AuthenticationError,
    BadRequestError,
    ContextTooLongError,
    NotFoundError,
    RateLimitError,
    UpstreamUnavailableError,
)
from synapse.providers.routing import resolve
from synapse.types import (
    ImagePart,
    Message,
    ReasoningDelta,
    ReasoningPart,
    ResponseDone,
    Source,
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolResultPart,
    Usage,
)
from tests.fakes.base import FakeReply, FakeToolCall
from tests.fakes.openai import OpenAIFake
from tests.fakes.openai_responses import verify_encrypted

WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


async def collect(model: str, messages: Any, **kw: Any) -> list[Any]:
    return [e async for e in synapse.astream(model, messages, **kw)]


# --- routing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "protocol"),
    [
        ("o3-pro", "openai_responses"), ("gpt-5-pro", "openai_responses"), ("gpt-5.2-pro-2025-12-11", "openai_responses"),
        ("gpt-5-codex", "openai_responses"), ("gpt-5.1-codex-mini", "openai_responses"),
        ("codex-mini-latest", "openai_responses"), ("o4-mini-deep-research", "openai_responses"),
        ("computer-use-preview", "openai_responses"),
        ("gpt-5", "openai"), ("o3", "openai"), ("gpt-4.1", "openai"), ("gpt-5-mini", "openai"),
    ],
)
def test_responses_only_models_route_there(model: str, protocol: str) -> None:
    route = resolve(model, {})
    assert (route.spec.id, route.protocol) == ("openai", protocol)


def test_setting_sends_every_openai_model_there() -> None:
    assert resolve("gpt-4.1", {"openai_use_responses_api": True}).protocol == "openai_responses"
    assert resolve("gpt-4.1", {"openai_use_responses_api": "true"}).protocol == "openai_responses"
    assert resolve("gpt-4.1", {"openai_use_responses_api": False}).protocol == "openai"
    # Only OpenAI itself: xAI and OpenAI-compatible servers keep Chat Completions.
    assert resolve("grok-4", {"openai_use_responses_api": True}).protocol == "openai"
    assert resolve("oaic.gpt-4.1", {"openai_use_responses_api": True}).protocol == "openai"
    # Embeddings never go there.
    assert resolve("text-embedding-3-small", {"openai_use_responses_api": True}, "embed").protocol == "openai"


async def test_chat_completions_refuses_responses_only_models_so_synapse_never_sends_them_there(openai: OpenAIFake) -> None:
    r = await synapse.achat("o3-pro", "hi")
    assert openai.last.path == "/v1/responses" and r.text == "You said: hi"
    # What Chat Completions would have said (the fake answers like the real service):
    import aiohttp

    async with aiohttp.ClientSession() as s:
        async with s.post(openai.base_url + "/chat/completions", json={"model": "o3-pro", "messages": []},
                          headers={"Authorization": f"Bearer {openai.key}"}) as resp:
            body = await resp.json()
    assert resp.status == 404
    assert body["error"]["message"] == "This model is only supported in v1/responses and not in v1/chat/completions."


async def test_setting_routes_a_chat_model_and_the_card_still_lists_models(openai: OpenAIFake, configure: Any) -> None:
    configure(openai_use_responses_api=True)
    r = await synapse.achat("gpt-4.1", "hi", system="Be brief.", max_tokens=50, temperature=0.3)
    sent = openai.last.json()
    assert openai.last.path == "/v1/responses"
    assert sent == {"model": "gpt-4.1", "instructions": "Be brief.",
                    "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
                    "max_output_tokens": 50, "temperature": 0.3, "store": False}
    assert (r.text, r.stop_reason, r.provider, r.model) == ("You said: hi", "end_turn", "openai", "gpt-4.1")
    assert r.reasoning_parts == []  # a non-reasoning model returns no reasoning item


# --- encoding -----------------------------------------------------------------------------------


async def test_reasoning_model_request(openai: OpenAIFake) -> None:
    await synapse.achat("gpt-5-codex", "Fix it", system="You are a coder.", temperature=0.2,
                        tools=[WEATHER], tool_choice="get_weather")
    sent = openai.last.json()
    assert sent["include"] == ["reasoning.encrypted_content"] and sent["store"] is False
    assert "temperature" not in sent  # reasoning models reject it
    assert sent["tools"] == [{"type": "function", "name": "get_weather", "description": "Weather for a city",
                              "parameters": WEATHER["parameters"], "strict": False}]
    assert sent["tool_choice"] == {"type": "function", "name": "get_weather"}


async def test_images_and_history_items(openai: OpenAIFake) -> None:
    history = [
        Message("user", [TextPart("What is this?"), ImagePart("image/png", data=b"\x89PNG"),
                         ImagePart(url="https://example.org/cat.jpg")]),
        Message("assistant", [TextPart("A cat.")]),
        Message("user", [TextPart("Sure?")]),
    ]
    await synapse.achat("o3-pro", history)
    items = openai.last.json()["input"]
    assert items[0]["content"][1] == {"type": "input_image", "image_url": "data:image/png;base64,iVBORw==", "detail": "auto"}
    assert items[0]["content"][2]["image_url"] == "https://example.org/cat.jpg"
    assert items[1] == {"type": "message", "role": "assistant", "content": "A cat."}


async def test_stop_sequences_are_refused_with_a_clear_message(openai: OpenAIFake) -> None:
    with pytest.raises(BadRequestError) as exc:
        await synapse.achat("o3-pro", "hi", stop=["END"])
    assert str(exc.value) == ("OpenAI's Responses API (which serves o3-pro here) takes no stop sequences: "
                              "drop `stop`, or use a Chat Completions model")
    assert openai.requests == []


async def test_unknown_parameters_are_rejected_like_the_real_api(openai: OpenAIFake) -> None:
    with pytest.raises(BadRequestError, match=r"Unknown parameter: 'max_tokens'"):
        await synapse.achat("o3-pro", "hi", extra={"max_tokens": 5})


async def test_strict_schema_default_would_fail_so_synapse_sends_strict_false(openai: OpenAIFake) -> None:
    await synapse.achat("o3-pro", "hi", tools=[WEATHER])  # not strict-ready: no additionalProperties
    with pytest.raises(BadRequestError, match="additionalProperties"):
        await synapse.achat("o3-pro", "hi", tools=[WEATHER], extra={"tools": [{**openai.last.json()["tools"][0], "strict": True}]})


# --- replies ------------------------------------------------------------------------------------


async def test_reply_usage_and_reasoning_item(openai: OpenAIFake) -> None:
    openai.reply(FakeReply(text="Done.", reasoning="thought hard", input_tokens=100, cache_read_tokens=1024,
                           output_tokens=250, reasoning_tokens=200))
    r = await synapse.achat("o3-pro", "hi")
    assert r.text == "Done." and r.id and r.id.startswith("resp_")
    # input_tokens 1124 includes cached 1024; output 250 includes reasoning 200.
    assert r.usage == Usage(input_tokens=100, output_tokens=250, cache_read_tokens=1024, reasoning_tokens=200)
    (part,) = r.reasoning_parts
    assert part.provider == "openai" and part.data["id"].startswith("rs_")
    assert verify_encrypted(part.data["encrypted_content"])["id"] == part.data["id"]
    assert r.reasoning == "" and part.text == ""  # no summary unless asked for


async def test_reasoning_summary_when_asked(openai: OpenAIFake) -> None:
    openai.reply(FakeReply(text="42.", reasoning="Six times seven."))
    events = await collect("o3-pro", "6*7?", extra={"reasoning": {"summary": "auto"}})
    assert [e.text for e in events if isinstance(e, ReasoningDelta)] == ["Six ", "times ", "seven."]
    done = events[-1].response
    assert done.reasoning == "Six times seven." and done.reasoning_parts[0].text == "Six times seven."


@pytest.mark.parametrize("stream", [False, True])
async def test_incomplete_max_output_tokens(openai: OpenAIFake, stream: bool) -> None:
    openai.reply(FakeReply(text="word " * 400))
    if stream:
        r = (await collect("gpt-5-codex", "long", max_tokens=40))[-1].response
    else:
        r = await synapse.achat("gpt-5-codex", "long", max_tokens=40)
    assert (r.stop_reason, r.raw_stop_reason) == ("max_tokens", "max_output_tokens")
    assert 0 < len(r.text) < 2000


async def test_content_filter_incomplete(openai: OpenAIFake) -> None:
    openai.reply(FakeReply(text="", stop_reason="content_filter"))
    r = await synapse.achat("o3-pro", "bad")
    assert r.stop_reason == "content_filter"


# --- streaming -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["normal", "split"])
async def test_stream_text_equals_chat(openai: OpenAIFake, mode: str) -> None:
    openai.write_mode = mode
    openai.reply(FakeReply(text="Hello there, friend."))
    events = await collect("o3-pro", "hi")
    openai.reply(FakeReply(text="Hello there, friend."))
    whole = await synapse.achat("o3-pro", "hi")
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello there, friend."
    assert done.response.text == whole.text and done.response.usage == whole.usage
    assert openai.requests[-2].json()["stream"] is True and "stream" not in openai.last.json()


async def test_stream_tool_calls(openai: OpenAIFake) -> None:
    openai.reply(FakeReply(tool_calls=[FakeToolCall("call_a", "get_weather", {"city": "Paris"}),
                                       FakeToolCall("call_b", "get_weather", {"city": "Oslo"})]))
    events = await collect("gpt-5-codex", "weather?", tools=[WEATHER])
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [(d.index, d.id, d.name) for d in deltas if d.id] == [(0, "call_a", "get_weather"), (1, "call_b", "get_weather")]
    assert "".join(d.arguments for d in deltas if d.index == 1) == '{"city": "Oslo"}'
    r = events[-1].response
    assert [(c.id, c.arguments) for c in r.tool_calls] == [("call_a", {"city": "Paris"}), ("call_b", {"city": "Oslo"})]
    assert r.stop_reason == "tool_use"


async def test_agent_tool_loop_carries_reasoning_back(openai: OpenAIFake) -> None:
    """Two rounds with a reasoning model, streamed and not: the reasoning item goes back
    (encrypted, without its id) before the function call it led to; the fake verifies it."""
    openai.reply(FakeReply(tool_calls=[FakeToolCall("call_1", "get_weather", {"city": "Paris"})], reasoning="need data"))
    history: list[Any] = [Message("user", [TextPart("Weather in Paris?")])]
    first = (await collect("gpt-5-codex", history, tools=[WEATHER]))[-1].response
    history += [first.to_message(), Message("user", [ToolResultPart("call_1", "18C, sunny")])]
    openai.reply(FakeReply(text="It is 18C and sunny."))
    second = await synapse.achat("gpt-5-codex", history, tools=[WEATHER])
    assert second.text == "It is 18C and sunny."
    items = openai.last.json()["input"]
    assert [i["type"] for i in items] == ["message", "reasoning", "function_call", "function_call_output"]
    assert "id" not in items[1] and verify_encrypted(items[1]["encrypted_content"])
    assert items[2] == {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert items[3] == {"type": "function_call_output", "call_id": "call_1", "output": "18C, sunny"}


async def test_altered_or_unencrypted_reasoning_is_rejected_by_the_fake_like_openai(openai: OpenAIFake) -> None:
    """Why Synapse sends encrypted content and drops what it cannot send: the real errors."""
    openai.reply(FakeReply(tool_calls=[FakeToolCall("call_1", "get_weather", {"city": "Paris"})]))
    first = await synapse.achat("o3-pro", "Weather?", tools=[WEATHER])
    part = first.reasoning_parts[0]
    tampered = ReasoningPart("", "openai", {**part.data, "encrypted_content": part.data["encrypted_content"][:-2] + "xx"})
    history = [Message("user", [TextPart("Weather?")]), Message("assistant", [tampered, *first.tool_calls]),
               Message("user", [ToolResultPart("call_1", "sunny")])]
    with pytest.raises(BadRequestError, match="could not be verified"):
        await synapse.achat("o3-pro", history, tools=[WEATHER])
    # Only an id, under store: false: Synapse drops it rather than send what OpenAI cannot find.
    by_id = ReasoningPart("", "openai", {"type": "reasoning", "id": part.data["id"], "summary": []})
    history[1] = Message("assistant", [by_id, *first.tool_calls])
    await synapse.achat("o3-pro", history, tools=[WEATHER])
    assert [i["type"] for i in openai.last.json()["input"]] == ["message", "function_call", "function_call_output"]
    # ...and sending it anyway fails the way OpenAI does.
    with pytest.raises(NotFoundError, match="Items are not persisted when `store` is set to false"):
        await synapse.achat("o3-pro", "x", extra={"input": [{"type": "reasoning", "id": part.data["id"], "summary": []},
                                                           {"role": "user", "content": "hi"}]})


async def test_non_reasoning_models_get_no_encrypted_include(openai: OpenAIFake, configure: Any) -> None:
    configure(openai_use_responses_api=True)
    await synapse.achat("gpt-4.1", "hi")
    assert "include" not in openai.last.json()
    with pytest.raises(BadRequestError, match="Encrypted content is not supported with this model"):
        await synapse.achat("gpt-4.1", "hi", extra={"include": ["reasoning.encrypted_content"]})


async def test_other_providers_reasoning_is_not_sent(openai: OpenAIFake) -> None:
    foreign = ReasoningPart("x", "xai", {"type": "reasoning", "encrypted_content": "abc"})
    await synapse.achat("o3-pro", [Message("user", [TextPart("a")]), Message("assistant", [foreign, TextPart("b")]),
                                   Message("user", [TextPart("c")])])
    assert [i["type"] for i in openai.last.json()["input"]] == ["message", "message", "message"]


# --- provider-side tools ----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_web_search_and_code_interpreter(openai: OpenAIFake, stream: bool) -> None:
    openai.reply(FakeReply(text="Sunny.", search_query="paris weather", sources=[("https://example.org/w", "W")],
                           code="print(1)", code_output="1\n"))
    tools = [synapse.server_tool("web_search"), synapse.server_tool("code_execution")]
    if stream:
        r = (await collect("o3-pro", "Weather?", tools=tools))[-1].response
    else:
        r = await synapse.achat("o3-pro", "Weather?", tools=tools)
    sent = openai.last.json()
    assert sent["tools"] == [{"type": "web_search"}, {"type": "code_interpreter", "container": {"type": "auto"}}]
    assert sent["include"] == ["web_search_call.action.sources", "code_interpreter_call.outputs",
                               "reasoning.encrypted_content"]
    search, code = r.server_tools
    assert (search.name, search.input, search.sources) == ("web_search", {"query": "paris weather"},
                                                          [Source("https://example.org/w")])
    assert (code.name, code.input, code.text) == ("code_execution", {"code": "print(1)"}, "1\n")
    assert r.citations == [Source("https://example.org/w", "W")]
    assert r.usage.server_tool_use == {"web_search": 1, "code_execution": 1}


# --- errors ---------------------------------------------------------------------------------------


async def test_http_errors_map_like_chat_completions(openai: OpenAIFake, configure: Any) -> None:
    configure(openai_key="sk-proj-wrongwrongwrong0000", max_retries=0)
    with pytest.raises(AuthenticationError) as exc:
        await synapse.achat("o3-pro", "hi")
    assert "wrongwrong" not in str(exc.value)
    configure(openai_key=openai.key)
    openai.context_window = 5
    with pytest.raises(ContextTooLongError):
        await synapse.achat("o3-pro", "a long prompt " * 10)


@pytest.mark.parametrize(
    ("error", "kind"),
    [({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}, RateLimitError),
     ({"error": {"message": "The server had an error", "type": "server_error", "code": "server_error"}},
      UpstreamUnavailableError)],
)
async def test_error_event_mid_stream(openai: OpenAIFake, error: dict[str, Any], kind: type) -> None:
    openai.stream_error = error
    openai.reply(FakeReply(text="one two three four five", error_after_events=6))
    with pytest.raises(kind, match=r"\(mid-stream\)"):
        await collect("o3-pro", "hi")


async def test_response_failed_event_and_failed_body(openai: OpenAIFake) -> None:
    openai.reply(FakeReply(text="x", stop_reason="failed"))
    with pytest.raises(UpstreamUnavailableError, match="The model failed to generate a response"):
        await collect("o3-pro", "hi")


async def test_stream_cut_before_completed(openai: OpenAIFake, configure: Any) -> None:
    configure(max_retries=0)
    openai.reply(FakeReply(text="one two three", break_after_events=5))
    with pytest.raises(UpstreamUnavailableError, match="mid-stream"):
        await collect("o3-pro", "hi")


async def test_reply_with_only_unknown_items_is_an_error(openai: OpenAIFake) -> None:
    from synapse.providers.openai_responses import decode_response
    from synapse.providers import adapter_for
    from synapse.providers.catalog import get as get_spec
    from synapse.settings import load

    adapter = adapter_for(get_spec("openai"), load(), "openai_responses")
    data = {"id": "resp_1", "status": "completed", "output": [{"type": "image_generation_call", "id": "ig_1"}]}
    with pytest.raises(UpstreamUnavailableError, match=r"does not understand \(output item 'image_generation_call'\)"):
        decode_response(adapter, data, "o3-pro")
    data["output"].append({"type": "message", "content": [{"type": "output_text", "text": "Here.", "annotations": []}]})
    assert decode_response(adapter, data, "o3-pro").text == "Here."
