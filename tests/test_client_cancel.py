"""A call that is cancelled or stopped early still lands in the usage ledger: outcome
`cancelled`, with the usage the provider had reported by then and the rest estimated
(tests/test_usage_estimates.py pins the estimates for every protocol)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa

import synapse
from synapse import settings as settings_mod
from synapse import storage
from synapse.errors import UpstreamUnavailableError
from synapse.types import ResponseDone, TextDelta
from synapse.usage.ledger import flush
from tests.fakes.base import FakeReply


def rows() -> list[dict[str, Any]]:
    from synapse.storage.tables import usage_calls

    assert flush(30)
    eng = storage.engine(settings=settings_mod.load())
    with eng.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(usage_calls).order_by(usage_calls.c.id)).mappings()]


LONG = "one two three four five six seven eight nine ten " * 4


async def read_until(event_type: type, **call: Any) -> None:
    """Stream a call and stop reading at its first event of `event_type`, as a caller that leaves."""
    agen = synapse.astream("claude-sonnet-4-5", "hi", **call)
    async for event in agen:
        if isinstance(event, event_type):
            break
    await agen.aclose()  # type: ignore[attr-defined]


async def test_an_achat_cancelled_by_wait_for_is_recorded(anthropic: Any) -> None:
    anthropic.hang_next(5)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(synapse.achat("claude-sonnet-4-5", "hi"), 0.3)
    [row] = rows()
    assert (row["outcome"], row["kind"], row["stream"]) == ("cancelled", "chat", False)
    # no answer came: the prompt ("hi", one token) is estimated, as the provider had it; no output
    assert (row["input_tokens"], row["output_tokens"], row["estimated"]) == (1, 0, True)
    assert len(anthropic.requests) == 1


async def test_an_astream_cancelled_while_waiting_is_recorded(anthropic: Any) -> None:
    anthropic.hang_next(5)

    async def consume() -> None:
        async for _ in synapse.astream("claude-sonnet-4-5", "hi"):
            pass

    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(consume(), 0.3)
    [row] = rows()
    assert (row["outcome"], row["stream"], row["input_tokens"], row["estimated"]) == ("cancelled", True, 1, True)


async def test_a_stream_the_caller_stops_reading_keeps_the_input_tokens_already_billed(anthropic: Any) -> None:
    anthropic.reply(FakeReply(text=LONG, input_tokens=1234, output_tokens=40))
    await read_until(TextDelta)
    [row] = rows()
    assert row["outcome"] == "cancelled"
    assert row["input_tokens"] == 1234  # from message_start, before any text
    assert row["output_tokens"] == 1 and row["estimated"]  # "one " streamed: not message_start's placeholder
    assert row["cost_usd"] and row["cost_usd"] > 0


async def test_a_stream_the_caller_leaves_at_its_final_event_is_a_complete_call(anthropic: Any) -> None:
    anthropic.reply(FakeReply(text="short answer", input_tokens=50, output_tokens=7))
    await read_until(ResponseDone)
    [row] = rows()
    assert (row["outcome"], row["input_tokens"], row["output_tokens"]) == ("ok", 50, 7)


async def test_a_stream_that_breaks_midway_records_the_usage_reported_so_far(anthropic: Any) -> None:
    anthropic.reply(FakeReply(text=LONG, input_tokens=900, output_tokens=40, break_after_events=4))
    with pytest.raises(UpstreamUnavailableError):
        async for _ in synapse.astream("claude-sonnet-4-5", "hi"):
            pass
    [row] = rows()
    assert (row["outcome"], row["input_tokens"]) == ("unavailable", 900)


async def test_a_cancelled_embedding_is_recorded(openai: Any) -> None:
    openai.hang_next(5)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(synapse.aembed("text-embedding-3-small", ["a"]), 0.3)
    [row] = rows()
    assert (row["outcome"], row["kind"]) == ("cancelled", "embed")


def test_a_sync_stream_abandoned_midway_is_recorded(anthropic: Any) -> None:
    anthropic.reply(FakeReply(text=LONG, input_tokens=77))
    events = synapse.stream("claude-sonnet-4-5", "hi")
    for event in events:
        if isinstance(event, TextDelta):
            break
    events.close()  # type: ignore[attr-defined]
    [row] = rows()
    assert (row["outcome"], row["input_tokens"]) == ("cancelled", 77)
