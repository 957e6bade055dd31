"""REST /api/v1: chat with agents, and the agents and sessions behind the Chat and Agents pages.

    POST   /api/v1/chat                  {message, agent?, session_id?, model?, images?}
                                         -> {response, session_id, agent, model, usage, cost_usd, tool_calls, stop_reason,
                                             memory?: {recalled, outcome}}
    POST   /api/v1/chat/stream           the same turn as Server-Sent Events (one `event:` per turn event)
    GET    /api/v1/agents                every agent;  POST creates one
    GET    /api/v1/agents/{id}           one agent (id, else name ignoring case); PUT edits, DELETE deletes
    POST   /api/v1/agents/{id}/duplicate
    GET    /api/v1/agents/export         all agents as JSON;  GET /api/v1/agents/{id}/export one
    POST   /api/v1/agents/import         {agents: [...]} or one agent (?replace=true updates same-named)
    GET    /api/v1/tools                 the built-in tools an agent may use
    GET    /api/v1/sessions              newest first (?q= title search, ?agent=, ?limit=)
    GET    /api/v1/sessions/{id}         the session, its totals and its messages
    PATCH  /api/v1/sessions/{id}         {title?, model?};  DELETE deletes it

Agent resolution: exact id, then name ignoring case; a named agent that does not exist
is a 404 listing the known agents; no agent named means the default ("Assistant").
Errors are {"detail": message, "kind": ...}. Access: see access.py.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ..errors import SynapseError
from .access import require_access
from .events import TurnDone, TurnError, event_dict
from .sessions import SessionStore
from .spec import AgentError, AgentSpec
from .store import AgentStore

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["v1"], dependencies=[Depends(require_access)])

MAX_MESSAGE = 200_000
MAX_IMAGES = 8
MAX_IMAGE_BYTES = 10 * 1024 * 1024
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")

#: TurnError / SynapseError kind -> HTTP status.
_STATUS = {
    "agent": 400, "agent_not_found": 404, "session_not_found": 404, "bad_request": 400, "context_too_long": 400,
    "unknown_model": 400, "cost_limit": 400, "error": 400, "settings": 500, "key_model": 403,
    "no_model": 503, "not_configured": 503, "authentication": 503, "permission": 503, "not_found": 503,
    "rate_limit": 503, "overloaded": 503, "unavailable": 503, "connection_failed": 503, "timeout": 503,
    "not_installed": 503,
}


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": message, **extra}, status_code=status)


def _fail(exc: SynapseError) -> JSONResponse:
    extra: dict[str, Any] = {"kind": exc.kind}
    if isinstance(exc, AgentError) and exc.field:
        extra["field"] = exc.field
    return _error(_STATUS.get(exc.kind, 500), str(exc), **extra)


async def _body(request: Request) -> dict[str, Any]:
    from ..server.api import BadInput, _json_object

    try:
        return await _json_object(request)
    except BadInput as exc:
        raise AgentError(exc.message) from None


def _agents() -> AgentStore:
    return AgentStore()


def _sessions() -> SessionStore:
    return SessionStore()


# --- chat ---------------------------------------------------------------------------------


def _resolve_agent(store: AgentStore, ref: Any, session_id: str | None, sessions: SessionStore) -> AgentSpec:
    if ref not in (None, ""):
        if not isinstance(ref, str):
            raise AgentError("agent must be an agent's id or name", "agent")
        return store.get(ref)
    if session_id:  # a session goes on with its own agent
        info = sessions.find(session_id)
        if info is not None and info.agent_id:
            found = store.find(info.agent_id)
            if found is not None:
                return found
    return store.default()


def _prompt(data: dict[str, Any]) -> Any:
    from ..types import ImagePart, Message, TextPart

    message = data.get("message")
    if not isinstance(message, str):
        raise AgentError('send {"message": "your text"}', "message")
    if len(message) > MAX_MESSAGE:
        raise AgentError(f"the message is too long (at most {MAX_MESSAGE:,} characters)", "message")
    images = data.get("images") or []
    if not isinstance(images, list) or len(images) > MAX_IMAGES:
        raise AgentError(f"images must be a list of at most {MAX_IMAGES} images", "images")
    parts: list[Any] = []
    if message.strip():
        parts.append(TextPart(message))
    for i, img in enumerate(images):
        media = img.get("media_type") if isinstance(img, dict) else None
        if media not in _IMAGE_TYPES:
            raise AgentError(f"image {i + 1}: media_type must be one of {', '.join(_IMAGE_TYPES)}", "images")
        try:
            raw = base64.b64decode(str(img.get("data") or ""), validate=True)
        except (binascii.Error, ValueError):
            raise AgentError(f"image {i + 1}: data must be base64", "images") from None
        if not raw or len(raw) > MAX_IMAGE_BYTES:
            raise AgentError(f"image {i + 1}: empty or larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB", "images")
        parts.append(ImagePart(media, data=raw))
    if not parts:
        raise AgentError("the message is empty: type something to send", "message")
    return Message("user", parts)


def _model_of(data: dict[str, Any]) -> str | None:
    model = data.get("model")
    if model in (None, ""):
        return None
    if not isinstance(model, str) or any(c.isspace() for c in model.strip()) or len(model) > 255:
        raise AgentError("model must be a model name without spaces", "model")
    return model.strip()


async def _turn_args(request: Request) -> tuple[Any, ...]:
    data = await _body(request)
    session_id = data.get("session_id") or None
    if session_id is not None and not isinstance(session_id, str):
        raise AgentError("session_id must be a string", "session_id")
    prompt = _prompt(data)
    model = _model_of(data)
    sessions = _sessions()
    spec = await asyncio.to_thread(_resolve_agent, _agents(), data.get("agent"), session_id, sessions)
    from .agent import resolve_tools

    return spec, resolve_tools(spec.tools), prompt, session_id, model, sessions


@router.post("/chat")
async def chat(request: Request) -> JSONResponse:
    from .loop import run_turn

    try:
        spec, tools, prompt, session_id, model, sessions = await _turn_args(request)
    except SynapseError as exc:
        return _fail(exc)
    done: TurnDone | None = None
    memory: dict[str, Any] = {}
    async for event in run_turn(spec, tools, prompt, session_id=session_id, model=model, stream=False, sessions=sessions,
                                api_key=getattr(request.state, "api_key", None)):
        if isinstance(event, TurnError):
            return _error(_STATUS.get(event.kind, 500), event.message, kind=event.kind, session_id=event.session_id)
        if isinstance(event, TurnDone):
            done = event
        elif event.type == "memory_recalled":
            memory["recalled"] = event_dict(event)["memories"]
        elif event.type == "memory":
            memory["outcome"] = {k: v for k, v in event_dict(event).items() if k != "type"}
    assert done is not None
    body = {
        "response": done.text, "session_id": done.session_id, "agent": spec.name, "agent_id": spec.id,
        "model": done.model, "usage": done.usage.as_dict(), "cost_usd": done.cost_usd, "tool_calls": done.tool_calls,
        "stop_reason": done.stop_reason, "message": done.message,
    }
    if memory:  # agents with memory on: what was recalled, and what the turn changed (after the reply)
        body["memory"] = memory
    return JSONResponse(body)


def sse(event: dict[str, Any]) -> bytes:
    import orjson

    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


@router.post("/chat/stream")
async def chat_stream(request: Request) -> Any:
    """The turn's events as SSE. Closing the connection stops the turn (and the upstream call)."""
    from .loop import run_turn

    try:
        spec, tools, prompt, session_id, model, sessions = await _turn_args(request)
    except SynapseError as exc:
        return _fail(exc)

    async def events() -> AsyncIterator[bytes]:
        turn = run_turn(spec, tools, prompt, session_id=session_id, model=model, stream=True, sessions=sessions,
                        api_key=getattr(request.state, "api_key", None))
        async with _closing(turn):
            async for event in turn:
                yield sse(event_dict(event))

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _closing(agen: Any) -> Any:
    from contextlib import aclosing

    return aclosing(agen)


