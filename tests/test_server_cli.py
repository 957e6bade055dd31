"""`synapse serve` as a real process, and `synapse user set` (synapse/server/cli_user.py)."""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synapse.server import cli_user
from synapse.server.auth import UserStore
from synapse.server.run import url_for
from tests.browser.helpers import ApiClient, ServeProcess, free_port


def user_cmd(*argv: str, stdin: str = "", monkeypatch: pytest.MonkeyPatch) -> int:
    parser = argparse.ArgumentParser(prog="synapse")
    sub = parser.add_subparsers(dest="command")
    cli_user.register(sub)
    args = parser.parse_args(list(argv))
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return args.func(args)


def test_user_set_list_remove(synapse_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert user_cmd("user", "set", "admin", stdin="correct horse battery\n", monkeypatch=monkeypatch) == 0
    out = capsys.readouterr().out
    assert "login admin saved in" in out and "correct horse" not in out
    path = synapse_env / "users.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["users"]["admin"]["password"].startswith("scrypt$16384$8$1$")
    assert "correct horse battery" not in path.read_text()
    assert UserStore(path).check("admin", "correct horse battery")

    assert user_cmd("user", "set", "admin", stdin="short\n", monkeypatch=monkeypatch) == 2
    assert capsys.readouterr().err.strip() == "synapse: the password must be at least 8 characters"
    assert UserStore(path).check("admin", "correct horse battery")  # unchanged

    assert user_cmd("user", "set", "no spaces allowed", stdin="long enough\n", monkeypatch=monkeypatch) == 2
    assert "username" in capsys.readouterr().err

    assert user_cmd("user", "list", monkeypatch=monkeypatch) == 0
    assert capsys.readouterr().out.strip() == "admin"
    assert user_cmd("user", "remove", "ghost", monkeypatch=monkeypatch) == 1
    assert user_cmd("user", "remove", "admin", monkeypatch=monkeypatch) == 0
    capsys.readouterr()
    assert user_cmd("user", "list", monkeypatch=monkeypatch) == 0
    assert "no logins yet" in capsys.readouterr().out


def test_url_for() -> None:
    assert url_for("127.0.0.1", 8000) == "http://127.0.0.1:8000"
    assert url_for("0.0.0.0", 80) == "http://127.0.0.1:80"
    assert url_for("::1", 9000) == "http://[::1]:9000"


def test_serve_refuses_public_address_without_a_login(run_synapse) -> None:  # type: ignore[no-untyped-def]
    r = run_synapse("serve", "--host", "0.0.0.0", "--port", str(free_port()), timeout=20)
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.err
    assert "needs a login" in lines[0] and "`synapse user set USERNAME`" in lines[0]


def test_serve_reports_a_busy_port(run_synapse) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = run_synapse("serve", "--port", str(port), timeout=20)
    assert r.code == 2 and "Traceback" not in r.err
    assert r.err.strip() == f"synapse: port {port} on 127.0.0.1 is already in use: pick another with --port or SYNAPSE_PORT"


def test_serve_starts_uses_synapse_port_and_logs_no_key(synapse_env: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SYNAPSE_DATA_DIR": str(synapse_env), "SYNAPSE_PORT": str(port), "PYTHONUNBUFFERED": "1",
           "NO_PROXY": "127.0.0.1,localhost"}
    log = tmp_path / "serve.log"
    t0 = time.monotonic()
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "synapse.cli", "serve"], stdout=fh, stderr=subprocess.STDOUT, env=env)
        try:
            while "Synapse is running at" not in log.read_text():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() - t0 < 60, log.read_text()
                time.sleep(0.02)
            # How fast it starts is measured in bench/bench_serve.py, not here.
            assert f"Synapse is running at http://127.0.0.1:{port}/settings/models" in log.read_text()
            api = ApiClient(f"http://127.0.0.1:{port}")
            assert api.get("/settings/models").status == 200
            key = "sk-ant-api03-logcheckSECRET000000000000ZZZZ"
            # unreachable base URL: the check fails fast, and its message must not carry the key either
            api.put("/api/settings", {"prompt_cache_enabled": True})
            r = api.put("/api/providers/anthropic?wait=true", {"anthropic_key": key})
            assert r.status == 200 and key not in r.text
            api.put("/api/providers/anthropic", {"anthropic_key": key + "x"}, csrf=False)  # a refused one too
        finally:
            proc.terminate()
            proc.wait(10)
    text = log.read_text()
    assert '"PUT /api/providers/anthropic?wait=true HTTP/1.1" 200' in text
    assert '"PUT /api/providers/anthropic HTTP/1.1" 403' in text
    assert "logcheckSECRET" not in text
    assert "Traceback" not in text


def test_serve_off_loopback_requires_login(synapse_env: Path) -> None:
    UserStore(synapse_env / "users.json").set("admin", "correct horse battery")
    server = ServeProcess(synapse_env, host="0.0.0.0").start()
    try:
        assert "(login required)" in server.output()
        api = ApiClient(server.url)
        assert api.get("/api/providers").status == 401
        page = api.get("/settings/models")
        assert page.status == 303 and page.headers["Location"] == "/login"
        login = api.get("/login")
        assert login.status == 200 and 'id="login-form"' in login.text
        assert api.post("/api/login", {"username": "admin", "password": "wrong password"}).status == 401
        r = api.post("/api/login", {"username": "admin", "password": "correct horse battery"})
        assert r.status == 200
        api.csrf = r.json()["csrf_token"]
        assert api.get("/api/providers").status == 200
        assert api.put("/api/providers/anthropic", {"anthropic_key": "sk-ant-api03-offLOOPBACKkey00000001"}).status == 200
        assert api.put("/api/settings/model", {"model": "claude-sonnet-4-5"}).status == 200
        # any Host is accepted off loopback (the login protects it), but Origin must still match
        r = api.put("/api/settings/model", {"model": "gpt-5"}, headers={"Origin": "http://evil.example"})
        assert r.status == 403
    finally:
        server.stop()
