"""Logins, login attempts and the CSRF key shared by every process that serves the pages.

`synapse serve --workers 2` ran two processes with a key and a session table each: half of
the Models page's saves failed with 403 (the token came from the other worker), and a
login held only on the worker that made it. Here two stores (or two apps) on one data
folder stand for two workers; tests/test_server_workers.py runs the real processes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from synapse import storage
from synapse.errors import SettingsError
from synapse.server import csrf_key
from synapse.server.app import create_app
from synapse.server.auth import UserStore
from synapse.server.dblink import DatabaseDown, DatabaseLink
from synapse.server.stored_sessions import DatabaseSessionStore, end_sessions
from synapse.server.stored_throttle import DatabaseLoginThrottle
from synapse.server.throttle import Window
from synapse.storage.tables import login_attempts, web_sessions
from tests.browser.helpers import asgi_request

pytestmark = pytest.mark.database

PASSWORD = "correct horse battery"
KEY = b"k" * 32


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingLink(DatabaseLink):
    """The real database, counting the jobs run on it (each a thread hop and a query)."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs = 0

    async def run(self, what: str, job: Any) -> Any:
        self.jobs += 1
        return await super().run(what, job)


class DownLink(DatabaseLink):
    """A database that refuses every connection (a PostgreSQL restarting)."""

    def __init__(self) -> None:
        super().__init__()
        self.tries = 0

    def engine(self) -> Any:
        self.tries += 1
        raise sa.exc.OperationalError("connect", {}, Exception("connection refused"))


def rows(table: sa.Table) -> list[Any]:
    with storage.engine().connect() as conn:
        return list(conn.execute(sa.select(table)).mappings())


@pytest.fixture
def mono() -> Clock:
    return Clock(50.0)


@pytest.fixture
def workers(synapse_env: Path, mono: Clock) -> tuple[DatabaseSessionStore, DatabaseSessionStore]:
    """Two processes' session stores on one database."""
    return (DatabaseSessionStore(secret=KEY, link=CountingLink(), monotonic=mono),
            DatabaseSessionStore(secret=KEY, link=CountingLink(), monotonic=mono))


# --- sessions ------------------------------------------------------------------------------------


async def test_a_login_on_one_worker_is_a_login_on_the_other(workers: tuple[DatabaseSessionStore, ...]) -> None:
    one, two = workers
    session = await one.alogin("admin")
    seen = await two.aget(session.id)
    assert seen is not None and seen.user == "admin" and seen.csrf == session.csrf
    stored = rows(web_sessions)
    assert [r["id_hash"] for r in stored] == [hashlib.sha256(session.id.encode()).hexdigest()]
    assert session.id not in str(stored)  # the cookie's id itself is never stored
    assert len(one) == len(two) == 1


async def test_a_logout_holds_on_every_worker_within_a_second(
    workers: tuple[DatabaseSessionStore, ...], mono: Clock
) -> None:
    one, two = workers
    session = await one.alogin("admin")
    assert (await two.aget(session.id)) is not None
    reads = two.link.jobs  # type: ignore[attr-defined]
    for _ in range(20):  # a page and its API calls: read once, then from the cache
        mono.now += 0.04
        assert (await two.aget(session.id)) is not None
    assert two.link.jobs == reads  # type: ignore[attr-defined]
    await one.adrop(session.id)
    assert await one.aget(session.id) is None  # at once on the worker that logged out
    mono.now += 0.2
    assert await two.aget(session.id) is not None  # the other still trusts what it read...
    mono.now += 0.8
    assert await two.aget(session.id) is None  # ...for at most a second
    assert rows(web_sessions) == []


async def test_user_remove_ends_that_users_sessions_everywhere(
    workers: tuple[DatabaseSessionStore, ...], mono: Clock
) -> None:
    one, two = workers
    ada, ada2, bob = await one.alogin("ada"), await two.alogin("ada"), await one.alogin("bob")
    for s in (ada, ada2, bob):
        assert await one.aget(s.id) is not None and await two.aget(s.id) is not None
    assert end_sessions("ada") == 2
    mono.now += 1.0
    for store in (one, two):
        assert await store.aget(ada.id) is None and await store.aget(ada2.id) is None
        assert (await store.aget(bob.id)).user == "bob"  # type: ignore[union-attr]
    assert end_sessions("nobody") == 0


