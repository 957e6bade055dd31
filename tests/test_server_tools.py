"""Provider-side tools (`synapse.server_tool(...)`): encoded per protocol, their blocks kept
on the Response (sources, citations), sent back to the same provider, counted and priced."""

from __future__ import annotations

import pytest

import synapse
from synapse.errors import BadRequestError, SynapseError
from synapse.types import ResponseDone, ServerToolPart, Source, TextDelta, Usage
from tests.fakes.base import FakeReply

SOURCES = [("https://example.org/paris", "Paris weather"), ("https://example.com/meteo", "Météo")]


def _search_reply(text: str = "It is sunny in Paris.") -> FakeReply:
    return FakeReply(text=text, search_query="weather in Paris", sources=SOURCES)


# --- the public entry point ---------------------------------------------------------------------


def test_server_tool_names_and_options():
    tool = synapse.server_tool("web_search", max_uses=3, allowed_domains=["example.org"])
    assert tool.name == "web_search" and tool.config == {"max_uses": 3, "allowed_domains": ["example.org"]}
    with pytest.raises(SynapseError, match="unknown provider-side tool 'web_browse': use one of web_search, web_fetch"):
        synapse.server_tool("web_browse")


# --- Anthropic ----------------------------------------------------------------------------------


async def test_anthropic_web_search_blocks_citations_and_usage(anthropic):
    anthropic.reply(_search_reply())
    r = await synapse.achat("claude-sonnet-4-5", "Weather in Paris?",
                            tools=[synapse.server_tool("web_search", max_uses=2)])
    sent = anthropic.last.json()
    assert sent["tools"] == [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}]
    assert "tool_choice" not in sent and "anthropic-beta" not in anthropic.last.headers
    assert r.text == "It is sunny in Paris."
    assert [(p.name, p.kind, p.input) for p in r.server_tools] == [
        ("web_search", "call", {"query": "weather in Paris"}),
        ("web_search", "result", {}),
    ]
    assert r.server_tools[1].sources == [Source(u, t) for u, t in SOURCES]
    assert r.server_tools[0].id == r.server_tools[1].id
    assert r.citations == [Source(u, t) for u, t in SOURCES]
    assert r.usage.server_tool_use == {"web_search": 1}
    assert r.as_dict()["usage"]["server_tool_use"] == {"web_search": 1}
    assert r.as_dict()["citations"][0] == {"url": SOURCES[0][0], "title": SOURCES[0][1]}


async def test_anthropic_stream_gives_the_same_response(anthropic):
    anthropic.reply(_search_reply())
    tools = [synapse.server_tool("web_search")]
    events = [e async for e in synapse.astream("claude-sonnet-4-5", "Weather?", tools=tools)]
    done = events[-1]
    assert isinstance(done, ResponseDone)
    anthropic.reply(_search_reply())
    whole = await synapse.achat("claude-sonnet-4-5", "Weather?", tools=tools)
    streamed = done.response
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == streamed.text == whole.text
    assert [(p.name, p.kind, p.input, p.sources) for p in streamed.server_tools] == [
        (p.name, p.kind, p.input, p.sources) for p in whole.server_tools
    ]
    assert streamed.citations == whole.citations
    assert streamed.usage.server_tool_use == whole.usage.server_tool_use == {"web_search": 1}


async def test_anthropic_blocks_go_back_to_anthropic_next_turn(anthropic):
    anthropic.reply(_search_reply())
    tools = [synapse.server_tool("web_search")]
    first = await synapse.achat("claude-sonnet-4-5", "Weather?", tools=tools)
    history = [{"role": "user", "content": "Weather?"}, first.to_message(), {"role": "user", "content": "And tomorrow?"}]
    await synapse.achat("claude-sonnet-4-5", history, tools=tools)
    content = anthropic.last.json()["messages"][1]["content"]
    assert [b["type"] for b in content] == ["server_tool_use", "web_search_tool_result", "text"]
    assert content[1]["content"][0]["encrypted_content"]  # the opaque result is echoed exactly
    # Without server tools in the next request, only the text goes back (the fake rejects
    # result blocks that do not follow their server_tool_use, so order matters too).
    await synapse.achat("claude-sonnet-4-5", history)
    assert [b["type"] for b in anthropic.last.json()["messages"][1]["content"]] == ["text"]


async def test_anthropic_code_execution_and_web_fetch_send_their_beta(anthropic):
    anthropic.reply(FakeReply(text="The answer is 4.", code="python -c 'print(2+2)'", code_output="4\n"))
    r = await synapse.achat("claude-sonnet-4-5", "2+2?",
                            tools=[synapse.server_tool("code_execution"), synapse.server_tool("web_fetch")])
    assert anthropic.last.headers["anthropic-beta"] == "code-execution-2025-08-25,web-fetch-2025-09-10"
    call, result = r.server_tools
    assert (call.name, call.kind, call.input) == ("code_execution", "call", {"command": "python -c 'print(2+2)'"})
    assert (result.name, result.kind, result.text) == ("code_execution", "result", "4\n")


