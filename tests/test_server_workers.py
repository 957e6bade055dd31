"""Several `synapse serve` processes on one data folder agree on tokens, logins and attempts.

The reproduction: `synapse serve --workers 2` and 20 saves made as the Models page makes
them (GET the page for its token, PUT with it): 13 to 17 of the 20 failed with 403, the
token having come from the other worker. Two single-worker servers on one data folder
then show, deterministically, what the workers of one server share: a login made on one
holds on the other, a logout or `synapse user remove` ends it on both within about a
second, failed logins are counted together, and a restart keeps all of it.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from synapse.server.auth import UserStore
from tests.browser.helpers import ApiClient, Reply, ServeProcess

PASSWORD = "correct horse battery"
_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def wait_until_serving(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ApiClient(url).get("/api/session", timeout=2).status == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, "the server did not answer"
        time.sleep(0.1)


def written(pid: str) -> int:
    """Bytes a process has written so far (its answers, on a worker)."""
    text = Path(f"/proc/{pid}/io").read_text()
    return int(re.search(r"^wchar: (\d+)$", text, re.M).group(1))  # type: ignore[union-attr]


def test_twenty_saves_through_two_workers_all_succeed(synapse_env: Path) -> None:
    srv = ServeProcess(synapse_env, workers=2).start()
    try:
        wait_until_serving(srv.url)
        assert srv.proc is not None
        workers = subprocess.run(["pgrep", "-P", str(srv.proc.pid)], capture_output=True, text=True).stdout.split()
        before = {pid: written(pid) for pid in workers}
        statuses = []
        for i in range(20):
            api = ApiClient(srv.url)
            page = api.get("/settings/models")  # the page, with its token
            api.csrf = _TOKEN.search(page.text).group(1)  # type: ignore[union-attr]
            statuses.append(api.put("/api/settings", {"prompt_cache_enabled": i % 2 == 0}).status)
        assert statuses == [200] * 20, srv.output()
        grew = [pid for pid in workers if written(pid) - before[pid] > len(page.body)]
        assert len(grew) >= 2, "one worker answered everything: the test proved nothing"
        api = ApiClient(srv.url)
        assert len({api.refresh_csrf() for _ in range(10)}) == 1  # one cookie, one token, any worker
    finally:
        srv.stop()


# --- two servers, one data folder ------------------------------------------------------------------


@pytest.fixture
def pair(synapse_env: Path) -> Iterator[list[ServeProcess]]:
    """Two servers beyond loopback (so a login is needed) on one data folder."""
    UserStore(synapse_env / "users.json").set("admin", PASSWORD)
    servers = [ServeProcess(synapse_env, host="0.0.0.0").start() for _ in range(2)]
    try:
        yield servers
    finally:
        for srv in servers:
            srv.stop()


def login(url: str, token_from: str | None = None) -> ApiClient:
    """A browser that got its page (and token) from `token_from` and logged in at `url`."""
    api = ApiClient(token_from or url)
    api.refresh_csrf()
    api.base_url, api.port = url, int(url.rsplit(":", 1)[1])
    r = api.post("/api/login", {"username": "admin", "password": PASSWORD})
    assert r.status == 200, r
    api.csrf = r.json()["csrf_token"]
    return api


def as_cookie(api: ApiClient, url: str) -> ApiClient:
    """The same cookie and token, sent to another server."""
    other = ApiClient(url)
    other.cookies, other.csrf = dict(api.cookies), api.csrf
    return other


def refused_within(seconds: float, *clients: ApiClient) -> float:
    """How long until every client's cookie is refused (asserting it is within `seconds`)."""
    t0 = time.monotonic()
    waiting = list(clients)
    while waiting:
        waiting = [c for c in waiting if c.get("/api/providers").status != 401]
        assert time.monotonic() - t0 < seconds, "a session outlived its logout"
        time.sleep(0.05)
    return time.monotonic() - t0


def test_a_login_holds_on_every_process_until_it_ends(pair: list[ServeProcess], run_synapse: Callable[..., Any]) -> None:
    a, b = pair
    api = login(b.url, token_from=a.url)  # the page from A, the login on B
    on_a = as_cookie(api, a.url)
    assert on_a.get("/api/providers").status == 200
    assert on_a.put("/api/settings", {"prompt_cache_enabled": False}).status == 200
    assert api.get("/api/session").json()["user"] == "admin"

    api.post("/api/logout")  # on B; A read the session a moment ago and may trust it for a second
    refused_within(2.5, on_a)

    api = login(a.url)
    sessions = [as_cookie(api, a.url), as_cookie(api, b.url)]
    assert all(s.get("/api/providers").status == 200 for s in sessions)
    removed = run_synapse("user", "remove", "admin")
    assert removed.code == 0 and removed.out.strip() == "login admin removed; 1 open session of admin ended"
    refused_within(2.5, *sessions)


def test_failed_logins_are_counted_across_processes(pair: list[ServeProcess]) -> None:
    a, b = pair

    def attempt(srv: ServeProcess) -> Reply:
        api = ApiClient(srv.url)
        return api.post("/api/login", {"username": "admin", "password": "wrong password"})

    statuses = [attempt(srv).status for srv in (a, b, a, b, a, b, a)]
    assert statuses == [401] * 5 + [429] * 2  # 5 a minute for one client and user, not 5 per process


def test_a_restart_keeps_logins_and_tokens(synapse_env: Path) -> None:
    UserStore(synapse_env / "users.json").set("admin", PASSWORD)
    srv = ServeProcess(synapse_env, host="0.0.0.0").start()
    try:
        api = login(srv.url)
        srv.stop()
        srv = ServeProcess(synapse_env, host="0.0.0.0", port=srv.port).start()
        assert api.get("/api/session").json()["user"] == "admin"
        assert api.put("/api/settings", {"prompt_cache_enabled": True}).status == 200
    finally:
        srv.stop()
