"""Real PostgreSQL, Redis and nginx servers for the tests, on loopback ports in a temp folder.

PostgreSQL is the build the `pgserver` wheel ships (PostgreSQL 16 with pgvector; a test-only
pin in requirements-dev.lock), so the tests need no system package for it and the memory
vectors have pgvector; `SYNAPSE_TEST_PG_BIN` points at another build's `bin/` (e.g. Debian's
`/usr/lib/postgresql/15/bin`). PostgreSQL refuses to run as root: as root the server runs
as the `postgres` user when there is one, else `nobody`. Redis and nginx are Debian's
(`redis-server`, `nginx`), which `.ci/run` installs.

Every server here is started by the test that needs it and stopped at its end: a missing
server program skips those tests locally and fails them with `CI` set (`need()`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["Nginx", "Postgres", "Redis", "free_port", "need", "postgres_bin", "wait_port"]


def need(what: str, found: bool) -> None:
    """Skip the test when `what` is missing, or fail it on CI (where `.ci/run` installs it)."""
    if found:
        return
    message = f"{what} is not installed (.ci/run installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def end(proc: subprocess.Popen[Any] | None, sig: int, grace: float = 10.0) -> None:
    """Stop a server we started with `sig`, SIGKILL after `grace` seconds; None for `self.proc`."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return None


def postgres_bin() -> Path | None:
    """The `bin/` folder of the PostgreSQL build the tests use, or None."""
    env = os.environ.get("SYNAPSE_TEST_PG_BIN")
    if env:
        return Path(env) if (Path(env) / "postgres").exists() else None
    spec = importlib.util.find_spec("pgserver")  # located, not imported: its module has side effects
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return folder if (folder / "postgres").exists() else None


def _run_as() -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    raise RuntimeError("running as root with neither a postgres nor a nobody user to run PostgreSQL as")


class Postgres:
    """One PostgreSQL server: initdb in a temp folder, a loopback port, trust auth for `postgres`.

    The folder must be reachable by the user PostgreSQL runs as (not under a 0700 folder
    such as pytest's own temp root when we are root): the default is a new one in /tmp."""

    def __init__(self, folder: Path | None = None, port: int | None = None) -> None:
        self.bin = postgres_bin()
        if self.bin is None:
            raise RuntimeError("no PostgreSQL build (pip install -r requirements-dev.lock installs pgserver)")
        self.folder = Path(folder or tempfile.mkdtemp(prefix="synapse-pg-"))
        self.data = self.folder / "data"
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._ids = _run_as()

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _popen_args(self) -> dict[str, Any]:
        if self._ids is None:
            return {}
        return {"user": self._ids[0], "group": self._ids[1], "extra_groups": []}

    def init(self) -> "Postgres":
        os.chmod(self.folder, 0o755)
        self.data.mkdir(mode=0o700)
        if self._ids is not None:
            os.chown(self.data, *self._ids)
        done = subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
             "--no-sync", "--no-instructions"],
            capture_output=True, **self._popen_args(),
        )
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')[-2000:]}")
        return self

    def start(self) -> "Postgres":
        if not (self.data / "PG_VERSION").exists():
            self.init()
        log = open(self.folder / "postgres.log", "ab")
        # Durability settings are off: a test server's data lives for one run. Restarts in
        # the tests are clean (fast shutdown), so nothing depends on them.
        self.proc = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1", "-k", "",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=300", "-c", "shared_buffers=64MB"],
            stdout=log, stderr=log, start_new_session=True, **self._popen_args(),
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited ({self.proc.returncode}); see {self.folder / 'postgres.log'}")
            try:
                psycopg.connect(self.admin_url, connect_timeout=1).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.03)

    def stop(self) -> None:
        """Fast shutdown (SIGINT): what `pg_ctl stop -m fast` does."""
        self.proc = end(self.proc, signal.SIGINT, 20)

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        if down_for:
            time.sleep(down_for)
        self.start()

    def create_database(self, name: str, template: str | None = None) -> str:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            tpl = f" TEMPLATE {template}" if template else ""
            conn.execute(f'CREATE DATABASE "{name}"{tpl}')
        return self.url(name)

    def execute(self, database: str, sql: str) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            cur = conn.execute(sql)
            return list(cur.fetchall()) if cur.description else []

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class Redis:
    """One redis-server on a loopback port, no persistence."""

    def __init__(self, folder: Path | None = None, port: int | None = None) -> None:
        self.exe = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)
        if self.exe is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.folder = Path(folder or tempfile.mkdtemp(prefix="synapse-redis-"))
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "Redis":
        log = open(self.folder / "redis.log", "ab")
        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder), "--protected-mode", "yes"],
            stdout=log, stderr=log, start_new_session=True,
        )
        log.close()
        wait_port(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        self.proc = end(self.proc, signal.SIGTERM)

    def flush(self) -> None:
        import redis

        with redis.Redis.from_url(self.url) as r:
            r.flushall()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class Nginx:
    """nginx with a config file written by the test (see synapse/scale/cluster.py); the config
    says `daemon off`, so the process stays ours to stop."""

    def __init__(self, conf: str, folder: Path) -> None:
        self.exe = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        if self.exe is None:
            raise RuntimeError("nginx is not installed (apt-get install nginx)")
        self.folder = folder
        self.conf = folder / "nginx.conf"
        self.conf.write_text(conf)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, port: int) -> "Nginx":
        log = open(self.folder / "nginx.out", "ab")
        self.proc = subprocess.Popen(
            [self.exe, "-c", str(self.conf), "-p", str(self.folder), "-e", str(self.folder / "error.log"),
             "-g", f"pid {self.folder / 'nginx.pid'};"],
            stdout=log, stderr=log, start_new_session=True,
        )
        log.close()
        wait_port(port, proc=self.proc)
        return self

    def stop(self) -> None:
        self.proc = end(self.proc, signal.SIGQUIT)  # graceful: finish the requests it has


@contextlib.contextmanager
def running(server: Any) -> Iterator[Any]:
    try:
        yield server.start()
    finally:
        server.close()
