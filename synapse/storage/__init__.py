"""Synapse's SQL database: SQLAlchemy engines and Alembic migrations.

SQLite at `<data dir>/synapse.db` by default. Set the `database_url` setting (or the
SYNAPSE_DATABASE_URL environment variable) to any SQLAlchemy URL, e.g.
`postgresql+psycopg://user:pass@host/synapse`, to use another database.

The migrations ship inside the package (`synapse/storage/migrations`) and are applied
programmatically the first time a process opens a database (`engine()`); a database
already at the newest revision costs one small query. Nothing here is imported on the
call path: the usage writer thread and the reports import it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["HEAD_REVISION", "current_revision", "database_url", "dispose_all", "downgrade", "engine", "migrate"]

#: The newest migration in migrations/versions; `engine()` upgrades older databases.
HEAD_REVISION = "0004"

_MIGRATIONS = Path(__file__).with_name("migrations")
#: How long a SQLite connection waits for another connection's lock before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 10_000
_engines: dict[str, "sa.Engine"] = {}
_lock = threading.RLock()


def database_url(settings: Mapping[str, Any] | None = None) -> str:
    """The database these settings point at (see the module docstring)."""
    url = ""
    if settings is not None:
        url = str(settings.get("database_url") or "").strip()
    url = url or os.environ.get("SYNAPSE_DATABASE_URL", "").strip()
    if url:
        return url
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
    url = url or database_url(settings)
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
            eng = sa.create_engine(url, pool_pre_ping=True)
        migrate(eng)
        if len(_engines) >= 16:  # tests open many data folders: keep the pool small
            for old in _engines.values():
                old.dispose()
            _engines.clear()
        _engines[url] = eng
        return eng


def current_revision(eng: "sa.Engine") -> str | None:
    import sqlalchemy as sa

    with eng.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def _alembic(eng: "sa.Engine", action: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", eng.url.render_as_string(hide_password=False).replace("%", "%%"))
    with eng.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)


def migrate(eng: "sa.Engine", revision: str = "head") -> None:
    """Apply the packaged Alembic migrations up to `revision` (no-op when already there)."""
    if revision == "head" and current_revision(eng) == HEAD_REVISION:
        return
    with _file_lock(eng):
        if revision == "head" and current_revision(eng) == HEAD_REVISION:
            return
        _alembic(eng, "upgrade", revision)


def downgrade(eng: "sa.Engine", revision: str = "base") -> None:
    """Undo migrations down to `revision` ("base": drop every table Synapse made)."""
    with _file_lock(eng):
        _alembic(eng, "downgrade", revision)


class _file_lock:
    """Serialise first-time migration of a SQLite file between processes."""

    def __init__(self, eng: "sa.Engine") -> None:
        db = eng.url.database if eng.url.get_backend_name() == "sqlite" else None
        self.path = Path(db + ".migrate.lock") if db and db != ":memory:" else None
        self.fh: Any = None

    def __enter__(self) -> None:
        if self.path is not None:
            import fcntl

            self.fh = open(self.path, "a")
            fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        if self.fh is not None:
            import fcntl

            fcntl.flock(self.fh.fileno(), fcntl.LOCK_UN)
            self.fh.close()


def dispose_all() -> None:
    """Close every pooled connection (tests, shutdown)."""
    with _lock:
        for eng in _engines.values():
            eng.dispose()
        _engines.clear()
