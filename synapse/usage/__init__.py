"""Usage: the ledger of every provider call, prices, reports, cost limits.

    ledger.py   queue + background batch writer (the call path only queues)
    prices.py   cost and savings from genai-prices
    report.py   totals, breakdowns, series, recent calls, CSV
    limits.py   max_total_cost_usd
    api.py      FastAPI router for GET /api/usage...
    cli.py      `synapse usage`

Importing this package is cheap; the heavy libraries load in the writer thread or
when a report is asked for.
"""

from __future__ import annotations

from .ledger import flush, record

__all__ = ["flush", "record"]
