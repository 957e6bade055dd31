"""Every provider call lands in the ledger, costed from the usage the provider reported;
cost limits refuse the next call once the recorded spend would pass them."""

from __future__ import annotations

import json
from typing import Any

import pytest

import synapse
from synapse.client import CallContext
from synapse.errors import AuthenticationError, CostLimitError
from synapse.types import ResponseDone, Usage
from synapse.usage import flush
from synapse.usage.prices import price
from tests.fakes.anthropic import AnthropicFake
from tests.fakes.base import FakeReply
from tests.fakes.openai import OpenAIFake
from tests.test_usage_ledger import rows

pytestmark = pytest.mark.database

CLAUDE = "claude-sonnet-4-5"


async def test_a_chat_call_is_recorded_with_its_context(anthropic: AnthropicFake) -> None:
    anthropic.reply(FakeReply(text="Four.", input_tokens=900, output_tokens=50, cache_read_tokens=4000,
                              cache_write_tokens=600))
    ctx = CallContext(agent="maths", session="sess-42")
    r = await synapse.achat(CLAUDE, "What is 2+2?", context=ctx)
    assert r.usage == Usage(900, 50, 4000, 600, 0)
    [row] = rows()
    assert (row["provider"], row["model"], row["upstream_model"], row["agent"], row["session"]) == (
        "anthropic", CLAUDE, CLAUDE, "maths", "sess-42")
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"], row["cache_write_tokens"]) == (
        900, 50, 4000, 600)
    # Sonnet 4.5: $3 in, $15 out, $0.30 read, $3.75 write per MTok
    assert row["cost_usd"] == pytest.approx((900 * 3 + 50 * 15 + 4000 * 0.3 + 600 * 3.75) / 1e6)
    assert row["savings_usd"] == pytest.approx((4000 * (3 - 0.3) - 600 * (3.75 - 3)) / 1e6)
    assert row["stream"] is False and row["outcome"] == "ok" and row["latency_ms"] > 0


async def test_streamed_openai_cost_comes_from_the_streamed_usage(openai: OpenAIFake) -> None:
    openai.reply(FakeReply(text="Streaming reply.", input_tokens=1000, output_tokens=300, cache_read_tokens=3000,
                           reasoning_tokens=120))
    done = None
    async for ev in synapse.astream("gpt-5", "Tell me something."):
        if isinstance(ev, ResponseDone):
            done = ev.response
    assert openai.last.json()["stream_options"] == {"include_usage": True}
    assert done is not None
    assert done.usage == Usage(input_tokens=1000, output_tokens=300, cache_read_tokens=3000, reasoning_tokens=120)
    [row] = rows()
    assert row["stream"] is True and row["ttft_ms"] is not None
    assert (row["input_tokens"], row["cache_read_tokens"], row["reasoning_tokens"]) == (1000, 3000, 120)
    # gpt-5: $1.25 in, $10 out, $0.125 cached per MTok
    assert row["cost_usd"] == pytest.approx((1000 * 1.25 + 300 * 10 + 3000 * 0.125) / 1e6)
    assert row["savings_usd"] == pytest.approx(3000 * (1.25 - 0.125) / 1e6)


async def test_errors_are_recorded_with_their_kind(anthropic: AnthropicFake, configure: Any) -> None:
    configure(anthropic_key="sk-ant-api03-wrong-key-000000000000")
    with pytest.raises(AuthenticationError):
        await synapse.achat(CLAUDE, "hi")
    anthropic.reply(FakeReply(text="a long answer " * 20, break_after_events=4))
    configure(anthropic_key=AnthropicFake.KEY)
    with pytest.raises(synapse.UpstreamUnavailableError, match="mid-stream"):
        async for _ in synapse.astream(CLAUDE, "hi"):
            pass
    auth, drop = rows()
    assert auth["outcome"] == "authentication" and auth["cost_usd"] == 0.0 and auth["input_tokens"] == 0
    assert drop["outcome"] == "unavailable" and drop["stream"] is True


