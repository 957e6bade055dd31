"""Chat sessions and their whole history, stored so a conversation survives a restart.

A session row holds the title (the first user message, shortened), the agent, an
optional model override and times. Its messages are rows of `session_messages` in
`seq` order, each the exact canonical Message (serialize.py: tool-call ids, tool
results and the providers' reasoning blocks with their signatures) plus `meta` (model,
usage, cost, reasoning text, stopped). Compaction adds a `summary` row that stands in
for the messages up to `meta.through` when the history is replayed; the originals stay.
Token and cost totals come from the usage ledger (`usage_calls.session`).
"""

from __future__ import annotations

import builtins
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import SynapseError
from ..types import Message, TextPart, ToolCall, ToolResultPart
from .serialize import dump_message, load_message

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["SessionInfo", "SessionNotFound", "SessionStore", "StoredMessage", "new_session_id", "title_for"]

TITLE_CHARS = 60


class SessionNotFound(SynapseError):
    kind = "session_not_found"


def new_session_id() -> str:
    return "s-" + secrets.token_urlsafe(9).replace("_", "x").replace("-", "y")


def title_for(text: str) -> str:
    """The first user message, on one line, shortened to about TITLE_CHARS characters."""
    line = " ".join(text.split())
    if len(line) <= TITLE_CHARS:
        return line or "New chat"
    cut = line[:TITLE_CHARS].rsplit(" ", 1)[0] or line[:TITLE_CHARS]
    return cut.rstrip(",.;:") + "…"


@dataclass(slots=True)
class SessionInfo:
    id: str
    agent_id: str | None
    agent_name: str
    title: str
    model: str
    created_at: float
    updated_at: float
    totals: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "agent_id": self.agent_id, "agent": self.agent_name, "title": self.title,
            "model": self.model, "created_at": self.created_at, "updated_at": self.updated_at, **self.totals,
        }


@dataclass(slots=True)
class StoredMessage:
    seq: int
    kind: str  # "message" | "summary"
    message: Message
    meta: dict[str, Any]
    created_at: float