# --- agents -------------------------------------------------------------------------------


def _agent_view(spec: AgentSpec) -> dict[str, Any]:
    return spec.as_dict()


@router.get("/agents")
async def list_agents() -> Any:
    try:
        agents = await asyncio.to_thread(_agents().list)
    except SynapseError as exc:
        return _fail(exc)
    return {"agents": [_agent_view(a) for a in agents]}


@router.post("/agents")
async def create_agent(request: Request) -> Any:
    try:
        data = await _body(request)
        spec = await asyncio.to_thread(_agents().create, data)
    except SynapseError as exc:
        return _fail(exc)
    return JSONResponse(_agent_view(spec), status_code=201)


@router.get("/agents/export")
async def export_agents() -> Any:
    return await asyncio.to_thread(_agents().export)


@router.post("/agents/import")
async def import_agents(request: Request) -> Any:
    replace = request.query_params.get("replace", "").lower() in ("1", "true", "yes")
    try:
        data = await _body(request)
        specs = await asyncio.to_thread(_agents().import_, data, replace=replace)
    except SynapseError as exc:
        return _fail(exc)
    return {"imported": [_agent_view(s) for s in specs]}


@router.get("/agents/{ref}")
async def get_agent(ref: str) -> Any:
    try:
        return _agent_view(await asyncio.to_thread(_agents().get, ref))
    except SynapseError as exc:
        return _fail(exc)