async def test_sessions_expire_and_the_table_is_bounded(synapse_env: Path, mono: Clock) -> None:
    wall = Clock()
    store = DatabaseSessionStore(secret=KEY, max_sessions=3, ttl=100, clock=wall, monotonic=mono)
    other = DatabaseSessionStore(secret=KEY, max_sessions=3, ttl=100, clock=wall, monotonic=mono)
    made = []
    for i in range(5):
        made.append(await store.alogin(f"user{i}"))
        wall.now += 1
    assert len(store) == 3
    assert await other.aget(made[0].id) is None and await other.aget(made[1].id) is None  # the oldest went
    assert (await other.aget(made[4].id)).user == "user4"  # type: ignore[union-attr]
    wall.now += 100  # past user4's expiry (made at +4, for 100 s)
    mono.now += 1
    assert await other.aget(made[4].id) is None  # expired: refused though the row is still there
    assert len(rows(web_sessions)) == 3
    await store.alogin("late")  # a login deletes expired rows first
    assert [r["username"] for r in rows(web_sessions)] == ["late"]
    visitor = store.anonymous()
    assert await store.aget(visitor.id) is None and len(store) == 1  # a visitor is never stored


async def test_forged_cookies_are_not_looked_up(workers: tuple[DatabaseSessionStore, ...]) -> None:
    one, _ = workers
    for value in ("", "short", "x" * 65, "not/a valid id!" * 3, None):
        assert await one.aget(value) is None
    assert one.link.jobs == 0  # type: ignore[attr-defined]


