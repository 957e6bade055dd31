"""Scale mode as it runs: three `synapse serve` on one PostgreSQL and one Redis behind nginx
(round-robin), all started here on loopback, with the configuration compose.yaml deploys
(synapse/scale/cluster.py).

Each instance has its own empty data folder: whatever one instance knows, the others can
only have learned through PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from synapse.scale import cluster
from tests.conftest import TEST_SECRET_KEY
from tests.fakes.openai import OpenAIFake
from tests.servers import Nginx, Postgres, Redis, free_port, need, postgres_bin, wait_port

ROOT = Path(__file__).resolve().parents[2]
SYNAPSE = str(Path(sys.executable).parent / "synapse")
PASSWORD = "cluster-login-pw"
MODEL = "gpt-4o-mini"
#: A prompt of 10,000 fake tokens: $0.0015 a call with gpt-4o-mini, so a small budget is a few calls.
LONG_PROMPT = "word " * 8000


def test_compose_yaml_is_the_cluster_configuration() -> None:
    """compose.yaml is what `python -m synapse.scale.cluster` prints, and its nginx site is
    the very `site_conf` this module's nginx runs (once compose turns $$ back into $)."""
    import yaml

    text = (ROOT / "compose.yaml").read_text()
    assert text == cluster.compose_yaml(), "compose.yaml is stale: python -m synapse.scale.cluster > compose.yaml"
    data = yaml.safe_load(text)
    site = data["configs"]["site"]["content"].replace("$$", "$")
    assert site == cluster.site_conf(["synapse-1:8000", "synapse-2:8000"], "80")
    for name in ("synapse-1", "synapse-2"):
        service = data["services"][name]
        assert service["command"] == cluster.serve_args("0.0.0.0", 8000)
        assert set(service["environment"]) == set(cluster.instance_env("", "", "", ""))
    assert data["services"]["postgres"]["image"].startswith("pgvector/")


# --- the cluster -----------------------------------------------------------------------------


def _main_conf(site: str, folder: Path) -> str:
    """The test's nginx.conf around the compose file's site: one foreground process as root
    (its temp folders are in the test's private folder), no access log."""
    return f"""daemon off;
master_process off;
worker_processes 1;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
{site}
}}
"""


