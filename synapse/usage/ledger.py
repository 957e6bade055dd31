"""The usage ledger: every provider call becomes one row of `usage_calls`.

The call path only puts its `CallRecord` on a queue (`record`, about a microsecond);
a daemon thread drains the queue in batches, prices each call (`prices.price`) and
inserts the rows in one transaction. SQLAlchemy, Alembic and genai-prices are
imported by that thread, never by the caller. `flush()` waits until everything queued
so far is written; it runs at interpreter exit too, so a clean shutdown loses nothing.

Each record is written to the database of the settings its call ran under
(`storage.database_url(record.settings)`), so one process can serve several data
folders (tests do).
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..client import CallContext, CallRecord

__all__ = ["Ledger", "flush", "key_spend", "ledger", "record", "row_for", "spent"]

log = logging.getLogger("synapse.usage")

_STOP = object()
BATCH_MAX = 1000
#: How long the writer waits for more records before writing a batch.
LINGER_SECONDS = 0.2


def _url(rec: "CallRecord") -> str:
    from .. import storage

    return storage.database_url(rec.settings)


def _base_url(rec: "CallRecord") -> str:
    if rec.provider != "oaic" or rec.settings is None:
        return ""
    try:
        from ..providers.catalog import get

        return get(rec.provider).configure(rec.settings).base_url
    except Exception:
        return ""


def row_for(rec: "CallRecord") -> dict[str, Any]:
    """The `usage_calls` row for one call record, priced."""
    from . import prices

    u = rec.usage
    cost: float | None
    savings: float | None
    if rec.kind != "chat" and rec.provider not in prices.LOCAL_PROVIDERS:
        cost = savings = None  # embeddings report no token counts: the price is unknown
    elif rec.kind == "chat" and not rec.response_cache_hit and not any(
        (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens)
    ):
        cost = savings = 0.0  # no tokens (a refused or failed call): nothing to bill, whatever the price
    else:
        p = prices.price(rec.provider, rec.upstream_model, u, when=rec.started_at, base_url=_base_url(rec),
                         response_cache_hit=rec.response_cache_hit)
        cost, savings = (p.cost_usd, p.savings_usd) if p is not None else (None, None)
    if rec.response_cache_hit:
        cost = 0.0  # no provider call was made; the tokens below stay 0 for the same reason
    ctx = rec.context
    tokens = (0, 0, 0, 0, 0) if rec.response_cache_hit else (
        u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens
    )
    return {
        "ts": rec.started_at,
        "day": datetime.fromtimestamp(rec.started_at, tz=timezone.utc).strftime("%Y-%m-%d"),
        "provider": rec.provider,
        "model": rec.model,
        "upstream_model": rec.upstream_model,
        "agent": ctx.agent if ctx is not None else None,
        "session": ctx.session if ctx is not None else None,
        "kind": rec.kind,
        "stream": bool(rec.stream),
        "input_tokens": tokens[0],
        "output_tokens": tokens[1],
        "cache_read_tokens": tokens[2],
        "cache_write_tokens": tokens[3],
        "reasoning_tokens": tokens[4],
        "cost_usd": cost,
        "savings_usd": savings,
        "response_cache_hit": bool(rec.response_cache_hit),
        "latency_ms": round(rec.latency * 1000.0, 3),
        "ttft_ms": None if rec.ttft is None else round(rec.ttft * 1000.0, 3),
        "outcome": rec.outcome,
        "key_name": ctx.key if ctx is not None else None,
    }


class Ledger:
    """A queue and the one background thread that writes it."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._atexit = False
        self.written = 0
        self.failed = 0
        self.last_error: str | None = None

    def record(self, rec: "CallRecord") -> None:
        """Queue one call record. Never blocks, never raises."""
        self._q.put(rec)
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            thread = threading.Thread(target=self._run, name="synapse-usage-writer", daemon=True)
            thread.start()
            self._thread = thread
            if not self._atexit:
                self._atexit = True
                atexit.register(self.close)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every record queued before this call is written. False on timeout."""
        if self._thread is None:
            return True
        if not self._thread.is_alive():
            self._start()
        done = threading.Event()
        self._q.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued and stop the thread (atexit)."""
        if self._thread is None or not self._thread.is_alive():
            return
        self.flush(timeout)
        self._q.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    def pending(self) -> int:
        return self._q.qsize()

    # --- writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._q.get()
            batch: list[Any] = []
            events: list[threading.Event] = []
            stop = False
            # Linger a moment to gather a batch: one transaction per batch, not per call,
            # keeps the writer's share of the GIL (and so the callers' latency) small.
            # A flush or stop ends the wait at once.
            deadline = time.monotonic() + LINGER_SECONDS
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    events.append(item)
                else:
                    batch.append(item)
                if stop or events or len(batch) >= BATCH_MAX:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._q.get(timeout=remaining)
                except queue.Empty:
                    break
            if batch:
                self._write(batch)
            for ev in events:
                ev.set()
            if stop:
                return

    def _write(self, batch: list["CallRecord"]) -> None:
        groups: dict[str, list[tuple["CallRecord", dict[str, Any]]]] = {}
        for rec in batch:
            try:
                groups.setdefault(_url(rec), []).append((rec, row_for(rec)))
            except Exception as exc:  # a bad record must not stop the others
                self._fail(1, exc)
        for url, items in groups.items():
            try:
                from .. import storage
                from ..storage.tables import usage_calls

                eng = storage.engine(url)
                with eng.begin() as conn:
                    conn.execute(usage_calls.insert(), [row for _, row in items])
            except Exception as exc:
                self._fail(len(items), exc)
                continue
            self.written += len(items)
            for rec, row in items:
                if rec.context is not None and row["cost_usd"]:
                    rec.context.spent_usd += row["cost_usd"]

    def _fail(self, n: int, exc: BaseException) -> None:
        self.failed += n
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.warning("usage ledger: could not write %d record(s): %s", n, self.last_error)


ledger = Ledger()
record = ledger.record
flush = ledger.flush


def _after_fork() -> None:  # the child has the queue but not the thread
    ledger._q = queue.SimpleQueue()
    ledger._thread = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def spent(context: "CallContext | None", settings: Mapping[str, Any] | None = None) -> float:
    """USD recorded so far for a session (all its calls in the ledger) or, without a
    session, for this CallContext (an agent run). Flushes the queue first."""
    if context is None:
        return 0.0
    flush()
    if not context.session:
        return context.spent_usd
    import sqlalchemy as sa

    from .. import storage
    from ..storage.tables import usage_calls as t

    eng = storage.engine(settings=settings)
    with eng.connect() as conn:
        total = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(t.c.cost_usd), 0.0)).where(t.c.session == context.session)
        ).scalar()
    return float(total or 0.0)


def key_spend(name: str, url: str) -> float:
    """USD the ledger at `url` holds for calls made with the gateway key `name` (no flush:
    the gateway reads this on its request path and adds what it recorded since)."""
    import sqlalchemy as sa

    from .. import storage
    from ..storage.tables import usage_calls as t

    with storage.engine(url).connect() as conn:
        total = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(t.c.cost_usd), 0.0)).where(t.c.key_name == name)
        ).scalar()
    return float(total or 0.0)