def test_cli_chat_is_recorded(anthropic: AnthropicFake, cli: Any) -> None:
    out = cli("chat", "-m", CLAUDE, "--json", "hello from the CLI")
    assert out.code == 0, out.err
    usage = json.loads(out.out)["usage"]
    [row] = rows()
    assert row["stream"] is True  # the CLI streams by default
    assert row["input_tokens"] == usage["input_tokens"] and row["output_tokens"] == usage["output_tokens"]
    assert row["cost_usd"] == pytest.approx(price("anthropic", CLAUDE, Usage(**usage)).cost_usd)  # type: ignore[union-attr]


def test_a_cli_subprocess_records_its_call_before_it_exits(anthropic: AnthropicFake, run_synapse: Any) -> None:
    result = run_synapse("chat", "-m", CLAUDE, "--no-stream", "hello from a subprocess")
    assert result.code == 0, result.err
    [row] = rows()
    assert row["model"] == CLAUDE and row["stream"] is False and row["output_tokens"] > 0


# --- cost limits ----------------------------------------------------------------------------------------


async def test_a_session_is_refused_once_its_recorded_cost_passes_the_limit(anthropic: AnthropicFake) -> None:
    # 10,000 in + 1,000 out on Sonnet 4.5 = $0.045 a call
    anthropic.reply(FakeReply(text="ok", input_tokens=10_000, output_tokens=1000),
                    FakeReply(text="ok", input_tokens=10_000, output_tokens=1000))
    ctx = CallContext(session="budget-1", max_total_cost_usd=0.08)
    await synapse.achat(CLAUDE, "first", context=ctx)
    await synapse.achat(CLAUDE, "second", context=ctx)  # spend $0.045 < $0.08: allowed
    with pytest.raises(CostLimitError) as info:
        await synapse.achat(CLAUDE, "third", context=ctx)
    assert len(anthropic.requests) == 2  # refused before any request
    msg = str(info.value)
    assert "session 'budget-1'" in msg and "$0.0900" in msg and "$0.0800" in msg and "max_total_cost_usd" in msg
    # a new CallContext for the same session still sees the recorded spend
    with pytest.raises(CostLimitError):
        async for _ in synapse.astream(CLAUDE, "again", context=CallContext(session="budget-1", max_total_cost_usd=0.08)):
            pass
    assert len(anthropic.requests) == 2


async def test_an_agent_run_without_a_session_is_limited_by_its_own_spend(anthropic: AnthropicFake) -> None:
    anthropic.reply(FakeReply(text="ok", input_tokens=10_000, output_tokens=1000))
    run = CallContext(agent="researcher", max_total_cost_usd=0.04)
    await synapse.achat(CLAUDE, "first", context=run)
    assert flush(30)  # the writer thread keeps the run's spend
    assert run.spent_usd == pytest.approx(0.045)
    with pytest.raises(CostLimitError, match=r"agent 'researcher' has spent \$0\.0450 of its \$0\.0400 limit"):
        await synapse.achat(CLAUDE, "second", context=run)
    other_run = CallContext(agent="researcher", max_total_cost_usd=0.04)
    await synapse.achat(CLAUDE, "fresh run", context=other_run)  # a new run starts from zero
    assert len(anthropic.requests) == 2


async def test_a_prompt_that_alone_would_pass_the_limit_is_refused(anthropic: AnthropicFake) -> None:
    huge = "word " * 40_000  # ~50,000 tokens: ~$0.15 of input on Sonnet 4.5
    with pytest.raises(CostLimitError, match="prompt alone would cost about"):
        await synapse.achat(CLAUDE, huge, context=CallContext(session="s"), max_total_cost_usd=0.10)
    assert anthropic.requests == []
    await synapse.achat(CLAUDE, "small", context=CallContext(session="s"), max_total_cost_usd=0.10)
    assert len(anthropic.requests) == 1
