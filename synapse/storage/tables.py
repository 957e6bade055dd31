"""The tables, as SQLAlchemy Core metadata. A change here needs a migration in
`migrations/versions/` (tests compare the two)."""

from __future__ import annotations

import sqlalchemy as sa

from .vector import Vector

__all__ = [
    "agents", "api_keys", "chat_sessions", "login_attempts", "memories", "memory_history", "memory_scopes",
    "memory_vectors", "metadata", "include_name", "session_messages", "settings", "unmanaged", "usage_calls", "users",
    "web_sessions",
]

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
    sa.Column("key_name", sa.String(64)),  # the gateway API key the call came with
    # One random id per call, made once: a retried or replayed insert of the same row is ignored.
    sa.Column("call_id", sa.String(32)),
    # The call was cut short before the provider reported its usage: the missing tokens are
    # estimated (synapse/usage/estimate.py). Never true for a completed call.
    sa.Column("estimated", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_usage_calls_ts", "ts"),
    sa.Index("ix_usage_calls_day", "day"),
    sa.Index("ix_usage_calls_session", "session"),
    sa.Index("ix_usage_calls_agent", "agent"),
    sa.Index("ix_usage_calls_key_name", "key_name"),
    sa.Index("ux_usage_calls_call_id", "call_id", unique=True),
)

#: Gateway API keys (`sk-syn-…`), stored as a SHA-256 of the key: the key itself is
#: shown once, when it is made. Spend and last use come from `usage_calls.key_name`.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(32), nullable=False),  # the first characters, to recognise it
    sa.Column("hash", sa.String(64), nullable=False, unique=True),  # hex SHA-256 of the whole key
    sa.Column("models", sa.Text, nullable=False, server_default=""),  # "claude-*,gpt-5*"; empty: any
    sa.Column("budget_usd", sa.Float),  # NULL: no budget
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("expires", sa.Float),  # NULL: never
    sa.Column("revoked", sa.Float),  # NULL: active
    sa.Column("rpm", sa.Integer),  # requests a minute allowed; NULL: no limit
)

#: Agents: a named assistant with a system prompt, an optional model and tools.
agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # "agent-" + short random
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("name_key", sa.String(255), nullable=False),  # lower-cased name: unique
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("system_prompt", sa.Text, nullable=False, server_default=""),
    sa.Column("model", sa.String(255), nullable=False, server_default=""),  # "": the `model` setting
    sa.Column("max_turns", sa.Integer, nullable=False, server_default="30"),
    sa.Column("tools", sa.JSON, nullable=False),  # list of tool names, or ["all"]
    sa.Column("temperature", sa.Float),
    sa.Column("response_cache", sa.String(16), nullable=False, server_default="off"),
    sa.Column("max_total_cost_usd", sa.Float),
    sa.Column("memory", sa.Boolean, nullable=False, server_default=sa.false()),
    # Anthropic's memory tool (a /memories folder) for the agent's Claude models
    sa.Column("memory_tool", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("extra", sa.JSON),  # provider request fields, e.g. {"thinking": {...}}
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("name_key", name="uq_agents_name_key"),
)

#: Chat sessions: one conversation with an agent.
chat_sessions = sa.Table(
    "chat_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # "s-" + random
    sa.Column("agent_id", sa.String(64)),  # NULL: an agent that is not stored (Python API)
    sa.Column("agent_name", sa.String(255), nullable=False, server_default=""),
    sa.Column("title", sa.String(255), nullable=False, server_default=""),
    sa.Column("model", sa.String(255), nullable=False, server_default=""),  # per-session override
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_chat_sessions_updated", "updated_at"),
    sa.Index("ix_chat_sessions_agent", "agent_id"),
)

#: Every message of every session, in order, exactly as sent and received.
session_messages = sa.Table(
    "session_messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),  # order within the session
    sa.Column("kind", sa.String(16), nullable=False, server_default="message"),  # message | summary
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("content", sa.JSON, nullable=False),  # parts, see synapse/agents/serialize.py
    sa.Column("meta", sa.JSON),  # model, usage, cost, stopped, reasoning, summary range
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("session_id", "seq", name="uq_session_messages_seq"),
)

