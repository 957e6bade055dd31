"""`synapse keys create|list|revoke`: API keys for the /v1 gateway.

Wired into the main parser with `synapse.gateway.cli.register(sub)`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["cmd_keys", "register"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("keys", help="API keys for the /v1 gateway (OpenAI / Anthropic compatible)",
                              description="Keys that clients send to /v1 as `Authorization: Bearer` or `x-api-key`.")
    sub = p.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    c = sub.add_parser("create", help="make a key; it is printed once, alone on stdout")
    c.add_argument("name", help="a name for the key (shown in Usage: by key)")
    c.add_argument("--models", help="comma-separated model patterns it may use, e.g. 'claude-*,gpt-5*' (default: all)")
    c.add_argument("--budget-usd", type=float, help="refuse calls once the key has spent this many US dollars")
    c.add_argument("--expires", type=float, metavar="DAYS", help="stop working after this many days")
    c.add_argument("--rpm", type=int, metavar="N", help="at most N requests a minute (across every instance in "
                   "scale mode; default: no limit)")
    c = sub.add_parser("list", help="name, prefix, created, last used, spend, budget, status")
    c.add_argument("--json", action="store_true", help="print one JSON array")
    c = sub.add_parser("revoke", help="stop a key from working")
    c.add_argument("name", help="the key's name, as `synapse keys list` shows it")
    p.set_defaults(func=cmd_keys)
    return p


def _money(value: float | None) -> str:
    return "—" if value is None else f"${value:.4f}"


def cmd_keys(args: argparse.Namespace) -> int:
    from . import keys

    if args.keys_action == "create":
        key, info = keys.create(args.name, args.models, args.budget_usd, args.expires, rpm=args.rpm)
        sys.stdout.write(key + "\n")
        sys.stdout.flush()
        limits = []
        if info["models"]:
            limits.append("models " + ",".join(info["models"]))
        if info["budget_usd"] is not None:
            limits.append(f"budget ${info['budget_usd']:g}")
        if info["expires"]:
            limits.append("expires " + info["expires"])
        if info["rpm"]:
            limits.append(f"{info['rpm']} requests a minute")
        note = f" ({'; '.join(limits)})" if limits else ""
        print(f"created key {info['name']!r}{note}. It is shown only now: store it where your client reads it.",
              file=sys.stderr)
        return 0
    if args.keys_action == "revoke":
        info = keys.revoke(args.name)
        print(f"revoked key {info['name']!r} ({info['prefix']})")
        return 0
    rows = keys.list_keys()
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        return 0
    if not rows:
        print("no keys yet: make one with `synapse keys create NAME`")
        return 0
    print(f"{'name':<20} {'prefix':<14} {'created':<21} {'last used':<21} {'spend':>10} {'budget':>10}  status")
    for r in rows:
        print(f"{r['name'][:20]:<20} {r['prefix']:<14} {r['created'] or '—':<21} {r['last_used'] or '—':<21} "
              f"{_money(r['spend_usd']):>10} {_money(r['budget_usd']):>10}  {r['status']}"
              + (f"  models {','.join(r['models'])}" if r["models"] else ""))
    return 0
