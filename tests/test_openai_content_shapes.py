"""Chat Completions content shapes beyond a plain string: Mistral's list-shaped content
(thinking + text parts) in replies and deltas, content Synapse does not understand
(an error that names it, never an empty reply), `error` objects inside 200 streams,
Groq's `x_groq.usage`, OpenAI's search models (`web_search_options`, url_citation)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import synapse
from synapse.errors import (
    AuthenticationError,
    BadRequestError,
    ContextTooLongError,
    OverloadedError,
    RateLimitError,
    UpstreamUnavailableError,
)
from synapse.types import ReasoningDelta, ResponseDone, Source, TextDelta, Usage
from tests.fakes.base import FakeReply
from tests.fakes.openai import OpenAIFake


def _fake(flavour: str) -> Iterator[OpenAIFake]:
    server = OpenAIFake(flavour=flavour).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mistral_server() -> Iterator[OpenAIFake]:
    yield from _fake("mistral")


@pytest.fixture(scope="module")
def groq_server() -> Iterator[OpenAIFake]:
    yield from _fake("groq")


@pytest.fixture(scope="module")
def openrouter_server() -> Iterator[OpenAIFake]:
    yield from _fake("openrouter")


def _use(server: OpenAIFake, configure: Any) -> OpenAIFake:
    server.reset()
    configure(**server.settings(), max_retries=0)
    return server


@pytest.fixture
def mistral(mistral_server: OpenAIFake, configure: Any) -> OpenAIFake:
    return _use(mistral_server, configure)


@pytest.fixture
def groq(groq_server: OpenAIFake, configure: Any) -> OpenAIFake:
    return _use(groq_server, configure)


@pytest.fixture
def openrouter(openrouter_server: OpenAIFake, configure: Any) -> OpenAIFake:
    return _use(openrouter_server, configure)


MAGISTRAL = "oaic.magistral-medium-latest"


# --- list-shaped content ----------------------------------------------------------------------------


async def test_mistral_thinking_and_text_parts_in_a_reply(mistral: OpenAIFake) -> None:
    mistral.reply(FakeReply(text="Paris.", reasoning="The capital of France is Paris."))
    r = await synapse.achat(MAGISTRAL, "Capital of France?")
    assert isinstance(mistral.last.json()["messages"][0]["content"], str)
    assert (r.text, r.reasoning, r.stop_reason) == ("Paris.", "The capital of France is Paris.", "end_turn")


async def test_mistral_list_shaped_stream_deltas(mistral: OpenAIFake) -> None:
    mistral.reply(FakeReply(text="Paris is the capital.", reasoning="Think about France first."))
    events = [e async for e in synapse.astream(MAGISTRAL, "Capital?")]
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert reasoning == done.response.reasoning == "Think about France first."
    assert text == done.response.text == "Paris is the capital."
    # Reasoning streams before the answer, as magistral sends it.
    kinds = [type(e).__name__ for e in events if isinstance(e, (ReasoningDelta, TextDelta))]
    assert kinds == sorted(kinds, key=lambda k: k != "ReasoningDelta")
    assert done.response.usage.output_tokens > 0  # usage on the finish chunk


async def test_text_parts_and_references_are_read(mistral: OpenAIFake) -> None:
    mistral.reply(FakeReply(raw_content=[{"type": "text", "text": "See "}, {"type": "reference", "reference_ids": [1]},
                                         {"type": "text", "text": "the docs."}]))
    r = await synapse.achat("oaic.mistral-large-latest", "Where?")
    assert r.text == "See the docs."


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("content", "named"),
    [
        ([{"type": "audio", "data": "UklGRg=="}], "'audio' part"),
        ({"weird": True}, "content of type dict"),
        ([{"no_type": 1}], "a part without a type"),
    ],
)
async def test_content_synapse_does_not_understand_is_an_error(mistral: OpenAIFake, stream: bool, content: Any,
                                                               named: str) -> None:
    mistral.reply(FakeReply(text="", raw_content=content))
    with pytest.raises(UpstreamUnavailableError) as exc:
        if stream:
            async for _ in synapse.astream("oaic.mistral-large-latest", "hi"):
                pass
        else:
            await synapse.achat("oaic.mistral-large-latest", "hi")
    assert "the reply holds only content Synapse does not understand" in str(exc.value)
    assert named in str(exc.value)


def test_cli_reports_it_in_one_line(mistral: OpenAIFake, cli: Any) -> None:
    mistral.reply(FakeReply(text="", raw_content=[{"type": "audio", "data": "x"}]))
    res = cli("chat", "-m", "oaic.mistral-large-latest", "--no-stream", "hi")
    assert res.code != 0 and res.out == ""
    assert "Synapse does not understand ('audio' part)" in res.err and "Traceback" not in res.err


async def test_unknown_parts_beside_text_do_not_hide_the_text(mistral: OpenAIFake) -> None:
    mistral.reply(FakeReply(raw_content=[{"type": "text", "text": "Hi."}, {"type": "audio", "data": "x"}]))
    assert (await synapse.achat("oaic.mistral-large-latest", "hi")).text == "Hi."


# --- usage and errors inside 200 streams ----------------------------------------------------------


async def test_groq_streamed_usage_from_x_groq(groq: OpenAIFake) -> None:
    groq.reply(FakeReply(text="Fast answer.", input_tokens=12, output_tokens=3))
    events = [e async for e in synapse.astream("oaic.llama-3.3-70b-versatile", "hi")]
    assert events[-1].response.usage == Usage(input_tokens=12, output_tokens=3)
    groq.reply(FakeReply(text="Fast answer.", input_tokens=12, output_tokens=3))
    assert (await synapse.achat("oaic.llama-3.3-70b-versatile", "hi")).usage == Usage(input_tokens=12, output_tokens=3)


@pytest.mark.parametrize(
    ("error", "kind", "words"),
    [
        ({"code": 429, "message": "Rate limit exceeded"}, RateLimitError, "rate limit"),
        ({"code": 502, "message": "Upstream provider error"}, UpstreamUnavailableError, "server error"),
        ({"code": 401, "message": "User not found."}, AuthenticationError, "rejected the key"),
        ({"code": 400, "message": "Provider returned error"}, BadRequestError, "rejected the request"),
        ({"code": 400, "message": "Token limit reached"}, BadRequestError, "raise max_tokens"),
        ({"code": "context_length_exceeded", "message": "This endpoint's maximum context length is 8192 tokens"},
         ContextTooLongError, "too long"),
        ({"type": "overloaded_error", "message": "Overloaded"}, OverloadedError, "overloaded"),
    ],
)
async def test_error_object_in_a_200_stream_is_typed(openrouter: OpenAIFake, error: dict[str, Any], kind: type,
                                                     words: str) -> None:
    openrouter.stream_error = {"error": error}
    openrouter.reply(FakeReply(text="one two three four", error_after_events=2))
    seen: list[str] = []
    with pytest.raises(kind) as exc:
        async for e in synapse.astream("oaic.openai/gpt-4o-mini", "hi"):
            if isinstance(e, TextDelta):
                seen.append(e.text)
    assert seen  # the error came after the reply started
    assert words in str(exc.value).lower() and "(mid-stream)" in str(exc.value)
    assert exc.value.status is None  # there was no such HTTP status: the stream was a 200


# --- OpenAI's search models -----------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_search_model_web_search_options_and_citations(openai: OpenAIFake, stream: bool) -> None:
    reply = FakeReply(text="Sunny in Paris.", search_query="paris weather",
                      sources=[("https://example.org/w", "Weather")])
    openai.reply(reply)
    tools = [synapse.server_tool("web_search", search_context_size="low")]
    if stream:
        r = [e async for e in synapse.astream("gpt-4o-search-preview", "Weather?", tools=tools)][-1].response
    else:
        r = await synapse.achat("gpt-4o-search-preview", "Weather?", tools=tools)
    assert openai.last.json()["web_search_options"] == {"search_context_size": "low"}
    assert "tools" not in openai.last.json()
    assert r.citations == [Source("https://example.org/w", "Weather")]
    assert r.usage.server_tool_use == {"web_search": 1}


async def test_openai_non_search_model_rejects_web_search(openai: OpenAIFake) -> None:
    with pytest.raises(BadRequestError, match="Web search options not supported with this model"):
        await synapse.achat("gpt-4.1", "x", tools=[synapse.server_tool("web_search")])
