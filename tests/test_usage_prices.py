"""Cost and savings: the library's own numbers, and the cache arithmetic exactly."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from genai_prices import Usage as GUsage
from genai_prices import calc_price

from synapse.types import Usage
from synapse.usage.prices import model_prices, price

WHEN = datetime(2025, 12, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("provider", "model", "genai_provider"),
    [
        ("anthropic", "claude-sonnet-4-5", "anthropic"),
        ("anthropic", "claude-haiku-4-5-20251001", "anthropic"),
        ("openai", "gpt-5", "openai"),
        ("openai", "gpt-4.1", "openai"),
        ("gemini", "gemini-2.5-flash", "google"),
        ("xai", "grok-4", "x-ai"),
        ("deepseek", "deepseek-chat", "deepseek"),
        ("bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0", "aws"),
        ("bedrock", "amazon.nova-pro-v1:0", "aws"),
    ],
)
def test_cost_is_the_libraries_own_number(provider: str, model: str, genai_provider: str) -> None:
    u = Usage(input_tokens=1200, output_tokens=345, cache_read_tokens=5000, cache_write_tokens=800, reasoning_tokens=100)
    got = price(provider, model, u, when=WHEN)
    assert got is not None
    expected = calc_price(
        GUsage(input_tokens=7000, output_tokens=345, cache_read_tokens=5000, cache_write_tokens=800),
        model, provider_id=genai_provider, genai_request_timestamp=WHEN,
    )
    assert got.cost_usd == pytest.approx(float(expected.total_price), rel=1e-12)
    assert got.cost_usd > 0


def test_haiku_4_5_cache_arithmetic_exactly() -> None:
    # Haiku 4.5: $1 input, $5 output, $0.10 cache read, $1.25 cache write per MTok.
    mp = model_prices("anthropic", "claude-haiku-4-5", when=WHEN)
    assert (float(mp.input_mtok), float(mp.output_mtok), float(mp.cache_read_mtok), float(mp.cache_write_mtok)) == (
        1.0, 5.0, 0.1, 1.25,
    )
    u = Usage(input_tokens=1000, output_tokens=500, cache_read_tokens=8000, cache_write_tokens=2000)
    p = price("anthropic", "claude-haiku-4-5", u, when=WHEN)
    assert p is not None
    # cost = 1000*1 + 500*5 + 8000*0.1 + 2000*1.25 = 6,800 per MTok
    assert p.cost_usd == pytest.approx(0.0068, abs=1e-12)
    # savings = 8000*(1 - 0.1) - 2000*(1.25 - 1) = 7,200 - 500 = 6,700 per MTok
    assert p.savings_usd == pytest.approx(0.0067, abs=1e-12)


def test_a_cache_write_alone_is_a_negative_saving() -> None:
    u = Usage(input_tokens=10, output_tokens=0, cache_write_tokens=4000)
    p = price("anthropic", "claude-sonnet-4-5", u, when=WHEN)
    assert p is not None
    assert p.savings_usd == pytest.approx(-4000 * (3.75 - 3.0) / 1e6, abs=1e-12)


def test_openai_reads_at_the_models_own_cache_price() -> None:
    # gpt-5: $1.25 input, $0.125 cached input per MTok (0.1x); no write surcharge.
    u = Usage(input_tokens=1000, output_tokens=0, cache_read_tokens=9000)
    p = price("openai", "gpt-5", u, when=WHEN)
    assert p is not None
    assert p.cost_usd == pytest.approx((1000 * 1.25 + 9000 * 0.125) / 1e6, abs=1e-12)
    assert p.savings_usd == pytest.approx(9000 * (1.25 - 0.125) / 1e6, abs=1e-12)


def test_tiered_prices_come_from_the_library() -> None:
    # Sonnet 4.5 above 200k prompt tokens: the higher tier for the whole call.
    u = Usage(input_tokens=250_000, output_tokens=1000)
    p = price("anthropic", "claude-sonnet-4-5", u, when=WHEN)
    expected = calc_price(GUsage(input_tokens=250_000, output_tokens=1000), "claude-sonnet-4-5",
                          provider_id="anthropic", genai_request_timestamp=WHEN)
    assert p is not None and p.cost_usd == pytest.approx(float(expected.total_price))
    assert p.cost_usd > 250_000 * 3 / 1e6 + 1000 * 15 / 1e6  # not the base tier


def test_unknown_models_have_no_price_never_zero() -> None:
    assert price("anthropic", "claude-imaginary-9", Usage(input_tokens=10, output_tokens=5)) is None
    assert price("oaic", "my-model", Usage(input_tokens=10)) is None
    assert price("bedrock", "arn:aws:bedrock:us-east-1:123:application-inference-profile/abc", Usage(input_tokens=1)) is None


def test_local_providers_cost_nothing() -> None:
    for provider in ("ollama", "locv1", "hf"):
        p = price(provider, "llama3.2", Usage(input_tokens=1000, output_tokens=1000))
        assert p is not None and p.cost_usd == 0.0 and p.savings_usd == 0.0


def test_a_response_cache_hit_costs_nothing_and_saves_the_whole_call() -> None:
    u = Usage(input_tokens=2000, output_tokens=300)
    full = price("anthropic", "claude-sonnet-4-5", u, when=WHEN)
    hit = price("anthropic", "claude-sonnet-4-5", u, when=WHEN, response_cache_hit=True)
    assert full is not None and hit is not None
    assert hit.cost_usd == 0.0
    assert hit.savings_usd == pytest.approx(full.cost_usd) == pytest.approx((2000 * 3 + 300 * 15) / 1e6)


def test_openrouter_style_models_are_priced_by_api_url() -> None:
    p = price("oaic", "anthropic/claude-sonnet-4.5", Usage(input_tokens=1000, output_tokens=100),
              base_url="https://openrouter.ai/api/v1", when=WHEN)
    assert p is not None and p.cost_usd > 0


@pytest.mark.parametrize(
    ("provider", "model", "genai_provider"),
    [("anthropic", "claude-sonnet-4-5", "anthropic"), ("anthropic", "claude-haiku-4-5", "anthropic"),
     ("openai", "gpt-5", "openai"), ("gemini", "gemini-2.5-pro", "google"), ("deepseek", "deepseek-chat", "deepseek")],
)
@pytest.mark.parametrize("prompt", [1, 999, 128_000, 199_999, 200_000, 200_001, 350_000])
def test_the_fast_per_model_rates_agree_with_the_library_call_by_call(
    provider: str, model: str, genai_provider: str, prompt: int
) -> None:
    """The ledger reads each model's rates from the library once a day; they must give the
    library's exact figure for any call, on both sides of a tier boundary."""
    read, write = prompt // 3, prompt // 7
    u = Usage(input_tokens=prompt - read - write, output_tokens=4321, cache_read_tokens=read, cache_write_tokens=write)
    got = price(provider, model, u, when=WHEN)
    lib = calc_price(GUsage(input_tokens=prompt, output_tokens=4321, cache_read_tokens=read, cache_write_tokens=write),
                     model, provider_id=genai_provider, genai_request_timestamp=WHEN)
    no_cache = calc_price(GUsage(input_tokens=prompt, output_tokens=4321), model, provider_id=genai_provider,
                          genai_request_timestamp=WHEN)
    assert got is not None
    assert got.cost_usd == pytest.approx(float(lib.total_price), rel=1e-12, abs=1e-15)
    assert got.savings_usd == pytest.approx(float(no_cache.total_price - lib.total_price), rel=1e-9, abs=1e-15)