@router.get("/agents/{ref}/export")
async def export_agent(ref: str) -> Any:
    try:
        return await asyncio.to_thread(_agents().export, ref)
    except SynapseError as exc:
        return _fail(exc)


@router.put("/agents/{ref}")
async def edit_agent(ref: str, request: Request) -> Any:
    try:
        data = await _body(request)
        return _agent_view(await asyncio.to_thread(_agents().update, ref, data))
    except SynapseError as exc:
        return _fail(exc)


@router.post("/agents/{ref}/duplicate")
async def duplicate_agent(ref: str) -> Any:
    try:
        return JSONResponse(_agent_view(await asyncio.to_thread(_agents().duplicate, ref)), status_code=201)
    except SynapseError as exc:
        return _fail(exc)


@router.delete("/agents/{ref}")
async def delete_agent(ref: str) -> Any:
    try:
        spec = await asyncio.to_thread(_agents().delete, ref)
    except SynapseError as exc:
        return _fail(exc)
    return {"deleted": spec.id, "name": spec.name}


@router.get("/tools")
async def list_tools() -> Any:
    from .builtin_tools import builtin_tools

    notes = {"http_get": "fetches public web pages as text (off unless you enable it)"}
    return {"tools": [{"name": t.name, "description": t.description, "note": notes.get(t.name, ""),
                       "parameters": t.parameters} for t in builtin_tools().values()]}


# --- sessions -----------------------------------------------------------------------------


def _message_view(row: Any) -> dict[str, Any]:
    """A stored message as the Chat page shows it (images as a count, never their bytes)."""
    parts = row.message.content
    return {
        "seq": row.seq, "kind": row.kind, "role": row.message.role,
        "text": "".join(p.text for p in parts if p.type == "text"),
        "images": sum(1 for p in parts if p.type == "image"),
        "tool_calls": [{"id": p.id, "name": p.name, "arguments": p.arguments} for p in parts if p.type == "tool_call"],
        "tool_results": [{"tool_call_id": p.tool_call_id, "name": p.name, "content": p.content, "is_error": p.is_error}
                         for p in parts if p.type == "tool_result"],
        "reasoning": row.meta.get("reasoning", ""),
        "meta": {k: v for k, v in row.meta.items() if k != "reasoning"},
        "created_at": row.created_at,
    }


@router.get("/sessions")
async def list_sessions(q: str = "", agent: str = "", limit: int = 200) -> Any:
    try:
        agent_id = None
        if agent:
            agent_id = (await asyncio.to_thread(_agents().get, agent)).id
        infos = await asyncio.to_thread(_sessions().list, query=q[:200], agent_id=agent_id, limit=max(1, min(limit, 1000)))
    except SynapseError as exc:
        return _fail(exc)
    return {"sessions": [i.as_dict() for i in infos]}


@router.get("/sessions/{session_id}")
async def get_session(session_id: str) -> Any:
    store = _sessions()

    def load() -> dict[str, Any]:
        info = store.get(session_id)
        info.totals = store.totals(session_id)
        rows = store.messages(session_id)
        return {**info.as_dict(), "messages": [_message_view(r) for r in rows]}

    try:
        return await asyncio.to_thread(load)
    except SynapseError as exc:
        return _fail(exc)


@router.patch("/sessions/{session_id}")
async def edit_session(session_id: str, request: Request) -> Any:
    try:
        data = await _body(request)
        unknown = [k for k in data if k not in ("title", "model")]
        if unknown:
            raise AgentError(f"a session has no field {unknown[0]!r} to change (title, model)", unknown[0])
        title = data.get("title")
        if title is not None and (not isinstance(title, str) or not title.strip()):
            raise AgentError("title must be non-empty text", "title")
        model = data.get("model")
        if model is not None:
            model = _model_of({"model": model}) or ""
        info = await asyncio.to_thread(_sessions().update, session_id, title=title, model=model)
    except SynapseError as exc:
        return _fail(exc)
    return info.as_dict()


@router.delete("/sessions/{session_id}")
async def delete_session(session_id: str) -> Any:
    try:
        await asyncio.to_thread(_sessions().delete, session_id)
    except SynapseError as exc:
        return _fail(exc)
    return {"deleted": session_id}


