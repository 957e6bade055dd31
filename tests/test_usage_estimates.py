"""Calls cut short before the provider reported their usage: the ledger row carries an
estimate of what is missing (input from the request, output from what was streamed),
marked `estimated`, and keeps every number the provider did report. Against the loopback
fakes, for every streaming protocol; a completed call is never marked estimated."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa

import synapse
from synapse import settings as settings_mod
from synapse import storage
from synapse.errors import ConnectionFailedError, ProviderError, RateLimitError, UpstreamUnavailableError
from synapse.types import ReasoningDelta, ResponseDone, TextDelta, ToolCallDelta
from synapse.usage.ledger import flush
from tests.fakes.base import FakeReply, FakeToolCall, free_port

pytestmark = pytest.mark.database

#: 400 characters: the estimate counts 4 a token, so 100 input tokens.
PROMPT = "Tell me a long story please. " + "x" * 371
PROMPT_TOKENS = 100
LONG = "one two three four five six seven eight nine ten eleven twelve " * 4

MODELS = {
    "openai": "gpt-4o-mini",
    "ollama": "llama3.2",
    "bedrock": "bedrock.anthropic.claude-3-haiku-20240307-v1:0",
    "anthropic": "claude-sonnet-4-5",
    "gemini": "gemini-2.5-flash",
}


def rows() -> list[dict[str, Any]]:
    from synapse.storage.tables import usage_calls

    assert flush(30)
    eng = storage.engine(settings=settings_mod.load())
    with eng.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(usage_calls).order_by(usage_calls.c.id)).mappings()]


def tokens(chars: int) -> int:
    return -(-chars // 4)


async def stop_after(model: str, texts: int, **call: Any) -> str:
    """Stream `PROMPT` and leave after `texts` text deltas, as a page's Stop does; the text read."""
    got = ""
    seen = 0
    agen = synapse.astream(model, PROMPT, **call)
    async for event in agen:
        assert not isinstance(event, ResponseDone), "the reply ended before the test stopped it"
        if isinstance(event, TextDelta):
            got += event.text
            seen += 1
            if seen == texts:
                break
    await agen.aclose()  # type: ignore[attr-defined]
    return got


@pytest.mark.parametrize("provider", ["openai", "ollama", "bedrock"])
async def test_a_stream_stopped_midway_estimates_input_and_output_where_the_provider_reports_at_the_end(
        provider: str, request: pytest.FixtureRequest) -> None:
    fake = request.getfixturevalue(provider)
    fake.reply(FakeReply(text=LONG, input_tokens=5000, output_tokens=900))  # what the end would have said
    got = await stop_after(MODELS[provider], 3)
    [row] = rows()
    assert (row["outcome"], row["stream"], row["estimated"]) == ("cancelled", True, True)
    assert row["input_tokens"] == PROMPT_TOKENS  # from the request: the provider never said
    assert row["output_tokens"] == tokens(len(got)) > 0  # from the three pieces streamed
    assert (row["cache_read_tokens"], row["cache_write_tokens"]) == (0, 0)
    if provider == "ollama":
        assert row["cost_usd"] == 0.0  # local: tokens counted, nothing billed
    else:
        assert row["cost_usd"] is not None and row["cost_usd"] > 0  # priced as usual


async def test_anthropic_keeps_the_input_it_reported_and_estimates_the_output(anthropic: Any) -> None:
    anthropic.reply(FakeReply(text=LONG, input_tokens=1234, output_tokens=400))
    got = await stop_after(MODELS["anthropic"], 4)
    [row] = rows()
    assert (row["outcome"], row["estimated"]) == ("cancelled", True)
    assert row["input_tokens"] == 1234  # message_start's count, never replaced
    assert row["output_tokens"] == tokens(len(got))  # not message_start's placeholder of 1


async def test_gemini_reports_as_it_goes_so_nothing_is_estimated(gemini: Any) -> None:
    gemini.reply(FakeReply(text=LONG, input_tokens=321))
    got = await stop_after(MODELS["gemini"], 1)
    [row] = rows()
    assert (row["outcome"], row["estimated"]) == ("cancelled", False)
    assert row["input_tokens"] == 321  # promptTokenCount of the chunks already read
    assert row["output_tokens"] == len(got) // 4  # the fake's running candidatesTokenCount, as reported