def _utc_ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(
    ("provider", "model", "genai_provider", "times"),
    [
        # a price that starts on a UTC date (AWS's gpt-5.6-luna got cheaper on 2026-07-30)
        ("bedrock", "openai.gpt-5.6-luna", "aws", ["2026-07-29T23:59:59", "2026-07-30T00:00:01"]),
        # a price for some hours of each day: DeepSeek's peak 00:30-16:30 UTC, off-peak otherwise
        ("deepseek", "deepseek-chat", "deepseek", ["2026-03-12T10:00:00", "2026-03-12T20:00:00", "2026-03-12T00:10:00"]),
    ],
)
def test_prices_that_change_over_time_are_read_for_each_calls_own_time(
    provider: str, model: str, genai_provider: str, times: list[str]
) -> None:
    """The rates are kept between calls (the ledger prices thousands a second); a call
    later the same day, or just after midnight, must still get the price of its own time."""
    u = Usage(input_tokens=1_000_000, output_tokens=100_000)
    got = [price(provider, model, u, when=_utc_ts(t)) for t in times]
    lib = [calc_price(GUsage(input_tokens=1_000_000, output_tokens=100_000), model, provider_id=genai_provider,
                      genai_request_timestamp=datetime.fromtimestamp(_utc_ts(t), tz=timezone.utc)).total_price
           for t in times]
    assert [p.cost_usd if p else None for p in got] == [pytest.approx(float(x), rel=1e-12) for x in lib]
    assert len({float(x) for x in lib[:2]}) == 2  # the two times really have different prices
