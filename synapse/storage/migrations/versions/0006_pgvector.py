"""Memory vectors searched where they live: pgvector's `vector` on PostgreSQL; each vector
row names its scope (`memory_vectors.agent`, index on model + agent).

On PostgreSQL this needs the pgvector extension: it is created here, or the migration
stops with what to do (`synapse.storage.vector.require_pgvector`), and nothing of it is
kept. Existing vectors (float32 bytes) are converted. SQLite keeps the bytes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

#: Rows converted per statement while the vector column changes type.
BATCH = 1000


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        from synapse.storage.vector import require_pgvector

        require_pgvector(bind)
    op.add_column("memory_vectors", sa.Column("agent", sa.String(64)))
    op.execute("UPDATE memory_vectors SET agent = (SELECT agent FROM memories WHERE memories.id = memory_vectors.memory_id)")
    op.execute("DELETE FROM memory_vectors WHERE agent IS NULL")  # vectors of memories deleted meanwhile
    with op.batch_alter_table("memory_vectors") as batch:
        batch.alter_column("agent", existing_type=sa.String(64), nullable=False)
        batch.drop_index("ix_memory_vectors_model")
        batch.create_index("ix_memory_vectors_scope", ["model", "agent"])
    if bind.dialect.name == "postgresql":
        _convert(bind, "vector", "bytea")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        _convert(bind, "bytea", "vector")  # the extension stays: dropping it takes a superuser
    with op.batch_alter_table("memory_vectors") as batch:
        batch.drop_index("ix_memory_vectors_scope")
        batch.create_index("ix_memory_vectors_model", ["model"])
        batch.drop_column("agent")


def _convert(bind: sa.Connection, new_type: str, old_type: str) -> None:
    """Change `memory_vectors.vector` between float32 bytes and pgvector's `vector`: a new
    column filled in batches (in key order), the old one dropped, the new one renamed."""
    import numpy as np

    from synapse.storage.vector import from_text, to_text

    op.execute(f"ALTER TABLE memory_vectors ADD COLUMN vector_new {new_type}")
    after: tuple[int, str] = (-1, "")
    while True:
        rows = bind.execute(sa.text(
            "SELECT memory_id, model, vector FROM memory_vectors WHERE (memory_id, model) > (:i, :m) "
            "ORDER BY memory_id, model LIMIT :n"), {"i": after[0], "m": after[1], "n": BATCH}).all()
        if not rows:
            break
        values: list[str] | list[bytes]
        if new_type == "vector":
            values = [to_text(np.frombuffer(bytes(v), dtype="<f4")) for _, _, v in rows]
            cast = "CAST(:v AS vector)"
        else:
            values = [np.asarray(from_text(str(v)), dtype="<f4").tobytes() for _, _, v in rows]
            cast = ":v"
        bind.execute(sa.text(f"UPDATE memory_vectors SET vector_new = {cast} WHERE memory_id = :i AND model = :m"),
                     [{"v": v, "i": i, "m": m} for (i, m, _), v in zip(rows, values)])
        after = (int(rows[-1][0]), str(rows[-1][1]))
    op.execute("ALTER TABLE memory_vectors DROP COLUMN vector")
    op.execute("ALTER TABLE memory_vectors RENAME COLUMN vector_new TO vector")
    op.execute("ALTER TABLE memory_vectors ALTER COLUMN vector SET NOT NULL")
