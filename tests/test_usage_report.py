"""Usage reports: the same numbers from report(), GET /api/usage... and `synapse usage`."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from synapse import settings as settings_mod
from synapse.client import CallContext, CallRecord
from synapse.types import Usage
from synapse.usage import flush, record
from synapse.usage.prices import price
from synapse.usage.report import parse_when, report

pytestmark = pytest.mark.database

NOW = time.time()
DAY = 86400.0


def day_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d")


def seed() -> dict[str, float]:
    """Five calls in the last three days, one 40 days ago. Returns their start times."""
    s = settings_mod.load()
    t = {"old": NOW - 40 * DAY, "a": NOW - 2 * DAY, "b": NOW - 2 * DAY + 60, "c": NOW - DAY + 3600, "d": NOW - 600, "e": NOW - 300}

    def add(ts: float, provider: str, model: str, usage: Usage, **kw: Any) -> None:
        record(CallRecord(provider, model, kw.pop("upstream", model), ts, 0.5, 0.2, usage, kw.pop("outcome", "ok"),
                          kw.pop("stream", False), kw.pop("context", None), settings=s, **kw))

    add(t["old"], "anthropic", "claude-sonnet-4-5", Usage(1_000_000, 0))
    add(t["a"], "anthropic", "claude-sonnet-4-5", Usage(1000, 200, 8000, 2000), context=CallContext(agent="writer"))
    add(t["b"], "anthropic", "claude-sonnet-4-5", Usage(500, 100, 10000, 0), context=CallContext(agent="writer"))
    add(t["c"], "openai", "gpt-5", Usage(2000, 500, 0, 0, 100), stream=True)
    add(t["d"], "oaic", "oaic.mystery", Usage(300, 30), upstream="mystery")  # price unknown
    add(t["e"], "anthropic", "claude-sonnet-4-5", Usage(1000, 200), response_cache_hit=True,
        context=CallContext(agent="writer"))
    assert flush(30)
    return t


def cost(provider: str, model: str, u: Usage, hit: bool = False) -> tuple[float, float]:
    p = price(provider, model, u, response_cache_hit=hit)
    assert p is not None
    return p.cost_usd, p.savings_usd


def test_totals_breakdowns_and_rates(synapse_env: Path) -> None:
    t = seed()
    data = report()
    tot = data["totals"]
    assert tot["calls"] == 5  # the 40-day-old call is outside the default 30 days
    assert (tot["input_tokens"], tot["output_tokens"], tot["cache_read_tokens"], tot["cache_write_tokens"],
            tot["reasoning_tokens"]) == (1000 + 500 + 2000 + 300, 200 + 100 + 500 + 30, 18000, 2000, 100)
    ca, sa_ = cost("anthropic", "claude-sonnet-4-5", Usage(1000, 200, 8000, 2000))
    cb, sb = cost("anthropic", "claude-sonnet-4-5", Usage(500, 100, 10000, 0))
    cc, _ = cost("openai", "gpt-5", Usage(2000, 500, 0, 0, 100))
    _, se = cost("anthropic", "claude-sonnet-4-5", Usage(1000, 200), hit=True)
    assert tot["cost_usd"] == pytest.approx(ca + cb + cc)
    assert tot["savings_usd"] == pytest.approx(sa_ + sb + se)
    assert tot["unpriced_calls"] == 1
    assert tot["cost_label"] == f"${ca + cb + cc:.4f} + price unknown for 1 call"
    assert tot["cache_hit_rate"] == pytest.approx(18000 / (3800 + 18000 + 2000))
    assert (tot["response_cache_hits"], tot["response_cache_hit_rate"]) == (1, pytest.approx(0.2))

    by_provider = {r["provider"]: r for r in data["by_provider"]}
    assert by_provider["anthropic"]["calls"] == 3 and by_provider["openai"]["calls"] == 1
    assert by_provider["oaic"]["cost_usd"] is None and by_provider["oaic"]["cost_label"] == "price unknown"
    assert [r["provider"] for r in data["by_provider"]][-1] == "oaic"  # unknown cost sorts last, never as $0
    by_model = {r["model"]: r for r in data["by_model"]}
    assert by_model["gpt-5"]["reasoning_tokens"] == 100 and by_model["gpt-5"]["provider"] == "openai"
    by_agent = {r["agent"]: r for r in data["by_agent"]}
    assert by_agent["writer"]["calls"] == 3 and by_agent[None]["calls"] == 2
    assert by_agent["writer"]["response_cache_hits"] == 1
    by_day = {r["day"]: r for r in data["by_day"]}
    assert by_day[day_of(t["a"])]["calls"] >= 2

    series = data["series"]
    assert len(series) in (30, 31) and series[-1]["day"] == day_of(NOW)
    assert sum(d["calls"] for d in series) == 5
    assert sum(d["cost_usd"] or 0 for d in series) == pytest.approx(ca + cb + cc)
    assert all(d["cost_usd"] == 0.0 for d in series if d["calls"] == 0)

    recent = data["recent"]
    assert [r["model"] for r in recent[:2]] == ["claude-sonnet-4-5", "oaic.mystery"]  # newest first
    assert recent[0]["response_cache_hit"] is True and recent[1]["cost_label"] == "price unknown"


def test_periods(synapse_env: Path) -> None:
    seed()
    assert report(since="all")["totals"]["calls"] == 6
    assert report(since="24h")["totals"]["calls"] == 3
    today = day_of(NOW)
    assert report(since=today, until=today)["totals"]["calls"] >= 2
    assert report(since="2000-01-01", until="2000-01-02")["totals"]["calls"] == 0
    assert parse_when("2025-12-06") == datetime(2025, 12, 6, tzinfo=timezone.utc).timestamp()
    assert parse_when("2025-12-06", end=True) == datetime(2025, 12, 7, tzinfo=timezone.utc).timestamp()
    assert parse_when("7d", now=1000.0 + 7 * DAY) == 1000.0
    assert parse_when("all") is None
    with pytest.raises(Exception, match="is not a date"):
        parse_when("last tuesday")


def test_an_empty_ledger_reports_zeros_not_errors(synapse_env: Path) -> None:
    data = report()
    assert data["totals"]["calls"] == 0 and data["totals"]["cache_hit_rate"] is None
    assert data["recent"] == [] and data["by_provider"] == []


# --- the JSON API ----------------------------------------------------------------------------------------


async def asgi_get(app: Any, path: str, query: str = "") -> tuple[int, dict[str, str], bytes]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
             "headers": [(b"host", b"testserver")], "server": ("testserver", 80), "client": ("127.0.0.1", 5000)}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


@pytest.fixture
def app() -> Any:
    from fastapi import FastAPI

    from synapse.usage.api import router

    application = FastAPI()
    application.include_router(router)
    return application


async def test_api_serves_the_same_report(synapse_env: Path, app: Any) -> None:
    seed()
    status, headers, body = await asgi_get(app, "/api/usage")
    assert status == 200 and headers["content-type"].startswith("application/json")
    data = json.loads(body)
    expected = report()
    assert data["totals"] == expected["totals"]
    assert data["by_model"] == expected["by_model"] and data["series"] == expected["series"]

    status, _, body = await asgi_get(app, "/api/usage/summary", "since=all")
    assert status == 200 and json.loads(body)["calls"] == 6
    status, _, body = await asgi_get(app, "/api/usage/breakdown/agent")
    assert status == 200 and {r["agent"] for r in json.loads(body)} == {"writer", None}
    status, _, body = await asgi_get(app, "/api/usage/series", "since=7d")
    assert status == 200 and len(json.loads(body)) in (7, 8)
    status, _, body = await asgi_get(app, "/api/usage/recent", "limit=2")
    assert status == 200 and len(json.loads(body)) == 2

    status, headers, body = await asgi_get(app, "/api/usage/export.csv", "since=all")
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert "attachment" in headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(body.decode())))
    assert len(table) == 6 and table[0]["model"] == "claude-sonnet-4-5" and table[0]["input_tokens"] == "1000000"
    assert [r["cost_usd"] for r in table if r["model"] == "oaic.mystery"] == [""]  # unknown, not 0


async def test_api_rejects_bad_periods_and_breakdowns(synapse_env: Path, app: Any) -> None:
    status, _, body = await asgi_get(app, "/api/usage", "since=yesterday-ish")
    assert status == 400 and "is not a date" in json.loads(body)["detail"]
    status, _, _ = await asgi_get(app, "/api/usage/breakdown/colour")
    assert status == 404


# --- the CLI ---------------------------------------------------------------------------------------------


@pytest.fixture
def usage_cli(cli: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """`synapse usage` wired into the real parser the way the lead will wire it."""
    from synapse import cli as cli_mod
    from synapse.usage.cli import register

    real = cli_mod.build_parser

    def build() -> Any:
        parser = real()
        sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        if "usage" not in sub.choices:
            register(sub)
        return parser

    monkeypatch.setattr(cli_mod, "build_parser", build)
    return cli


def test_cli_json_is_the_api_report(synapse_env: Path, usage_cli: Any) -> None:
    seed()
    out = usage_cli("usage", "--json")
    assert out.code == 0, out.err
    data = json.loads(out.out)
    assert data["totals"] == report()["totals"]
    assert len(data["recent"]) == 5


def test_cli_text_shows_costs_savings_and_price_unknown(synapse_env: Path, usage_cli: Any) -> None:
    seed()
    out = usage_cli("usage", "--since", "all")
    assert out.code == 0, out.err
    tot = report(since="all")["totals"]
    assert f"calls            {tot['calls']}" in out.out
    assert f"cost             {tot['cost_label']}" in out.out
    assert f"saved by cache   ${tot['savings_usd']:.4f}" in out.out
    assert "cache hit rate   " in out.out and "price unknown" in out.out
    assert "By provider:" in out.out and "By model:" in out.out and "By agent:" in out.out and "By day:" in out.out
    assert "[response cache]" in out.out


def test_cli_csv(synapse_env: Path, usage_cli: Any) -> None:
    seed()
    out = usage_cli("usage", "--csv", "--since", "24h")
    assert out.code == 0
    table = list(csv.DictReader(io.StringIO(out.out)))
    assert [r["model"] for r in table] == ["gpt-5", "oaic.mystery", "claude-sonnet-4-5"]
    assert table[2]["response_cache_hit"] == "True" and table[2]["cost_usd"] == "0.0"


def test_cli_bad_since_is_one_line_and_exit_2(synapse_env: Path, usage_cli: Any) -> None:
    out = usage_cli("usage", "--since", "whenever")
    assert out.code == 2
    assert out.err.strip().count("\n") == 0 and "is not a date" in out.err


def test_usage_cli_in_a_subprocess(synapse_env: Path) -> None:
    seed()
    env = {**os.environ, "SYNAPSE_DATA_DIR": str(synapse_env)}
    root = str(Path(__file__).parent.parent)
    ok = subprocess.run([sys.executable, "-m", "synapse.usage.cli", "usage", "--json", "--since", "all"],
                        capture_output=True, text=True, env=env, cwd=root, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["totals"]["calls"] == 6
    bad = subprocess.run([sys.executable, "-m", "synapse.usage.cli", "usage", "--until", "soon"],
                         capture_output=True, text=True, env=env, cwd=root, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.startswith("synapse: ") and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


# --- calls cut short: estimated tokens ----------------------------------------------------------------


def seed_estimated() -> None:
    """Two complete calls and one stopped midway whose tokens are estimated."""
    s = settings_mod.load()
    for i, (usage, outcome, estimated) in enumerate([
        (Usage(1000, 200), "ok", False),
        (Usage(400, 30), "cancelled", True),
        (Usage(500, 100), "ok", False),
    ]):
        record(CallRecord("openai", "gpt-5", "gpt-5", NOW - 600 + i, 0.5, 0.2, usage, outcome, True, settings=s,
                          estimated=estimated))
    record(CallRecord("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5", NOW - 500, 0.5, 0.2, Usage(50, 5), "ok",
                      False, settings=s))
    assert flush(30)


def test_estimated_calls_are_counted_and_priced(synapse_env: Path) -> None:
    seed_estimated()
    data = report()
    assert data["totals"]["estimated_calls"] == 1
    assert data["totals"]["cost_usd"] == pytest.approx(sum(cost(*c)[0] for c in [
        ("openai", "gpt-5", Usage(1000, 200)), ("openai", "gpt-5", Usage(400, 30)), ("openai", "gpt-5", Usage(500, 100)),
        ("anthropic", "claude-sonnet-4-5", Usage(50, 5))]))  # the estimate is priced like any tokens
    by_model = {r["model"]: r["estimated_calls"] for r in data["by_model"]}
    assert by_model == {"gpt-5": 1, "claude-sonnet-4-5": 0}
    assert [r["estimated"] for r in data["recent"]] == [False, False, True, False]  # the latest first
    assert sum(d["estimated_calls"] for d in data["series"]) == 1


async def test_api_and_csv_say_which_calls_are_estimated(synapse_env: Path, app: Any) -> None:
    seed_estimated()
    status, _, body = await asgi_get(app, "/api/usage/summary")
    assert status == 200 and json.loads(body)["estimated_calls"] == 1
    status, _, body = await asgi_get(app, "/api/usage/export.csv")
    table = list(csv.DictReader(io.StringIO(body.decode())))
    assert [(r["outcome"], r["estimated"]) for r in table] == [
        ("ok", "False"), ("cancelled", "True"), ("ok", "False"), ("ok", "False")]


def test_cli_marks_estimated_figures(synapse_env: Path, usage_cli: Any) -> None:
    seed_estimated()
    out = usage_cli("usage")
    assert out.code == 0, out.err
    tot = report()["totals"]
    assert f"input tokens     ≈{tot['input_tokens']:,} uncached" in out.out
    assert f"cost             ≈{tot['cost_label']}" in out.out
    assert "≈ 1 call cut short: their tokens are estimated" in out.out
    recent = [line for line in out.out.splitlines() if line.startswith("  20") and "gpt-5" in line]
    assert [("≈" in line, "[estimated]" in line) for line in recent] == [(False, False), (True, True), (False, False)]
    by_model = {line.split()[0]: line for line in out.out.split("By model:")[1].split("By agent:")[0].splitlines()[2:]
                if line.strip()}
    assert "≈" in by_model["gpt-5"] and "≈" not in by_model["claude-sonnet-4-5"]


def test_cli_without_estimates_shows_no_mark(synapse_env: Path, usage_cli: Any) -> None:
    seed()
    out = usage_cli("usage", "--since", "all")
    assert out.code == 0 and "≈" not in out.out and "cut short" not in out.out
