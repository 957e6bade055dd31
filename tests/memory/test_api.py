"""/api/v1/agents/{agent}/memories over real HTTP (the app under uvicorn, local model)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synapse.server.app import create_app
from tests.browser.helpers import ApiClient, ServerThread

BASE = "/api/v1/agents/Assistant/memories"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    srv = ServerThread(create_app("127.0.0.1")).start()
    yield srv
    srv.stop()


@pytest.fixture
def api(server: ServerThread, fresh_db: Path) -> ApiClient:
    return ApiClient(server.url)


def test_add_list_search_edit_delete(api: ApiClient) -> None:
    r = api.post(BASE, {"texts": ["The user's sister Claire lives in Lyon.", "The user is allergic to peanuts."]})
    assert r.status == 201, r
    added = r.json()["memories"]
    assert [m["created"] for m in added] == [True, True]
    again = api.post(BASE, {"text": "the user is allergic to peanuts."}).json()["memories"][0]
    assert again["created"] is False and again["id"] == added[1]["id"]
    listed = api.get(BASE).json()
    assert listed["total"] == 2 and {m["text"] for m in listed["memories"]} == {m["text"] for m in added}
    found = api.get(BASE + "/search?q=which%20foods%20should%20I%20avoid&k=1").json()["results"]
    assert [h["id"] for h in found] == [added[1]["id"]] and {"id", "text", "score"} <= set(found[0])
    sister = added[0]["id"]
    r = api.request("PATCH", f"{BASE}/{sister}", {"text": "The user's sister Claire lives in Paris."})
    assert r.status == 200 and r.json()["text"] == "The user's sister Claire lives in Paris."
    history = api.get(f"{BASE}/history?memory_id={sister}").json()["history"]
    assert [(h["op"], h["actor"]) for h in history] == [("update", "api"), ("add", "manual")]
    restored = api.post(f"{BASE}/history/{history[0]['id']}/restore").json()
    assert restored["text"] == "The user's sister Claire lives in Lyon."
    assert api.delete(f"{BASE}/{sister}").json() == {"deleted": sister}
    assert api.get(f"{BASE}/{sister}").status == 404
    assert api.get(BASE).json()["total"] == 1


def test_shared_scope_export_and_forget_everything(api: ApiClient) -> None:
    api.post("/api/v1/agents/shared/memories", {"text": "The company is Northwind."})
    api.post(BASE, {"texts": ["one", "two"]})
    scope = api.get(BASE).json()["agent"]  # the agent's id once agents are stored, else its name
    mine = api.get(BASE + "?shared=true").json()["memories"]
    assert {m["agent"] for m in mine} == {"*", scope}
    r = api.get(BASE + "/export")
    assert r.headers["Content-Disposition"] == f'attachment; filename="memories-{scope}.json"'
    assert [m["text"] for m in r.json()["memories"]] == ["one", "two"]
    r = api.delete(BASE)
    assert r.status == 400 and r.json() == {"detail": "forgetting everything cannot be undone: add ?confirm=forget"}
    assert api.delete(BASE + "?confirm=forget").json() == {"agent": scope, "deleted": 2, "files_deleted": 0}
    assert api.get("/api/v1/agents/*/memories").json()["total"] == 1  # the shared scope stays


def test_bad_requests_say_what_to_fix(api: ApiClient) -> None:
    r = api.post(BASE, {})
    assert r.status == 400 and "give the memory as" in r.json()["detail"]
    r = api.post(BASE, {"text": "   "})
    assert r.status == 400 and r.json() == {"detail": "a memory needs some text"}
    r = api.request("PATCH", f"{BASE}/999", {"text": "x"})
    assert r.status == 404 and "no memory 999" in r.json()["detail"]
    m = api.post("/api/v1/agents/shared/memories", {"text": "everyone's"}).json()["memories"][0]
    assert api.delete(f"{BASE}/{m['id']}").status == 404  # not this agent's own
    assert api.get(f"/api/v1/agents/shared/memories/{m['id']}").json()["text"] == "everyone's"
    assert api.get(BASE + "/search?q=").status == 422
    r = api.post(BASE, {"text": "x"}, csrf=False)
    assert r.status == 403  # the pages' CSRF rule holds here too


def test_reembed_runs_in_the_server_and_reports_progress(api: ApiClient) -> None:
    api.post(BASE, {"texts": ["a", "b", "c"]})
    r = api.post(BASE + "/reembed")
    assert r.status == 202 and r.json()["total"] == 3
    deadline = time.monotonic() + 20
    state: dict[str, Any] = r.json()
    while state["running"] and time.monotonic() < deadline:
        time.sleep(0.05)
        state = api.get(BASE + "/reembed").json()
    assert state["running"] is False and state["done"] == state["total"] == 3 and state["fraction"] == 1.0


def test_scopes_and_the_memory_tool_files(api: ApiClient) -> None:
    from synapse import settings
    from synapse.agents.store import AgentStore
    from synapse.memory.files import MemoryFolder, folder_for

    spec = AgentStore().create({"name": "Noter", "memory_tool": True})
    api.post("/api/v1/agents/shared/memories", {"text": "The office is in Leeds."})
    api.post(f"/api/v1/agents/{spec.id}/memories", {"text": "The user is called Sam."})
    scopes = {s["name"]: s for s in api.get("/api/v1/memories").json()["scopes"]}
    assert list(scopes)[0] == "Shared" and scopes["Shared"]["count"] == 1
    assert (scopes["Noter"]["count"], scopes["Noter"]["memory"], scopes["Noter"]["memory_tool"]) == (1, False, True)
    assert scopes["Assistant"]["count"] == 0

    folder = MemoryFolder(folder_for(settings.load(), spec.id))
    folder.run({"command": "create", "path": "/memories/user.md", "file_text": "Sam likes <b>tea</b>."})
    folder.run({"command": "create", "path": "/memories/work/plan.md", "file_text": "ship it"})
    files = f"/api/v1/agents/{spec.id}/memories/files"
    assert api.get(files).json()["files"] == [
        {"path": "/memories/user.md", "size": 21, "text": "Sam likes <b>tea</b>."},
        {"path": "/memories/work/plan.md", "size": 7, "text": "ship it"}]
    assert api.delete(files + "?path=/memories/../settings.json").status == 400
    assert api.delete(files + "?path=/memories/nope.md").status == 404
    assert api.delete(files + "?path=/memories/work/plan.md").json() == {"deleted": "/memories/work/plan.md"}
    gone = api.delete(f"/api/v1/agents/{spec.id}/memories?confirm=forget").json()
    assert gone == {"agent": spec.id, "deleted": 1, "files_deleted": 1}
    assert not folder.root.exists() and api.get(files).json()["files"] == []
    assert (folder.root.parent.parent / "synapse.db").exists()  # only that folder went
