"""/api: the JSON API the pages use (and tests call directly).

    GET    /api/session                        CSRF token, user, whether a login is needed
    POST   /api/login, /api/logout
    GET    /api/providers                      every card: fields (secrets masked), status
    PUT    /api/providers/{id}                 save the card's fields (POST works too)
    DELETE /api/providers/{id}                 clear the card's settings
    POST   /api/providers/{id}/verify          check again
    GET    /api/providers/bedrock/inference-profiles
    GET    /api/models                         models of connected providers, grouped
    GET    /api/settings/model, PUT            the default model
    GET    /api/settings, PUT                  general settings

Saves and checks answer at once with the new state (`checking`); `?wait=true`
waits for the check to finish. Keys never leave the server: a saved key is
reported masked (`sk-ant-…a1b2`), an empty key field on save keeps the saved key.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .. import settings as settings_mod
from ..errors import SettingsError, SynapseError
from ..providers.catalog import PROVIDERS, CardField, ProviderSpec
from .app import error
from .auth import Session
from .status import StatusBoard
from .throttle import LoginThrottle

__all__ = ["router"]

router = APIRouter(prefix="/api")

_BY_ID = {p.id: p for p in PROVIDERS}
_MODEL_NAME = re.compile(r"^[^\s]{1,256}$")
#: General settings the page may change (checked by the settings schema).
_GENERAL = ("prompt_cache_enabled", "embedding_model", "mode")


class BadInput(Exception):
    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def _bad(exc: BadInput) -> JSONResponse:
    return error(400, exc.message, **({"field": exc.field} if exc.field else {}))


async def _json_object(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body.strip():
        return {}
    import orjson

    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadInput("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadInput("the request body must be a JSON object")
    return data


def _board(request: Request) -> StatusBoard:
    return request.app.state.board


def _load() -> settings_mod.Settings:
    return settings_mod.load()


def _spec(provider_id: str) -> ProviderSpec:
    spec = _BY_ID.get(provider_id)
    if spec is None:
        raise BadInput(f"unknown provider {provider_id!r}; known: {', '.join(_BY_ID)}")
    return spec


def _wants_wait(request: Request) -> bool:
    return request.query_params.get("wait", "").lower() in ("1", "true", "yes")


# --- session ----------------------------------------------------------------------------


@router.get("/session")
async def get_session(request: Request) -> dict[str, Any]:
    s: Session = request.state.session
    return {"csrf_token": s.csrf, "user": s.user, "login_required": request.state.login_required}


@router.post("/login")
async def login(request: Request) -> JSONResponse:
    try:
        data = await _json_object(request)
    except BadInput as exc:
        return _bad(exc)
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username.strip() or not password:
        return error(400, "enter your username and password")
    username = username.strip()
    throttle: LoginThrottle = request.app.state.throttle
    client: str = request.state.client
    stamp, wait = await throttle.aattempt(client, username)
    if wait:
        seconds = max(1, math.ceil(wait))
        return error(429, f"too many failed logins: wait {_duration(seconds)} and try again",
                     {"Retry-After": str(seconds)}, kind="throttled", retry_after=seconds)
    async with _password_checks(request):
        ok = await asyncio.to_thread(request.app.state.users.check, username, password)
    if not ok:
        return error(401, "wrong username or password", kind="login")
    await throttle.asucceeded(client, username, stamp)
    sessions = request.app.state.sessions
    old: Session = request.state.session
    await sessions.adrop(old.id)
    new = await sessions.alogin(username)
    request.state.session = new  # the security layer sets the new cookie
    return JSONResponse({"user": username, "csrf_token": new.csrf})


@router.post("/logout")
async def logout(request: Request) -> dict[str, Any]:
    sessions = request.app.state.sessions
    await sessions.adrop(request.state.session.id)
    new = sessions.anonymous()
    request.state.session = new
    return {"user": None, "csrf_token": new.csrf}


def _password_checks(request: Request) -> asyncio.Semaphore:
    """At most two scrypt checks at a time (16 MiB and ~50 ms of CPU each)."""
    state = request.app.state
    sem = getattr(state, "password_checks", None)
    if sem is None:
        sem = state.password_checks = asyncio.Semaphore(2)
    return sem


def _duration(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} s"
    return f"{math.ceil(seconds / 60)} minutes"


# --- providers --------------------------------------------------------------------------


def _field_view(f: CardField, s: settings_mod.Settings) -> dict[str, Any]:
    value = s.get(f.setting, "")
    value = "" if value is None else value
    view: dict[str, Any] = {
        "setting": f.setting,
        "label": f.label,
        "kind": f.kind,
        "required": f.required,
        "placeholder": f.placeholder,
        "help": f.help,
        "advanced": f.advanced,
        "source": s.source(f.setting),
    }
    if f.kind == "secret" or settings_mod.is_secret(f.setting):
        view["value"] = ""
        view["masked"] = settings_mod.mask(str(value)) if value else ""
        view["saved"] = bool(value)
    else:
        view["value"] = value if isinstance(value, (str, int, float, bool)) else str(value)
        view["saved"] = s.source(f.setting) == "file"
    return view


def _card(spec: ProviderSpec, s: settings_mod.Settings, board: StatusBoard) -> dict[str, Any]:
    status = board.status(spec, s)
    fields = [_field_view(f, s) for f in spec.fields]
    env = sorted({f["source"][4:] for f in fields if str(f["source"]).startswith("env:")})
    return {
        "id": spec.id,
        "label": spec.label,
        "local": spec.local,
        "key_hint": spec.key_hint if spec.key_setting and spec.needs_key else "",
        "console_url": spec.console_url,
        "console_label": spec.console_label,
        "route_prefix": spec.route_prefix,
        "fields": fields,
        "configured": board.configured(spec, s),
        "saved": any(f["saved"] for f in fields),
        "env": env,
        "status": status.as_dict(),
        "on_demand": spec.protocol == "huggingface",
        "loading": _hf_loading() if spec.protocol == "huggingface" else [],
    }


def _hf_loading() -> list[dict[str, Any]]:
    """Hugging Face model loads in this process (without importing transformers to ask)."""
    import sys

    module = sys.modules.get("synapse.providers.huggingface")
    return module.loading() if module is not None else []


def _providers_payload(request: Request) -> dict[str, Any]:
    s = _load()
    board = _board(request)
    cards = [_card(spec, s, board) for spec in PROVIDERS]
    return {"providers": cards, "pending": board.pending(), "model": s.get_str("model")}


async def _adopt(request: Request, specs: list[ProviderSpec] | None = None) -> None:
    """Scale mode: first take the checks other instances finished (one Redis round trip)."""
    board = _board(request)
    if board.shared is not None:
        await board.adopt(specs or list(PROVIDERS), _load())


@router.get("/providers")
async def list_providers(request: Request) -> dict[str, Any]:
    await _adopt(request)
    return _providers_payload(request)


@router.get("/providers/{provider_id}")
async def one_provider(request: Request, provider_id: str) -> JSONResponse:
    try:
        spec = _spec(provider_id)
    except BadInput as exc:
        return error(404, exc.message)
    await _adopt(request, [spec])
    return JSONResponse(_card(spec, _load(), _board(request)))


def _clean_value(spec: ProviderSpec, f: CardField, raw: Any) -> Any:
    """The card field's value as stored, checked by the settings schema (as `config set` is)."""
    try:
        return settings_mod.validate(f.setting, raw, label=f.label, strict=True)
    except SettingsError as exc:
        raise BadInput(str(exc), f.setting) from None


