"""Gateway API keys, and the key each call came with in the usage ledger.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("models", sa.Text, nullable=False, server_default=""),
        sa.Column("budget_usd", sa.Float),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("expires", sa.Float),
        sa.Column("revoked", sa.Float),
    )
    with op.batch_alter_table("usage_calls") as batch:
        batch.add_column(sa.Column("key_name", sa.String(64)))
        batch.create_index("ix_usage_calls_key_name", ["key_name"])


def downgrade() -> None:
    with op.batch_alter_table("usage_calls") as batch:
        batch.drop_index("ix_usage_calls_key_name")
        batch.drop_column("key_name")
    op.drop_table("api_keys")
