"""Chat sessions and their whole history, stored so a conversation survives a restart.

A session row holds the title (the first user message, shortened), the agent, an
optional model override and times. Its messages are rows of `session_messages` in
`seq` order, each the exact canonical Message (serialize.py: tool-call ids, tool
results and the providers' reasoning blocks with their signatures) plus `meta` (model,
usage, cost, reasoning text, stopped). Compaction adds a `summary` row that stands in
for the messages up to `meta.through` when the history is replayed; the originals stay.
Token and cost totals come from the usage ledger (`usage_calls.session`).

A turn reads its session's history and writes its reply, on every turn. So the rows a
process read or wrote are kept in memory (`_History`, the last CACHED_SESSIONS sessions),
and a turn's read is one small query that fetches the session row with its version:
(created_at, updated_at, newest seq). Every write bumps `updated_at`; a write whose
`UPDATE ... WHERE updated_at = <the version this process holds>` finds its row knows that
nobody else wrote in between, and adds its rows to the kept history; otherwise (another
process wrote, or another store object in this one) the kept history is dropped and the
next turn reads the rows again. So a kept history is never served after another process
wrote the session.
"""

from __future__ import annotations

import builtins
import json
import math
import secrets
import threading
import time
from collections import OrderedDict
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


#: Sessions whose rows a process keeps between turns (most recently used).
CACHED_SESSIONS = 64


@dataclass(slots=True)
class _History:
    """The rows of one session as this process last read or wrote them, and the version
    of the session row they go with."""

    created_at: float
    updated_at: float
    last_seq: int | None
    rows: builtins.list[StoredMessage]


_histories: "OrderedDict[tuple[str, str], _History]" = OrderedDict()
_histories_lock = threading.Lock()


def _kept(key: tuple[str, str]) -> _History | None:
    with _histories_lock:
        hist = _histories.get(key)
        if hist is not None:
            _histories.move_to_end(key)
        return hist


def _keep(key: tuple[str, str], hist: _History | None) -> None:
    with _histories_lock:
        if hist is None:
            _histories.pop(key, None)
            return
        _histories[key] = hist
        _histories.move_to_end(key)
        while len(_histories) > CACHED_SESSIONS:
            _histories.popitem(last=False)


class _Statements:
    """The session queries, built once (building a SQLAlchemy statement costs more than
    running it on SQLite)."""

    def __init__(self) -> None:
        import sqlalchemy as sa

        from ..storage.tables import chat_sessions as t
        from ..storage.tables import session_messages as m

        sid: Any = sa.bindparam("sid")
        newest = sa.select(sa.func.max(m.c.seq)).where(m.c.session_id == t.c.id).scalar_subquery()
        self.session_and_version = sa.select(t, newest.label("last_seq")).where(t.c.id == sid)
        self.rows = (sa.select(m.c.seq, m.c.kind, m.c.role, m.c.content, m.c.meta, m.c.created_at)
                     .where(m.c.session_id == sid).order_by(m.c.seq))
        self.last_seq = sa.select(sa.func.max(m.c.seq)).where(m.c.session_id == sid)
        self.insert = sa.insert(m)
        self.touch = sa.update(t).where(t.c.id == sid).values(updated_at=sa.bindparam("now"))
        self.touch_if = (sa.update(t).where(t.c.id == sid, t.c.updated_at == sa.bindparam("seen"))
                         .values(updated_at=sa.bindparam("now")))


_statements: _Statements | None = None


def _q() -> _Statements:
    global _statements
    if _statements is None:
        _statements = _Statements()
    return _statements


