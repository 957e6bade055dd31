"""Usage reports: totals, breakdowns, a cost/savings series, recent calls and CSV.

One function, `report()`, builds everything the Settings → Usage page, `GET /api/usage`
and `synapse usage --json` show, so they always agree. Periods are in UTC: `since` and
`until` accept `YYYY-MM-DD`, an ISO date-time, `24h` / `7d` / `4w` (ago), or `all`.

Definitions:
* cache_hit_rate = cache_read / (input + cache_read + cache_write): the share of prompt
  tokens read from the provider's prompt cache (None when no prompt tokens).
* response_cache_hit_rate = response-cache hits / calls.
* cost_usd sums the calls whose price is known; it is None ("price unknown") when no
  call of the group has a known price, and `unpriced_calls` counts the others. Never $0
  for an unknown price.
* estimated_calls counts the calls cut short before the provider reported their usage
  (cancelled, timed out, broken midway): their missing tokens are estimated
  (usage/estimate.py) and priced as usual, so the group's tokens and cost are approximate.
  A row says it with `estimated`.
"""

from __future__ import annotations

import csv
import io
import math
import re
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from ..errors import SynapseError

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = [
    "BREAKDOWNS",
    "CSV_COLUMNS",
    "DEFAULT_SINCE",
    "PeriodError",
    "breakdown",
    "cost_label",
    "csv_rows",
    "csv_text",
    "ledger_overview",
    "money",
    "parse_when",
    "recent_calls",
    "report",
    "series",
    "totals",
]

DEFAULT_SINCE = "30d"
BREAKDOWNS = ("provider", "model", "agent", "key", "day")
#: Breakdown name -> its column (the gateway key's name is `key_name`).
_COLUMN = {"key": "key_name"}
CSV_COLUMNS = (
    "time", "provider", "model", "upstream_model", "agent", "session", "kind", "stream",
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
    "cost_usd", "savings_usd", "response_cache_hit", "latency_ms", "ttft_ms", "outcome", "key", "estimated",
)

_RELATIVE = re.compile(r"^(\d+)\s*([hdw])$")


class PeriodError(SynapseError):
    """A --since / --until value that is not a date."""

    kind = "bad_period"