async def test_tool_call_arguments_streamed_so_far_count_as_output(openai: Any) -> None:
    call = FakeToolCall("call_1", "lookup_weather", {"city": "Reykjavik", "units": "metric", "days": 7})
    openai.reply(FakeReply(tool_calls=[call]))
    seen = ""
    name = ""
    agen = synapse.astream(MODELS["openai"], PROMPT)
    async for event in agen:
        if isinstance(event, ToolCallDelta):
            name += event.name or ""
            seen += event.arguments
            if len(seen) >= 12:
                break
    await agen.aclose()  # type: ignore[attr-defined]
    [row] = rows()
    assert row["estimated"] and row["input_tokens"] == PROMPT_TOKENS
    assert row["output_tokens"] == tokens(len(name) + len(seen))


async def test_streamed_reasoning_counts_as_output_and_as_reasoning(ollama: Any) -> None:
    thinking = "Let me think about this carefully, step by step, before answering. " * 3
    ollama.reply(FakeReply(text=LONG, reasoning=thinking))
    reasoning = text = ""
    agen = synapse.astream(MODELS["ollama"], PROMPT)
    async for event in agen:
        if isinstance(event, ReasoningDelta):
            reasoning += event.text
        elif isinstance(event, TextDelta):
            text += event.text
            break
    await agen.aclose()  # type: ignore[attr-defined]
    [row] = rows()
    assert row["estimated"] and reasoning
    assert row["output_tokens"] == tokens(len(reasoning) + len(text))
    assert row["reasoning_tokens"] == tokens(len(reasoning))


async def text_until(error: type[Exception], model: str) -> str:
    """Stream `PROMPT` until the call raises `error`; the text that came before."""
    got = ""
    with pytest.raises(error):
        async for event in synapse.astream(model, PROMPT):
            if isinstance(event, TextDelta):
                got += event.text
    return got


async def test_a_stream_that_breaks_midway_is_estimated(openai: Any) -> None:
    openai.reply(FakeReply(text=LONG, break_after_events=5))
    got = await text_until(UpstreamUnavailableError, MODELS["openai"])
    [row] = rows()
    assert (row["outcome"], row["estimated"]) == ("unavailable", True)
    assert (row["input_tokens"], row["output_tokens"]) == (PROMPT_TOKENS, tokens(len(got)))


async def test_an_error_event_midway_is_estimated(anthropic: Any) -> None:
    anthropic.reply(FakeReply(text=LONG, input_tokens=700, error_after_events=6))
    got = await text_until(ProviderError, MODELS["anthropic"])
    [row] = rows()
    assert row["estimated"] and got
    assert (row["input_tokens"], row["output_tokens"]) == (700, tokens(len(got)))


async def test_an_achat_cancelled_while_the_provider_works_estimates_its_input(anthropic: Any) -> None:
    anthropic.hang_next(5)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(synapse.achat(MODELS["anthropic"], PROMPT), 0.3)
    [row] = rows()
    assert (row["outcome"], row["stream"], row["estimated"]) == ("cancelled", False, True)
    assert (row["input_tokens"], row["output_tokens"]) == (PROMPT_TOKENS, 0)  # no answer came: no output
    assert row["cost_usd"] is not None and row["cost_usd"] > 0


async def test_an_achat_that_timed_out_estimates_its_input(openai: Any, configure: Any) -> None:
    configure(**openai.settings(), request_timeout=0.3, max_retries=0)
    openai.hang_next(5)
    with pytest.raises(ProviderError) as info:
        await synapse.achat(MODELS["openai"], PROMPT)
    assert info.value.kind == "timeout"
    [row] = rows()
    assert (row["outcome"], row["estimated"], row["input_tokens"]) == ("timeout", True, PROMPT_TOKENS)