@dataclass
class Instance:
    port: int
    data: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.data.parent / f"serve-{self.port}.log", "ab")
        args = [SYNAPSE, *cluster.serve_args("127.0.0.1", self.port)[1:]]
        self.proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=log, cwd=str(ROOT), start_new_session=True)
        log.close()
        wait_port(self.port, timeout=60, proc=self.proc)

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@dataclass
class Cluster:
    pg: Postgres
    redis: Redis
    fake: OpenAIFake
    instances: list[Instance]
    nginx: Nginx
    lb_port: int
    env: dict[str, str]
    api_key: str = ""
    database: str = ""
    folder: Path = field(default_factory=Path)

    @property
    def lb(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}"

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "SYNAPSE_DATA_DIR": str(self.folder / "cli-data")}
        return subprocess.run([SYNAPSE, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120,
                              cwd=str(ROOT))

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        return self.pg.execute(self.database, query)


@pytest.fixture(scope="module")
def scale_cluster() -> Iterator[Cluster]:
    need("PostgreSQL (pgserver, in requirements-dev.lock)", postgres_bin() is not None)
    need("redis-server (apt-get install redis-server)", shutil.which("redis-server") is not None)
    need("nginx (apt-get install nginx)", shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists())
    folder = Path(tempfile.mkdtemp(prefix="synapse-cluster-"))
    pg = Postgres().start()
    (folder / "redis").mkdir()
    redis = Redis(folder / "redis").start()
    fake = OpenAIFake(flavour="openai").start()
    fake.any_model = True  # the kill test names each call's model uniquely, to find its ledger row
    database = "synapse"
    url = pg.create_database(database)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNAPSE_", "OPENAI_", "ANTHROPIC_"))}
    env.update(cluster.instance_env(url, redis.url, TEST_SECRET_KEY, "127.0.0.1"))
    env["NO_PROXY"] = "127.0.0.1,localhost"
    c = Cluster(pg, redis, fake, [], None, 0, env, database=database, folder=folder)  # type: ignore[arg-type]
    try:
        done = c.cli("db", "upgrade")
        assert done.returncode == 0, done.stderr
        done = c.cli("user", "set", "admin", stdin=PASSWORD + "\n")
        assert done.returncode == 0, done.stderr
        for key, value in (("openai_base_url", fake.base_url), ("model", MODEL)):
            done = c.cli("config", "set", key, value)
            assert done.returncode == 0, done.stderr
        done = c.cli("keys", "create", "cluster")
        assert done.returncode == 0, done.stderr
        c.api_key = done.stdout.strip()
        for n in range(3):
            data = folder / f"instance-{n + 1}"
            data.mkdir()
            inst = Instance(free_port(), data, {**env, "SYNAPSE_DATA_DIR": str(data)})
            c.instances.append(inst)
        for inst in c.instances:
            inst.start()
        c.lb_port = free_port()
        site = cluster.site_conf([f"127.0.0.1:{i.port}" for i in c.instances], f"127.0.0.1:{c.lb_port}")
        (folder / "nginx").mkdir()
        c.nginx = Nginx(_main_conf(site, folder / "nginx"), folder / "nginx").start(c.lb_port)
        yield c
    finally:
        if c.nginx is not None:
            c.nginx.stop()
        for inst in c.instances:
            inst.stop()
        fake.stop()
        redis.close()
        pg.close()
        shutil.rmtree(folder, ignore_errors=True)


def _bearer(c: Cluster) -> dict[str, str]:
    return {"Authorization": f"Bearer {c.api_key}"}


async def _chat(session: aiohttp.ClientSession, base: str, key: str, model: str = MODEL, prompt: str = "Say hi",
                ) -> tuple[int, dict[str, Any], str]:
    async with session.post(f"{base}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                            json={"model": model, "messages": [{"role": "user", "content": prompt}]}) as resp:
        body = await resp.json(content_type=None)
        return resp.status, body, resp.headers.get(cluster.UPSTREAM_HEADER, "")


async def _csrf(session: aiohttp.ClientSession, base: str) -> str:
    async with session.get(f"{base}/api/session") as resp:
        assert resp.status == 200
        return str((await resp.json())["csrf_token"])


# --- the tests --------------------------------------------------------------------------------


async def test_a_provider_key_saved_on_one_instance_works_on_another_within_a_second(scale_cluster: Cluster) -> None:
    c = scale_cluster
    first, third = c.instances[0], c.instances[2]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        status, body, _ = await _chat(s, third.url, c.api_key)
        assert status != 200, "instance 3 answered before any OpenAI key was saved"
        token = await _csrf(s, first.url)
        async with s.put(f"{first.url}/api/providers/openai", headers={"X-CSRF-Token": token},
                         json={"values": {"openai_key": c.fake.key}}) as resp:
            assert resp.status == 200, await resp.text()
        saved = time.monotonic()
        while True:
            status, body, _ = await _chat(s, third.url, c.api_key)
            if status == 200:
                break
            assert time.monotonic() - saved < 1.0, f"instance 3 still fails 1 s after the save: {body}"
            await asyncio.sleep(0.02)
    assert time.monotonic() - saved < 1.0
    # At rest the key is encrypted: the settings table does not hold it in clear.
    stored = c.sql("SELECT value, encrypted FROM settings WHERE key = 'openai_key'")
    assert stored and stored[0][1] is True and c.fake.key not in stored[0][0]


async def test_an_api_key_made_on_one_instance_works_on_every_instance(scale_cluster: Cluster) -> None:
    c = scale_cluster
    made = c.cli("keys", "create", "everywhere")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    async with aiohttp.ClientSession() as s:
        for inst in c.instances:
            status, body, _ = await _chat(s, inst.url, key)
            assert status == 200, body


async def test_a_login_started_on_one_instance_holds_on_the_others(scale_cluster: Cluster) -> None:
    c = scale_cluster
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as s:
        async with s.get(f"{c.lb}/api/providers") as resp:
            assert resp.status == 401  # through the proxy a login is needed
        token = await _csrf(s, c.lb)
        async with s.post(f"{c.lb}/api/login", headers={"X-CSRF-Token": token},
                          json={"username": "admin", "password": PASSWORD}) as resp:
            assert resp.status == 200, await resp.text()
            logged_on = resp.headers[cluster.UPSTREAM_HEADER]
        seen = set()
        for _ in range(6):  # round-robin: every instance answers some of these
            async with s.get(f"{c.lb}/api/session") as resp:
                assert (await resp.json())["user"] == "admin"
                seen.add(resp.headers[cluster.UPSTREAM_HEADER])
        assert len(seen) == 3 and logged_on in seen
        token = await _csrf(s, c.lb)
        async with s.post(f"{c.lb}/api/logout", headers={"X-CSRF-Token": token}) as resp:
            assert resp.status == 200
        for _ in range(3):
            async with s.get(f"{c.lb}/api/session") as resp:
                assert (await resp.json())["user"] is None  # logged out everywhere


async def test_wrong_passwords_are_counted_across_instances(scale_cluster: Cluster) -> None:
    c = scale_cluster
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        statuses = []
        upstreams = set()
        for _ in range(7):
            token = await _csrf(s, c.lb)
            async with s.post(f"{c.lb}/api/login", headers={"X-CSRF-Token": token},
                              json={"username": "guesser", "password": "wrong-password"}) as resp:
                statuses.append(resp.status)
                upstreams.add(resp.headers[cluster.UPSTREAM_HEADER])
    assert len(upstreams) == 3
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429]  # 5 a minute for one client and user, in all


async def test_a_chat_session_started_on_one_instance_continues_on_another(scale_cluster: Cluster) -> None:
    c = scale_cluster
    c.fake.reset()
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{c.instances[0].url}/api/v1/chat", headers=_bearer(c),
                          json={"message": "My name is Ada, remember it."}) as resp:
            assert resp.status == 200, await resp.text()
            first = await resp.json()
        async with s.post(f"{c.instances[1].url}/api/v1/chat", headers=_bearer(c),
                          json={"message": "What is my name?", "session_id": first["session_id"]}) as resp:
            assert resp.status == 200, await resp.text()
            second = await resp.json()
    assert second["session_id"] == first["session_id"]
    sent = c.fake.last.json()["messages"]
    texts = [m["content"] if isinstance(m["content"], str) else m["content"][0]["text"] for m in sent]
    assert "My name is Ada, remember it." in texts and texts[-1] == "What is my name?"  # the history came along