def _changes_for(spec: ProviderSpec, data: Mapping[str, Any], s: settings_mod.Settings) -> dict[str, Any]:
    values = data.get("values", data) if isinstance(data.get("values"), dict) else data
    fields = {f.setting: f for f in spec.fields}
    unknown = [k for k in values if k not in fields]
    if unknown:
        allowed = ", ".join(fields) or "none"
        raise BadInput(f"{spec.label} has no field {unknown[0]!r} (its fields: {allowed})", unknown[0])
    changes: dict[str, Any] = {}
    for setting, f in fields.items():
        if setting not in values:
            continue
        value = _clean_value(spec, f, values[setting])
        if f.kind == "secret" and value == "":
            continue  # empty key field: keep the saved key
        changes[setting] = value if value != "" else None
    for setting, f in fields.items():
        if not f.required:
            continue
        after = changes[setting] if setting in changes else s.get(setting, "")
        if after in (None, ""):
            what = "paste your key" if f.kind == "secret" else "fill it in"
            raise BadInput(f"{f.label} is required for {spec.label}: {what}", setting)
    return changes


async def _after_change(request: Request, spec: ProviderSpec, s: settings_mod.Settings, check: bool) -> JSONResponse:
    board = _board(request)
    if check and board.configured(spec, s):
        board.start(spec, s)
    if _wants_wait(request):
        await board.wait(spec, s)
    return JSONResponse(_card(spec, _load(), board))


