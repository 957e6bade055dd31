"""Shared fixtures: an isolated data folder, settings helpers and CLI runners."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from synapse import settings as settings_mod
from synapse.settings import ENV_FALLBACKS

#: Environment variables that could leak a developer's real setup into a test.
_PROVIDER_ENV = sorted(
    {v for names in ENV_FALLBACKS.values() for v in names}
    | {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "SYNAPSE_PORT",
       "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"}
)


#: Scale-mode variables that must not leak in from the developer's shell.
_SCALE_ENV = ("SYNAPSE_DATABASE_URL", "SYNAPSE_REDIS_URL", "SYNAPSE_SECRET_KEY")
#: A fixed Fernet key for the tests that run on PostgreSQL (scale mode needs one).
TEST_SECRET_KEY = "q3rrhxDkoQ6gKk0pu9pKMxFObUQq7m8F8X0eJfz0SdM="

_SESSION_DATA: Path | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Nothing a test does reaches the real data folder (~/.local/share/synapse): until a
    test's own `synapse_env` says otherwise, SYNAPSE_DATA_DIR is a folder of this run (a
    module's server, made before any test's fixture, would otherwise open the user's)."""
    global _SESSION_DATA
    import tempfile

    _SESSION_DATA = Path(tempfile.mkdtemp(prefix="synapse-tests-"))
    os.environ["SYNAPSE_DATA_DIR"] = str(_SESSION_DATA / "data")


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil

    if _SESSION_DATA is not None:
        shutil.rmtree(_SESSION_DATA, ignore_errors=True)


@pytest.fixture
def synapse_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database: str) -> Path:
    """A fresh, empty data folder and no provider variables in the environment; on a
    fresh PostgreSQL database (scale mode) when the test is parametrised so (`database`)."""
    data = tmp_path / "synapse-data"
    monkeypatch.setenv("SYNAPSE_DATA_DIR", str(data))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for name in (*_PROVIDER_ENV, *_SCALE_ENV):
        monkeypatch.delenv(name, raising=False)
    if database:
        monkeypatch.setenv("SYNAPSE_DATABASE_URL", database)
        monkeypatch.setenv("SYNAPSE_SECRET_KEY", TEST_SECRET_KEY)
    settings_mod._cache.clear()
    settings_mod._scale_cache.clear()
    from synapse import providers

    providers._adapters.clear()
    return data


