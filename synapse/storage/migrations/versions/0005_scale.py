"""Scale mode: a call id per usage row (idempotent writes), settings and logins in the
database, a per-key rate limit.

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
# The memory migration (0004) lands beside this one: whichever merges second points here.
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_calls") as batch:
        batch.add_column(sa.Column("call_id", sa.String(32)))
        batch.create_index("ux_usage_calls_call_id", ["call_id"], unique=True)
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("rpm", sa.Integer))
    op.create_table(
        "settings",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("encrypted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("password", sa.String(255), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("users")
    op.drop_table("settings")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("rpm")
    with op.batch_alter_table("usage_calls") as batch:
        batch.drop_index("ux_usage_calls_call_id")
        batch.drop_column("call_id")