async def test_unsupported_server_tool_is_refused_before_any_request(openai):
    with pytest.raises(BadRequestError) as exc:
        await synapse.achat("gpt-4.1", "x", tools=[synapse.server_tool("code_execution")])
    assert str(exc.value) == (
        "OpenAI cannot run code_execution on its side (it offers web_search): "
        "drop that server_tool or pick another provider's model"
    )
    with pytest.raises(BadRequestError, match=r"^Ollama \(Local\) cannot run web_search on its side \(it runs no tools itself\)"):
        await synapse.achat("ollama.llama3.2", "x", tools=[synapse.server_tool("web_search")])
    assert openai.requests == []


def test_usage_prices_web_searches():
    from synapse.usage.prices import price

    base = price("anthropic", "claude-sonnet-4-5", Usage(1000, 100))
    searched = price("anthropic", "claude-sonnet-4-5", Usage(1000, 100, server_tool_use={"web_search": 2}))
    assert base is not None and searched is not None
    # genai-prices: $10 per 1,000 searches for Claude.
    assert searched.cost_usd - base.cost_usd == pytest.approx(0.02)
    fetched = price("anthropic", "claude-sonnet-4-5", Usage(1000, 100, server_tool_use={"web_fetch": 3}))
    assert fetched is not None and fetched.cost_usd == pytest.approx(base.cost_usd)  # web fetch costs tokens only


# --- Gemini -------------------------------------------------------------------------------------

GEMINI_KEY = "AIzaSyFakeGeminiKey0123456789abcd"


@pytest.fixture(scope="module")
def gemini_fake():
    from tests.fakes.gemini import GeminiFake

    server = GeminiFake(valid_keys={GEMINI_KEY}).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gemini(gemini_fake, configure):
    gemini_fake.reset()
    configure(gemini_key=GEMINI_KEY, gemini_base_url=gemini_fake.url)
    return gemini_fake


def _redirect(url: str) -> str:
    import base64

    return "https://vertexaisearch.cloud.google.com/grounding-api-redirect/" + base64.urlsafe_b64encode(
        url.encode()).decode().rstrip("=")


@pytest.mark.parametrize("stream", [False, True])
async def test_gemini_google_search_grounding(gemini, stream):
    gemini.reply(_search_reply())
    tools = [synapse.server_tool("web_search")]
    if stream:
        events = [e async for e in synapse.astream("gemini-2.5-flash", "Weather?", tools=tools)]
        r = events[-1].response
    else:
        r = await synapse.achat("gemini-2.5-flash", "Weather?", tools=tools)
    assert gemini.last.json()["tools"] == [{"google_search": {}}]
    expected = [Source(_redirect(u), u.split("/")[2]) for u, _ in SOURCES]
    assert r.text == "It is sunny in Paris."
    assert r.citations == expected
    (part,) = r.server_tools
    assert (part.name, part.kind, part.provider, part.input) == ("web_search", "result", "gemini", {"queries": ["weather in Paris"]})
    assert part.sources == expected
    assert r.usage.server_tool_use == {"web_search": 1}  # one grounded prompt on Gemini 2.5


async def test_gemini_code_execution_round_trip(gemini):
    gemini.reply(FakeReply(text="It prints 4.", code="print(2+2)", code_output="4\n"))
    tools = [synapse.server_tool("code_execution")]
    r = await synapse.achat("gemini-2.5-flash", "Run 2+2", tools=tools)
    assert gemini.last.json()["tools"] == [{"code_execution": {}}]
    assert [(p.kind, p.input, p.text) for p in r.server_tools] == [
        ("call", {"code": "print(2+2)", "language": "PYTHON"}, ""),
        ("result", {}, "4\n"),
    ]
    assert r.usage.server_tool_use == {"code_execution": 1}
    history = [{"role": "user", "content": "Run 2+2"}, r.to_message(), {"role": "user", "content": "Again"}]
    await synapse.achat("gemini-2.5-flash", history, tools=tools)
    parts = gemini.last.json()["contents"][1]["parts"]
    assert parts == [
        {"executableCode": {"language": "PYTHON", "code": "print(2+2)"}},
        {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "4\n"}},
        {"text": "It prints 4."},
    ]


async def test_gemini_url_context_is_web_fetch(gemini):
    await synapse.achat("gemini-2.5-flash", "Read https://example.org", tools=[synapse.server_tool("web_fetch")])
    assert gemini.last.json()["tools"] == [{"url_context": {}}]


# --- content Synapse does not understand -----------------------------------------------------------


async def _call(model, prompt, stream):
    if stream:
        async for _ in synapse.astream(model, prompt):
            pass
    else:
        await synapse.achat(model, prompt)


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_reply_of_unknown_blocks_is_an_error(anthropic, stream):
    from synapse.errors import UpstreamUnavailableError

    anthropic.reply(FakeReply(raw_content=[{"type": "container_upload", "file_id": "file_1"}]))
    with pytest.raises(UpstreamUnavailableError, match=r"does not understand \(container_upload blocks\)"):
        await _call("claude-sonnet-4-5", "x", stream)


@pytest.mark.parametrize("stream", [False, True])
async def test_gemini_reply_of_unknown_parts_is_an_error(gemini, stream):
    from synapse.errors import UpstreamUnavailableError
    from tests.fakes.gemini import GeminiReply

    gemini.reply(GeminiReply(text="", raw_parts=[{"inlineData": {"mimeType": "image/png", "data": "iVBORw=="}}]))
    with pytest.raises(UpstreamUnavailableError, match=r"does not understand \(inlineData parts\)"):
        await _call("gemini-2.5-flash", "draw", stream)
