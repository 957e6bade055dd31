"""`/api/v1/agents/{agent}/memories`: an agent's memories over HTTP (the Memory page, programs).

    GET    /api/v1/agents/{agent}/memories                 list (?limit=&offset=&shared=true)
    GET    /api/v1/agents/{agent}/memories/search?q=&k=    hybrid search (&mode=vector|keyword, &all=true)
    POST   /api/v1/agents/{agent}/memories                 add: {"text": "..."} or {"texts": [...]}
    GET    /api/v1/agents/{agent}/memories/{id}            one memory
    PATCH  /api/v1/agents/{agent}/memories/{id}            edit: {"text": "..."}
    DELETE /api/v1/agents/{agent}/memories/{id}            forget it for good
    DELETE /api/v1/agents/{agent}/memories?confirm=forget  forget everything of the agent
    GET    /api/v1/agents/{agent}/memories/history         changes (?memory_id=)
    POST   /api/v1/agents/{agent}/memories/history/{hid}/restore
    GET    /api/v1/agents/{agent}/memories/export          JSON download
    GET    /api/v1/agents/{agent}/memories/reembed         re-embed progress
    POST   /api/v1/agents/{agent}/memories/reembed         start re-embedding (runs in the server)
    GET    /api/v1/agents/{agent}/memories/files           the files of Claude's memory tool (/memories)
    DELETE /api/v1/agents/{agent}/memories/files?path=     delete one of them
    GET    /api/v1/memories                                every scope: shared, then each agent, with counts

`{agent}` is an agent id or name, or `shared` / `*` for the memories every agent
shares. Forgetting everything erases the scope's memories, their history and (for an
agent) its memory-tool files. Errors are `{"detail": "..."}`: 400 for bad input, 404 for
an unknown agent or memory, 409 when a re-embed already runs. Who may call it: the rest of /api/v1's rule
(synapse/agents/access.py). Mounted with one `include_router` line.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ..agents.access import require_access
from ..errors import SynapseError
from .records import MemoryNotFound, MemoryStoreError

__all__ = ["router", "scopes_router"]

router = APIRouter(prefix="/api/v1/agents/{agent}/memories", tags=["memory"], dependencies=[Depends(require_access)])
scopes_router = APIRouter(prefix="/api/v1/memories", tags=["memory"], dependencies=[Depends(require_access)])


class AddBody(BaseModel):
    text: str | None = None
    texts: list[str] | None = None


class EditBody(BaseModel):
    text: str


def _store() -> Any:
    from .store import MemoryStore

    return MemoryStore()


def _fail(exc: SynapseError) -> HTTPException:
    status = 404 if isinstance(exc, MemoryNotFound) else 400 if isinstance(exc, MemoryStoreError) else 502
    return HTTPException(status_code=status, detail=str(exc))


async def _scope(store: Any, agent: str) -> str:
    from .store import resolve_agent

    if agent.strip().lower() == "shared":
        return "*"
    try:
        return await asyncio.to_thread(resolve_agent, agent, store.settings)
    except SynapseError as exc:
        raise _fail(exc) from None


@router.get("")
async def list_memories(agent: str, limit: int = Query(100, ge=1, le=10000), offset: int = Query(0, ge=0),
                        shared: bool = False) -> dict[str, Any]:
    store = _store()
    scope = await _scope(store, agent)
    memories = await asyncio.to_thread(store.memories, scope, include_shared=shared, limit=limit, offset=offset)
    total = await asyncio.to_thread(store.count, scope)
    return {"agent": scope, "total": total, "memories": [m.as_dict() for m in memories]}


@router.get("/search")
async def search_memories(agent: str, q: str = Query(..., min_length=1, max_length=4000),
                          k: int = Query(5, ge=1, le=100),
                          mode: Literal["hybrid", "vector", "keyword"] = "hybrid",
                          all: bool = False) -> dict[str, Any]:
    from .recall import search

    store = _store()
    scope = await _scope(store, agent)
    try:
        hits = await search(store, scope, q, k=k, mode=mode, threshold=None if all else "auto")
    except SynapseError as exc:
        raise _fail(exc) from None
    return {"agent": scope, "query": q, "results": [h.as_dict() for h in hits]}


@router.post("", status_code=201)
async def add_memories(agent: str, body: AddBody) -> dict[str, Any]:
    store = _store()
    scope = await _scope(store, agent)
    texts = ([body.text] if body.text is not None else []) + list(body.texts or [])
    if not texts:
        raise HTTPException(status_code=400, detail='give the memory as {"text": "..."} or {"texts": [...]}')
    try:
        stored = await store.insert(scope, texts)
    except SynapseError as exc:
        raise _fail(exc) from None
    return {"agent": scope, "memories": [dict(m.as_dict(), created=new) for m, new in stored]}


@router.delete("")
async def forget_everything(agent: str, confirm: str = "") -> dict[str, Any]:
    store = _store()
    scope = await _scope(store, agent)
    if confirm != "forget":
        raise HTTPException(status_code=400, detail="forgetting everything cannot be undone: add ?confirm=forget")
    deleted = await asyncio.to_thread(store.forget_all, scope)
    files = await asyncio.to_thread(_folder(store, scope).clear) if scope != "*" else 0
    return {"agent": scope, "deleted": deleted, "files_deleted": files}


def _folder(store: Any, scope: str) -> Any:
    from .files import MemoryFolder, folder_for

    return MemoryFolder(folder_for(store.settings, scope))


@router.get("/files")
async def memory_files(agent: str) -> dict[str, Any]:
    store = _store()
    scope = await _scope(store, agent)
    files = [] if scope == "*" else await asyncio.to_thread(_folder(store, scope).files)
    return {"agent": scope, "files": files}


@router.delete("/files")
async def delete_memory_file(agent: str, path: str = Query(..., min_length=1, max_length=1000)) -> dict[str, Any]:
    from ..agents.tools import ToolError

    store = _store()
    scope = await _scope(store, agent)
    if scope == "*":
        raise HTTPException(status_code=404, detail="the shared scope has no memory files")
    try:
        await asyncio.to_thread(_folder(store, scope).run, {"command": "delete", "path": path})
    except ToolError as exc:
        raise HTTPException(status_code=404 if "does not exist" in str(exc) else 400, detail=str(exc)) from None
    return {"deleted": path}


@router.get("/history")
async def memory_history(agent: str, memory_id: int | None = None,
                         limit: int = Query(100, ge=1, le=10000)) -> dict[str, Any]:
    store = _store()
    scope = await _scope(store, agent)
    entries = await asyncio.to_thread(store.history, memory_id=memory_id, agent=scope, limit=limit)
    return {"agent": scope, "history": [e.as_dict() for e in entries]}


@router.post("/history/{history_id}/restore")
async def restore_memory(agent: str, history_id: int) -> dict[str, Any]:
    store = _store()
    scope = await _scope(store, agent)
    try:
        entry = await asyncio.to_thread(store.history_entry, history_id)
        if entry.agent != scope:
            raise MemoryNotFound(f"no history entry {history_id} for this agent")
        return (await store.restore(history_id, actor="api")).as_dict()
    except SynapseError as exc:
        raise _fail(exc) from None


@router.get("/export")
async def export_memories(agent: str) -> JSONResponse:
    store = _store()
    scope = await _scope(store, agent)
    data = {"agent": scope, "memories": await asyncio.to_thread(store.export, scope)}
    name = "shared" if scope == "*" else scope
    return JSONResponse(data, headers={"Content-Disposition": f'attachment; filename="memories-{name}.json"'})


# --- re-embedding, one job per database and scope ---------------------------------------------------

_jobs: dict[tuple[str, str], dict[str, Any]] = {}


@router.get("/reembed")
async def reembed_status(agent: str) -> dict[str, Any]:
    from .reembed import status

    store = _store()
    scope = await _scope(store, agent)
    job = _jobs.get((store.url, scope))
    if job is not None and job["running"]:
        return job["view"]()
    try:
        view: dict[str, Any] = (await asyncio.to_thread(status, store, scope)).as_dict()
    except SynapseError as exc:
        raise _fail(exc) from None
    view["running"] = False
    if job is not None and job.get("error"):
        view["error"] = job["error"]
    return view


@router.post("/reembed", status_code=202)
async def reembed_start(agent: str) -> dict[str, Any]:
    from .reembed import Progress, reembed, status

    store = _store()
    scope = await _scope(store, agent)
    key = (store.url, scope)
    if key in _jobs and _jobs[key]["running"]:
        raise HTTPException(status_code=409, detail="a re-embed of these memories is already running")
    try:
        first = await asyncio.to_thread(status, store, scope)
    except SynapseError as exc:
        raise _fail(exc) from None
    job: dict[str, Any] = {"running": True, "progress": first, "error": None}

    def view() -> dict[str, Any]:
        p: Progress = job["progress"]
        return {**p.as_dict(), "running": job["running"], "error": job["error"]}

    job["view"] = view

    def seen(p: Progress) -> None:
        job["progress"] = p

    async def run() -> None:
        try:
            await reembed(store, scope, on_progress=seen)
        except Exception as exc:  # shown by GET /reembed; the next POST continues where it stopped
            job["error"] = str(exc)
        finally:
            job["running"] = False

    _jobs[key] = job
    job["task"] = asyncio.get_running_loop().create_task(run())
    return view()


@router.get("/{memory_id}")
async def get_memory(agent: str, memory_id: int) -> dict[str, Any]:
    store = _store()
    scope = await _scope(store, agent)
    try:
        return (await asyncio.to_thread(store.get, memory_id, agent=scope)).as_dict()
    except SynapseError as exc:
        raise _fail(exc) from None


@router.patch("/{memory_id}")
async def edit_memory(agent: str, memory_id: int, body: EditBody) -> dict[str, Any]:
    store = _store()
    scope = await _scope(store, agent)
    try:
        return (await store.update(memory_id, body.text, agent=scope, actor="api")).as_dict()
    except SynapseError as exc:
        raise _fail(exc) from None


@router.delete("/{memory_id}")
async def delete_memory(agent: str, memory_id: int) -> dict[str, Any]:
    store = _store()
    scope = await _scope(store, agent)
    try:
        gone = await store.delete(memory_id, hard=True, agent=scope, actor="api")
    except SynapseError as exc:
        raise _fail(exc) from None
    return {"deleted": gone.id}


@scopes_router.get("")
async def memory_scopes() -> dict[str, Any]:
    """The scopes the Memory page lists: shared first, then every agent (memory on or not), with counts."""
    from ..agents.store import AgentStore

    store = _store()

    def read() -> list[dict[str, Any]]:
        counts = {s["agent"]: s["count"] for s in store.scopes()}
        agents = AgentStore(store.settings).list()
        out = [{"agent": "*", "name": "Shared", "count": counts.pop("*", 0), "memory": True, "memory_tool": False}]
        for a in agents:
            out.append({"agent": a.id, "name": a.name, "count": counts.pop(a.id, 0), "memory": a.memory,
                        "memory_tool": a.memory_tool})
        # memories of agents deleted since: still there, still erasable
        out += [{"agent": scope, "name": f"deleted agent {scope}", "count": n, "memory": False, "memory_tool": False}
                for scope, n in sorted(counts.items())]
        return out

    return {"scopes": await asyncio.to_thread(read)}
