"""Web logins and login attempts in the database, shared by every process serving the pages.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires", sa.Float, nullable=False),
    )
    op.create_index("ix_web_sessions_username", "web_sessions", ["username"])
    op.create_index("ix_web_sessions_expires", "web_sessions", ["expires"])
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("pair_key", sa.String(64), nullable=False),
        sa.Column("user_key", sa.String(64), nullable=False),
        sa.Column("client_key", sa.String(64), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
    )
    op.create_index("ix_login_attempts_pair", "login_attempts", ["pair_key", "ts"])
    op.create_index("ix_login_attempts_user", "login_attempts", ["user_key", "ts"])
    op.create_index("ix_login_attempts_client", "login_attempts", ["client_key", "ts"])
    op.create_index("ix_login_attempts_ts", "login_attempts", ["ts"])


def downgrade() -> None:
    op.drop_table("login_attempts")
    op.drop_table("web_sessions")
