"""usage_calls.estimated: a call cut short before the provider reported its usage has its
missing tokens estimated, and its row says so.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_calls") as batch:
        batch.add_column(sa.Column("estimated", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("usage_calls") as batch:
        batch.drop_column("estimated")
