"""The column type of a memory's embedding: pgvector's `vector` on PostgreSQL, float32 bytes elsewhere.

One column, `memory_vectors.vector`, on every database, so the memory code writes a vector
the same way everywhere and searches it where the database can: PostgreSQL compares
vectors itself (`<#>`, synapse/memory/pgvector.py); SQLite keeps little-endian float32
bytes that each process searches in numpy (synapse/memory/vectors.py). The `vector`
column has no fixed dimension, so vectors of several embedding models (384, 1024, 1536
numbers ...) share it, one row per memory and model.

Values go in as numpy arrays (or sequences of floats) and come out as float32 arrays.
pgvector itself is required on PostgreSQL: migration 0006 creates the extension or says
why it cannot (`require_pgvector`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator, UserDefinedType

from ..errors import SettingsError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["EXTENSION", "PgVector", "PgvectorMissing", "Vector", "from_text", "register_reflection", "require_pgvector", "to_text"]

#: The PostgreSQL extension that provides the `vector` type.
EXTENSION = "vector"


class PgVector(UserDefinedType[Any]):
    """pgvector's `vector`, no fixed dimension; bound parameters are cast (`%(p)s::vector`)."""

    cache_ok = True
    render_bind_cast = True

    def get_col_spec(self, **kw: Any) -> str:
        return "vector"


class Vector(TypeDecorator[Any]):
    """An embedding: `vector` on PostgreSQL, float32 little-endian bytes elsewhere."""

    impl = sa.LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(PgVector())
        return dialect.type_descriptor(sa.LargeBinary())

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return to_text(value)
        import numpy as np

        return np.asarray(value, dtype="<f4").tobytes()

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        import numpy as np

        if isinstance(value, str):
            return from_text(value)
        return np.frombuffer(bytes(value), dtype="<f4")


def to_text(vector: Any) -> str:
    """pgvector's text form, `[0.1,-0.2,...]`. Each float32 is written as the double it is
    exactly, so PostgreSQL reads back the same float32."""
    import numpy as np

    return "[" + ",".join(map(repr, np.asarray(vector, dtype=np.float32).reshape(-1).tolist())) + "]"


def from_text(text: str) -> "np.ndarray":
    import numpy as np

    inner = text.strip()[1:-1]
    return np.array(inner.split(",") if inner else [], dtype=np.float32)


def register_reflection() -> None:
    """Let SQLAlchemy reflect a `vector` column (schema comparisons in the tests, Alembic).
    Called when a PostgreSQL engine is made, so SQLite never imports that dialect."""
    from sqlalchemy.dialects.postgresql import base

    base.ischema_names.setdefault("vector", PgVector)


class PgvectorMissing(SettingsError):
    """PostgreSQL cannot give memories the `vector` type; the message says what to do.

    Raised while migrating, so nothing of the migration is kept (PostgreSQL runs the DDL
    in one transaction) and the next start tries again."""

    kind = "database"


def require_pgvector(conn: sa.Connection) -> None:
    """Create the pgvector extension in this database, or raise PgvectorMissing saying how
    to get it: the server may not have it installed, or this role may not create it."""
    extension = EXTENSION
    if conn.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = :e"), {"e": extension}).first():
        return
    where = f"database {conn.engine.url.database!r} on {conn.engine.url.host or 'localhost'}"
    available = conn.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = :e"),
                             {"e": extension}).first()
    if not available:
        major = int(conn.execute(sa.text("SHOW server_version_num")).scalar_one()) // 10000
        raise PgvectorMissing(
            f"PostgreSQL ({where}) has no pgvector extension, which Synapse needs to keep memories in scale "
            f"mode. Install it on the database server (Debian/Ubuntu: the postgresql-{major}-pgvector package, "
            "from apt.postgresql.org where the distribution has none; Docker: the pgvector/pgvector image; "
            "managed PostgreSQL services offer it as `vector`), then start again."
        )
    try:
        with conn.begin_nested():
            conn.execute(sa.text(f'CREATE EXTENSION IF NOT EXISTS "{extension}"'))
    except sa.exc.DBAPIError as exc:
        reason = str(getattr(exc, "orig", exc)).splitlines()[0]
        raise PgvectorMissing(
            f"PostgreSQL ({where}) has pgvector but this role cannot enable it ({reason}). "
            "Ask a superuser to run `CREATE EXTENSION vector;` in that database once, then start again."
        ) from None
