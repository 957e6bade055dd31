"""The usage ledger: every provider call becomes one row of `usage_calls`.

The call path only puts its `CallRecord` on a queue (`record`, about a microsecond);
a daemon thread drains the queue, prices each call (`prices.price`, from rates kept per
model) and inserts the rows in batches. When a record arrives the thread sleeps for
`LINGER_SECONDS` (200 ms), then takes everything queued at once: it wakes once per
batch, not once per record, because every wake takes the GIL from the event loop that
serves the calls. `flush()` and `drain()` cut the sleep short. SQLAlchemy, Alembic and
genai-prices are imported by that thread, never by the caller.

Each record is written to the database of the settings its call ran under
(`storage.database_url(record.settings)`), so one process can serve several data
folders (tests do). A database that refuses writes for a while (locked by another
process, a server down) loses nothing: its rows wait in order and are retried, with
memory bounded by a spill file (see `backlog.py`).

When rows are written, and what can still lose them:

* `flush()` waits until every record queued before it is written.
* Normal exit and Ctrl+C: an atexit hook (`drain()`) writes everything queued, and moves
  what a failing database still holds to its spill file for the next process (no
  waiting for that database to recover).
* SIGTERM: the first time the ledger starts in the main thread, if SIGTERM still has its
  default action, a handler is installed that does the same, then restores the default
  and re-raises SIGTERM (the exit status stays "killed by SIGTERM"). A handler the
  application set is never replaced. `synapse serve` flushes in the app's shutdown.
* `kill -9` (or a power cut) loses what was queued and not yet written: at most the
  records of the last linger window (200 ms; bench/bench_linger.py measures what the
  linger buys) plus whatever a failing database held in memory.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .._env import getenv
from ..settings import Settings
from .backlog import BATCH_MAX, Backlog, spill_path

if TYPE_CHECKING:
    from ..client import CallContext, CallRecord

__all__ = ["Ledger", "flush", "install_sigterm_handler", "key_spend", "ledger", "record", "row_for", "spent"]

log = logging.getLogger("synapse.usage")

class _Flush:
    """A flush() waiting for the records queued before it: of one database (`url`), or all."""

    __slots__ = ("done", "url")

    def __init__(self, url: str | None) -> None:
        self.done = threading.Event()
        self.url = url


class _Drain:
    """A request to write everything queued and spill what a failing database holds."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()

#: How long the writer waits for more records before writing a batch.
LINGER_SECONDS = 0.2
#: How long a normal exit waits for the writer (a first write may import and migrate).
EXIT_DRAIN_SECONDS = 30.0
#: How long SIGTERM waits: supervisors kill a process that lingers (Docker after 10 s).
SIGTERM_DRAIN_SECONDS = 8.0
#: Most queue items the writer takes in one round (it writes them in BATCH_MAX transactions).
ROUND_MAX = 5 * BATCH_MAX
#: Records waiting in the queue that make the writer "behind" (logged once per episode).
BEHIND_WARN = 50_000


def _url(rec: "CallRecord") -> str:
    from .. import storage

    return storage.database_url(rec.settings)


def _prices() -> Any:
    """The prices module, imported by the writer thread on first use (never by a caller)."""
    global _prices_mod
    if _prices_mod is None:
        from . import prices

        _prices_mod = prices
    return _prices_mod


_prices_mod: Any = None

#: UTC day number -> "YYYY-MM-DD" (the `day` column), so a row does not format a date.
_days: dict[int, str] = {}


