"""`synapse usage [--json] [--since DATE] [--until DATE] [--csv] [--by provider|model|agent|key|day]`.

The lead wires it into the main parser with `synapse.usage.cli.register(sub)`;
`python -m synapse.usage.cli ...` runs it on its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["cmd_usage", "main", "register"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "usage",
        help="calls, tokens, cost and prompt-cache savings (Settings → Usage)",
        description="Usage from the ledger: totals, breakdowns by provider, model, agent and day, "
        "recent calls. Periods are UTC.",
    )
    p.add_argument("--since", default="30d", help="YYYY-MM-DD, ISO date-time, 24h, 7d, 4w or all (default: 30d)")
    p.add_argument("--until", default=None, help="end of the period (a bare date includes that day)")
    p.add_argument("--json", action="store_true", help="print the same JSON as GET /api/usage")
    p.add_argument("--csv", action="store_true", help="print every call of the period as CSV (plain decimals; "
                   "cells starting with = + - @ are quoted with ' so spreadsheets do not run them)")
    from ..cli import int_range

    p.add_argument("--recent", type=int_range(0, 100_000), default=10, help="how many recent calls to list (default 10; 0: none)")
    p.add_argument("--by", choices=("provider", "model", "agent", "key", "day"),
                   help="only this breakdown (key: the gateway API key each call came with)")
    p.set_defaults(func=cmd_usage)
    return p


def _n(value: int) -> str:
    return f"{value:,}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _money(value: float | None) -> str:
    return "—" if value is None else f"${value:.4f}"


#: Marks a figure that holds estimated tokens (calls cut short: usage/estimate.py).
APPROX = "≈"


def _approx(text: str, estimated: Any) -> str:
    return APPROX + text if estimated else text


def _tokens(value: int, estimated: Any) -> str:
    """A token count, marked when it holds an estimate (a zero holds none)."""
    return _approx(_n(value), estimated and value)


def estimate_note(n: int) -> str:
    """The line under totals that holds estimated tokens."""
    return f"{APPROX} {n:,} call{'s' if n != 1 else ''} cut short: their tokens are estimated"


def _table(rows: list[dict[str, Any]], key: str) -> list[str]:
    lines = [f"  {key:<34} {'calls':>6} {'input':>10} {'output':>9} {'cache rd':>10} {'cache wr':>9} "
             f"{'hit rate':>8}  {'cost':>10}  {'saved':>9}"]
    for r in rows:
        name = r.get(key) or "(none)"
        if key == "model":
            name = f"{name} ({r['provider']})"
        est = r.get("estimated_calls")
        cost = r["cost_label"] if r["cost_usd"] is None or r["unpriced_calls"] else _money(r["cost_usd"])
        lines.append(
            f"  {name[:34]:<34} {r['calls']:>6} {_tokens(r['input_tokens'], est):>10} "
            f"{_tokens(r['output_tokens'], est):>9} "
            f"{_n(r['cache_read_tokens']):>10} {_n(r['cache_write_tokens']):>9} {_pct(r['cache_hit_rate']):>8}  "
            f"{_approx(cost, est and r['cost_usd']):>10}  {_money(r['savings_usd']):>9}"
        )
    return lines


_BREAKDOWNS = (("By provider", "provider"), ("By model", "model"), ("By agent", "agent"), ("By API key", "key"),
               ("By day", "day"))


def render(data: dict[str, Any], by: str | None = None) -> str:
    t = data["totals"]
    since = data["period"]["since"] or "the beginning"
    until = data["period"]["until"] or "now"
    out = [f"Usage from {since} to {until} (UTC)", ""]
    if not t["calls"]:
        out.append("no calls recorded in this period")
        return "\n".join(out) + "\n"
    est = t.get("estimated_calls")
    out += [
        f"calls            {_n(t['calls'])}  ({t['errors']} failed)",
        f"input tokens     {_tokens(t['input_tokens'], est)} uncached",
        f"cache read       {_n(t['cache_read_tokens'])}",
        f"cache write      {_n(t['cache_write_tokens'])}",
        f"output tokens    {_tokens(t['output_tokens'], est)}  (reasoning {_tokens(t['reasoning_tokens'], est)})",
        f"cost             {_approx(t['cost_label'], est and t['cost_usd'])}",
        f"saved by cache   {_money(t['savings_usd'])}",
        f"cache hit rate   {_pct(t['cache_hit_rate'])}",
        f"response cache   {t['response_cache_hits']} hits ({_pct(t['response_cache_hit_rate'])})",
    ]
    if est:
        out.append(estimate_note(est))
    for title, key in _BREAKDOWNS:
        if by is None or by == key:
            out += ["", f"{title}:"] + _table(data[f"by_{key}"], key)
    if data["recent"] and by is None:
        out += ["", "Recent calls:"]
        for r in data["recent"]:
            flag = " [response cache]" if r["response_cache_hit"] else ""
            flag += " [estimated]" if r.get("estimated") else ""
            est = r.get("estimated")
            out.append(
                f"  {r['time']}  {r['model']:<28} in {_tokens(r['input_tokens'], est)} "
                f"out {_tokens(r['output_tokens'], est)} "
                f"rd {_n(r['cache_read_tokens'])} wr {_n(r['cache_write_tokens'])}  {_approx(r['cost_label'], est and r['cost_usd'])}  "
                f"{r['outcome']}{flag}"
            )
    return "\n".join(out) + "\n"


def cmd_usage(args: argparse.Namespace) -> int:
    from . import report as rep

    try:
        start, end = rep.period(args.since, args.until)
    except rep.PeriodError as exc:
        print(f"synapse: {exc}", file=sys.stderr)
        return 2
    try:
        return _print_usage(args, start, end)
    except (ImportError, OSError) as exc:
        raise _database_error(exc) from None
    except Exception as exc:
        if type(exc).__module__.startswith("sqlalchemy"):
            raise _database_error(exc) from None
        raise


def _database_error(exc: BaseException) -> Exception:
    """A database that cannot be opened, said in one line (the URL's password hidden)."""
    from .. import settings, storage
    from ..errors import SettingsError
    from ..providers.base import redact

    url = settings.shown("database_url", storage.database_url(settings.load()))
    reason = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    hint = " (pip install 'psycopg[binary]')" if "psycopg" in reason else ""
    return SettingsError(f"cannot open the usage database {url}: {reason}{hint}; check database_url")


def _print_usage(args: argparse.Namespace, start: float | None, end: float | None) -> int:
    from . import report as rep

    if args.csv:
        with rep._engine(None).connect() as conn:
            sys.stdout.write(rep.csv_text(conn, start, end))
        return 0
    data = rep.report(None, args.since, args.until, recent=args.recent)
    by = getattr(args, "by", None)
    if args.json:
        sys.stdout.write(json.dumps(data[f"by_{by}"] if by else data, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render(data, by))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="synapse")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register(sub)
    args = parser.parse_args(argv)
    from ..errors import SynapseError

    try:
        return int(args.func(args) or 0)
    except SynapseError as exc:
        print(f"synapse: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
