"""Agents, chat sessions and their stored history.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("name_key", sa.String(255), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("system_prompt", sa.Text, nullable=False, server_default=""),
        sa.Column("model", sa.String(255), nullable=False, server_default=""),
        sa.Column("max_turns", sa.Integer, nullable=False, server_default="30"),
        sa.Column("tools", sa.JSON, nullable=False),
        sa.Column("temperature", sa.Float),
        sa.Column("response_cache", sa.String(16), nullable=False, server_default="off"),
        sa.Column("max_total_cost_usd", sa.Float),
        sa.Column("memory", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("extra", sa.JSON),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("name_key", name="uq_agents_name_key"),
    )
    op.create_table(
        "chat_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("agent_id", sa.String(64)),
        sa.Column("agent_name", sa.String(255), nullable=False, server_default=""),
        sa.Column("title", sa.String(255), nullable=False, server_default=""),
        sa.Column("model", sa.String(255), nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_chat_sessions_updated", "chat_sessions", ["updated_at"])
    op.create_index("ix_chat_sessions_agent", "chat_sessions", ["agent_id"])
    op.create_table(
        "session_messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False, server_default="message"),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.JSON, nullable=False),
        sa.Column("meta", sa.JSON),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("session_id", "seq", name="uq_session_messages_seq"),
    )


def downgrade() -> None:
    op.drop_table("session_messages")
    op.drop_index("ix_chat_sessions_agent", "chat_sessions")
    op.drop_index("ix_chat_sessions_updated", "chat_sessions")
    op.drop_table("chat_sessions")
    op.drop_table("agents")
