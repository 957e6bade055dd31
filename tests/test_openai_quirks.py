"""The services that speak Chat Completions with their own quirks: DeepSeek, xAI, Together,
OpenRouter (as `oaic.`) and local servers (`locv1.`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from synapse.client import achat, aembed, astream
from synapse.errors import (
    AuthenticationError,
    BadRequestError,
    ContextTooLongError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UpstreamUnavailableError,
)
from synapse.providers import adapter_for
from synapse.providers.catalog import get as get_spec
from synapse.settings import load as load_settings
from synapse.types import Message, ReasoningDelta, ResponseDone, TextDelta, TextPart, ToolResultPart, Usage
from tests.conftest import provider_fake
from tests.fakes.openai import FakeReply, FakeToolCall, OpenAIFake


async def collect(model: str, messages: Any, **kw: Any) -> tuple[list[Any], Any]:
    events = [e async for e in astream(model, messages, **kw)]
    assert isinstance(events[-1], ResponseDone)
    return events, events[-1].response


# --- DeepSeek ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deepseek_server() -> Iterator[OpenAIFake]:
    yield from provider_fake(OpenAIFake, flavour="deepseek")


@pytest.fixture
def deepseek(deepseek_server: OpenAIFake, configure: Any) -> OpenAIFake:
    deepseek_server.reset()
    configure(**deepseek_server.settings(), max_retries=1)
    return deepseek_server


async def test_deepseek_non_streaming_blank_lines_cache_hit_and_reasoning(deepseek: OpenAIFake) -> None:
    deepseek.reply(FakeReply(text="42", reasoning="Let me think.", input_tokens=51, cache_read_tokens=512,
                             output_tokens=116, reasoning_tokens=60))
    r = await achat("deepseek-reasoner", "meaning of life?", max_tokens=200)
    assert r.text == "42" and r.reasoning == "Let me think."
    assert r.usage == Usage(input_tokens=51, output_tokens=116, cache_read_tokens=512, reasoning_tokens=60)
    assert deepseek.last.path == "/chat/completions"  # bare origin, no /v1
    assert deepseek.last.json()["max_tokens"] == 200  # not max_completion_tokens


async def test_deepseek_stream_keepalives_reasoning_and_usage_on_finish_chunk(deepseek: OpenAIFake) -> None:
    deepseek.reply(FakeReply(text="The answer is 4.", reasoning="two plus two", input_tokens=80, cache_read_tokens=896,
                             output_tokens=20, reasoning_tokens=5))
    events, r = await collect("deepseek-reasoner", "2+2?")
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "two plus two"
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "The answer is 4."
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert all(not isinstance(e, ReasoningDelta) for e in events[first_text:])
    assert r.usage == Usage(input_tokens=80, output_tokens=20, cache_read_tokens=896, reasoning_tokens=5)
    assert r.stop_reason == "end_turn"


async def test_deepseek_reasoning_is_echoed_on_tool_call_turns(deepseek: OpenAIFake) -> None:
    deepseek.reply(FakeReply(reasoning="I need the weather.", tool_calls=[FakeToolCall("call_00_x", "get_weather", {"city": "Rome"})]))
    _, r = await collect("deepseek-reasoner", "weather in Rome?", tools=[{"name": "get_weather"}])
    assert r.stop_reason == "tool_use" and r.tool_calls[0].arguments == {"city": "Rome"}
    history = [Message("user", [TextPart("weather in Rome?")]), r.to_message(),
               Message("user", [ToolResultPart("call_00_x", "sunny")])]
    r2 = await achat("deepseek-reasoner", history, tools=[{"name": "get_weather"}])
    assert r2.text == "You said: weather in Rome?"
    assistant = deepseek.last.json()["messages"][1]
    assert assistant["reasoning_content"] == "I need the weather."
    assert assistant["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city":"Rome"}'}


async def test_deepseek_multi_text_user_turn_is_one_string(deepseek: OpenAIFake) -> None:
    await achat("deepseek-chat", [Message("user", [TextPart("part one"), TextPart("part two")])])
    assert deepseek.last.json()["messages"] == [{"role": "user", "content": "part one\n\npart two"}]


async def test_deepseek_errors(deepseek: OpenAIFake, configure: Any) -> None:
    with pytest.raises(NotFoundError, match="Model Not Exist"):
        await achat("deepseek-nonexistent", "x")
    deepseek.context_window = 50
    with pytest.raises(ContextTooLongError):
        await achat("deepseek-chat", "long " * 100, max_tokens=10)
    deepseek.fail_next(503, {"error": {"message": "Server overloaded", "type": "server_error", "param": None, "code": None}},
                       {"retry-after": "0"})
    deepseek.context_window = 128_000
    assert (await achat("deepseek-chat", "after 503")).text == "You said: after 503"
    n = len(deepseek.requests)
    deepseek.fail_next(402, {"error": {"message": "Insufficient Balance", "type": "unknown_error", "param": None, "code": "invalid_request_error"}})
    with pytest.raises(PermissionDeniedError) as exc:
        await achat("deepseek-chat", "x")
    assert "out of credit" in str(exc.value) and len(deepseek.requests) == n + 1
    configure(deepseek_key="sk-wrongdeepseekkey00001111")
    with pytest.raises(AuthenticationError) as auth:
        await achat("deepseek-chat", "x")
    assert str(auth.value).startswith("DeepSeek rejected the key in deepseek_key: check it at platform.deepseek.com/api_keys")
    assert "sk-wrongdeepseekkey00001111" not in str(auth.value)


async def test_deepseek_has_no_embeddings(deepseek: OpenAIFake) -> None:
    with pytest.raises(BadRequestError, match="DeepSeek offers no embedding models"):
        await aembed("deepseek-chat", ["x"])
    assert deepseek.requests == []


# --- xAI ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xai_server() -> Iterator[OpenAIFake]:
    yield from provider_fake(OpenAIFake, flavour="xai")


@pytest.fixture
def xai(xai_server: OpenAIFake, configure: Any) -> OpenAIFake:
    xai_server.reset()
    configure(**xai_server.settings(), max_retries=2)
    return xai_server


async def test_xai_chat_and_reasoning_content(xai: OpenAIFake) -> None:
    xai.reply(FakeReply(text="Hi!", reasoning="greeting", input_tokens=27, cache_read_tokens=98, output_tokens=9, reasoning_tokens=6))
    r = await achat("grok-3-mini", "hello", max_tokens=64)
    assert r.text == "Hi!" and r.reasoning == "greeting"
    assert r.usage == Usage(input_tokens=27, output_tokens=9, cache_read_tokens=98, reasoning_tokens=6)
    assert xai.last.path == "/v1/chat/completions"
    assert xai.last.headers["Authorization"] == f"Bearer {xai.key}"
    assert xai.last.json()["max_tokens"] == 64


async def test_xai_bad_key_is_http_400_but_authentication_error(xai: OpenAIFake, configure: Any) -> None:
    configure(grok_key="xai-notarealkeynotarealkey1234")
    with pytest.raises(AuthenticationError) as exc:
        await achat("grok-4", "x")
    assert exc.value.status == 400
    assert str(exc.value).startswith("xAI Grok rejected the key in grok_key: check it at console.x.ai")
    assert "xai-notarealkeynotarealkey1234" not in str(exc.value)
    assert len(xai.requests) == 1


async def test_xai_prompt_length_error_is_context_too_long(xai: OpenAIFake) -> None:
    xai.context_window = 20
    with pytest.raises(ContextTooLongError, match="maximum prompt length is 20"):
        await achat("grok-4", "too long " * 20)
    assert len(xai.requests) == 1


# --- Together (oaic.) -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def together_server() -> Iterator[OpenAIFake]:
    yield from provider_fake(OpenAIFake, flavour="together")


@pytest.fixture
def together(together_server: OpenAIFake, configure: Any) -> OpenAIFake:
    together_server.reset()
    configure(**together_server.settings(), max_retries=2)
    return together_server


TOGETHER_MODEL = "oaic.meta-llama/Llama-3.3-70B-Instruct-Turbo"


async def test_together_chat_stream_usage_on_finish_chunk(together: OpenAIFake) -> None:
    together.reply(FakeReply(text="hello from together", input_tokens=12, output_tokens=4))
    events, r = await collect(TOGETHER_MODEL, "hi")
    assert r.text == "hello from together" and r.provider == "oaic"
    assert r.usage == Usage(input_tokens=12, output_tokens=4)
    assert together.last.json()["model"] == "meta-llama/Llama-3.3-70B-Instruct-Turbo"
    assert together.last.path == "/v1/chat/completions"


async def test_together_403_context_too_long_not_retried(together: OpenAIFake) -> None:
    together.context_window = 30
    with pytest.raises(ContextTooLongError) as exc:
        await achat(TOGETHER_MODEL, "a very long prompt " * 10, max_tokens=10)
    assert exc.value.status == 403
    assert len(together.requests) == 1


async def test_together_models_bare_array_merged_with_configured(together: OpenAIFake, configure: Any) -> None:
    configure(openai_compatible_models="my-finetune", openai_compatible_embed_models="BAAI/bge-base-en-v1.5")
    adapter = adapter_for(get_spec("oaic"), load_settings())
    models = await adapter.list_models()
    assert [(m.id, m.embedding) for m in models] == [
        ("oaic.my-finetune", False),
        ("oaic.BAAI/bge-base-en-v1.5", True),
        ("oaic.meta-llama/Llama-3.3-70B-Instruct-Turbo", False),
        ("oaic.Qwen/Qwen2.5-7B-Instruct-Turbo", False),
    ]
    assert models[2].label == "Llama-3.3-70B-Instruct-Turbo"


async def test_oaic_models_fall_back_to_configured_but_bad_key_still_fails(together: OpenAIFake, configure: Any) -> None:
    configure(openai_compatible_models="a-model, b-model")
    together.fail_next(404, {"error": {"message": "Not found", "type": "invalid_request_error", "param": None, "code": None}})
    adapter = adapter_for(get_spec("oaic"), load_settings())
    assert [m.id for m in await adapter.list_models()] == ["oaic.a-model", "oaic.b-model"]
    together.fail_next(503, {"error": {"message": "down"}}, {"retry-after": "0"}, times=3)
    assert [m.id for m in await adapter.list_models()] == ["oaic.a-model", "oaic.b-model"]
    configure(openai_compatible_key="tgp_v1_wrongwrongwrong")
    bad = adapter_for(get_spec("oaic"), load_settings())
    with pytest.raises(AuthenticationError, match="OpenAI Compatible rejected the key in openai_compatible_key"):
        await bad.list_models()
    with pytest.raises(AuthenticationError):
        await bad.verify()


async def test_together_embeddings_float_vectors(together: OpenAIFake) -> None:
    from tests.fakes.openai import embedding_for

    vectors = await aembed("oaic.BAAI/bge-base-en-v1.5", ["alpha", "beta"])
    assert vectors == [embedding_for("alpha"), embedding_for("beta")]
    assert together.last.json() == {"model": "BAAI/bge-base-en-v1.5", "input": ["alpha", "beta"]}


# --- OpenRouter (oaic.) -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openrouter_server() -> Iterator[OpenAIFake]:
    yield from provider_fake(OpenAIFake, flavour="openrouter")


@pytest.fixture
def openrouter(openrouter_server: OpenAIFake, configure: Any) -> OpenAIFake:
    openrouter_server.reset()
    configure(**openrouter_server.settings(), max_retries=0)
    return openrouter_server


async def test_openrouter_stream_with_processing_comments_and_cache_write(openrouter: OpenAIFake) -> None:
    openrouter.reply(FakeReply(text="cached answer", input_tokens=1, cache_read_tokens=2569, cache_write_tokens=79, output_tokens=100))
    events, r = await collect("oaic.anthropic/claude-sonnet-4.5", "hi")
    assert r.text == "cached answer"
    assert r.usage == Usage(input_tokens=1, output_tokens=100, cache_read_tokens=2569, cache_write_tokens=79)
    assert openrouter.last.path == "/api/v1/chat/completions"


async def test_openrouter_verify_checks_the_key_where_models_are_public(openrouter: OpenAIFake, configure: Any) -> None:
    configure(openai_compatible_key="sk-or-v1-wrongwrongwrong0000")
    adapter = adapter_for(get_spec("oaic"), load_settings())
    adapter._openrouter = True  # the fake is not at openrouter.ai
    assert [m.id for m in await adapter.list_models()] == ["oaic.openai/gpt-4o-mini", "oaic.anthropic/claude-sonnet-4.5"]
    with pytest.raises(AuthenticationError):
        await adapter.verify()
    assert openrouter.last.path == "/api/v1/key"
    configure(**openrouter.settings())
    good = adapter_for(get_spec("oaic"), load_settings())
    good._openrouter = True
    assert len(await good.verify()) == 2


async def test_openrouter_in_stream_error_with_numeric_code(openrouter: OpenAIFake) -> None:
    openrouter.stream_error = {"error": {"code": 429, "message": "Provider returned error",
                                         "metadata": {"raw": "upstream is temporarily rate-limited"}}}
    openrouter.reply(FakeReply(text="some text", error_after_events=2))
    with pytest.raises(RateLimitError, match="upstream is temporarily rate-limited"):
        await collect("oaic.openai/gpt-4o-mini", "x")
    assert len(openrouter.requests) == 1


# --- local servers (locv1.) ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_server() -> Iterator[OpenAIFake]:
    yield from provider_fake(OpenAIFake, flavour="local")


@pytest.fixture
def local(local_server: OpenAIFake, configure: Any) -> OpenAIFake:
    local_server.reset()
    local_server.valid_keys = set()
    local_server.reject_stream_options = False
    configure(**local_server.settings(), max_retries=0)
    return local_server


async def test_local_without_key_sends_no_authorization(local: OpenAIFake) -> None:
    r = await achat("locv1.qwen2.5-7b-instruct", "hello local")
    assert r.text == "You said: hello local" and r.provider == "locv1"
    assert "Authorization" not in local.last.headers
    events, r2 = await collect("locv1.qwen2.5-7b-instruct", "stream local")
    assert r2.text == "You said: stream local"
    assert r2.usage == Usage(input_tokens=3, output_tokens=5)
    assert local.last.json()["stream_options"] == {"include_usage": True}


async def test_local_with_key_required(local: OpenAIFake, configure: Any) -> None:
    local.valid_keys = {"local-secret-1234"}
    with pytest.raises(AuthenticationError, match="Local V1 Compatible needs a key: set local_compatible_key"):
        await achat("locv1.qwen2.5-7b-instruct", "x")
    configure(local_compatible_key="local-secret-1234")
    assert (await achat("locv1.qwen2.5-7b-instruct", "x")).text == "You said: x"
    assert local.last.headers["Authorization"] == "Bearer local-secret-1234"
    adapter = adapter_for(get_spec("locv1"), load_settings())
    assert [m.id for m in await adapter.verify()] == ["locv1.qwen2.5-7b-instruct", "locv1.nomic-embed-text-v1.5"]
    configure(local_compatible_key="wrong-local-key")
    with pytest.raises(AuthenticationError, match="Local V1 Compatible rejected the key"):
        await adapter_for(get_spec("locv1"), load_settings()).verify()


async def test_local_server_rejecting_stream_options_is_remembered(local: OpenAIFake) -> None:
    local.reject_stream_options = True
    _, r = await collect("locv1.qwen2.5-7b-instruct", "one")
    assert r.text == "You said: one" and r.usage == Usage()  # no usage without stream_options
    assert [("stream_options" in q.json()) for q in local.requests] == [True, False]
    _, r = await collect("locv1.qwen2.5-7b-instruct", "two")
    assert r.text == "You said: two"
    assert len(local.requests) == 3 and "stream_options" not in local.last.json()


async def test_local_vllm_error_shape_and_models_fallback(local: OpenAIFake, configure: Any) -> None:
    local.context_window = 10
    with pytest.raises(ContextTooLongError):
        await achat("locv1.qwen2.5-7b-instruct", "many words here " * 10)
    configure(local_compatible_models="my-gguf")
    local.fail_next(404, b"404: Not Found", {"Content-Type": "text/plain"})
    adapter = adapter_for(get_spec("locv1"), load_settings())
    assert [m.id for m in await adapter.verify()] == ["locv1.my-gguf"]
    assert [m.id for m in await adapter.list_models()] == [
        "locv1.my-gguf", "locv1.qwen2.5-7b-instruct", "locv1.nomic-embed-text-v1.5"]


async def test_local_unreachable_is_reported(configure: Any) -> None:
    from tests.fakes.base import free_port

    configure(local_compatible_base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=0)
    with pytest.raises(UpstreamUnavailableError, match="cannot reach Local V1 Compatible"):
        await achat("locv1.anything", "x")
    adapter = adapter_for(get_spec("locv1"), load_settings())
    with pytest.raises(UpstreamUnavailableError):
        await adapter.verify()


def test_local_cli_models_and_chat(local: OpenAIFake, cli: Any, configure: Any) -> None:
    configure(local_compatible_models="my-gguf")
    res = cli("models", "--json")
    assert res.code == 0, res.err
    entry = next(p for p in json.loads(res.out) if p["provider"] == "locv1")
    assert entry["models"] == ["locv1.my-gguf", "locv1.qwen2.5-7b-instruct", "locv1.nomic-embed-text-v1.5"]
    res = cli("chat", "-m", "locv1.my-gguf", "hello cli")
    assert res.code == 0 and res.out == "You said: hello cli\n"
