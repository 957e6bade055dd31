"""Scale mode: many stateless instances behind a load balancer, sharing PostgreSQL and Redis.

* PostgreSQL (`database_url` / SYNAPSE_DATABASE_URL = `postgresql://…`): the usage ledger,
  agents, sessions, API keys (as on SQLite, through synapse/storage), and here the settings
  (`settings_store.py`, provider keys encrypted by `secrets.py`) and web logins (`users.py`).
* Redis (`redis_url` / SYNAPSE_REDIS_URL): the response cache (`response_cache.py`), API
  keys' rate limits and budgets (`limits.py`), login sessions (`sessions.py`) and throttling
  (`throttle.py`), provider status dots (`status.py`), the settings-changed notice
  (`notices.py`). `shared.py` holds the connection and the fallbacks when Redis is down.
* `synapse db upgrade`, `synapse secrets new|rotate`: `cli.py`. The cluster the tests run and
  compose.yaml are one configuration: `cluster.py`.

A single instance on SQLite imports only `shared.redis_url` and `settings_store.scale_url`
(standard library); psycopg, redis and cryptography are imported in scale mode alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["web_state"]


def web_state(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The web app's shared parts for these settings: a Redis link (or None) and the CSRF
    key every instance shares (or None: a per-process one)."""
    from .shared import link

    secret = None
    if os.environ.get("SYNAPSE_SECRET_KEY"):
        from .secrets import csrf_secret

        secret = csrf_secret()
    return {"link": link(settings), "csrf_secret": secret}