def _day(ts: float) -> str:
    n = int(ts // 86_400)
    day = _days.get(n)
    if day is None:
        if len(_days) > 1024:
            _days.clear()
        day = _days[n] = datetime.fromtimestamp(n * 86_400, tz=timezone.utc).strftime("%Y-%m-%d")
    return day


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
    prices = _prices()
    u = rec.usage
    cost: float | None
    savings: float | None
    if not rec.response_cache_hit and not any(
        (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens)
    ):
        if rec.kind == "embed" and rec.outcome == "ok" and rec.provider not in prices.LOCAL_PROVIDERS:
            cost = savings = None  # the provider reported no token count (older Gemini answers): unknown
        else:
            cost = savings = 0.0  # no tokens (a refused or failed call): nothing to bill, whatever the price
    else:
        try:
            p = prices.price(rec.provider, rec.upstream_model, u, when=rec.started_at, base_url=_base_url(rec),
                             response_cache_hit=rec.response_cache_hit)
        except Exception:  # a price table that cannot price this call: unknown, and the row is kept
            p = None
        cost, savings = (p.cost_usd, p.savings_usd) if p is not None else (None, None)
    if rec.response_cache_hit:
        cost = 0.0  # no provider call was made; the tokens below stay 0 for the same reason
    ctx = rec.context
    tokens = (0, 0, 0, 0, 0) if rec.response_cache_hit else (
        u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens
    )
    return {
        "ts": rec.started_at,
        "day": _day(rec.started_at),
        "provider": rec.provider,
        "model": rec.model,
        "upstream_model": rec.upstream_model,
        "agent": ctx.agent if ctx is not None else None,
        "session": ctx.session if ctx is not None else None,
        "kind": ctx.kind if ctx is not None and ctx.kind and rec.kind == "chat" else rec.kind,
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
        "call_id": rec.call_id or _assign_call_id(rec),
        "estimated": bool(rec.estimated),
    }


def _assign_call_id(rec: "CallRecord") -> str:
    """The record's id, made the first time it becomes a row (the writer thread, not the call)."""
    rec.call_id = new_call_id()
    return rec.call_id


def new_call_id() -> str:
    """An id for one call's row (32 hex digits): made once, so every retry of the row is the
    same row and an insert that already landed is ignored (`insert_statement`).

    The clock in nanoseconds, then 64 random bits: ids made later sort later, so the unique
    index on `call_id` grows at its end. With 128 random bits each insert landed anywhere in
    that index, and the writer's cost per row grew with the table (bench/RESULTS.md: 15 to
    32 µs a row from 0 to 200,000 rows, against a flat 14 µs time-ordered)."""
    return f"{time.time_ns():016x}{os.urandom(8).hex()}"


class Ledger:
    """A queue, and the one background thread that prices and writes it."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._atexit = False
        #: Set by flush() and drain() to end the writer's linger at once.
        self._wake = threading.Event()
        #: Seconds the writer waits for more records before writing a batch.
        self.linger = LINGER_SECONDS
        self.written = 0
        self.failed = 0
        self.last_error: str | None = None
        self._reset_writer_state()

    def _reset_writer_state(self) -> None:
        # Owned by the writer thread once it runs.
        self._backlogs: dict[str, Backlog] = {}
        self._seq = 0
        self._waiters: list[tuple[int, _Flush]] = []
        self._behind = False
        self._last_url: tuple[Any, str | None, str] | None = None

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
                atexit.register(self.drain, EXIT_DRAIN_SECONDS)
        install_sigterm_handler()

    def flush(self, timeout: float | None = 30.0, url: str | None = None) -> bool:
        """Wait until every record queued before this call is written (with `url`: every
        one bound for that database, so a reader of it does not wait for another database
        that refuses writes). False on timeout (a refusing database keeps its rows for later)."""
        if self._thread is None:
            return True
        if not self._thread.is_alive():
            self._start()
        request = _Flush(url)
        self._q.put(request)
        self._wake.set()
        return request.done.wait(timeout)

    def drain(self, timeout: float = EXIT_DRAIN_SECONDS) -> bool:
        """Before the process ends (atexit, SIGTERM, server shutdown): write everything
        queued, and move what a failing database holds to its spill file instead of
        waiting for it to recover. False if the writer did not finish in `timeout`."""
        if self._thread is None or not self._thread.is_alive():
            return True
        request = _Drain()
        self._q.put(request)
        self._wake.set()
        return request.done.wait(timeout)

    def pending(self) -> int:
        """Records queued and rows held for a database that is failing (an estimate)."""
        return self._q.qsize() + sum(b.held() + b.spilled for b in list(self._backlogs.values()))

    # --- writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        busy = False
        while True:
            item = self._next(self._until_retry())
            # Linger to gather a batch: sleep, then take everything queued in one go. The
            # thread wakes once per batch, not once per record (each wake takes the GIL
            # from the event loop), and writes one transaction per batch. A flush or a
            # drain wakes it at once; so does a queue that was still full last round.
            if item is not None and not busy and not isinstance(item, (_Flush, _Drain)):
                self._wake.wait(self.linger)
            self._wake.clear()  # after the wait: a flush that set it has its item queued
            items: list[Any] = []
            while item is not None:
                items.append(item)
                if len(items) >= ROUND_MAX:
                    break
                item = self._next(0)
            busy = len(items) >= ROUND_MAX
            drains: list[_Drain] = []
            for item in items:  # in queue order: a flush waits for the records before it
                if isinstance(item, _Drain):
                    drains.append(item)
                elif isinstance(item, _Flush):
                    self._waiters.append((self._seq, item))
                else:
                    self._take(item)
            self._check_behind()
            self._write_due(final=bool(drains))
            self._release_waiters()
            for request in drains:
                request.done.set()

    def _next(self, timeout: float | None) -> Any:
        """The next queued item, waiting up to `timeout` seconds (None: until one comes)."""
        try:
            if timeout is not None and timeout <= 0:
                return self._q.get_nowait()
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None

    def _until_retry(self) -> float | None:
        """Seconds until a failing database's next retry; None when none waits."""
        times = [b.retry_at for b in self._backlogs.values() if b.failing() and (b.rows or b.spilled)]
        return max(0.0, min(times) - time.monotonic()) if times else None

    def _url(self, rec: "CallRecord") -> str:
        """The database of a record's settings; the last answer is kept, as a batch's
        records almost always share one settings snapshot (an immutable object)."""
        if not isinstance(rec.settings, Settings):  # a plain mapping may change between calls
            return _url(rec)
        env = getenv("SYNAPSE_DATABASE_URL")
        last = self._last_url
        if last is not None and last[0] is rec.settings and last[1] == env:
            return last[2]
        url = _url(rec)
        self._last_url = (rec.settings, env, url)
        return url

    def _take(self, rec: "CallRecord") -> None:
        """Price one record and add its row to its database's backlog."""
        try:
            url = self._url(rec)
            row = row_for(rec)
        except Exception as exc:  # a malformed record cannot become a row; the others must
            self._fail(1, exc)
            return
        backlog = self._backlogs.get(url)
        if backlog is None:
            backlog = self._backlogs[url] = Backlog(url, spill_path(url, rec.settings))
        backlog.add(self._seq, row)
        self._seq += 1
        if row["cost_usd"]:
            ctx = rec.context
            while ctx is not None:  # spend happened, whenever the row lands; parents pay too
                ctx.spent_usd += row["cost_usd"]
                ctx = ctx.parent

    def _write_due(self, final: bool = False) -> None:
        now = time.monotonic()
        for backlog in list(self._backlogs.values()):
            if backlog.due(now) and not (final and backlog.failing()):
                written, dropped = backlog.write(_insert)
                self.written += written
                if dropped:
                    self._fail(dropped, RuntimeError(f"{dropped} row(s) rejected by the database"))
                if backlog.failing():
                    self.last_error = f"cannot write to the usage database; {backlog.held() + backlog.spilled} row(s) waiting"
            if final and backlog.failing():
                backlog.spill_out()  # no waiting for it at exit: the next process writes them
            if not backlog.rows and not backlog.spilled and not backlog.failing():
                del self._backlogs[backlog.url]

    def _release_waiters(self) -> None:
        """Wake each flush() whose records are all written."""
        if not self._waiters:
            return
        oldest: dict[str, int] = {}  # per database: its oldest row not yet written
        for backlog in self._backlogs.values():
            seq = backlog.oldest_seq()
            if seq is not None:
                oldest[backlog.url] = seq
        everywhere = min(oldest.values(), default=self._seq)
        keep: list[tuple[int, _Flush]] = []
        for seq, request in self._waiters:
            pending = everywhere if request.url is None else oldest.get(request.url, self._seq)
            if pending >= seq:
                request.done.set()
            else:
                keep.append((seq, request))
        self._waiters = keep

    def _check_behind(self) -> None:
        queued = self._q.qsize()
        if queued > BEHIND_WARN and not self._behind:
            self._behind = True
            log.warning("usage ledger: the writer is %d records behind the calls", queued)
        elif self._behind and queued < BEHIND_WARN // 10:
            self._behind = False
            log.warning("usage ledger: the writer has caught up")

    def _fail(self, n: int, exc: BaseException) -> None:
        self.failed += n
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.warning("usage ledger: could not write %d record(s): %s", n, self.last_error)


#: How long one SQLite insert waits for another process's lock before the writer backs
#: off and retries (the engine's own busy timeout is meant for interactive readers).
WRITER_BUSY_MS = 1000


_statements: dict[str, Any] = {}


def insert_statement(dialect: str) -> Any:
    """INSERT of usage rows that skips a row whose `call_id` is already there.

    A transaction whose COMMIT reached the server but whose answer did not (a connection cut,
    a server restarted at that moment) is retried by the backlog, and a spill file replayed
    after a kill -9 may hold rows already written: the call id makes both land once.
    `ON CONFLICT (call_id) DO NOTHING` on PostgreSQL and SQLite alike (OR IGNORE would also
    skip rows that break other constraints, which the backlog must see and report).
    """
    stmt = _statements.get(dialect)
    if stmt is None:
        from ..storage.tables import usage_calls

        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt = pg_insert(usage_calls).on_conflict_do_nothing(index_elements=["call_id"])
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(usage_calls).on_conflict_do_nothing(index_elements=["call_id"])
        else:
            stmt = usage_calls.insert()
        _statements[dialect] = stmt
    return stmt


def _insert(url: str, rows: list[dict[str, Any]]) -> None:
    """One transaction of rows into one database."""
    from .. import storage

    eng = storage.engine(url)
    stmt = insert_statement(eng.dialect.name)
    if eng.dialect.name != "sqlite":
        with eng.begin() as conn:
            conn.execute(stmt, rows)
        return
    with eng.connect() as conn:
        conn.exec_driver_sql(f"PRAGMA busy_timeout={int(WRITER_BUSY_MS)}")
        try:
            conn.execute(stmt, rows)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            try:
                conn.exec_driver_sql(f"PRAGMA busy_timeout={storage.SQLITE_BUSY_TIMEOUT_MS}")
                conn.commit()
            except Exception:
                conn.invalidate()  # never hand the pool a connection with the writer's short timeout


ledger = Ledger()
record = ledger.record
flush = ledger.flush


def _after_fork() -> None:  # the child has the queue but not the thread
    ledger._q = queue.SimpleQueue()
    ledger._wake = threading.Event()
    ledger._thread = None
    ledger._reset_writer_state()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


_sigterm_installed = False


def install_sigterm_handler() -> bool:
    """Flush the ledger on SIGTERM, then die of SIGTERM as before.

    Only from the main thread, and only while SIGTERM has its default action: a handler
    the application (or uvicorn, or asyncio) set is never replaced. True if installed.
    """
    global _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return False
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return False
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError, AttributeError):  # no SIGTERM here, or not allowed
        return False
    _sigterm_installed = True
    return True


def _on_sigterm(signum: int, frame: Any) -> None:
    global _sigterm_installed
    try:
        ledger.drain(SIGTERM_DRAIN_SECONDS)
    finally:
        _sigterm_installed = False
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)


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