@router.api_route("/providers/{provider_id}", methods=["PUT", "POST"])
async def save_provider(request: Request, provider_id: str) -> JSONResponse:
    try:
        spec = _spec(provider_id)
    except BadInput as exc:
        return error(404, exc.message)
    try:
        data = await _json_object(request)
        s = _load()
        changes = _changes_for(spec, data, s)
    except BadInput as exc:
        return _bad(exc)
    if spec.protocol == "huggingface":
        _board(request).start(spec, s, on_demand=True)
        return await _after_change(request, spec, s, check=False)
    try:
        s = settings_mod.update(changes) if changes else s
    except SettingsError as exc:
        return error(500, str(exc), kind="settings")
    return await _after_change(request, spec, s, check=True)


@router.delete("/providers/{provider_id}")
async def remove_provider(request: Request, provider_id: str) -> JSONResponse:
    try:
        spec = _spec(provider_id)
    except BadInput as exc:
        return error(404, exc.message)
    s = _load()
    changes: dict[str, Any] = {f.setting: None for f in spec.fields}
    if "embedding_model" in changes:
        # embedding_model is a general setting: clear it only when it points at this provider.
        from ..providers.routing import resolve

        current = s.get_str("embedding_model")
        try:
            keep = bool(current) and resolve(current, s, purpose="embed").spec.id != spec.id
        except SynapseError:
            keep = True
        if keep:
            changes.pop("embedding_model")
    board = _board(request)
    board.forget(spec.id)
    if changes:
        settings_mod.update(changes)
    return JSONResponse(_card(spec, _load(), board))


@router.post("/providers/{provider_id}/verify")
async def verify_provider(request: Request, provider_id: str) -> JSONResponse:
    try:
        spec = _spec(provider_id)
    except BadInput as exc:
        return error(404, exc.message)
    s = _load()
    board = _board(request)
    if spec.protocol == "huggingface":
        board.start(spec, s, on_demand=True)
    elif not board.configured(spec, s):
        card = _card(spec, s, board)
        return JSONResponse({**card, "detail": f"{spec.label} is not set up yet: fill in its fields and Save"}, status_code=400)
    else:
        board.start(spec, s)
    if _wants_wait(request):
        await board.wait(spec, s)
    return JSONResponse(_card(spec, _load(), board))


@router.get("/providers/bedrock/inference-profiles")
async def inference_profiles(request: Request) -> JSONResponse:
    spec = _BY_ID["bedrock"]
    s = _load()
    board = _board(request)
    if not board.configured(spec, s):
        return JSONResponse({"profiles": [], "detail": "save an API key and region first"})
    try:
        adapter = board.factory(spec, s)
        lister = getattr(adapter, "list_inference_profiles", None)
        if lister is None:
            return JSONResponse({"profiles": [], "detail": "this build cannot list inference profiles; type an id or ARN"})
        raw = await asyncio.wait_for(lister(), board.timeout)
    except Exception as exc:  # shown under the dropdown; typing a value still works
        from ..providers.base import redact

        return JSONResponse({"profiles": [], "detail": redact(str(exc) or type(exc).__name__, spec.configure(s).api_key)})
    profiles = []
    for p in raw or []:
        if isinstance(p, Mapping):
            pid = str(p.get("id") or p.get("inferenceProfileId") or "")
            arn = str(p.get("arn") or p.get("inferenceProfileArn") or "")
            name = str(p.get("name") or p.get("inferenceProfileName") or pid)
            if pid or arn:
                profiles.append({"id": pid or arn, "name": name, "arn": arn})
    return JSONResponse({"profiles": profiles, "detail": ""})