def parse_when(text: str | None, *, now: float | None = None, end: bool = False) -> float | None:
    """A period bound as Unix seconds (None: unbounded). A bare date as `until` means
    the end of that day."""
    if text is None:
        return None
    value = str(text).strip().lower()
    if value in ("", "all"):
        return None
    now = time.time() if now is None else now
    m = _RELATIVE.match(value)
    if m:
        n, unit = int(m.group(1)), m.group(2)
        return _in_range(text, now - n * {"h": 3600, "d": 86400, "w": 7 * 86400}[unit])
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=timezone.utc)
            return (day + timedelta(days=1)).timestamp() if end else day.timestamp()
        dt = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        raise PeriodError(
            f"{text!r} is not a date: use YYYY-MM-DD, an ISO date-time, 24h, 7d, 4w or all"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return _in_range(text, dt.timestamp())


def _in_range(text: str, ts: float) -> float:
    """A bound a date can show (years 1-9999); `99999999d` is not a period."""
    try:
        datetime.fromtimestamp(ts, tz=timezone.utc)
    except (OverflowError, ValueError, OSError):
        raise PeriodError(f"{text!r} is too far from today: use a date between 0001-01-01 and 9999-12-31") from None
    return ts


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def money(value: float) -> str:
    """`$1,234.50` from $100, `$0.0123` down to a cent, two significant digits below (`$0.000042`).

    A single call often costs a fraction of a cent: four fixed decimals showed it as `$0.0000`.
    """
    if value < 0:
        return "-" + money(-value)
    if value == 0:
        return "$0.00"
    if value >= 100:
        return f"${value:,.2f}"
    if value >= 0.01:
        return f"${value:.4f}"
    digits = min(12, 1 - math.floor(math.log10(value)))
    return "$" + f"{value:.{digits}f}".rstrip("0").rstrip(".")


def cost_label(cost: float | None, unpriced: int = 0) -> str:
    """`$0.0123`, `price unknown`, or `$0.0123 + price unknown for 2 calls`."""
    if cost is None:
        return "price unknown"
    text = money(cost)
    if unpriced:
        text += f" + price unknown for {unpriced} call{'s' if unpriced != 1 else ''}"
    return text


# --- queries ------------------------------------------------------------------------------


def _table() -> "sa.Table":
    from ..storage.tables import usage_calls

    return usage_calls


def _where(since: float | None, until: float | None) -> list[Any]:
    t = _table()
    conds: list[Any] = []
    if since is not None:
        conds.append(t.c.ts >= since)
    if until is not None:
        conds.append(t.c.ts < until)
    return conds


def _aggregates() -> list[Any]:
    import sqlalchemy as sa

    t = _table()
    total = lambda col: sa.func.coalesce(sa.func.sum(col), 0)  # noqa: E731
    return [
        sa.func.count().label("calls"),
        total(t.c.input_tokens).label("input_tokens"),
        total(t.c.output_tokens).label("output_tokens"),
        total(t.c.cache_read_tokens).label("cache_read_tokens"),
        total(t.c.cache_write_tokens).label("cache_write_tokens"),
        total(t.c.reasoning_tokens).label("reasoning_tokens"),
        sa.func.sum(t.c.cost_usd).label("cost_usd"),
        sa.func.count(t.c.cost_usd).label("priced_calls"),
        sa.func.sum(t.c.savings_usd).label("savings_usd"),
        total(sa.case((t.c.response_cache_hit == sa.true(), 1), else_=0)).label("response_cache_hits"),
        total(sa.case((t.c.outcome != "ok", 1), else_=0)).label("errors"),
        total(sa.case((t.c.estimated == sa.true(), 1), else_=0)).label("estimated_calls"),
    ]


def _finish(row: Mapping[Any, Any]) -> dict[str, Any]:
    calls = int(row["calls"] or 0)
    inp, read, write = int(row["input_tokens"]), int(row["cache_read_tokens"]), int(row["cache_write_tokens"])
    priced = int(row["priced_calls"] or 0)
    cost = None if priced == 0 else round(float(row["cost_usd"] or 0.0), 10)
    savings = None if row["savings_usd"] is None else round(float(row["savings_usd"]), 10)
    hits = int(row["response_cache_hits"] or 0)
    prompt = inp + read + write
    unpriced = calls - priced
    return {
        "calls": calls,
        "input_tokens": inp,
        "output_tokens": int(row["output_tokens"]),
        "cache_read_tokens": read,
        "cache_write_tokens": write,
        "reasoning_tokens": int(row["reasoning_tokens"]),
        "cost_usd": cost,
        "savings_usd": savings,
        "unpriced_calls": unpriced,
        "cost_label": cost_label(cost, unpriced) if calls else money(0),
        "cache_hit_rate": round(read / prompt, 6) if prompt else None,
        "response_cache_hits": hits,
        "response_cache_hit_rate": round(hits / calls, 6) if calls else None,
        "errors": int(row["errors"] or 0),
        "estimated_calls": int(row["estimated_calls"] or 0),
    }


def totals(conn: "sa.Connection", since: float | None = None, until: float | None = None) -> dict[str, Any]:
    import sqlalchemy as sa

    row = conn.execute(sa.select(*_aggregates()).where(*_where(since, until))).mappings().one()
    return _finish(row)


def breakdown(conn: "sa.Connection", by: str, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
    """One row per provider / model / agent / gateway key / day, the costliest first (days in order)."""
    import sqlalchemy as sa

    if by not in BREAKDOWNS:
        raise PeriodError(f"breakdown must be one of {', '.join(BREAKDOWNS)}, not {by!r}")
    t = _table()
    cols: list[Any] = [t.c[_COLUMN.get(by, by)]]
    if by == "model":
        cols.append(t.c.provider)
    query = sa.select(*cols, *_aggregates()).where(*_where(since, until)).group_by(*cols)
    if by == "day":
        query = query.order_by(t.c.day)
    else:
        query = query.order_by(sa.func.coalesce(sa.func.sum(t.c.cost_usd), -1.0).desc(), sa.func.count().desc(), cols[0])
    out: list[dict[str, Any]] = []
    for row in conn.execute(query).mappings():
        item = {by: row[_COLUMN.get(by, by)]}
        if by == "model":
            item["provider"] = row["provider"]
        item.update(_finish(row))
        out.append(item)
    return out


def series(conn: "sa.Connection", since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
    """Cost and savings per UTC day, every day of the period (for the chart)."""
    days = {d["day"]: d for d in breakdown(conn, "day", since, until)}
    if not days and since is None:
        return []
    first = datetime.fromtimestamp(since, tz=timezone.utc).date() if since is not None else \
        datetime.strptime(min(days), "%Y-%m-%d").date()
    last_ts = until - 1e-6 if until is not None else time.time()
    last = datetime.fromtimestamp(last_ts, tz=timezone.utc).date()
    if days:
        last = max(last, datetime.strptime(max(days), "%Y-%m-%d").date())
    out: list[dict[str, Any]] = []
    day = first
    while day <= last and len(out) < 3660:
        key = day.isoformat()
        d = days.get(key)
        out.append({
            "day": key,
            "calls": d["calls"] if d else 0,
            "cost_usd": d["cost_usd"] if d else 0.0,
            "savings_usd": (d["savings_usd"] or 0.0) if d else 0.0,
            "unpriced_calls": d["unpriced_calls"] if d else 0,
            "estimated_calls": d["estimated_calls"] if d else 0,
        })
        day += timedelta(days=1)
    return out


def _row_out(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "time": _iso(row["ts"]),
        "provider": row["provider"],
        "model": row["model"],
        "upstream_model": row["upstream_model"],
        "agent": row["agent"],
        "session": row["session"],
        "kind": row["kind"],
        "stream": bool(row["stream"]),
        "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"],
        "cache_read_tokens": row["cache_read_tokens"],
        "cache_write_tokens": row["cache_write_tokens"],
        "reasoning_tokens": row["reasoning_tokens"],
        "cost_usd": row["cost_usd"],
        "savings_usd": row["savings_usd"],
        "cost_label": cost_label(row["cost_usd"]),
        "response_cache_hit": bool(row["response_cache_hit"]),
        "latency_ms": row["latency_ms"],
        "ttft_ms": row["ttft_ms"],
        "outcome": row["outcome"],
        "key": row["key_name"],
        "estimated": bool(row["estimated"]),
    }


def recent_calls(conn: "sa.Connection", limit: int = 20, since: float | None = None,
                 until: float | None = None) -> list[dict[str, Any]]:
    import sqlalchemy as sa

    t = _table()
    query = sa.select(t).where(*_where(since, until)).order_by(t.c.ts.desc(), t.c.id.desc()).limit(max(0, limit))
    return [_row_out(r) for r in conn.execute(query).mappings()]


def csv_rows(conn: "sa.Connection", since: float | None = None, until: float | None = None) -> Iterator[list[Any]]:
    """The header, then every call of the period, oldest first."""
    import sqlalchemy as sa

    t = _table()
    yield list(CSV_COLUMNS)
    query = sa.select(t).where(*_where(since, until)).order_by(t.c.ts, t.c.id)
    for r in conn.execute(query).mappings():
        row = _row_out(r)
        yield [_csv_cell(row[c]) for c in CSV_COLUMNS]


def _csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet reads as data: plain decimals, no formulas.

    Floats are written in positional notation (`0.000099`, never `9.9e-05`). Text that
    starts with = + - @ (or a tab / carriage return) would run as a formula when the file is
    opened in a spreadsheet (OWASP "CSV injection"), so it gets a leading apostrophe.
    """
    if value is None:
        return ""
    if isinstance(value, float):
        from decimal import Decimal

        return format(Decimal(repr(value)), "f")  # the shortest exact digits, never an exponent
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_text(conn: "sa.Connection", since: float | None = None, until: float | None = None) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in csv_rows(conn, since, until):
        writer.writerow(row)
    return buf.getvalue()


def ledger_overview(conn: "sa.Connection") -> dict[str, Any]:
    """The whole ledger, whatever the period: how many calls and the first and last call's
    time (None when empty). Lets a page tell "nothing recorded yet" from "nothing in
    this period"."""
    import sqlalchemy as sa

    t = _table()
    row = conn.execute(sa.select(sa.func.count(), sa.func.min(t.c.ts), sa.func.max(t.c.ts))).one()
    return {"calls": int(row[0] or 0), "first": _iso(row[1]), "last": _iso(row[2])}


# --- the whole report -----------------------------------------------------------------------


def _engine(settings: Mapping[str, Any] | None) -> "sa.Engine":
    from .. import settings as settings_mod
    from .. import storage
    from .ledger import flush

    current = settings if settings is not None else settings_mod.load()
    flush(10, url=storage.database_url(current))  # this process's calls are in the database before we read it
    return storage.engine(settings=current)


def period(since: str | None = DEFAULT_SINCE, until: str | None = None, *, now: float | None = None) -> tuple[float | None, float | None]:
    """(start, end) in Unix seconds; a start that is not before the end is an error."""
    now = time.time() if now is None else now
    start, end = parse_when(since, now=now), parse_when(until, now=now, end=True)
    if start is not None and end is not None and start >= end:
        raise PeriodError(
            f"--since ({_iso(start)}) must come before --until ({_iso(end)}): swap them or widen the period"
        )
    return start, end


def report(
    settings: Mapping[str, Any] | None = None,
    since: str | None = DEFAULT_SINCE,
    until: str | None = None,
    *,
    recent: int = 20,
    engine: "sa.Engine | None" = None,
) -> dict[str, Any]:
    """Everything Settings → Usage shows, as one JSON-ready dict."""
    start, end = period(since, until)
    eng = engine if engine is not None else _engine(settings)
    with eng.connect() as conn:
        return {
            "period": {"since": _iso(start), "until": _iso(end), "timezone": "UTC"},
            "totals": totals(conn, start, end),
            "by_provider": breakdown(conn, "provider", start, end),
            "by_model": breakdown(conn, "model", start, end),
            "by_agent": breakdown(conn, "agent", start, end),
            "by_key": breakdown(conn, "key", start, end),
            "by_day": breakdown(conn, "day", start, end),
            "series": series(conn, start, end),
            "recent": recent_calls(conn, recent, start, end),
            "ledger": ledger_overview(conn),
        }
