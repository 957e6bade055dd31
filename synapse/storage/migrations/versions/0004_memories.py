"""Long-term memories: memories, their vectors per embedding model, history, scope versions;
a full-text index (SQLite FTS5 with sync triggers, PostgreSQL a GIN index on to_tsvector);
`agents.memory_tool` (Anthropic's memory tool for the agent's Claude models).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: FTS5 over memories.text, external content (the text is stored once, in memories).
#: porter: "lives" finds "living"; unicode61 with diacritics removed: "café" finds "cafe".
_SQLITE_FTS = (
    "CREATE VIRTUAL TABLE memories_fts USING fts5(text, content='memories', content_rowid='id', "
    "tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER memories_fts_ai AFTER INSERT ON memories BEGIN "
    "INSERT INTO memories_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER memories_fts_ad AFTER DELETE ON memories BEGIN "
    "INSERT INTO memories_fts(memories_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER memories_fts_au AFTER UPDATE OF text ON memories BEGIN "
    "INSERT INTO memories_fts(memories_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO memories_fts(rowid, text) VALUES (new.id, new.text); END",
)
_POSTGRES_FTS = "CREATE INDEX ix_memories_fts ON memories USING gin (to_tsvector('simple', text))"


def upgrade() -> None:
    op.create_table(
        "memories",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("agent", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.String(40), nullable=False),
        sa.Column("source", sa.String(32), nullable=False, server_default="manual"),
        sa.Column("session_id", sa.String(64)),
        sa.Column("turn", sa.Integer),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("last_recalled_at", sa.Float),
        sa.Column("recall_count", sa.Integer, nullable=False, server_default="0"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_memories_agent", "memories", ["agent", "updated_at"])
    op.create_index("ix_memories_fingerprint", "memories", ["agent", "fingerprint"])
    op.create_table(
        "memory_vectors",
        sa.Column("memory_id", sa.Integer, primary_key=True),
        sa.Column("model", sa.String(255), primary_key=True),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_memory_vectors_model", "memory_vectors", ["model"])
    op.create_table(
        "memory_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("memory_id", sa.Integer, nullable=False),
        sa.Column("agent", sa.String(64), nullable=False),
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("old_text", sa.Text),
        sa.Column("new_text", sa.Text),
        sa.Column("actor", sa.String(32), nullable=False),
        sa.Column("session_id", sa.String(64)),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_memory_history_memory", "memory_history", ["memory_id"])
    op.create_index("ix_memory_history_agent", "memory_history", ["agent", "created_at"])
    op.create_table(
        "memory_scopes",
        sa.Column("agent", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    )
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("memory_tool", sa.Boolean, nullable=False, server_default=sa.false()))
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in _SQLITE_FTS:
            op.execute(statement)
    elif dialect == "postgresql":
        op.execute(_POSTGRES_FTS)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("memories_fts_ai", "memories_fts_ad", "memories_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS memories_fts")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("memory_tool")
    op.drop_table("memory_scopes")
    op.drop_table("memory_history")
    op.drop_table("memory_vectors")
    op.drop_table("memories")
