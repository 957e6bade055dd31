"""Settings in the database (the `settings` table), shared by every instance in scale mode.

Scale mode is a `database_url` that is not a SQLite file (SYNAPSE_DATABASE_URL wins over
settings.json). Then:

* `settings.json` is read at start and seeds the table: each key the table does not
  have yet is copied in (INSERT ... ON CONFLICT DO NOTHING, so two instances starting at
  once seed it once). `database_url` and `redis_url` stay in the file (or the
  environment): they say where the shared state is, so they cannot live in it.
* Saves (`settings.update`, `synapse config set`, the web pages) write the table, with
  secrets (`*_key`, `*_secret`, `*_token`, `*_password`) encrypted (secrets.py), then
  publish a settings-changed notice on Redis (notices.py).
* Each process keeps one decoded copy. It is read again when a notice arrives (every
  instance sees a save within a few milliseconds), and otherwise at most `POLL` seconds
  after the last read when no Redis listener is connected (so a save is live everywhere
  within 1 s without Redis too), or `SAFETY` seconds with one.
* The database down: the last copy stays in use (calls go on), logged once; the first
  read of a process fails with a message that says what to fix.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import SettingsError

__all__ = ["BOOTSTRAP", "POLL", "SAFETY", "Store", "is_scale", "scale_url", "store_for"]

log = logging.getLogger("synapse.scale")

#: Settings that stay in settings.json / the environment: where the shared state lives.
BOOTSTRAP = frozenset({"database_url", "redis_url"})
#: Seconds a copy is trusted without a Redis listener.
POLL = 1.0
#: Seconds a copy is trusted while a listener is connected (in case a notice was lost).
SAFETY = 10.0


def scale_url(file_values: Mapping[str, Any]) -> str:
    """The shared database these file values (and the environment) point at, or ""."""
    import os

    from ..storage import is_scale_url, normalize_url

    url = os.environ.get("SYNAPSE_DATABASE_URL", "").strip() or str(file_values.get("database_url") or "").strip()
    url = normalize_url(url)
    return url if is_scale_url(url) else ""


def is_scale(settings: Mapping[str, Any] | None = None) -> bool:
    """Whether these settings (or the environment) put Synapse in scale mode."""
    values = getattr(settings, "file_values", settings) or {}
    return bool(scale_url(values))


def _is_secret(key: str) -> bool:
    from ..settings import is_secret

    return is_secret(key)


@dataclass(frozen=True, slots=True)
class _Copy:
    values: dict[str, Any]
    read_at: float
    generation: int


class Store:
    """The settings table of one database, and this process's decoded copy of it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._copy: _Copy | None = None
        self._lock = threading.Lock()
        #: Bumped by a settings-changed notice (and by this process's own saves).
        self.generation = 0
        self._seeded = False
        self._down_said = False
        self.listener: Any = None
        #: The Redis that carries the settings-changed notice ("" when none).
        self.redis = ""
        self._seed_values: Mapping[str, Any] | None = None

    # --- reading ------------------------------------------------------------------------

    def invalidate(self) -> None:
        self.generation += 1

    def fresh(self, now: float) -> bool:
        copy = self._copy
        if copy is None or copy.generation != self.generation:
            return False
        trusted = SAFETY if self.listener is not None and self.listener.connected else POLL
        return now - copy.read_at < trusted

    def refresh(self) -> None:
        """Read the table now (the listener thread, after a notice: requests find it read)."""
        if self._seed_values is not None:
            try:
                self.values(self._seed_values)
            except SettingsError:
                pass  # the next request reads it and says why

    def values(self, seed: Mapping[str, Any]) -> dict[str, Any]:
        """The table's settings, decoded (from the copy while it is fresh)."""
        self._seed_values = seed
        now = time.monotonic()
        copy = self._copy
        if copy is not None and self.fresh(now):
            return copy.values
        with self._lock:
            copy = self._copy
            if copy is not None and self.fresh(time.monotonic()):
                return copy.values
            generation = self.generation
            try:
                if not self._seeded:
                    self._seed(seed)
                values = self._read()
            except SettingsError:
                raise
            except Exception as exc:
                if copy is None:
                    raise SettingsError(
                        f"cannot read the settings from the database ({_where(self.url)}): "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}. "
                        "Check that PostgreSQL runs and database_url / SYNAPSE_DATABASE_URL is right"
                    ) from None
                if not self._down_said:
                    self._down_said = True
                    log.warning("settings: the database is unreachable (%s); using the settings read %.0f s ago",
                                type(exc).__name__, time.monotonic() - copy.read_at)
                # keep the old copy; try again after POLL
                self._copy = _Copy(copy.values, time.monotonic(), generation)
                return copy.values
            if self._down_said:
                self._down_said = False
                log.warning("settings: the database answers again")
            if copy is not None and values == copy.values:
                values = copy.values  # unchanged: the same object, so copies built on it stay valid
            self._copy = _Copy(values, time.monotonic(), generation)
            self._start_listener(seed)
            return values

    def _engine(self) -> Any:
        from .. import storage

        return storage.engine(self.url)

    def _read(self) -> dict[str, Any]:
        import sqlalchemy as sa

        from ..storage.tables import settings as table
        from .secrets import decrypt

        with self._engine().connect() as conn:
            rows = conn.execute(sa.select(table.c.key, table.c.value, table.c.encrypted)).all()
        out: dict[str, Any] = {}
        for key, value, encrypted in rows:
            text = decrypt(value, f"the stored setting {key!r}") if encrypted else value
            try:
                out[key] = json.loads(text)
            except ValueError:
                out[key] = text
        return out

    def _seed(self, seed: Mapping[str, Any]) -> None:
        rows = [self._row(k, v) for k, v in seed.items() if k not in BOOTSTRAP and v not in (None, "")]
        if rows:
            from ..storage.tables import settings as table

            eng = self._engine()
            with eng.begin() as conn:
                conn.execute(_insert_new(eng.dialect.name, table), rows)
        self._seeded = True

    def _row(self, key: str, value: Any) -> dict[str, Any]:
        from .secrets import encrypt

        text = json.dumps(value, ensure_ascii=False)
        secret = _is_secret(key) and isinstance(value, str) and bool(value)
        return {"key": key, "value": encrypt(text) if secret else text, "encrypted": secret,
                "updated_at": time.time()}

    # --- writing ------------------------------------------------------------------------

    def write(self, changes: Mapping[str, Any]) -> None:
        """Store `changes` (None removes a key) in one transaction, then tell every instance."""
        from ..storage.tables import settings as table

        eng = self._engine()
        upserts = [self._row(k, v) for k, v in changes.items() if v is not None]
        removed = [k for k, v in changes.items() if v is None]
        with eng.begin() as conn:
            if removed:
                conn.execute(table.delete().where(table.c.key.in_(removed)))
            for row in upserts:
                conn.execute(_upsert(eng.dialect.name, table), row)
        self.invalidate()
        from .notices import publish

        publish(self, sorted(changes))

    def rotate(self) -> int:
        """Re-encrypt every encrypted row with the first secret key. Returns how many."""
        import sqlalchemy as sa

        from ..storage.tables import settings as table
        from .secrets import decrypt, fernet

        multi = fernet()
        eng = self._engine()
        with eng.begin() as conn:
            rows = conn.execute(sa.select(table.c.key, table.c.value).where(table.c.encrypted.is_(True))
                                .with_for_update()).all()
            fresh = []
            for key, value in rows:
                decrypt(value, f"the stored setting {key!r}")  # every key opens before anything is written
                fresh.append((key, multi.rotate(value.encode("ascii")).decode("ascii")))
            for key, value in fresh:
                conn.execute(table.update().where(table.c.key == key).values(value=value, updated_at=time.time()))
        self.invalidate()
        from .notices import publish

        publish(self, [key for key, _ in fresh])
        return len(fresh)

    def _start_listener(self, seed: Mapping[str, Any]) -> None:
        if self.listener is not None:
            return
        from .shared import redis_url

        url = self.redis = redis_url(seed)
        if url:
            from .notices import Listener

            self.listener = Listener(url, self)
            self.listener.start()


def _insert_new(dialect: str, table: Any) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    return insert(table).on_conflict_do_nothing(index_elements=["key"])


def _upsert(dialect: str, table: Any) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    stmt = insert(table)
    return stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={"value": stmt.excluded.value, "encrypted": stmt.excluded.encrypted, "updated_at": stmt.excluded.updated_at},
    )


def _upsert_users(dialect: str) -> Any:
    from ..storage.tables import users

    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    stmt = insert(users)
    return stmt.on_conflict_do_update(index_elements=["name"],
                                      set_={"password": stmt.excluded.password, "updated_at": stmt.excluded.updated_at})


def _where(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        u = make_url(url)
        return f"{u.host or 'localhost'}:{u.port or 5432}/{u.database or ''}"
    except Exception:
        return "database_url"


_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


def store_for(url: str) -> Store:
    found = _stores.get(url)
    if found is None:
        with _stores_lock:
            found = _stores.setdefault(url, Store(url))
    return found


def reset() -> None:
    """Forget every copy and stop the listeners (tests)."""
    with _stores_lock:
        for store in _stores.values():
            if store.listener is not None:
                store.listener.stop()
        _stores.clear()
