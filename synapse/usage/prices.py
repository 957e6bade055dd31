"""Cost and savings of one call, from the genai-prices library's per-model prices.

genai-prices knows each model's input, output, cache-read and cache-write prices (and
tiers such as Claude's >200k-token prices); its figures win over rules of thumb. Our
canonical Usage counts uncached input, cache reads and cache writes separately, and
genai-prices wants the whole prompt as `input_tokens` with the cached parts inside it,
so `price()` converts once here.

    cost    = the library's total for the call
    savings = cache_read  * (input price - cache-read price)
            - cache_write * (cache-write price - input price)

computed exactly as (the same call's price with no caching) - (its real price), so
tiered prices are handled by the library too. Provider-side tool uses
(`Usage.server_tool_use`: web searches, code executions) add the library's per-use
price where it has one (`web_searches_kcount`: $10 per 1,000 for Claude and OpenAI,
$35 per 1,000 grounded prompts for Gemini 2.5); a use it has no price for adds nothing. A model the library does not know has
an unknown price: `price()` returns None, the ledger stores NULL, reports say
"price unknown", never $0. Local providers (Ollama, local OpenAI-compatible servers,
Hugging Face) cost $0.

Imported only by the usage writer thread and reports: never on the call path.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..types import Usage

__all__ = ["GENAI_PROVIDER_IDS", "LOCAL_PROVIDERS", "Price", "model_prices", "price"]

#: Our provider id -> genai-prices provider id.
GENAI_PROVIDER_IDS: dict[str, str] = {
    "anthropic": "anthropic",
    "openai": "openai",
    "gemini": "google",
    "xai": "x-ai",
    "deepseek": "deepseek",
    "bedrock": "aws",
}

#: Providers that run on the user's own machine: they cost nothing.
LOCAL_PROVIDERS = frozenset({"ollama", "locv1", "hf"})


@dataclass(frozen=True, slots=True)
class Price:
    cost_usd: float
    savings_usd: float


_lookup: dict[tuple[str, str, str], Any] = {}
_lock = threading.Lock()


def _find(provider: str, model: str, base_url: str = "") -> Any:
    """(genai provider, genai model) or None when the library has no price for it."""
    key = (provider, model, base_url)
    if key in _lookup:
        return _lookup[key]
    from genai_prices import data_snapshot

    snapshot = data_snapshot.get_snapshot()
    found = None
    pid = GENAI_PROVIDER_IDS.get(provider)
    attempts: list[tuple[str | None, str | None]] = []
    if pid:
        attempts.append((pid, None))
    elif provider == "oaic" and base_url:
        attempts.append((None, base_url))  # e.g. OpenRouter, Together: matched by API URL
    for provider_id, api_url in attempts:
        try:
            found = snapshot.find_provider_model(model, None, provider_id, api_url)
            break
        except LookupError:
            continue
    with _lock:
        if len(_lookup) > 4096:
            _lookup.clear()
        _lookup[key] = found
    return found


def model_prices(provider: str, model: str, base_url: str = "", when: datetime | None = None) -> Any:
    """The genai-prices `ModelPrice` for a model (per million tokens), or None."""
    found = _find(provider, model, base_url)
    if found is None:
        return None
    return found[1].get_prices(when or datetime.now(tz=timezone.utc))


def _genai_usage(u: Usage, cached: bool = True) -> Any:
    from genai_prices import Usage as GUsage

    prompt = u.input_tokens + u.cache_read_tokens + u.cache_write_tokens
    if not cached:
        return GUsage(input_tokens=prompt, output_tokens=u.output_tokens)
    return GUsage(
        input_tokens=prompt,
        output_tokens=u.output_tokens,
        cache_read_tokens=u.cache_read_tokens,
        cache_write_tokens=u.cache_write_tokens,
    )


_M = 1_000_000
#: Usage.server_tool_use names -> the genai-prices price per 1,000 uses.
_TOOL_PRICE_KEYS = {"web_search": "web_searches_kcount", "code_execution": "code_executions_kcount"}


def _tool_cost(found: Any, usage: Usage, when: datetime) -> float:
    """USD for the provider-side tool uses in `usage` that the library prices."""
    if not usage.server_tool_use:
        return 0.0
    mp = found[1].get_prices(when)
    cost = 0.0
    for name, count in usage.server_tool_use.items():
        per_k = getattr(mp, _TOOL_PRICE_KEYS.get(name, ""), None)
        if per_k is not None and count > 0:
            cost += float(per_k) * count / 1000.0
    return cost
#: (provider, model, base_url, UTC day number) -> the model's price table that day, or
#: _INTRADAY for a model whose price changes within a day (DeepSeek's off-peak hours).
_by_day: dict[tuple[str, str, str, int], Any] = {}
_INTRADAY = object()
#: (id of a price table, price band) -> (that table, its linear rates or None); band -1:
#: (that table, its band thresholds). The table is kept with its rates so an id is never
#: mistaken for another table's.
_rates_cache: dict[tuple[int, int], tuple[Any, Any]] = {}
_DAY = 86_400


def _thresholds(mp: Any) -> tuple[int, ...]:
    """The prompt sizes (total input tokens) where a tiered price changes."""
    from genai_prices.types import TieredPrices

    starts = {t.start for v in vars(mp).values() if isinstance(v, TieredPrices) for t in v.tiers}
    return tuple(sorted(starts))


def _linear_rates(mp: Any, band: int, thresholds: tuple[int, ...]) -> Any:
    """(base, input, output, cache read, cache write) USD per call / per token for prompts
    in one price band (tiers are chosen by the total prompt size), read from the library.
    None when a mixed probe does not cost exactly what the rates say: then the library
    prices those calls itself."""
    from decimal import Decimal

    from genai_prices import Usage as GUsage

    def calc(**kw: int) -> Decimal:
        return mp.calc_price(GUsage(**kw))["total_price"]

    # a round prompt size inside the band, so the per-token rates divide exactly
    if not thresholds:
        size = _M
    elif band < len(thresholds):
        size = thresholds[band]
    else:
        size = thresholds[-1] * 2
    base = calc()
    with_input = calc(input_tokens=size)
    rin = (with_input - base) / size
    rout = (calc(input_tokens=size, output_tokens=_M) - with_input) / _M
    rread = (calc(input_tokens=size, cache_read_tokens=size) - base) / size
    rwrite = (calc(input_tokens=size, cache_write_tokens=size) - base) / size
    read, write = size // 4, size // 8
    probe = calc(input_tokens=size, output_tokens=12345, cache_read_tokens=read, cache_write_tokens=write)
    if probe != base + rin * (size - read - write) + rout * 12345 + rread * read + rwrite * write:
        return None
    # checked exactly in Decimal; used as floats (a few ulps from the exact sum, and several
    # times cheaper than Decimal arithmetic for every call the ledger prices)
    return float(base), float(rin), float(rout), float(rread), float(rwrite)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def _prices_at(provider: str, model: str, base_url: str, found: Any, ts: float) -> Any:
    """The model's price table in effect at Unix time `ts`.

    Looked up once per model and UTC day (a new price starts on a UTC date), except for
    a model with a price for some hours of the day, which is looked up on every call."""
    key = (provider, model, base_url, int(ts // _DAY))
    mp = _by_day.get(key)
    if mp is None:
        from genai_prices.types import StartDateConstraint

        model_info = found[1]
        conditional = model_info.prices if isinstance(model_info.prices, list) else ()
        intraday = any(c.constraint is not None and not isinstance(c.constraint, StartDateConstraint)
                       for c in conditional)
        mp = _INTRADAY if intraday else model_info.get_prices(_utc(ts))
        with _lock:
            if len(_by_day) > 4096:
                _by_day.clear()
            _by_day[key] = mp
    if mp is _INTRADAY:
        return found[1].get_prices(_utc(ts))
    return mp


def _rates(mp: Any, prompt: int) -> Any:
    """The linear rates of price table `mp` for a prompt of `prompt` tokens (None: the
    library prices such calls itself); worked out once per table and price band."""
    hit = _rates_cache.get((id(mp), -1))
    if hit is not None and hit[0] is mp:
        thresholds = hit[1]
    else:
        thresholds = _thresholds(mp)
        with _lock:
            if len(_rates_cache) > 4096:
                _rates_cache.clear()
            _rates_cache[(id(mp), -1)] = (mp, thresholds)
    band = 0
    for t in thresholds:
        if prompt > t:
            band += 1
    hit = _rates_cache.get((id(mp), band))
    if hit is not None and hit[0] is mp:
        return hit[1]
    rates = _linear_rates(mp, band, thresholds)
    with _lock:
        _rates_cache[(id(mp), band)] = (mp, rates)
    return rates


def price(
    provider: str,
    model: str,
    usage: Usage,
    *,
    when: datetime | float | None = None,
    base_url: str = "",
    response_cache_hit: bool = False,
) -> Price | None:
    """Cost and savings in USD of one call, or None when the model's price is unknown.

    `model` is the upstream id the provider saw. A response-cache hit costs nothing and
    saves what the call would have cost.
    """
    if provider in LOCAL_PROVIDERS:
        return Price(0.0, 0.0)
    found = _find(provider, model, base_url)
    if found is None:
        return None
    genai_provider, genai_model = found
    # a timestamp (what the ledger has) is turned into a datetime only when the library needs one
    if isinstance(when, datetime):
        ts = (when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)).timestamp()  # naive: UTC
    else:
        ts = time.time() if when is None else float(when)
        when = None
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    rates = _rates(_prices_at(provider, model, base_url, found, ts), prompt)
    if rates is not None:
        base, rin, rout, rread, rwrite = rates
        read, write = usage.cache_read_tokens, usage.cache_write_tokens
        total = base + rin * usage.input_tokens + rout * usage.output_tokens + rread * read + rwrite * write
        if usage.server_tool_use:
            total += _tool_cost(found, usage, when or _utc(ts))
        if response_cache_hit:
            return Price(0.0, total)
        return Price(total, read * (rin - rread) - write * (rwrite - rin))
    when = when or _utc(ts)
    try:
        actual = genai_model.calc_price(_genai_usage(usage), genai_provider, genai_request_timestamp=when)
        if usage.cache_read_tokens or usage.cache_write_tokens:
            uncached = genai_model.calc_price(_genai_usage(usage, cached=False), genai_provider,
                                              genai_request_timestamp=when)
            savings = uncached.total_price - actual.total_price
        else:
            savings = 0
    except (ValueError, ArithmeticError):
        return None
    total = float(actual.total_price) + _tool_cost(found, usage, when)
    if response_cache_hit:
        return Price(0.0, total)
    return Price(total, float(savings))