async def test_a_budget_holds_across_instances_under_concurrent_load(scale_cluster: Cluster) -> None:
    c = scale_cluster
    budget = 0.02
    made = c.cli("keys", "create", "budgeted", "--budget-usd", str(budget))
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    results: list[tuple[int, str]] = []

    async def worker(s: aiohttp.ClientSession) -> None:
        for _ in range(12):
            status, body, upstream = await _chat(s, c.lb, key, prompt=LONG_PROMPT)
            results.append((status, upstream))
            if status == 429:
                return

    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as s:
        await asyncio.gather(*(worker(s) for _ in range(24)))
    ok = [r for r in results if r[0] == 200]
    assert len({u for _, u in ok}) >= 2  # several instances spent from the one budget
    assert any(r[0] == 429 for r in results)
    spent = _key_spend(c, "budgeted", expect_rows=len(ok))
    one_call = spent / len(ok)
    assert spent <= budget + one_call * 1.0001  # never past the budget by more than one call
    assert spent >= budget - one_call  # and the budget was used, not refused early


def _key_spend(c: Cluster, name: str, expect_rows: int, timeout: float = 20.0) -> float:
    deadline = time.monotonic() + timeout
    while True:
        [(rows, total)] = c.sql(f"SELECT count(*), coalesce(sum(cost_usd), 0) FROM usage_calls WHERE key_name = '{name}'")
        if rows >= expect_rows or time.monotonic() > deadline:
            assert rows == expect_rows
            return float(total)
        time.sleep(0.1)


async def test_an_instance_killed_then_the_database_restarted_mid_load(scale_cluster: Cluster) -> None:
    """Calls go on through both faults; every call a client saw succeed has exactly one ledger
    row, except the last linger window of the instance killed with SIGKILL (the documented loss)."""
    c = scale_cluster
    victim = c.instances[1]
    victim_addr = f"127.0.0.1:{victim.port}"
    successes: list[tuple[str, str, float]] = []  # (model, upstream, when the answer came)
    failures: list[tuple[int, float]] = []
    stop = asyncio.Event()
    counter = iter(range(1_000_000))
    marks: dict[str, float] = {}

    async def worker(s: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            model = f"{MODEL}-u{next(counter)}"
            try:
                status, _, upstream = await _chat(s, c.lb, c.api_key, model=model)
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):  # a 502 page is not JSON
                failures.append((0, time.monotonic()))
                continue
            if status == 200:
                successes.append((model, upstream, time.monotonic()))
            else:
                failures.append((status, time.monotonic()))

    async def faults() -> None:
        await asyncio.sleep(1.5)
        marks["kill"] = time.monotonic()
        victim.stop(signal.SIGKILL)
        await asyncio.sleep(1.5)
        marks["db_down"] = time.monotonic()
        await asyncio.to_thread(c.pg.restart, 1.0)  # down for a second, then back (same data)
        marks["db_up"] = time.monotonic()
        await asyncio.sleep(2.0)
        stop.set()

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        await asyncio.gather(faults(), *(worker(s) for _ in range(6)))

    during_outage = [t for _, _, t in successes if marks["db_down"] <= t <= marks["db_up"]]
    assert during_outage, "no call succeeded while PostgreSQL was down"
    assert len(successes) > 50
    for inst in (c.instances[0], c.instances[2]):
        assert inst.stop(signal.SIGTERM) is not None  # drains its ledger, then exits
    rows = collections.Counter(m for (m,) in c.sql(f"SELECT model FROM usage_calls WHERE model LIKE '{MODEL}-u%'"))
    doubled = [m for m, n in rows.items() if n > 1]
    assert not doubled
    missing = [(m, u, t) for m, u, t in successes if rows[m] == 0]
    linger = 0.2
    for _, upstream, answered in missing:  # only the killed instance's last moments
        assert upstream == victim_addr
        assert answered >= marks["kill"] - linger - 0.5
    print(f"{len(successes)} calls succeeded, {len(failures)} failed, {len(missing)} rows lost to the SIGKILL")
