"""The gateway under test: `synapse serve`'s root app under uvicorn on a loopback port,
in a thread of the test process (so tests can flush and read the usage ledger), with
the loopback provider fakes behind it. The official SDKs are the clients."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.base import free_port


class GatewayServer:
    """uvicorn serving `synapse.server.root.create_root()` on 127.0.0.1 in a thread."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = free_port()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "GatewayServer":
        import uvicorn

        from synapse.server.root import create_root

        config = uvicorn.Config(create_root(self.host), host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="gateway", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)


@pytest.fixture(scope="module")
def gateway_server() -> Iterator[GatewayServer]:
    server = GatewayServer().start()
    yield server
    server.stop()


@pytest.fixture
def gateway(gateway_server: GatewayServer, synapse_env: Path) -> GatewayServer:
    """The running gateway, serving this test's fresh data folder."""
    from synapse.gateway import keys

    keys._tables.clear()
    return gateway_server


@pytest.fixture
def make_key(synapse_env: Path) -> Callable[..., str]:
    """`make_key("name", models=..., budget_usd=..., expires_days=...)` -> the new sk-syn- key."""
    from synapse import settings as settings_mod
    from synapse.gateway import keys

    def make(name: str = "test", **kwargs: Any) -> str:
        key, _ = keys.create(name, settings=settings_mod.load(), **kwargs)
        return key

    return make


def ledger_rows(**where: Any) -> list[dict[str, Any]]:
    """Every usage_calls row of the current data folder, oldest first (after a flush)."""
    import sqlalchemy as sa

    from synapse import settings as settings_mod
    from synapse import storage
    from synapse.storage.tables import usage_calls
    from synapse.usage.ledger import flush

    assert flush(10)
    eng = storage.engine(settings=settings_mod.load())
    query = sa.select(usage_calls).order_by(usage_calls.c.id)
    for name, value in where.items():
        query = query.where(usage_calls.c[name] == value)
    with eng.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]