async def test_the_cache_is_bounded(workers: tuple[DatabaseSessionStore, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    from synapse.server import stored_sessions

    monkeypatch.setattr(stored_sessions, "CACHE_MAX", 50)
    one, _ = workers
    for _ in range(200):
        await one.aget(one.anonymous().id)
    assert len(one._cache) == 50


async def test_the_database_down_keeps_logins_in_memory_and_says_so_once(
    synapse_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    link = DownLink()
    store = DatabaseSessionStore(secret=KEY, link=link)
    with caplog.at_level(logging.WARNING, logger="synapse.server"):
        session = await store.alogin("admin")
        assert (await store.aget(session.id)).user == "admin"  # type: ignore[union-attr]
        assert await store.aget(store.anonymous().id) is None
        await store.adrop(session.id)
        assert await store.aget(session.id) is None
    assert link.tries == 1  # then left alone for dblink.BACKOFF seconds: no request waits on it
    warnings = [r.getMessage() for r in caplog.records if r.name == "synapse.server"]
    assert len(warnings) == 1 and "the database is unavailable (OperationalError" in warnings[0]


async def test_a_job_that_fails_for_another_reason_is_not_a_database_down(synapse_env: Path) -> None:
    def broken(eng: Any) -> None:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        await DatabaseLink().run("testing", broken)
    with pytest.raises(DatabaseDown):
        await DownLink().run("testing", broken)


# --- login throttling ----------------------------------------------------------------------------


def throttles(wall: Clock, **kw: Any) -> tuple[DatabaseLoginThrottle, DatabaseLoginThrottle]:
    return (DatabaseLoginThrottle(secret=KEY, wall_clock=wall, **kw),
            DatabaseLoginThrottle(secret=KEY, wall_clock=wall, **kw))


async def test_wrong_passwords_count_across_workers(synapse_env: Path) -> None:
    wall = Clock()
    a, b = throttles(wall)
    for throttle in (a, b, a, b, a):
        stamp, wait = await throttle.aattempt("10.0.0.7", "admin")
        assert stamp and not wait
        wall.now += 1
    stamp, wait = await b.aattempt("10.0.0.7", "Admin ")
    assert stamp == 0 and wait == pytest.approx(55)  # 5 a minute for the pair, wherever they landed
    assert (await a.aattempt("10.0.0.8", "admin"))[1] == 0  # another client may still try
    wall.now += 55
    assert (await b.aattempt("10.0.0.7", "admin"))[1] == 0  # the first attempt left the window
    stored = str(rows(login_attempts))
    assert "admin" not in stored and "10.0.0.7" not in stored  # keyed hashes only


async def test_parallel_attempts_on_two_workers_get_five_checks(synapse_env: Path) -> None:
    a, b = throttles(Clock())
    results = await asyncio.gather(*(t.aattempt("10.0.0.1", "admin") for t in (a, b) * 20))
    assert sorted(bool(stamp) for stamp, _ in results) == [False] * 35 + [True] * 5


async def test_a_right_password_gives_its_attempt_back(synapse_env: Path) -> None:
    a, b = throttles(Clock())
    for _ in range(4):
        await a.aattempt("10.0.0.9", "ada")
    stamp, _ = await b.aattempt("10.0.0.9", "ada")
    await b.asucceeded("10.0.0.9", "ada", stamp)
    assert (await a.aattempt("10.0.0.9", "ada"))[1] == 0  # the fifth slot came back
    assert (await a.aattempt("10.0.0.9", "ada"))[1] > 0


async def test_the_attempt_table_keeps_five_minutes_and_a_bounded_count(synapse_env: Path) -> None:
    wall = Clock()
    wide = Window(1000, 300)
    t, _ = throttles(wall, pair=wide, user=wide, client=wide, max_rows=40)
    for i in range(100):
        assert (await t.aattempt(f"10.0.{i}.1", f"user{i}"))[1] == 0
        wall.now += 1
    assert t.size() == 40  # the oldest go first
    wall.now += 300
    await t.aattempt("10.9.9.9", "late")
    assert t.size() == 1  # rows older than the longest window are deleted at each attempt


async def test_the_database_down_counts_in_memory(synapse_env: Path) -> None:
    t = DatabaseLoginThrottle(secret=KEY, link=DownLink())
    assert [bool((await t.aattempt("10.0.0.1", "admin"))[1]) for _ in range(6)] == [False] * 5 + [True]
    stamp, _ = await t.aattempt("10.0.0.2", "bob")
    await t.asucceeded("10.0.0.2", "bob", stamp)  # handed back to the memory counters
    assert t._pair.hits.get("10.0.0.2\0bob") is None or not t._pair.hits["10.0.0.2\0bob"]


# --- the CSRF key --------------------------------------------------------------------------------


def _read_key(path: str) -> str:
    return csrf_key.read_or_make(Path(path)).hex()


@pytest.mark.sqlite_only
def test_processes_starting_at_once_make_one_key(tmp_path: Path) -> None:
    path = tmp_path / "data" / "csrf.key"
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        keys = pool.map(_read_key, [str(path)] * 24)
    assert len(set(keys)) == 1 and keys[0] == path.read_text().strip()
    assert path.stat().st_mode & 0o777 == 0o600
    assert not [p for p in path.parent.iterdir() if p.name != "csrf.key"]  # no temp files left


@pytest.mark.sqlite_only
def test_a_damaged_key_file_says_what_to_do(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "csrf.key"
    path.write_text("not a key\n")
    with pytest.raises(SettingsError, match=r"csrf.key is not a key Synapse made .*: delete it and start again"):
        csrf_key.read_or_make(path)
    monkeypatch.setenv("SYNAPSE_DATA_DIR", str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="synapse.server"):
        first, second = csrf_key.csrf_key(), csrf_key.csrf_key()
    assert first != second and len(first) == 32  # a key of the process, and the log says why
    assert "signed with a key of this process only" in caplog.records[0].getMessage()
    assert path.read_text() == "not a key\n"  # never overwritten


@pytest.mark.sqlite_only
def test_doctor_lists_a_readable_key_file(synapse_env: Path) -> None:
    from synapse import private_files

    csrf_key.read_or_make(synapse_env / "csrf.key")
    os.chmod(synapse_env / "csrf.key", 0o644)
    assert [p.name for p, _, _ in private_files.problems(synapse_env)] == ["csrf.key"]
    private_files.fix(synapse_env)
    assert private_files.problems(synapse_env) == []


# --- two apps on one data folder -----------------------------------------------------------------


@pytest.fixture
def users(synapse_env: Path) -> UserStore:
    store = UserStore(synapse_env / "users.json")
    store.set("admin", PASSWORD)
    return store


@pytest.fixture
def two_apps(users: UserStore) -> Iterator[tuple[Any, Any]]:
    yield (create_app("0.0.0.0", users=users, trusted_proxies=""),
           create_app("0.0.0.0", users=users, trusted_proxies=""))


async def test_two_apps_on_one_data_folder_share_logins_and_tokens(two_apps: tuple[Any, Any]) -> None:
    one, two = two_apps
    first = await asgi_request(one, "GET", "/api/session")
    cookie, token = first.all("set-cookie")[0].split(";")[0], first.json()["csrf_token"]
    hdrs = {"cookie": cookie, "x-csrf-token": token, "content-type": "application/json"}
    body = f'{{"username": "admin", "password": "{PASSWORD}"}}'.encode()
    login = await asgi_request(two, "POST", "/api/login", headers=hdrs, body=body)  # a token of one, on two
    assert login.status == 200
    cookie, token = login.all("set-cookie")[0].split(";")[0], login.json()["csrf_token"]
    hdrs = {"cookie": cookie, "x-csrf-token": token, "content-type": "application/json"}
    assert (await asgi_request(one, "GET", "/api/session", headers=hdrs)).json()["user"] == "admin"
    save = await asgi_request(one, "PUT", "/api/settings", headers=hdrs, body=b'{"prompt_cache_enabled": false}')
    assert save.status == 200
    assert (await asgi_request(one, "POST", "/api/logout", headers=hdrs)).status == 200
    assert (await asgi_request(one, "GET", "/api/providers", headers=hdrs)).status == 401