#: Long-term memories of agents (`agent` is an agent id, or "*" for every agent).
#: Ids are never reused (AUTOINCREMENT): an extraction may name only ids it was shown.
#: On SQLite a full-text index `memories_fts` (FTS5, kept in sync by triggers) sits
#: beside it; it is created by migration 0004, not by this metadata.
memories = sa.Table(
    "memories",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("agent", sa.String(64), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("fingerprint", sa.String(40), nullable=False),  # sha1 of the text lower-cased, spaces collapsed
    sa.Column("source", sa.String(32), nullable=False, server_default="manual"),  # manual|remember|extract|import|restore
    sa.Column("session_id", sa.String(64)),  # where it was learned (NULL: by hand)
    sa.Column("turn", sa.Integer),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("last_recalled_at", sa.Float),
    sa.Column("recall_count", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_memories_agent", "agent", "updated_at"),
    sa.Index("ix_memories_fingerprint", "agent", "fingerprint"),
    sqlite_autoincrement=True,
)

#: One vector per memory per embedding model, so spaces never mix: L2-normalised; pgvector's
#: `vector` on PostgreSQL (searched there), float32 bytes on SQLite (searched in process).
#: `agent` repeats the memory's scope (a memory never changes scope) so a search reads
#: one scope's vectors of one model through one index, without a join.
memory_vectors = sa.Table(
    "memory_vectors",
    metadata,
    sa.Column("memory_id", sa.Integer, primary_key=True),
    sa.Column("model", sa.String(255), primary_key=True),  # "local:…" or "<provider>:<upstream id>"
    sa.Column("agent", sa.String(64), nullable=False),
    sa.Column("dim", sa.Integer, nullable=False),
    sa.Column("vector", Vector, nullable=False),
    sa.Index("ix_memory_vectors_scope", "model", "agent"),
)

#: Every change to a memory, with the text before and after, so a person can restore it.
memory_history = sa.Table(
    "memory_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("memory_id", sa.Integer, nullable=False),
    sa.Column("agent", sa.String(64), nullable=False),
    sa.Column("op", sa.String(16), nullable=False),  # add | update | delete | restore
    sa.Column("old_text", sa.Text),
    sa.Column("new_text", sa.Text),
    sa.Column("actor", sa.String(32), nullable=False),  # manual | api | extract | remember | forget | import
    sa.Column("session_id", sa.String(64)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_memory_history_memory", "memory_id"),
    sa.Index("ix_memory_history_agent", "agent", "created_at"),
)

#: A counter per agent scope, bumped by every write: processes compare it with their
#: in-memory vector index to know when another process changed the memories.
memory_scopes = sa.Table(
    "memory_scopes",
    metadata,
    sa.Column("agent", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
)


def unmanaged(name: str | None) -> bool:
    """What a migration made outside this metadata: SQLite's FTS5 index of memories and
    its shadow tables, PostgreSQL's GIN full-text index. Schema comparisons skip them."""
    return bool(name) and (str(name).startswith("memories_fts") or name == "ix_memories_fts")


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's `include_name` hook: everything but the `unmanaged` tables and indexes."""
    return not (type_ in ("table", "index") and unmanaged(name))


#: Settings in scale mode (a PostgreSQL `database_url`): one row per key, shared by every
#: instance. `value` is the JSON of the value; a secret's is a Fernet token of that JSON
#: (`encrypted`), under SYNAPSE_SECRET_KEY (synapse/scale/secrets.py).
settings = sa.Table(
    "settings",
    metadata,
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("encrypted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("updated_at", sa.Float, nullable=False),
)

#: Web logins in scale mode (users.json on a single instance): name and scrypt hash.
users = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("password", sa.String(255), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

#: Logged-in web sessions, shared by every process serving the pages (`--workers N`, or
#: scale mode without Redis). The cookie's id is never stored, only its SHA-256, so a copy
#: of the database cannot be replayed as cookies (synapse/server/stored_sessions.py).
web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),  # hex SHA-256 of the cookie's id
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires", sa.Float, nullable=False),  # Unix seconds
    sa.Index("ix_web_sessions_username", "username"),
    sa.Index("ix_web_sessions_expires", "expires"),
)

#: Recent login attempts, counted by every process before a password is checked
#: (synapse/server/stored_throttle.py). The keys are keyed hashes: no typed username or
#: address is stored. Rows older than the longest window are deleted at each attempt.
login_attempts = sa.Table(
    "login_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("pair_key", sa.String(64), nullable=False),  # the client and the username
    sa.Column("user_key", sa.String(64), nullable=False),  # the username
    sa.Column("client_key", sa.String(64), nullable=False),  # the client's address
    sa.Column("ts", sa.Float, nullable=False),  # Unix seconds
    sa.Index("ix_login_attempts_pair", "pair_key", "ts"),
    sa.Index("ix_login_attempts_user", "user_key", "ts"),
    sa.Index("ix_login_attempts_client", "client_key", "ts"),
    sa.Index("ix_login_attempts_ts", "ts"),
)