async def test_a_provider_that_refused_the_call_gets_no_estimate(openai: Any, configure: Any) -> None:
    configure(**openai.settings(), max_retries=0)
    openai.fail_next(429, {"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}})
    with pytest.raises(RateLimitError):
        async for _ in synapse.astream(MODELS["openai"], PROMPT):
            pass
    openai.fail_next(429, {"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}})
    with pytest.raises(RateLimitError):
        await synapse.achat(MODELS["openai"], PROMPT)
    assert [(r["outcome"], r["estimated"], r["input_tokens"], r["cost_usd"]) for r in rows()] == \
        [("rate_limit", False, 0, 0.0)] * 2


async def test_a_provider_that_cannot_be_reached_gets_no_estimate(openai: Any, configure: Any) -> None:
    configure(openai_base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=0)
    with pytest.raises(ConnectionFailedError):
        await synapse.achat(MODELS["openai"], PROMPT)
    with pytest.raises(ConnectionFailedError):
        async for _ in synapse.astream(MODELS["openai"], PROMPT):
            pass
    assert [(r["estimated"], r["input_tokens"]) for r in rows()] == [(False, 0)] * 2


@pytest.mark.parametrize("provider", ["openai", "ollama", "bedrock", "anthropic", "gemini"])
async def test_completed_calls_are_never_estimated(provider: str, request: pytest.FixtureRequest) -> None:
    fake = request.getfixturevalue(provider)
    fake.reply(FakeReply(text="short answer", input_tokens=50, output_tokens=7),
               FakeReply(text="short answer", input_tokens=50, output_tokens=7))
    events = [e async for e in synapse.astream(MODELS[provider], PROMPT)]
    assert isinstance(events[-1], ResponseDone)
    await synapse.achat(MODELS[provider], PROMPT)
    got = rows()
    assert [(r["outcome"], r["estimated"]) for r in got] == [("ok", False)] * 2
    assert [(r["input_tokens"], r["output_tokens"]) for r in got] == [(50, 7)] * 2  # as reported


async def test_a_stream_left_at_its_final_event_is_complete_not_estimated(openai: Any) -> None:
    openai.reply(FakeReply(text="short answer", input_tokens=50, output_tokens=7))
    agen = synapse.astream(MODELS["openai"], PROMPT)
    async for event in agen:
        if isinstance(event, ResponseDone):
            break
    await agen.aclose()  # type: ignore[attr-defined]
    [row] = rows()
    assert (row["outcome"], row["estimated"], row["input_tokens"], row["output_tokens"]) == ("ok", False, 50, 7)


# --- the relay readers' count of what they passed on ------------------------------------------------


def sse(obj: dict[str, Any]) -> bytes:
    import json

    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def test_a_long_relayed_stream_is_counted_from_its_sample_scaled_to_the_whole() -> None:
    from synapse.providers import adapter_for
    from synapse.providers.catalog import get
    from synapse.providers.relay import SAMPLE_BYTES, OpenAIStreamReader

    reader = OpenAIStreamReader()
    event = sse({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "abcd"}}]})
    n = 3 * SAMPLE_BYTES // len(event)  # three times what the relay keeps
    passed = [reader.feed(event) for _ in range(n)]
    assert passed == [event] * n  # every byte passed on, unchanged
    sample = passed[: SAMPLE_BYTES // len(event) + 1]  # what the relay keeps (client._relay_chunks)
    adapter = adapter_for(get("openai"), {"openai_key": "sk-test"})
    assert reader.streamed(adapter, sample, received=n * len(event)) == (4 * n, 0)


def test_the_anthropic_reader_reports_no_output_until_message_delta() -> None:
    from synapse.providers.relay import AnthropicStreamReader

    reader = AnthropicStreamReader()
    start = {"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 321, "output_tokens": 1}}}
    reader.feed(sse(start))
    assert (reader.usage_so_far().input_tokens, reader.usage_so_far().output_tokens) == (321, 0)  # 1 is a placeholder
    assert reader.usage().output_tokens == 1  # what a completed stream's row would read, as before
    reader.feed(sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 42}}))
    assert reader.usage_so_far().output_tokens == 42  # reported: kept


def test_what_counts_as_having_reached_the_provider() -> None:
    """A timeout while connecting reached nothing; one while waiting for the answer did."""
    import aiohttp

    from synapse.client import _reached
    from synapse.errors import ProviderTimeoutError

    def timeout_from(cause: BaseException) -> ProviderTimeoutError:
        try:
            try:
                raise cause
            except BaseException:
                raise ProviderTimeoutError("did not answer", provider="openai") from None  # as transport raises it
        except ProviderTimeoutError as err:
            return err

    assert not _reached(timeout_from(aiohttp.ConnectionTimeoutError("connect")), started=False)
    assert _reached(timeout_from(aiohttp.SocketTimeoutError("read")), started=False)
    assert _reached(asyncio.CancelledError(), started=False)
    assert not _reached(ConnectionFailedError("refused", provider="openai"), started=False)
    assert not _reached(RateLimitError("slow down", provider="openai"), started=False)
    assert _reached(UpstreamUnavailableError("broke", provider="openai"), started=True)
