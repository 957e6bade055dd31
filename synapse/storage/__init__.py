"""Synapse's SQL database: SQLAlchemy engines and Alembic migrations.

SQLite at `<data dir>/synapse.db` by default. SYNAPSE_DATABASE_URL (which wins) or the
`database_url` setting in settings.json picks another: `postgresql://user:pass@host/synapse`
is scale mode (synapse/scale/), driven by psycopg 3 (`postgres://` and `postgresql://` mean
`postgresql+psycopg://`).

The migrations ship inside the package (`synapse/storage/migrations`) and are applied
programmatically the first time a process opens a database (`engine()`), or by hand with
`synapse db upgrade`; a database already at the newest revision costs one small query.
Two processes that start at once do not race: SQLite migrates under a file lock, PostgreSQL
under an advisory lock (a second instance waits, then finds the schema current). Nothing here is imported on the call
path: the usage writer thread and the reports import it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = [
    "HEAD_REVISION",
    "current_revision",
    "database_url",
    "dispose_all",
    "downgrade",
    "engine",
    "is_scale_url",
    "migrate",
    "normalize_url",
]

#: The newest migration in migrations/versions; `engine()` upgrades older databases.
HEAD_REVISION = "0008"

_MIGRATIONS = Path(__file__).with_name("migrations")
#: How long a SQLite connection waits for another connection's lock before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 10_000
#: pg_advisory_xact_lock key that serialises migrations between instances ("synapse" in ASCII).
MIGRATION_LOCK_ID = 0x73796E61707365
_engines: dict[str, "sa.Engine"] = {}
_lock = threading.RLock()


def normalize_url(url: str) -> str:
    """`postgres://` and `postgresql://` (what PostgreSQL tools write) -> the psycopg 3 driver."""
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme):]
    return url


def is_scale_url(url: str) -> bool:
    """A database every instance can share (anything but a SQLite file): scale mode."""
    return bool(url) and not url.startswith("sqlite")


def database_url(settings: Mapping[str, Any] | None = None) -> str:
    """The database these settings point at (see the module docstring).

    SYNAPSE_DATABASE_URL wins over `database_url` in settings.json (the rule for scale
    settings: a deployment's environment says where its shared state lives).
    """
    url = os.environ.get("SYNAPSE_DATABASE_URL", "").strip()
    if not url and settings is not None:
        url = str(settings.get("database_url") or "").strip()
    if url:
        return normalize_url(url)
    path = getattr(settings, "path", None)
    if path is not None:
        folder = Path(path).parent
    else:
        from ..settings import data_dir

        folder = data_dir()
    return f"sqlite:///{folder / 'synapse.db'}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.close()


def engine(url: str | None = None, settings: Mapping[str, Any] | None = None) -> "sa.Engine":
    """The (cached) engine for `url` (default: from settings), migrated to the newest schema."""
    url = normalize_url(url) if url else database_url(settings)
    eng = _engines.get(url)
    if eng is not None:
        return eng
    with _lock:
        eng = _engines.get(url)
        if eng is not None:
            return eng
        import sqlalchemy as sa

        if url.startswith("sqlite"):
            db_path = url.split("///", 1)[-1]
            if db_path and db_path != ":memory:":
                from ..private_files import create_private

                create_private(Path(db_path))  # 0600 before SQLite opens it (it holds who called what)
            eng = sa.create_engine(url, connect_args={"timeout": 10, "check_same_thread": False})
            sa.event.listen(eng, "connect", _sqlite_pragmas)
        else:
            eng = _server_engine(url)
        migrate(eng)
        if len(_engines) >= 16:  # tests open many data folders: keep the pool small
            for old in _engines.values():
                old.dispose()
            _engines.clear()
        _engines[url] = eng
        return eng


def _server_engine(url: str) -> "sa.Engine":
    """A database server's engine: checked connections (a restarted server is reconnected
    to, not reported as an error), short connect timeout (a server that is down fails fast
    and the usage ledger keeps its rows for later)."""
    import sqlalchemy as sa

    if url.startswith("postgresql"):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            from ..errors import SettingsError

            raise SettingsError(
                "database_url points at PostgreSQL, which needs the scale extra: "
                "pip install -r requirements-scale.lock (or 'synapse-llm[scale]')"
            ) from None
        from .vector import register_reflection

        register_reflection()  # only here: SQLite need not import the PostgreSQL dialect
        return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10,
                                connect_args={"connect_timeout": 3})
    return sa.create_engine(url, pool_pre_ping=True)


def current_revision(eng: "sa.Engine") -> str | None:
    import sqlalchemy as sa

    with eng.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def _alembic(eng: "sa.Engine", action: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    if eng.dialect.name == "postgresql":
        from .vector import register_reflection

        register_reflection()

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", eng.url.render_as_string(hide_password=False).replace("%", "%%"))
    with eng.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)


def migrate(eng: "sa.Engine", revision: str = "head") -> str | None:
    """Apply the packaged Alembic migrations up to `revision` (no-op when already there).

    Returns the revision this call migrated from ("" for an empty database), or None when it
    found nothing to do (another process may just have done it)."""
    if revision == "head" and current_revision(eng) == HEAD_REVISION:
        return None
    with _file_lock(eng):
        before = current_revision(eng)
        if revision == "head" and before == HEAD_REVISION:
            return None
        _alembic(eng, "upgrade", revision)
        return before or ""


def downgrade(eng: "sa.Engine", revision: str = "base") -> None:
    """Undo migrations down to `revision` ("base": drop every table Synapse made)."""
    with _file_lock(eng):
        _alembic(eng, "downgrade", revision)


class _file_lock:
    """Serialise migrations between processes: a file lock beside a SQLite file; on
    PostgreSQL an advisory lock held by a connection of its own for the check and the
    upgrade (a second instance waits, then finds the schema current)."""

    def __init__(self, eng: "sa.Engine") -> None:
        backend = eng.url.get_backend_name()
        db = eng.url.database if backend == "sqlite" else None
        self.path = Path(db + ".migrate.lock") if db and db != ":memory:" else None
        self.eng = eng if backend == "postgresql" else None
        self.fh: Any = None
        self.conn: Any = None

    def __enter__(self) -> None:
        if self.path is not None:
            import fcntl

            self.fh = open(self.path, "a")
            fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX)
        elif self.eng is not None:
            import sqlalchemy as sa

            self.conn = self.eng.connect()
            self.conn.execute(sa.text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            self.conn.commit()

    def __exit__(self, *exc: object) -> None:
        if self.fh is not None:
            import fcntl

            fcntl.flock(self.fh.fileno(), fcntl.LOCK_UN)
            self.fh.close()
        if self.conn is not None:
            import sqlalchemy as sa

            try:
                self.conn.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
                self.conn.commit()
            finally:
                self.conn.close()  # a lost connection releases the lock too


def dispose_all() -> None:
    """Close every pooled connection (tests, shutdown)."""
    with _lock:
        for eng in _engines.values():
            eng.dispose()
        _engines.clear()
