"""Login throttling: attempts are counted before the (slow) password check.

The probe sent 40 wrong passwords in parallel and all 40 were checked: the check ran
before the failure was counted. Now 5 are checked and 35 refused; the limits are per
client and user, per user from any client, and per client for any user; X-Forwarded-For
names the client only when it comes from a trusted proxy.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from synapse.server.app import create_app
from synapse.server.auth import UserStore
from synapse.server.throttle import LoginThrottle, Window
from tests.browser.helpers import ApiClient, ServerThread

PASSWORD = "correct horse battery"


class CountingUsers(UserStore):
    """A real user store that counts password checks (each one a scrypt hash)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.checks = 0
        self._count = threading.Lock()

    def check(self, username: str, password: str) -> bool:
        with self._count:
            self.checks += 1
        return super().check(username, password)


@pytest.fixture
def users(tmp_path: Path) -> CountingUsers:
    store = CountingUsers(tmp_path / "users.json")
    store.set("admin", PASSWORD)
    return store


def serve(users: UserStore, proxies: str = "") -> ServerThread:
    return ServerThread(create_app("0.0.0.0", users=users, trusted_proxies=proxies)).start()


def login(srv: ServerThread, username: str, password: str, forwarded_for: str | None = None) -> tuple[int, dict[str, str], dict]:  # type: ignore[type-arg]
    api = ApiClient(srv.url)
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else None
    api.refresh_csrf()
    r = api.post("/api/login", {"username": username, "password": password}, headers=headers)
    return r.status, dict(r.headers.items()), r.json()


@pytest.fixture
def server(users: CountingUsers, synapse_env: Path) -> Iterator[ServerThread]:
    srv = serve(users)
    yield srv
    srv.stop()


def test_forty_parallel_wrong_passwords_get_five_checks(server: ServerThread, users: CountingUsers) -> None:
    with ThreadPoolExecutor(40) as pool:
        results = list(pool.map(lambda _: login(server, "admin", "wrong password"), range(40)))
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [401] * 5 + [429] * 35
    assert users.checks == 5
    _, headers, body = next(r for r in results if r[0] == 429)
    assert body["kind"] == "throttled" and body["detail"].startswith("too many failed logins: wait ")
    assert 1 <= int(headers["retry-after"]) <= 60 and body["retry_after"] == int(headers["retry-after"])
    # the right password is refused too while the window is full: no checking it for a guesser
    assert login(server, "admin", PASSWORD)[0] == 429 and users.checks == 5


def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(server: ServerThread, users: CountingUsers) -> None:
    statuses = [login(server, "admin", "wrong password", forwarded_for=f"198.51.100.{i}")[0] for i in range(7)]
    assert statuses == [401] * 5 + [429] * 2  # one client (127.0.0.1), whatever it claims


def test_a_user_is_limited_across_clients(users: CountingUsers, synapse_env: Path) -> None:
    srv = serve(users, proxies="127.0.0.1")
    try:
        statuses = [login(srv, "admin", "wrong password", forwarded_for=f"198.51.100.{i}")[0] for i in range(12)]
        assert statuses == [401] * 10 + [429] * 2  # 10 in 5 minutes for one user, from anywhere
        assert users.checks == 10
        # another user is not locked out by that
        assert login(srv, "bob", "wrong password", forwarded_for="198.51.100.50")[0] == 401
    finally:
        srv.stop()


def test_a_client_is_limited_across_usernames(users: CountingUsers, synapse_env: Path) -> None:
    srv = serve(users, proxies="127.0.0.1")
    try:
        statuses = [login(srv, f"user{i}", "wrong password", forwarded_for="203.0.113.5")[0] for i in range(22)]
        assert statuses == [401] * 20 + [429] * 2
        assert login(srv, "user99", "wrong password", forwarded_for="203.0.113.6")[0] == 401  # another client
    finally:
        srv.stop()


def test_a_right_password_does_not_count(server: ServerThread, users: CountingUsers) -> None:
    for _ in range(3):
        assert login(server, "admin", "wrong password")[0] == 401
    for _ in range(4):
        assert login(server, "admin", PASSWORD)[0] == 200
    # the successes gave their slots back: two more wrong ones make 5, then the limit
    assert [login(server, "admin", "wrong password")[0] for _ in range(3)] == [401, 401, 429]


def test_bad_login_input_is_a_clear_400(server: ServerThread, users: CountingUsers) -> None:
    api = ApiClient(server.url)
    for body in ({"username": ["admin"], "password": "x"}, {"username": "admin"}, {"username": " ", "password": "x"}, {}):
        r = api.post("/api/login", body)
        assert r.status == 400 and r.json() == {"detail": "enter your username and password"}, body
    r = api.post("/api/login", raw=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.json()["detail"] == "the request body is not valid JSON"
    assert users.checks == 0


# --- the throttle alone -------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_windows_slide() -> None:
    clock = Clock()
    t = LoginThrottle(Window(2, 10), Window(100, 10), Window(100, 10), clock=clock)
    assert t.attempt("c", "u")[1] == 0
    clock.now += 4
    assert t.attempt("c", "u")[1] == 0
    stamp, wait = t.attempt("c", "u")
    assert stamp == 0 and wait == pytest.approx(6)  # until the first attempt leaves the window
    clock.now += 6
    assert t.attempt("c", "u")[1] == 0
    assert t.attempt("c", "U ")[1] > 0  # usernames are compared case- and space-insensitively


def test_the_tables_are_bounded() -> None:
    clock = Clock()
    t = LoginThrottle(max_keys=100, clock=clock)
    for i in range(5000):
        t.attempt(f"10.0.{i // 256}.{i % 256}", f"user{i}")
        clock.now += 0.001
    assert t.size() <= 3 * 100
    clock.now += 3600
    t.attempt("one more", "user")
    assert t.size() <= 3 * 100