class SessionStore:
    """Sessions in the database of `settings` (default: the current settings)."""

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self.settings = settings
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The database URL (worked out once per store)."""
        if self._url is None:
            from .. import storage

            self._url = storage.database_url(self.settings)
        return self._url

    @property
    def engine(self) -> "sa.Engine":
        from .. import storage

        return storage.engine(self.url)

    @property
    def local(self) -> bool:
        """SQLite: a local file, fast enough to use from the event loop."""
        return self.url.startswith("sqlite")

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
        _keep((self.url, info.id), _History(now, now, None, []))
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
        _keep((self.url, session_id), None)  # its version changes: read again next time
        with self.engine.begin() as conn:
            if not conn.execute(sa.update(t).where(t.c.id == session_id).values(**values)).rowcount:
                raise SessionNotFound(f"no session {session_id!r}")
        return self.get(session_id)

    def delete(self, session_id: str) -> None:
        import sqlalchemy as sa

        from ..storage.tables import chat_sessions as t
        from ..storage.tables import session_messages as m

        _keep((self.url, session_id), None)
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

        ledger.flush(5, url=self.url)
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

        q = _q()
        key = (self.url, session_id)
        payload = [(msg.role, dump_message(msg)["content"], dict(meta) or None) for msg, meta in messages]
        for attempt in (0, 1):
            kept = _kept(key)
            now = time.time()
            if kept is not None and now == kept.updated_at:  # a coarse clock: still a new version
                now = math.nextafter(now, math.inf)
            try:
                with self.engine.begin() as conn:
                    first = first_seq
                    if first is None or attempt:
                        last = conn.execute(q.last_seq, {"sid": session_id}).scalar()
                        first = (last or 0) + 1
                    rows = [{"session_id": session_id, "seq": first + i, "kind": kind, "role": role, "content": content,
                             "meta": meta, "created_at": now} for i, (role, content, meta) in enumerate(payload)]
                    conn.execute(q.insert, rows)
                    # Nobody else wrote since the version this process holds: then the kept
                    # rows plus these are the session's rows.
                    alone = kept is not None and conn.execute(
                        q.touch_if, {"sid": session_id, "seen": kept.updated_at, "now": now}).rowcount == 1
                    if not alone:
                        conn.execute(q.touch, {"sid": session_id, "now": now})
            except sa.exc.IntegrityError:
                _keep(key, None)
                if attempt:
                    raise
                continue
            if alone and kept is not None and (kept.last_seq or 0) == first - 1:
                kept.rows.extend(_stored((r["seq"], kind, r["role"], _json(r["content"]), _json(r["meta"]), now))
                                 for r in rows)
                kept.updated_at, kept.last_seq = now, rows[-1]["seq"]
                _keep(key, kept)
            else:
                _keep(key, None)
            return [r["seq"] for r in rows]
        raise AssertionError("unreachable")

    def open(self, session_id: str) -> tuple[SessionInfo | None, builtins.list[StoredMessage]]:
        """The session and all its rows (the start of a turn): one small query when this
        process holds the session's current rows, two otherwise."""
        q = _q()
        key = (self.url, session_id)
        with self.engine.connect() as conn:
            row = conn.execute(q.session_and_version, {"sid": session_id}).mappings().first()
            if row is None:
                _keep(key, None)
                return None, []
            kept = _kept(key)
            if kept is not None and (kept.created_at, kept.updated_at, kept.last_seq) == (
                    row["created_at"], row["updated_at"], row["last_seq"]):
                return _info(row), builtins.list(kept.rows)
            rows = [_stored(r) for r in conn.execute(q.rows, {"sid": session_id}).all()]
        # The rows may be newer than the version read before them: then the next turn
        # finds another version and reads again.
        _keep(key, _History(row["created_at"], row["updated_at"], row["last_seq"], rows))
        return _info(row), builtins.list(rows)

    def update_meta(self, session_id: str, seq: int, meta: Mapping[str, Any]) -> None:
        """Replace one stored message's meta (what memory did in the turn, a summary's range)."""
        import sqlalchemy as sa

        from ..storage.tables import session_messages as m

        q = _q()
        key = (self.url, session_id)
        kept = _kept(key)
        now = time.time()
        if kept is not None and now == kept.updated_at:
            now = math.nextafter(now, math.inf)
        with self.engine.begin() as conn:
            conn.execute(sa.update(m).where(m.c.session_id == session_id, m.c.seq == seq).values(meta=dict(meta)))
            alone = kept is not None and conn.execute(
                q.touch_if, {"sid": session_id, "seen": kept.updated_at, "now": now}).rowcount == 1
            if not alone:
                conn.execute(q.touch, {"sid": session_id, "now": now})
        if alone and kept is not None:
            new_meta = dict(_json(dict(meta)) or {})
            kept.rows = [StoredMessage(r.seq, r.kind, r.message, new_meta, r.created_at) if r.seq == seq else r
                         for r in kept.rows]
            kept.updated_at = now
            _keep(key, kept)
        else:
            _keep(key, None)

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


def _json(value: Any) -> Any:
    """A value as the JSON column gives it back (what a read of the row would see)."""
    return None if value is None else json.loads(json.dumps(value))


def _stored(r: Any) -> StoredMessage:
    return StoredMessage(r[0], r[1], load_message({"role": r[2], "content": r[3]}), dict(r[4] or {}), r[5])


def _info(row: Any) -> SessionInfo:
    return SessionInfo(row["id"], row["agent_id"], row["agent_name"], row["title"], row["model"],
                       row["created_at"], row["updated_at"])
