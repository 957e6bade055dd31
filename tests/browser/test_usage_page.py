"""Settings → Usage in a real browser, against the real `synapse serve` and a ledger filled
by real calls through the fake providers.

The module fixture starts the Anthropic, OpenAI and Together (OpenAI-compatible) fakes,
writes their settings to a temp data folder's settings.json, and runs `fill_ledger()` in a
subprocess with SYNAPSE_DATA_DIR pointing there: a two-turn Anthropic conversation with
a long system prompt (the prompt cache is written, then read: savings > 0), an OpenAI
call for an agent, an OpenAI-compatible call whose price is unknown, an exact response-
cache hit, a streamed Claude Haiku call, a failed call (529 Overloaded), and a GPT-5 stream
stopped after its first words (cut short: its tokens are estimated). One more row
replays the Haiku call's real record ten days earlier, so the periods differ. Then
`ledger.flush()`, and `synapse serve` reads that folder. Every number on the page is
compared with GET /api/usage and with the usage the calls reported.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.helpers import ApiClient, ServeProcess

ROOT = Path(__file__).resolve().parents[2]
ANTHROPIC_KEY = "sk-ant-api03-usagePAGEkey000000000000000001ZZZZ"
OPENAI_KEY = "sk-proj-usagePAGEopenai0000000000000002YYYY"
TOGETHER_KEY = "tgp_v1_usagePAGEtogether000000000003XXXX"
SECRETS = [ANTHROPIC_KEY, OPENAI_KEY, TOGETHER_KEY]
UNPRICED = "oaic.meta-llama/Llama-3.3-70B-Instruct-Turbo"
MANUAL = "The manual says: keep the valve closed and check the gauge every morning. " * 80
DAY = 86400.0
STOPPED = "Tell me a long story about the valve and the gauge."
APPROX = "≈"


# --- the calls (run in a subprocess: Playwright's sync API owns this thread's event loop) ---------


def fill_ledger() -> None:
    """Make real calls through the fakes named in $SYNAPSE_DATA_DIR/settings.json; print
    what each call reported as JSON."""
    import asyncio

    import synapse
    from synapse.client import CallContext, CallRecord, add_observer
    from synapse.errors import SynapseError
    from synapse.providers.transport import close_session
    from synapse.types import Message, TextDelta, TextPart
    from synapse.usage import ledger

    records: list[CallRecord] = []
    add_observer(records.append)
    calls: list[dict[str, Any]] = []

    def note(model: str, r: Any, **extra: Any) -> None:
        calls.append({"model": model, "usage": r.usage.as_dict(), **extra})

    async def main() -> None:
        try:  # the fake answers this first request 529 Overloaded (the test set it up)
            await synapse.achat("claude-sonnet-4-5", "Are you there?")
        except SynapseError as exc:
            calls.append({"model": "claude-sonnet-4-5", "error": type(exc).__name__})
        conv = CallContext(agent="support", session="conv-1")
        q1 = "What does the manual say?"
        first = await synapse.achat("claude-sonnet-4-5", q1, system=MANUAL, context=conv)
        note("claude-sonnet-4-5", first)
        history = [Message("user", [TextPart(q1)]), first.to_message(), Message("user", [TextPart("And the gauge?")])]
        note("claude-sonnet-4-5", await synapse.achat("claude-sonnet-4-5", history, system=MANUAL, context=conv))
        note("gpt-5", await synapse.achat("gpt-5", "Summarise the manual in one line.", context=CallContext(agent="writer")))
        note(UNPRICED, await synapse.achat(UNPRICED, "Hello there."))
        note("gpt-5", await synapse.achat("gpt-5", "What is 2+2?", cache="exact"))
        note("gpt-5", await synapse.achat("gpt-5", "What is 2+2?", cache="exact"), response_cache_hit=True)
        done = None
        async for ev in synapse.astream("claude-haiku-4-5", "Stream me a haiku.", context=CallContext(agent="poet")):
            done = getattr(ev, "response", done)
        note("claude-haiku-4-5", done, stream=True)
        stream = synapse.astream("gpt-5", STOPPED)  # stopped after its first words, as the Chat page's Stop
        text = ""
        async for ev in stream:
            if isinstance(ev, TextDelta):
                text += ev.text
                break
        await stream.aclose()  # type: ignore[attr-defined]
        cut = records[-1]
        calls.append({"model": "gpt-5", "usage": cut.usage.as_dict(), "text": text, "estimated": cut.estimated})
        await close_session()

    asyncio.run(main())
    haiku = next(r for r in records if r.model == "claude-haiku-4-5")
    ledger.record(dataclasses.replace(haiku, started_at=haiku.started_at - 10 * DAY))  # the same call, 10 days ago
    assert ledger.flush(30)
    print(json.dumps(calls))


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from tests.browser.conftest import _require_browser
    from tests.fakes.anthropic import AnthropicFake
    from tests.fakes.openai import OpenAIFake

    _require_browser()
    root = tmp_path_factory.mktemp("usage-browser")
    data, empty = root / "data", root / "empty"
    data.mkdir()
    empty.mkdir()
    fakes = [AnthropicFake(valid_keys={ANTHROPIC_KEY}).start(), OpenAIFake(valid_keys={OPENAI_KEY}).start(),
             OpenAIFake(valid_keys={TOGETHER_KEY}, flavour="together").start()]
    servers: list[ServeProcess] = []
    try:
        settings = {**fakes[0].settings(max_retries=0), **fakes[1].settings(), **fakes[2].settings()}
        fakes[0].overloaded_next()
        (data / "settings.json").write_text(json.dumps(settings, indent=2))
        env = {**os.environ, "SYNAPSE_DATA_DIR": str(data), "NO_PROXY": "127.0.0.1,localhost"}
        for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env.pop(name, None)
        proc = subprocess.run([sys.executable, "-c", "import tests.browser.test_usage_page as m; m.fill_ledger()"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        calls = json.loads(proc.stdout.strip().splitlines()[-1])
        servers.append(ServeProcess(data, log_path=root / "serve.log").start())
        servers.append(ServeProcess(empty, log_path=root / "serve-empty.log").start())
        yield {"server": servers[0], "empty": servers[1], "data": data, "calls": calls, "fakes": fakes}
    finally:
        for s in servers:
            s.stop()
        for f in fakes:
            f.stop()


@pytest.fixture
def api(world: dict[str, Any]) -> ApiClient:
    return ApiClient(world["server"].url)


# --- the page's formatting, mirrored ------------------------------------------------------------


def n(v: int) -> str:
    return f"{v:,}"


def usd(v: float | None) -> str:
    if v is None:
        return "—"
    from synapse.usage.report import money

    return money(v)


def pct(r: float | None) -> str:
    return "—" if r is None else f"{r * 100:.1f}%"


def ms(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v / 1000:.2f} s" if v >= 1000 else f"{math.floor(v + 0.5)} ms"


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def open_usage(page: Any, url: str, query: str = "") -> None:
    page.goto(url + "/settings/usage" + query)
    page.wait_for_selector('body[data-loaded]')


def wait_reloaded(page: Any, before: str) -> None:
    page.wait_for_function("b => document.body.dataset.loaded && document.body.dataset.loaded !== b", arg=before)


def total(page: Any, key: str) -> str:
    return page.locator(f'[data-total="{key}"]').inner_text()


def table_rows(page: Any, table: str) -> dict[str, dict[str, str]]:
    """{data-key or data-id: {data-col: text}} for a rendered table."""
    pairs = page.evaluate(
        """sel => [...document.querySelectorAll(sel + ' tbody tr')].map(tr => [
            tr.dataset.key !== undefined ? tr.dataset.key : tr.dataset.id,
            Object.fromEntries([...tr.querySelectorAll('[data-col]')].map(c => [c.dataset.col, c.innerText.trim().replace(/\\s*\\n\\s*/g, ' ')]))])""",
        table)
    return dict(pairs)  # in the page's order (a JS object would sort numeric keys)


def approx(text: str, estimated: Any) -> str:
    """The page marks a figure holding estimated tokens with "≈"."""
    return APPROX + text if estimated else text


#: The token columns an estimate can fill (cache reads and writes are only ever reported).
ESTIMABLE = ("input_tokens", "output_tokens", "reasoning_tokens")


def estimable(k: str, value: int, estimated: Any) -> bool:
    """Whether the page marks a token figure: estimated, of a kind an estimate fills, not zero."""
    return bool(estimated) and k in ESTIMABLE and value > 0


def check_totals(page: Any, t: dict[str, Any]) -> None:
    est = t["estimated_calls"]
    assert total(page, "calls") == n(t["calls"])
    assert total(page, "cost") == ("price unknown" if t["cost_usd"] is None else approx(usd(t["cost_usd"]), est and t["cost_usd"] > 0))
    if t["unpriced_calls"]:
        assert total(page, "unpriced") == "+ price unknown for " + plural(t["unpriced_calls"], "call")
    assert total(page, "savings") == usd(t["savings_usd"])
    assert total(page, "cache_hit_rate") == pct(t["cache_hit_rate"])
    assert total(page, "response_cache_hits") == plural(t["response_cache_hits"], "hit")
    assert total(page, "response_cache_hit_rate").startswith(pct(t["response_cache_hit_rate"]))
    for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"):
        assert total(page, k) == approx(n(t[k]), estimable(k, t[k], est)), k
    note = page.locator("#estimate-note")
    if est:
        assert note.inner_text() == f"{APPROX} {plural(est, 'call')} cut short: their tokens are estimated"
    else:
        assert not note.is_visible()


def check_breakdown(page: Any, table: str, by: str, rows: list[dict[str, Any]]) -> None:
    shown = table_rows(page, table)
    assert list(shown) == ["" if r[by] is None else r[by] for r in rows]
    for r in rows:
        cells = shown["" if r[by] is None else r[by]]
        est = r["estimated_calls"]
        for k in ("calls", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"):
            assert cells[k] == approx(n(r[k]), estimable(k, r[k], est)), (by, r[by], k)
        assert cells["cost"] == approx(r["cost_label"], est and (r["cost_usd"] or 0) > 0)
        assert cells["savings"] == usd(r["savings_usd"])
        assert cells["cache_hit_rate"] == pct(r["cache_hit_rate"])
        assert cells["response_cache_hits"] == n(r["response_cache_hits"])


# --- tests ----------------------------------------------------------------------------------------


def test_the_calls_wrote_the_ledger(world: dict[str, Any], api: ApiClient) -> None:
    calls = world["calls"]
    assert calls[0] == {"model": "claude-sonnet-4-5", "error": "OverloadedError"}
    sonnet = [c for c in calls if c["model"] == "claude-sonnet-4-5" and "usage" in c]
    assert sonnet[0]["usage"]["cache_write_tokens"] > 1000 and sonnet[0]["usage"]["cache_read_tokens"] == 0
    assert sonnet[1]["usage"]["cache_read_tokens"] == sonnet[0]["usage"]["cache_write_tokens"]
    data = api.get("/api/usage?since=all&recent=100").json()
    assert data["totals"]["calls"] == len(calls) + 1  # + the replayed Haiku call
    assert data["ledger"]["calls"] == len(calls) + 1
    recorded = sorted(data["recent"], key=lambda r: r["id"])
    assert [r["model"] for r in recorded[:len(calls)]] == [c["model"] for c in calls]
    for call, row in zip(calls, recorded):
        if "usage" in call and not call.get("response_cache_hit"):
            for k, v in call["usage"].items():
                assert row[k] == v, (call["model"], k)
    assert recorded[0]["outcome"] != "ok" and recorded[0]["cost_usd"] == 0.0  # failed: no tokens, known price
    cut, row = calls[-1], recorded[len(calls) - 1]
    assert (row["outcome"], row["estimated"], cut["estimated"]) == ("cancelled", True, True)
    assert row["input_tokens"] == -(-len(STOPPED) // 4)  # the prompt, at 4 characters a token
    assert row["output_tokens"] == -(-len(cut["text"]) // 4) > 0  # what was streamed before the stop
    assert row["cost_usd"] > 0  # priced as usual
    assert [r["estimated"] for r in recorded].count(True) == 1 == data["totals"]["estimated_calls"]
    assert data["totals"]["savings_usd"] > 0
    by_model = {r["model"]: r for r in data["by_model"]}
    assert by_model[UNPRICED]["cost_usd"] is None and by_model[UNPRICED]["cost_label"] == "price unknown"


def test_totals_breakdowns_and_recent_calls_match_the_api(world: dict[str, Any], page: Any, api: ApiClient,
                                                         screenshots: Path) -> None:
    page.add_init_script("""window.__shifts = 0; new PerformanceObserver(l => { for (const e of l.getEntries())
        if (!e.hadRecentInput) window.__shifts += e.value; }).observe({type: 'layout-shift', buffered: true});""")
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    open_usage(page, world["server"].url)
    data = api.get("/api/usage?since=30d&recent=50").json()
    t = data["totals"]
    calls = world["calls"]
    assert t["calls"] == len(calls) + 1  # the replayed call is 10 days old: inside the 30 days
    check_totals(page, t)
    # ...and against what the calls themselves reported (a response-cache hit uses no tokens)
    made = [c["usage"] for c in calls if "usage" in c and not c.get("response_cache_hit")]
    made.append(next(c["usage"] for c in calls if c["model"] == "claude-haiku-4-5"))  # the replay
    for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"):
        assert t[k] == sum(u[k] for u in made), k
    assert page.locator('[data-total="savings"]').inner_text() != "$0.00"
    assert page.locator('[data-total="cost"]').inner_text().startswith(APPROX + "$")  # it holds an estimate
    assert "price unknown for 1 call" in total(page, "unpriced")
    assert total(page, "response_cache_hits") == "1 hit"
    check_breakdown(page, "#by-provider", "provider", data["by_provider"])
    check_breakdown(page, "#by-model", "model", data["by_model"])
    check_breakdown(page, "#by-agent", "agent", data["by_agent"])
    check_breakdown(page, "#by-day", "day", data["by_day"])
    assert table_rows(page, "#by-model")[UNPRICED]["cost"] == "price unknown"
    assert table_rows(page, "#by-provider")["oaic"]["cost"] == "price unknown"
    assert page.locator("#by-agent tr[data-key=''] th").inner_text() == "no agent"

    recent = table_rows(page, "#recent")
    assert list(recent) == [str(r["id"]) for r in data["recent"]]
    for r in data["recent"]:
        cells = recent[str(r["id"])]
        assert cells["time"] == r["time"].replace("T", " ").replace("Z", "")
        assert cells["model"] == r["model"] and cells["agent"] == (r["agent"] or "—")
        assert cells["provider"] == {"anthropic": "Anthropic", "openai": "OpenAI", "oaic": "OpenAI Compatible"}[r["provider"]]
        for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"):
            assert cells[k] == approx(n(r[k]), estimable(k, r[k], r["estimated"]))
        assert cells["cost"] == approx(r["cost_label"], r["estimated"] and (r["cost_usd"] or 0) > 0)
        assert cells["savings"] == usd(r["savings_usd"])
        assert cells["latency"] == ms(r["latency_ms"]) and cells["ttft"] == ms(r["ttft_ms"])
        assert cells["outcome"] == r["outcome"]
        assert cells["response_cache_hit"] == ("hit" if r["response_cache_hit"] else "—")
    unpriced_row = next(r for r in data["recent"] if r["model"] == UNPRICED)
    assert recent[str(unpriced_row["id"])]["cost"] == "price unknown"
    assert sum(1 for c in recent.values() if c["response_cache_hit"] == "hit") == 1
    assert sorted(c["outcome"] for c in recent.values() if c["outcome"] != "ok") == ["cancelled", "overloaded"]

    # the chart: an accessible SVG, one bar pair per day of the series, the numbers as a table
    svg = page.locator("#chart svg")
    assert svg.get_attribute("role") == "img"
    assert page.locator("#chart-svg-title").text_content() == "Cost and savings per day"
    assert "saved by the prompt cache" in page.locator("#chart-svg-desc").text_content()
    assert page.locator("#chart .day").count() == len(data["series"]) >= 30
    heights = page.eval_on_selector_all("#chart .bar-savings", "els => els.map(e => +e.getAttribute('height'))")
    assert heights[-1] > 0 and sum(1 for h in heights if h > 0) == sum(1 for d in data["series"] if d["savings_usd"] > 0)
    page.locator(".chart-numbers summary").click()
    series_rows = page.eval_on_selector_all("#series-table tbody tr", "els => els.map(e => e.innerText.split('\\t'))")
    assert len(series_rows) == len(data["series"])
    last = data["series"][-1]
    assert series_rows[-1][0] == last["day"] and series_rows[-1][3].strip() == usd(last["savings_usd"])
    assert page.evaluate("window.__shifts") < 0.02, "the page jumped while loading"
    assert console_errors == []  # no CSP violation, no failed request
    # at 1280 px every table fits: nothing to scroll sideways
    clipped = page.eval_on_selector_all(".table-wrap", "els => els.filter(e => e.scrollWidth > e.clientWidth + 1).map(e => (e.getAttribute('aria-label') || e.firstElementChild.id) + ':' + (e.scrollWidth - e.clientWidth))")
    assert clipped == [], f"tables wider than the page at 1280 px: {clipped}"
    page.screenshot(path=str(screenshots / "usage-1280.png"), full_page=True)
    page.locator(".chart-panel").screenshot(path=str(screenshots / "usage-chart.png"))
    page.locator(".recent").screenshot(path=str(screenshots / "usage-recent-1280.png"))


def test_small_costs_and_model_names_read_whole(world: dict[str, Any], page: Any, api: ApiClient) -> None:
    """A call costing a fraction of a cent shows its significant digits ($0.000042, not $0.0000),
    and a model id is never broken inside a name: one line, or wrapped only after its "/"."""
    open_usage(page, world["server"].url)
    data = api.get("/api/usage?since=30d&recent=50").json()
    recent = table_rows(page, "#recent")
    small = [r for r in data["recent"] if r["cost_usd"] and r["cost_usd"] < 0.01]
    assert small, "the ledger has no sub-cent call to show"
    for r in small:
        shown = recent[str(r["id"])]["cost"].removeprefix(APPROX if r["estimated"] else "")
        assert shown == usd(r["cost_usd"]) and shown != "$0.0000"
        digits = shown.lstrip("$0.")
        assert 1 <= len(digits) <= 2 and float(shown[1:]) == pytest.approx(r["cost_usd"], rel=0.05), shown
    lines = page.eval_on_selector_all("#recent .model-id", """els => els.map(e => ({
        id: e.textContent, title: e.title,
        segs: [...e.querySelectorAll('.seg')].map(s => [s.textContent, s.getClientRects().length,
                                                          s.scrollWidth <= s.clientWidth]),
        lines: Math.round(e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight))}))""")
    assert {x["id"] for x in lines} == {r["model"] for r in data["recent"]}
    for x in lines:
        assert x["title"] == x["id"]
        assert all(rects == 1 and whole for _, rects, whole in x["segs"]), x  # no part broken or cut
        assert "".join(s for s, _, _ in x["segs"]) == x["id"]
        assert x["lines"] == (1 if "/" not in x["id"] else x["lines"]) and x["lines"] <= x["id"].count("/") + 1, x


def test_a_call_cut_short_is_marked_as_an_estimate(world: dict[str, Any], page: Any, api: ApiClient,
                                                  screenshots: Path) -> None:
    """The stopped GPT-5 stream: its row, its model and the totals say "≈", a line says why,
    and hovering an estimated cell explains it; complete calls carry no mark."""
    open_usage(page, world["server"].url)
    data = api.get("/api/usage?since=30d&recent=50").json()
    note = page.locator("#estimate-note")
    assert note.is_visible() and note.inner_text() == "≈ 1 call cut short: their tokens are estimated"
    [cut] = [r for r in data["recent"] if r["estimated"]]
    row = page.locator(f'#recent tr[data-id="{cut["id"]}"]')
    assert row.get_attribute("data-estimated") == "true"
    cell = row.locator('[data-col="input_tokens"]')
    assert cell.inner_text() == APPROX + n(cut["input_tokens"])
    assert "cut short" in (cell.get_attribute("title") or "")
    assert row.locator('[data-col="cache_read_tokens"]').inner_text() == n(cut["cache_read_tokens"])  # never estimated
    marked = page.eval_on_selector_all("#recent tbody tr", "els => els.filter(e => e.innerText.includes('≈')).length")
    assert marked == 1  # the complete calls are not marked
    assert table_rows(page, "#by-model")["gpt-5"]["cost"].startswith(APPROX)
    assert not table_rows(page, "#by-model")["claude-sonnet-4-5"]["cost"].startswith(APPROX)
    page.locator(".stats").scroll_into_view_if_needed()
    page.locator("#totals-title").locator("..").screenshot(path=str(screenshots / "usage-estimated-totals.png"))
    row.screenshot(path=str(screenshots / "usage-estimated-row.png"))


def test_switch_period_and_custom_dates(world: dict[str, Any], page: Any, api: ApiClient) -> None:
    url = world["server"].url
    open_usage(page, url)
    for preset in ("all", "7d", "24h"):
        before = page.evaluate("document.body.dataset.loaded")
        page.locator(f"label[for=p-{preset}]").click()
        wait_reloaded(page, before)
        data = api.get(f"/api/usage?since={preset}&recent=50").json()
        check_totals(page, data["totals"])
        check_breakdown(page, "#by-model", "model", data["by_model"])
        assert f"since={preset}" in page.locator("#export").get_attribute("href")
        assert page.url.endswith(f"?since={preset}")
    all_calls = api.get("/api/usage/summary?since=all").json()["calls"]
    week_calls = api.get("/api/usage/summary?since=7d").json()["calls"]
    assert all_calls == week_calls + 1  # the replayed call is ten days old
    # custom dates, from the keyboard: the ten-day-old day alone
    old_day = api.get("/api/usage/breakdown/day?since=all").json()[0]["day"]
    page.locator("label[for=p-custom]").click()
    assert page.locator("#from").is_visible()
    page.locator("#from").fill(old_day)
    page.locator("#to").fill(old_day)
    before = page.evaluate("document.body.dataset.loaded")
    page.locator("#to").press("Enter")
    wait_reloaded(page, before)
    data = api.get(f"/api/usage?since={old_day}&until={old_day}&recent=50").json()
    assert data["totals"]["calls"] == 1
    check_totals(page, data["totals"])
    assert list(table_rows(page, "#by-model")) == ["claude-haiku-4-5"]
    assert f"since={old_day}&until={old_day}" in page.locator("#export").get_attribute("href")
    # a reload keeps the period
    page.reload()
    page.wait_for_selector("body[data-loaded]")
    assert page.locator("#p-custom").is_checked() and page.locator("#from").input_value() == old_day
    assert total(page, "calls") == "1"
    # a period with no calls: a friendly empty state with a way out
    page.locator("#from").fill("2001-01-01")
    page.locator("#to").fill("2001-01-31")
    before = page.evaluate("document.body.dataset.loaded")
    page.get_by_role("button", name="Apply").click()
    wait_reloaded(page, before)
    assert page.locator("#empty").is_visible() and not page.locator("#content").is_visible()
    assert page.locator("#empty-title").inner_text() == "No calls in this period"
    before = page.evaluate("document.body.dataset.loaded")
    page.get_by_role("button", name="Show all time").click()
    wait_reloaded(page, before)
    assert page.locator("#p-all").is_checked() and total(page, "calls") == n(all_calls)
    # From after To is refused with a message, not a request
    page.locator("label[for=p-custom]").click()
    page.locator("#from").fill("2025-02-10")
    page.locator("#to").fill("2025-02-01")
    page.get_by_role("button", name="Apply").click()
    assert "is after" in page.locator("#period-note").inner_text()


def test_csv_export(world: dict[str, Any], page: Any, api: ApiClient) -> None:
    open_usage(page, world["server"].url, "?since=all")
    with page.expect_download() as info:
        page.locator("#export").click()
    download = info.value
    assert download.suggested_filename == "synapse-usage.csv"
    text = Path(download.path()).read_text(encoding="utf-8")
    assert text == api.get("/api/usage/export.csv?since=all").text
    rows = list(csv.DictReader(io.StringIO(text)))
    data = api.get("/api/usage?since=all&recent=100").json()
    assert len(rows) == data["totals"]["calls"] == len(world["calls"]) + 1
    by_id = sorted(data["recent"], key=lambda r: (r["time"], r["id"]))
    assert [r["model"] for r in rows] == [r["model"] for r in by_id]
    assert sum(int(r["input_tokens"]) for r in rows) == data["totals"]["input_tokens"]
    assert sum(int(r["cache_read_tokens"]) for r in rows) == data["totals"]["cache_read_tokens"]
    assert [r["cost_usd"] for r in rows if r["model"] == UNPRICED] == [""]  # unknown, never 0
    assert sum(float(r["cost_usd"] or 0) for r in rows) == pytest.approx(data["totals"]["cost_usd"])
    assert sum(float(r["savings_usd"] or 0) for r in rows) == pytest.approx(data["totals"]["savings_usd"])
    assert [r["response_cache_hit"] for r in rows].count("True") == 1
    assert [r["estimated"] for r in rows].count("True") == 1 == data["totals"]["estimated_calls"]


def test_empty_ledger(world: dict[str, Any], page: Any, screenshots: Path) -> None:
    open_usage(page, world["empty"].url)
    assert page.locator("#empty").is_visible()
    assert page.locator("#empty-title").inner_text() == "No calls recorded yet"
    assert page.get_by_role("link", name="Connect a provider").get_attribute("href") == "/settings/models"
    assert not page.locator("#content").is_visible()
    assert not page.locator("#banner").is_visible()
    page.screenshot(path=str(screenshots / "usage-empty-1280.png"), full_page=True)


def test_navigation_between_models_and_usage(world: dict[str, Any], page: Any) -> None:
    page.goto(world["server"].url + "/settings/models")
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Models").get_attribute("aria-current") == "page"
    assert nav.get_by_role("link", name="Usage").get_attribute("aria-current") is None
    nav.get_by_role("link", name="Usage").click()
    page.wait_for_url("**/settings/usage")
    page.wait_for_selector("body[data-loaded]")
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Usage").get_attribute("aria-current") == "page"
    assert nav.get_by_role("link", name="Models").get_attribute("aria-current") is None
    assert page.title() == "Usage · Synapse"


def test_keyboard(world: dict[str, Any], page: Any, api: ApiClient) -> None:
    open_usage(page, world["server"].url)
    # Tab from the top reaches the nav, then the period control; arrows change the period
    page.keyboard.press("Tab")  # brand
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Chat"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Agents"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Memory"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Models"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Usage"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "API Keys"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "p-30d"
    before = page.evaluate("document.body.dataset.loaded")
    page.keyboard.press("ArrowRight")
    wait_reloaded(page, before)
    assert page.locator("#p-all").is_checked()
    assert total(page, "calls") == n(api.get("/api/usage/summary?since=all").json()["calls"])
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "export"
    # the tables scroll from the keyboard: each wrapper is a focusable, labelled region
    regions = page.locator(".table-wrap[role=region][tabindex='0']")
    assert regions.count() == 7  # series, provider, model, agent, API key, day, recent


def test_phone_width(world: dict[str, Any], page: Any, screenshots: Path) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    open_usage(page, world["server"].url)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a phone screen"
    nav = page.get_by_role("navigation", name="Main")
    assert nav.is_visible() and nav.get_by_role("link", name="Usage").is_visible()
    for sel in (".period-bar", ".stats", "#chart", "#recent-title"):
        box = page.locator(sel).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, sel
    page.screenshot(path=str(screenshots / "usage-phone-390.png"), full_page=True)
    page.screenshot(path=str(screenshots / "usage-phone-390-top.png"))


def test_no_key_in_the_page_or_the_api(world: dict[str, Any], page: Any, api: ApiClient) -> None:
    open_usage(page, world["server"].url, "?since=all")
    html = page.content()
    bodies = [html] + [api.get(p).text for p in ("/settings/usage", "/api/usage?since=all&recent=100",
                                                   "/api/usage/export.csv?since=all", "/static/usage.js")]
    for body in bodies:
        for secret in SECRETS:
            assert secret not in body
            assert secret[-8:] not in body
