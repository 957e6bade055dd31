"""The tables, as SQLAlchemy Core metadata. A change here needs a migration in
`migrations/versions/` (tests compare the two)."""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["metadata", "usage_calls"]

metadata = sa.MetaData()

#: One row per provider call (or response-cache hit): the usage ledger.
usage_calls = sa.Table(
    "usage_calls",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False),  # start time, Unix seconds
    sa.Column("day", sa.String(10), nullable=False),  # UTC date of ts, YYYY-MM-DD
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("model", sa.String(255), nullable=False),  # the routed name the caller used
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
    sa.Column("cost_usd", sa.Float),  # NULL: price unknown
    sa.Column("savings_usd", sa.Float),  # NULL: price unknown
    sa.Column("response_cache_hit", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("latency_ms", sa.Float, nullable=False, server_default="0"),
    sa.Column("ttft_ms", sa.Float),
    sa.Column("outcome", sa.String(32), nullable=False, server_default="ok"),
    sa.Index("ix_usage_calls_ts", "ts"),
    sa.Index("ix_usage_calls_day", "day"),
    sa.Index("ix_usage_calls_session", "session"),
    sa.Index("ix_usage_calls_agent", "agent"),
)
