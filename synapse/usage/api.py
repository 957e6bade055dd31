"""`GET /api/usage...`: the JSON the Settings → Usage page is built from.

Mount it in the web app with `app.include_router(synapse.usage.api.router)`.

    GET /api/usage                     everything: totals, by_provider, by_model, by_agent,
                                       by_key, by_day, series, recent, ledger  (?since=&until=&recent=20)
    GET /api/usage/summary             totals only
    GET /api/usage/breakdown/{by}      by = provider | model | agent | key | day
    GET /api/usage/series              cost and savings per day (chart)
    GET /api/usage/recent?limit=50     the latest calls
    GET /api/usage/export.csv          every call of the period as CSV

Totals, breakdown rows and series days carry `estimated_calls` (calls cut short whose
missing tokens are estimated, usage/estimate.py); each recent call and CSV row `estimated`.

`since` / `until`: YYYY-MM-DD, ISO date-time, 24h / 7d / 4w, or all (default since=30d),
UTC. A bad value answers 400 {"detail": "..."}. The numbers are the same as
`synapse usage --json`: both call `report.report`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from . import report as rep

__all__ = ["router"]

router = APIRouter(prefix="/api/usage", tags=["usage"])


def _period(since: str | None, until: str | None) -> tuple[float | None, float | None]:
    try:
        return rep.period(since, until)
    except rep.PeriodError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None


def _settings() -> Any:
    from .. import settings as settings_mod

    return settings_mod.load()


@router.get("")
def usage_report(
    since: str | None = Query(rep.DEFAULT_SINCE), until: str | None = None, recent: int = Query(20, ge=0, le=1000)
) -> dict[str, Any]:
    _period(since, until)
    return rep.report(_settings(), since, until, recent=recent)


@router.get("/summary")
def usage_summary(since: str | None = Query(rep.DEFAULT_SINCE), until: str | None = None) -> dict[str, Any]:
    start, end = _period(since, until)
    with rep._engine(_settings()).connect() as conn:
        return rep.totals(conn, start, end)


@router.get("/breakdown/{by}")
def usage_breakdown(by: str, since: str | None = Query(rep.DEFAULT_SINCE), until: str | None = None) -> list[dict[str, Any]]:
    if by not in rep.BREAKDOWNS:
        raise HTTPException(status_code=404, detail=f"no breakdown by {by!r}: use {', '.join(rep.BREAKDOWNS)}")
    start, end = _period(since, until)
    with rep._engine(_settings()).connect() as conn:
        return rep.breakdown(conn, by, start, end)


@router.get("/series")
def usage_series(since: str | None = Query(rep.DEFAULT_SINCE), until: str | None = None) -> list[dict[str, Any]]:
    start, end = _period(since, until)
    with rep._engine(_settings()).connect() as conn:
        return rep.series(conn, start, end)


@router.get("/recent")
def usage_recent(
    limit: int = Query(50, ge=1, le=1000), since: str | None = Query(rep.DEFAULT_SINCE), until: str | None = None
) -> list[dict[str, Any]]:
    start, end = _period(since, until)
    with rep._engine(_settings()).connect() as conn:
        return rep.recent_calls(conn, limit, start, end)


@router.get("/export.csv")
def usage_csv(since: str | None = Query(rep.DEFAULT_SINCE), until: str | None = None) -> Response:
    start, end = _period(since, until)
    with rep._engine(_settings()).connect() as conn:
        text = rep.csv_text(conn, start, end)
    return Response(
        content=text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="synapse-usage.csv"'},
    )