class SessionStore:
    """Sessions in the database of `settings` (default: the current settings)."""

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self.settings = settings

    @property
    def engine(self) -> "sa.Engine":
        from .. import storage

        return storage.engine(settings=self.settings)

    @property
    def local(self) -> bool:
        """SQLite: a local file, fast enough to use from the event loop."""
        return self.engine.dialect.name == "sqlite"

    # --- sessions -----------------------------------------------------------------------

    def create(self, agent_id: str | None, agent_name: str, title: str = "", model: str = "",
               session_id: str | None = None) -> SessionInfo:
        import sqlalchemy as sa

        from ..storage.tables import chat_sessions as t

        now = time.time()
        info = SessionInfo(session_id or new_session_id(), agent_id, agent_name, title, model, now, now)
        with self.engine.begin() as conn:
            conn.execute(sa.insert(t).values(id=info.id, agent_id=agent_id, agent_name=agent_name, title=title[:255],
                                             model=model, created_at=now, updated_at=now))
        return info

    def find(self, session_id: str) -> SessionInfo | None:
        import sqlalchemy as sa

        from ..storage.tables import chat_sessions as t

        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.id == session_id)).mappings().first()
        return _info(row) if row is not None else None

    def get(self, session_id: str) -> SessionInfo:
        info = self.find(session_id)
        if info is None:
            raise SessionNotFound(f"no session {session_id!r}: list them with GET /api/v1/sessions or start a new one")
        return info

    def list(self, *, query: str = "", agent_id: str | None = None, limit: int = 200) -> builtins.list[SessionInfo]:
        """Newest first; `query` matches the title (case-insensitive)."""
        import sqlalchemy as sa

        from ..storage.tables import chat_sessions as t

        stmt = sa.select(t).order_by(t.c.updated_at.desc()).limit(limit)
        if query.strip():
            like = "%" + query.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stmt = stmt.where(sa.func.lower(t.c.title).like(like, escape="\\"))
        if agent_id:
            stmt = stmt.where(t.c.agent_id == agent_id)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        infos = [_info(r) for r in rows]
        self._add_totals(infos)
        return infos

    def update(self, session_id: str, *, title: str | None = None, model: str | None = None,
               agent: tuple[str | None, str] | None = None) -> SessionInfo:
        import sqlalchemy as sa

        from ..storage.tables import chat_sessions as t

        values: dict[str, Any] = {"updated_at": time.time()}
        if title is not None:
            values["title"] = " ".join(title.split())[:255] or "New chat"
        if model is not None:
            values["model"] = model
        if agent is not None:
            values["agent_id"], values["agent_name"] = agent
        with self.engine.begin() as conn:
            if not conn.execute(sa.update(t).where(t.c.id == session_id).values(**values)).rowcount:
                raise SessionNotFound(f"no session {session_id!r}")
        return self.get(session_id)

    def delete(self, session_id: str) -> None:
        import sqlalchemy as sa

        from ..storage.tables import chat_sessions as t
        from ..storage.tables import session_messages as m

        with self.engine.begin() as conn:
            if not conn.execute(sa.delete(t).where(t.c.id == session_id)).rowcount:
                raise SessionNotFound(f"no session {session_id!r}")
            conn.execute(sa.delete(m).where(m.c.session_id == session_id))

    def totals(self, session_id: str) -> dict[str, Any]:
        infos = [self.get(session_id)]
        self._add_totals(infos)
        return infos[0].totals

    def _add_totals(self, infos: builtins.list[SessionInfo]) -> None:
        """Tokens and cost per session from the usage ledger."""
        if not infos:
            return
        import sqlalchemy as sa

        from ..storage.tables import usage_calls as u
        from ..usage import ledger

        ledger.flush(5)
        ids = [i.id for i in infos]
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    u.c.session, sa.func.count(), sa.func.sum(u.c.input_tokens), sa.func.sum(u.c.output_tokens),
                    sa.func.sum(u.c.cache_read_tokens), sa.func.sum(u.c.cache_write_tokens),
                    sa.func.sum(u.c.cost_usd), sa.func.sum(sa.case((u.c.cost_usd.is_(None), 1), else_=0)),
                ).where(u.c.session.in_(ids)).group_by(u.c.session)
            ).all()
        by_id = {r[0]: r for r in rows}
        for info in infos:
            r = by_id.get(info.id)
            info.totals = {
                "calls": int(r[1]) if r else 0,
                "input_tokens": int(r[2] or 0) if r else 0,
                "output_tokens": int(r[3] or 0) if r else 0,
                "cache_read_tokens": int(r[4] or 0) if r else 0,
                "cache_write_tokens": int(r[5] or 0) if r else 0,
                "cost_usd": float(r[6] or 0.0) if r else 0.0,
                "unpriced_calls": int(r[7] or 0) if r else 0,
            }

    # --- messages -----------------------------------------------------------------------

    def append(self, session_id: str, messages: Sequence[tuple[Message, Mapping[str, Any]]],
               kind: str = "message", first_seq: int | None = None) -> builtins.list[int]:
        """Store messages at the end of the session (one transaction); their seq numbers.

        `first_seq` is where the caller expects them to go (saves a query); if another
        writer got there first, the end of the session is looked up and used instead.
        """
        if not messages:
            return []
        import sqlalchemy as sa

        from ..storage.tables import chat_sessions as t
        from ..storage.tables import session_messages as m

        now = time.time()
        payload = [(msg.role, dump_message(msg)["content"], dict(meta) or None) for msg, meta in messages]
        for attempt in (0, 1):
            try:
                with self.engine.begin() as conn:
                    first = first_seq
                    if first is None or attempt:
                        last = conn.execute(sa.select(sa.func.max(m.c.seq)).where(m.c.session_id == session_id)).scalar()
                        first = (last or 0) + 1
                    rows = [{"session_id": session_id, "seq": first + i, "kind": kind, "role": role, "content": content,
                             "meta": meta, "created_at": now} for i, (role, content, meta) in enumerate(payload)]
                    conn.execute(sa.insert(m), rows)
                    conn.execute(sa.update(t).where(t.c.id == session_id).values(updated_at=now))
                return [r["seq"] for r in rows]
            except sa.exc.IntegrityError:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def open(self, session_id: str) -> tuple[SessionInfo | None, builtins.list[StoredMessage]]:
        """The session and all its rows, in one read (the start of a turn)."""
        import sqlalchemy as sa

        from ..storage.tables import chat_sessions as t
        from ..storage.tables import session_messages as m

        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.id == session_id)).mappings().first()
            if row is None:
                return None, []
            rows = conn.execute(
                sa.select(m.c.seq, m.c.kind, m.c.role, m.c.content, m.c.meta, m.c.created_at)
                .where(m.c.session_id == session_id).order_by(m.c.seq)
            ).all()
        return _info(row), [_stored(r) for r in rows]

    def update_meta(self, session_id: str, seq: int, meta: Mapping[str, Any]) -> None:
        import sqlalchemy as sa

        from ..storage.tables import session_messages as m

        with self.engine.begin() as conn:
            conn.execute(sa.update(m).where(m.c.session_id == session_id, m.c.seq == seq).values(meta=dict(meta)))

    def messages(self, session_id: str) -> builtins.list[StoredMessage]:
        """Every stored row of the session in order, summaries included."""
        import sqlalchemy as sa

        from ..storage.tables import session_messages as m

        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(m.c.seq, m.c.kind, m.c.role, m.c.content, m.c.meta, m.c.created_at)
                .where(m.c.session_id == session_id).order_by(m.c.seq)
            ).all()
        return [_stored(r) for r in rows]

    def history(self, session_id: str) -> tuple[builtins.list[Message], builtins.list[StoredMessage]]:
        """The messages to send the model: the newest summary stands in for what it covers."""
        rows = self.messages(session_id)
        return replay(rows), rows


def replay(rows: Sequence[StoredMessage]) -> list[Message]:
    """Stored rows -> the conversation for the model (latest summary replaces what it covers)."""
    summary = None
    for r in rows:
        if r.kind == "summary":
            summary = r
    out: list[Message] = []
    start = 0
    if summary is not None:
        out.append(summary.message)
        start = int(summary.meta.get("through", 0))
    for r in rows:
        if r.kind != "message" or r.seq <= start:
            continue
        if not r.message.content:
            continue
        out.append(r.message)
    return _valid(out)


def _valid(messages: list[Message]) -> list[Message]:
    """Drop tool results whose call is not in the history (after a summary cut)."""
    calls: set[str] = set()
    out: list[Message] = []
    for m in messages:
        if m.role == "assistant":
            calls |= {p.id for p in m.content if isinstance(p, ToolCall)}
            out.append(m)
            continue
        parts = [p for p in m.content if not (isinstance(p, ToolResultPart) and p.tool_call_id not in calls)]
        if parts:
            out.append(Message("user", parts) if len(parts) != len(m.content) else m)
    while out and out[0].role == "assistant":  # a conversation starts with the user
        out.insert(0, Message("user", [TextPart("(earlier conversation)")]))
        break
    return out


def _stored(r: Any) -> StoredMessage:
    return StoredMessage(r[0], r[1], load_message({"role": r[2], "content": r[3]}), dict(r[4] or {}), r[5])


def _info(row: Any) -> SessionInfo:
    return SessionInfo(row["id"], row["agent_id"], row["agent_name"], row["title"], row["model"],
                       row["created_at"], row["updated_at"])
