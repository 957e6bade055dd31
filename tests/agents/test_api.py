"""REST /api/v1 over real HTTP against an in-process server and the Anthropic fake."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from synapse.agents import access
from synapse.agents.sessions import SessionStore
from synapse.server.app import create_app
from synapse.server.auth import UserStore
from tests.browser.helpers import ApiClient, Reply, ServerThread
from tests.fakes.base import FakeToolCall

from .conftest import Proto

pytestmark = pytest.mark.database


@pytest.fixture
def server(use_proto: Any) -> Iterator[tuple[ServerThread, Proto]]:
    proto = use_proto("anthropic")
    srv = ServerThread(create_app()).start()
    yield srv, proto
    srv.stop()


def program(srv: ServerThread, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
    """A program's request: no cookie, no CSRF token, no Origin."""
    return ApiClient(srv.url, origin=False).request(method, path, body, csrf=False, headers=headers)


def sse_events(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for block in raw.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines:
            data = json.loads(lines["data"])
            assert lines["event"] == data["type"]
            out.append(data)
    return out


def test_chat_with_the_default_agent_then_continue_the_session(server: Any) -> None:
    srv, proto = server
    proto.fake.reply(proto.reply(tool_calls=[FakeToolCall("toolu_1", "calculator", {"expression": "6*7"})]),
                     proto.reply(text="It is 42."))
    r = program(srv, "POST", "/api/v1/chat", {"message": "What is 6*7?"})
    assert r.status == 200, r
    d = r.json()
    assert d["response"] == "It is 42." and d["agent"] == "Assistant" and d["model"] == "claude-sonnet-4-5"
    assert d["tool_calls"] == [{"id": "toolu_1", "name": "calculator", "arguments": {"expression": "6*7"},
                                "result": "42", "is_error": False}]
    assert d["usage"]["input_tokens"] > 0 and d["cost_usd"] > 0 and d["session_id"].startswith("s-")
    r2 = program(srv, "POST", "/api/v1/chat", {"message": "Thanks", "session_id": d["session_id"]})
    assert r2.status == 200 and r2.json()["session_id"] == d["session_id"]
    s = program(srv, "GET", f"/api/v1/sessions/{d['session_id']}").json()
    assert s["title"] == "What is 6*7?" and s["agent"] == "Assistant" and s["calls"] == 3
    assert [m["role"] for m in s["messages"]] == ["user", "assistant", "user", "assistant", "user", "assistant"]
    assert s["messages"][2]["tool_results"][0]["content"] == "42" and s["cost_usd"] > 0
    listed = program(srv, "GET", "/api/v1/sessions").json()["sessions"]
    assert [x["id"] for x in listed] == [d["session_id"]]


def test_agent_resolution_id_then_name_and_a_404_that_lists_agents(server: Any) -> None:
    srv, proto = server
    created = program(srv, "POST", "/api/v1/agents", {"name": "Pirate", "system_prompt": "Arr.", "model": "claude-haiku-4-5"})
    assert created.status == 201, created
    pid = created.json()["id"]
    assert program(srv, "POST", "/api/v1/chat", {"message": "hi", "agent": "pirate"}).json()["agent"] == "Pirate"
    assert proto.fake.last.json()["model"] == "claude-haiku-4-5" and proto.fake.last.json()["system"][0]["text"] == "Arr."
    assert program(srv, "POST", "/api/v1/chat", {"message": "hi", "agent": pid}).json()["agent_id"] == pid
    assert program(srv, "POST", "/api/v1/chat", {"message": "hi", "agent": pid, "model": "claude-opus-4-5"}).json()["model"] == "claude-opus-4-5"
    missing = program(srv, "POST", "/api/v1/chat", {"message": "hi", "agent": "Ghost"})
    assert missing.status == 404 and missing.json()["detail"] == "no agent 'Ghost'; known agents: Assistant, Pirate"
    assert program(srv, "GET", "/api/v1/agents/PIRATE").json()["id"] == pid


@pytest.mark.parametrize(("body", "status", "detail"), [
    ({}, 400, 'send {"message": "your text"}'),
    ({"message": "   "}, 400, "the message is empty"),
    ({"message": "hi", "model": "two words"}, 400, "model must be a model name without spaces"),
    ({"message": "hi", "session_id": "bad id!"}, 400, "a session id is 1-64 letters"),
    ({"message": "hi", "images": [{"media_type": "image/tiff", "data": "AA=="}]}, 400, "media_type must be one of"),
])
def test_bad_chat_requests_get_a_detail_that_says_what_to_fix(server: Any, body: Any, status: int, detail: str) -> None:
    srv, _ = server
    r = program(srv, "POST", "/api/v1/chat", body)
    assert r.status == status and detail in r.json()["detail"], r


def test_no_provider_configured_is_a_503_that_says_where_to_fix_it(synapse_env: Any) -> None:
    srv = ServerThread(create_app()).start()
    try:
        r = program(srv, "POST", "/api/v1/chat", {"message": "hi"})
    finally:
        srv.stop()
    assert r.status == 503 and "Settings → Models" in r.json()["detail"] and r.json()["kind"] == "no_model"


def test_stream_sends_the_turn_events_as_sse(server: Any) -> None:
    srv, proto = server
    proto.fake.reply(proto.reply(reasoning="Hmm.", tool_calls=[FakeToolCall("toolu_2", "calculator", {"expression": "2+2"})]),
                     proto.reply(text="Four."))
    r = program(srv, "POST", "/api/v1/chat/stream", {"message": "2+2?"})
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(r.body)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert {"reasoning", "tool_call_delta", "tool_call", "tool_result", "usage", "text"} <= set(kinds)
    assert events[-1]["text"] == "Four." and events[-1]["usage"]["output_tokens"] > 0


def test_closing_the_stream_stops_the_turn_and_the_upstream(server: Any) -> None:
    srv, proto = server
    proto.fake.reply(proto.reply(text="word " * 500, event_delay=0.02))
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.request("POST", "/api/v1/chat/stream", body=json.dumps({"message": "Talk"}),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    seen = b""
    while seen.count(b"event: text") < 5:
        seen += resp.read1(4096)
    session = sse_events(seen.rsplit(b"\n\n", 1)[0] + b"\n\n")[0]["session_id"]
    conn.sock.close()  # the Stop button / a dropped connection
    conn.close()
    deadline = time.monotonic() + 5
    while not proto.fake.aborted and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proto.fake.aborted == 1
    while time.monotonic() < deadline:
        rows = SessionStore().messages(session)
        if rows and rows[-1].message.role == "assistant":
            break
        time.sleep(0.02)
    assert rows[-1].meta.get("stopped") is True and rows[-1].message.text.startswith("word word")


def test_agents_crud_export_import_and_tools(server: Any) -> None:
    srv, _ = server
    c = ApiClient(srv.url)  # the Agents page: cookie + CSRF
    bad = c.post("/api/v1/agents", {"name": "X", "tools": ["rm"]})
    assert bad.status == 400 and bad.json()["field"] == "tools" and "unknown tool 'rm'" in bad.json()["detail"]
    a = c.post("/api/v1/agents", {"name": "Writer", "tools": ["calculator"], "max_turns": 5}).json()
    assert c.put(f"/api/v1/agents/{a['id']}", {"description": "Writes."}).json()["description"] == "Writes."
    dup = c.post(f"/api/v1/agents/{a['id']}/duplicate").json()
    assert dup["name"] == "Writer (copy)"
    assert c.request("DELETE", f"/api/v1/agents/{dup['id']}").json()["deleted"] == dup["id"]
    exported = c.get(f"/api/v1/agents/{a['id']}/export").json()
    assert exported["agents"][0]["name"] == "Writer"
    assert c.post("/api/v1/agents/import", exported).status == 400
    assert c.post("/api/v1/agents/import?replace=true", exported).json()["imported"][0]["name"] == "Writer"
    all_agents = c.get("/api/v1/agents/export").json()["agents"]
    assert [x["name"] for x in all_agents] == ["Assistant", "Writer"]
    assert [t["name"] for t in c.get("/api/v1/tools").json()["tools"]] == ["current_time", "calculator", "http_get"]


def test_sessions_rename_search_override_and_delete(server: Any) -> None:
    srv, proto = server
    c = ApiClient(srv.url)
    sid = c.post("/api/v1/chat", {"message": "Plan a trip to Lisbon"}).json()["session_id"]
    assert c.request("PATCH", f"/api/v1/sessions/{sid}", {"title": "Lisbon", "model": "claude-haiku-4-5"}).json()["title"] == "Lisbon"
    c.post("/api/v1/chat", {"message": "Go on", "session_id": sid})
    assert proto.fake.last.json()["model"] == "claude-haiku-4-5"  # the session's model override
    assert [s["id"] for s in c.get("/api/v1/sessions?q=lisb").json()["sessions"]] == [sid]
    assert c.get("/api/v1/sessions?q=nothing").json()["sessions"] == []
    assert c.request("PATCH", f"/api/v1/sessions/{sid}", {"colour": 1}).status == 400
    assert c.request("DELETE", f"/api/v1/sessions/{sid}").status == 200
    r = c.get(f"/api/v1/sessions/{sid}")
    assert r.status == 404 and "no session" in r.json()["detail"]


def test_a_cross_site_request_is_refused(server: Any) -> None:
    srv, _ = server
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        r = ApiClient(srv.url, origin=False).request("POST", "/api/v1/chat", {"message": "hi"}, csrf=False, headers=headers)
        assert r.status == 403, r
    r = ApiClient(srv.url, origin=False).request("POST", "/api/v1/chat", raw=b'{"message": "hi"}', csrf=False,
                                                 headers={"Content-Type": "text/plain"})
    assert r.status == 403  # a simple (no-preflight) cross-site form post cannot ride on it


@pytest.fixture
def remote(use_proto: Any, synapse_env: Any) -> Iterator[tuple[ServerThread, Proto]]:
    """A server as if bound off loopback: a login for the pages, API keys for programs."""
    proto = use_proto("anthropic")
    users = UserStore(synapse_env / "users.json")
    users.set("admin", "correct horse battery")
    srv = ServerThread(create_app(require_login=True, users=users)).start()
    yield srv, proto
    srv.stop()


def test_off_loopback_programs_need_an_api_key(remote: Any) -> None:
    from synapse.gateway import keys
    from synapse.usage import ledger

    srv, _ = remote
    r = program(srv, "POST", "/api/v1/chat", {"message": "hi"})
    assert r.status == 401 and "Authorization: Bearer" in r.json()["detail"]
    r = program(srv, "GET", "/api/v1/agents", headers={"Authorization": "Bearer sk-wrong"})
    assert r.status == 401 and "invalid API key" in r.json()["detail"] and "sk-wrong" not in r.text
    good, _ = keys.create("ci-bot")
    r = program(srv, "POST", "/api/v1/chat", {"message": "hi"}, headers={"Authorization": f"Bearer {good}"})
    assert r.status == 200 and r.json()["response"] == "You said: hi"
    ledger.flush()
    assert [k["name"] for k in keys.list_keys() if k["spend_usd"]] == ["ci-bot"]  # the turn is billed to the key
    keys.revoke("ci-bot")
    keys._forget(None)
    r = program(srv, "GET", "/api/v1/agents", headers={"Authorization": f"Bearer {good}"})
    assert r.status == 401 and "revoked" in r.json()["detail"] and good not in r.text


def test_a_keys_model_patterns_and_budget_hold_on_the_rest_api(remote: Any) -> None:
    from synapse.gateway import keys
    from synapse.usage import ledger

    srv, _ = remote
    narrow, _ = keys.create("gpt-only", models="gpt-*")
    r = program(srv, "POST", "/api/v1/chat", {"message": "hi"}, headers={"Authorization": f"Bearer {narrow}"})
    assert r.status == 403 and r.json()["kind"] == "key_model" and "gpt-*" in r.json()["detail"]
    tiny, _ = keys.create("tiny", budget_usd=0.000001)
    r = program(srv, "POST", "/api/v1/chat", {"message": "hi"}, headers={"Authorization": f"Bearer {tiny}"})
    assert r.status == 200  # nothing spent yet
    ledger.flush()  # the turn's cost reaches the key's own account (no waiting for a ledger re-read)
    r = program(srv, "POST", "/api/v1/chat", {"message": "hi"}, headers={"Authorization": f"Bearer {tiny}"})
    assert r.status == 429 and "budget" in r.json()["detail"]


def test_off_loopback_a_logged_in_page_uses_its_session(remote: Any) -> None:
    srv, _ = remote
    c = ApiClient(srv.url)
    assert c.get("/api/v1/agents").status == 401
    login = c.post("/api/login", {"username": "admin", "password": "correct horse battery"})
    assert login.status == 200
    c.csrf = login.json()["csrf_token"]
    assert c.get("/api/v1/agents").status == 200
    assert c.post("/api/v1/chat", {"message": "hi"}).status == 200
    assert c.post("/api/v1/chat", {"message": "hi"}, csrf=False).status == 403  # the page still needs its CSRF token


def test_images_are_sent_to_the_model_and_counted_in_the_stored_history(server: Any) -> None:
    import base64

    srv, proto = server
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nfake-image-bytes").decode()
    r = program(srv, "POST", "/api/v1/chat", {"message": "What is this?", "images": [{"media_type": "image/png", "data": png}]})
    assert r.status == 200, r
    content = proto.fake.last.json()["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "What is this?"}
    assert content[1]["type"] == "image" and content[1]["source"] == {"type": "base64", "media_type": "image/png", "data": png}
    first = program(srv, "GET", f"/api/v1/sessions/{r.json()['session_id']}").json()["messages"][0]
    assert first["images"] == 1 and "data" not in json.dumps(first)
