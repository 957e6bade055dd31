"""`/api/keys`: the JSON behind Settings → API Keys (the web app's login and CSRF apply).

    GET    /api/keys             every key: name, prefix, created, last used, spend, budget, status
    POST   /api/keys             {name, models?, budget_usd?, expires_days?, rpm?} -> {key, info}: the only
                                 answer that ever holds the key itself
    DELETE /api/keys/{name}      revoke it

Bad input answers 400 {"detail": "...", "field": "..."}, the one error shape of /api.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

__all__ = ["router"]

router = APIRouter(prefix="/api/keys", tags=["keys"])


def _error(status: int, message: str, field: str = "") -> JSONResponse:
    from ..server.app import error

    return error(status, message, **({"field": field} if field else {}))


def _number(data: dict[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise ValueError(name)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(name) from None


@router.get("")
async def list_keys() -> Any:
    from . import keys

    return await asyncio.to_thread(keys.list_keys)


@router.post("")
async def create_key(request: Request) -> JSONResponse:
    import orjson

    from . import keys

    try:
        data = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError:
        return _error(400, "the request body is not valid JSON")
    if not isinstance(data, dict):
        return _error(400, "the request body must be a JSON object")
    models = data.get("models")
    if models is not None and not isinstance(models, (str, list)):
        return _error(400, "models must be comma-separated patterns such as claude-*,gpt-5*", "models")
    try:
        budget = _number(data, "budget_usd")
        days = _number(data, "expires_days")
        rpm_value = _number(data, "rpm")
    except ValueError as exc:
        return _error(400, f"{exc.args[0]} must be a number", str(exc.args[0]))
    if rpm_value is not None and not rpm_value.is_integer():
        return _error(400, "rpm must be a whole number of requests a minute", "rpm")
    rpm = int(rpm_value) if rpm_value is not None else None
    try:
        key, info = await asyncio.to_thread(keys.create, str(data.get("name") or ""), models, budget, days, None, rpm)
    except keys.KeyCommandError as exc:
        field = "name" if "name" in exc.message else "budget_usd" if "budget" in exc.message else \
            "expires_days" if "expires" in exc.message else "rpm" if "rpm" in exc.message else "models"
        return _error(400, exc.message, field)
    return JSONResponse({"key": key, "info": info}, status_code=201)


@router.delete("/{name}")
async def revoke_key(name: str) -> JSONResponse:
    from . import keys

    try:
        info = await asyncio.to_thread(keys.revoke, name)
    except keys.KeyCommandError as exc:
        return _error(404, exc.message)
    return JSONResponse(info)
