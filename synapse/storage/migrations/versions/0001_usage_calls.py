"""The usage ledger: one row per provider call.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_calls",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("upstream_model", sa.String(255), nullable=False),
        sa.Column("agent", sa.String(255)),
        sa.Column("session", sa.String(255)),
        sa.Column("kind", sa.String(16), nullable=False, server_default="chat"),
        sa.Column("stream", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("input_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("output_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cache_read_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cache_write_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("reasoning_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cost_usd", sa.Float),
        sa.Column("savings_usd", sa.Float),
        sa.Column("response_cache_hit", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("latency_ms", sa.Float, nullable=False, server_default="0"),
        sa.Column("ttft_ms", sa.Float),
        sa.Column("outcome", sa.String(32), nullable=False, server_default="ok"),
    )
    op.create_index("ix_usage_calls_ts", "usage_calls", ["ts"])
    op.create_index("ix_usage_calls_day", "usage_calls", ["day"])
    op.create_index("ix_usage_calls_session", "usage_calls", ["session"])
    op.create_index("ix_usage_calls_agent", "usage_calls", ["agent"])


def downgrade() -> None:
    op.drop_table("usage_calls")