# --- the database every database test runs on: SQLite, and PostgreSQL -------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked `database` (and whose fixtures reach `synapse_env`) run twice: on SQLite
    and on a fresh PostgreSQL database (scale mode). One fixture, no copied tests."""
    marked = metafunc.definition.get_closest_marker("database")
    if "database" in metafunc.fixturenames and marked and not metafunc.definition.get_closest_marker("sqlite_only"):
        metafunc.parametrize("database", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """One PostgreSQL for the run, with a migrated template database each test copies."""
    from tests.servers import Postgres, need, postgres_bin

    need("PostgreSQL (pgserver, in requirements-dev.lock)", postgres_bin() is not None)
    server = Postgres().start()  # its own folder under /tmp: pytest's is private to root
    try:
        url = server.create_database("synapse_template")
        from synapse import storage

        eng = storage.engine(url)
        eng.dispose()
        storage._engines.pop(storage.normalize_url(url), None)
        yield server
    finally:
        server.close()


_databases = iter(range(1, 1_000_000))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Any]:
    """One redis-server for the run (Debian's; .ci/run installs it)."""
    import shutil

    from tests.servers import Redis, need

    need("redis-server (apt-get install redis-server)", shutil.which("redis-server") is not None
         or os.path.exists("/usr/bin/redis-server"))
    server = Redis().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_url(redis_server: Any, monkeypatch: pytest.MonkeyPatch, synapse_env: Path) -> Iterator[str]:
    """SYNAPSE_REDIS_URL set to the test Redis, emptied first."""
    from synapse.scale import shared

    if redis_server.proc is None:  # a test stopped it
        redis_server.start()
    redis_server.flush()
    shared.reset()
    monkeypatch.setenv("SYNAPSE_REDIS_URL", redis_server.url)
    yield redis_server.url
    shared.reset()


@pytest.fixture
def empty_database(request: pytest.FixtureRequest, database: str, tmp_path: Path) -> str:
    """A database with no tables yet: a new SQLite file, or a new PostgreSQL database."""
    if not database:
        return f"sqlite:///{tmp_path / 'empty.db'}"
    server = request.getfixturevalue("pg_server")
    return server.create_database(f"e{os.getpid()}_{next(_databases)}")


@pytest.fixture
def database(request: pytest.FixtureRequest) -> Iterator[str]:
    """"" (SQLite in the data folder) or the URL of a fresh PostgreSQL database."""
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        yield ""
        return
    server = request.getfixturevalue("pg_server")
    name = f"t{os.getpid()}_{next(_databases)}"
    url = server.create_database(name, template="synapse_template")
    yield url
    from synapse import storage
    from synapse.scale import settings_store
    from synapse.usage.ledger import ledger

    ledger.flush(10)
    settings_store.reset()
    eng = storage._engines.pop(storage.normalize_url(url), None)
    if eng is not None:
        eng.dispose()


@pytest.fixture
def configure(synapse_env: Path) -> Callable[..., settings_mod.Settings]:
    """`configure(anthropic_key=..., anthropic_base_url=...)` writes settings.json."""

    def apply(**values: Any) -> settings_mod.Settings:
        return settings_mod.update(values)

    return apply


@pytest.fixture(autouse=True)
async def _close_http_session() -> Any:
    """Close the pooled client session of each test's event loop."""
    yield
    from synapse.providers.transport import close_session

    await close_session()


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(synapse_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """Run `synapse ARGS` in-process; `stdin=` feeds standard input (a str, or bytes for non-UTF-8)."""
    import io

    from synapse.cli import main

    def run(*args: str, stdin: str | None = None) -> CliResult:
        # No stdin given: an empty pipe (the CLI adds piped stdin to the prompt).
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin or ""))
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def run_synapse(synapse_env: Path) -> Callable[..., CliResult]:
    """Run the installed `synapse` command in a subprocess (real exit codes, no traceback)."""

    def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None, timeout: float = 60) -> CliResult:
        full_env = {**os.environ, **(env or {})}
        # No stdin given: an empty one, as from a terminal-less script (the CLI reads piped stdin).
        proc = subprocess.run(
            [sys.executable, "-m", "synapse.cli", *args],
            input=stdin, stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True, text=True, env=full_env, timeout=timeout,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run


def provider_fake(cls: type, **kwargs: Any) -> Iterator[Any]:
    """Start a fake server for a module-scoped fixture; reset it is the test's job."""
    server = cls(**kwargs).start()
    try:
        yield server
    finally:
        server.stop()


# One fake per protocol per test module, reset and pointed at by each test that asks
# for the configured form (`anthropic`, `openai`, `bedrock`, `gemini`, `ollama`).


@pytest.fixture(scope="module")
def anthropic_fake() -> Iterator[Any]:
    from tests.fakes.anthropic import AnthropicFake

    yield from provider_fake(AnthropicFake)


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[Any]:
    from tests.fakes.openai import OpenAIFake

    yield from provider_fake(OpenAIFake)


@pytest.fixture(scope="module")
def bedrock_fake() -> Iterator[Any]:
    from tests.fakes.bedrock import BedrockFake

    yield from provider_fake(BedrockFake)


@pytest.fixture(scope="module")
def gemini_fake() -> Iterator[Any]:
    from tests.fakes.gemini import GeminiFake

    yield from provider_fake(GeminiFake)


@pytest.fixture(scope="module")
def ollama_fake() -> Iterator[Any]:
    from tests.fakes.ollama import OllamaFake

    yield from provider_fake(OllamaFake)


@pytest.fixture
def anthropic(anthropic_fake: Any, configure: Callable[..., Any]) -> Any:
    anthropic_fake.reset()
    configure(**anthropic_fake.settings())
    return anthropic_fake


@pytest.fixture
def openai(openai_fake: Any, configure: Callable[..., Any]) -> Any:
    openai_fake.reset()
    configure(**openai_fake.settings())
    return openai_fake


@pytest.fixture
def bedrock(bedrock_fake: Any, configure: Callable[..., Any]) -> Any:
    bedrock_fake.reset()
    configure(**bedrock_fake.settings())
    return bedrock_fake


@pytest.fixture
def gemini(gemini_fake: Any, configure: Callable[..., Any]) -> Any:
    gemini_fake.reset()
    configure(**gemini_fake.settings())
    return gemini_fake


@pytest.fixture
def ollama(ollama_fake: Any, configure: Callable[..., Any]) -> Any:
    ollama_fake.reset()
    configure(**ollama_fake.settings())
    return ollama_fake