# --- models -----------------------------------------------------------------------------


@router.get("/models")
async def list_models(request: Request) -> dict[str, Any]:
    await _adopt(request)
    s = _load()
    board = _board(request)
    groups = []
    for spec in PROVIDERS:
        models = board.models(spec, s)
        if models is None:
            continue
        groups.append(
            {
                "provider": spec.id,
                "label": spec.label,
                "models": [{"id": m.id, "label": m.label, "embedding": m.embedding} for m in models],
            }
        )
    model = s.get_str("model")
    return {"model": model, "model_warning": _model_problem(model, s, board), "groups": groups,
            "pending": board.pending()}


def _model_problem(model: str, s: settings_mod.Settings, board: StatusBoard) -> str:
    """Why `model` cannot be used as things are set up now ("" when it can)."""
    if not model:
        return ""
    from ..providers.routing import resolve

    try:
        spec = resolve(model, s).spec
    except SettingsError:
        raise
    except SynapseError as exc:
        return str(exc)
    if spec.protocol == "huggingface" or board.configured(spec, s):
        return ""
    return (f"{model} needs {spec.label}, which is not connected: "
            f"fill in the {spec.label} card on Settings → Models and Save first")


@router.get("/settings/model")
async def get_model() -> dict[str, Any]:
    return {"model": _load().get_str("model")}


@router.put("/settings/model")
async def set_model(request: Request) -> JSONResponse:
    try:
        data = await _json_object(request)
        if "model" not in data:
            raise BadInput("send {\"model\": \"<model name>\"} (an empty name clears the default)", "model")
        model = data["model"]
        if model is None:
            model = ""
        if not isinstance(model, str):
            raise BadInput("model must be a string such as claude-sonnet-4-5", "model")
        model = model.strip()
        if model and not _MODEL_NAME.match(model):
            raise BadInput("a model name has no spaces, e.g. claude-sonnet-4-5 or oaic.my-model", "model")
        problem = _model_problem(model, _load(), _board(request))
        if problem:
            raise BadInput(problem, "model")
    except BadInput as exc:
        return _bad(exc)
    s = settings_mod.update({"model": model or None})
    return JSONResponse({"model": s.get_str("model")})


def _general(s: settings_mod.Settings) -> dict[str, Any]:
    return {
        "prompt_cache_enabled": s.get_bool("prompt_cache_enabled"),
        "embedding_model": s.get_str("embedding_model"),
        "mode": s.get_str("mode") or "local",
        "model": s.get_str("model"),
    }


@router.get("/settings")
async def get_settings() -> dict[str, Any]:
    return _general(_load())


@router.put("/settings")
async def put_settings(request: Request) -> JSONResponse:
    try:
        data = await _json_object(request)
        changes: dict[str, Any] = {}
        for key, value in data.items():
            if key == "model":
                return error(400, "set the default model with PUT /api/settings/model", field="model")
            if key not in _GENERAL:
                raise BadInput(f"{key!r} cannot be changed here; these can: {', '.join(_GENERAL)}", key)
            try:
                value = settings_mod.validate(key, value, strict=True)
            except SettingsError as exc:
                raise BadInput(str(exc), key) from None
            changes[key] = None if value == "" else value
    except BadInput as exc:
        return _bad(exc)
    s = settings_mod.update(changes) if changes else _load()
    return JSONResponse(_general(s))
