"""The usage rows one database has not taken yet: kept in order, retried, never dropped.

The ledger's writer thread owns one `Backlog` per database URL. Rows are written
oldest first, in transactions of at most `BATCH_MAX`; a transaction that fails (the
database is locked by another process, the server is down, the disk is full) leaves its
rows where they were and the backlog retries with backoff (0.1 s doubling to 5 s).
Rows taken by a committed transaction are removed, so each row lands exactly once.

Memory is bounded: while a database is failing, more than `MAX_HELD` rows in memory are
moved to a spill file in the data folder (`usage-pending-<hash>.jsonl`, mode 0600,
oldest rows first), and written back before the rows held in memory once the database
takes writes again. A process that exits while its database is still failing leaves its
rows in that file; the next process that records a call to the same database writes
them first. Only if the disk refuses the spill file too are rows held in memory beyond
the bound (logged as an error): dropping them would lose usage, and blocking the caller
would stall every call for a ledger problem.

A row the database rejects as invalid (IntegrityError, DataError) cannot succeed on any
retry: the batch is retried row by row and only the rejected rows are given up, each
logged. Failures are logged once per episode (when a database starts failing, when
rows first spill, when it recovers), never once per call.

Two processes that share a data folder share its spill file; an advisory lock
(`<file>.lock`) keeps their appends and replays apart. A replay commits the file's rows
chunk by chunk, then removes the file (or, when a chunk fails, rewrites it with the rows
not written yet); a kill -9 between a commit and that removal writes those rows again.

While the writer thread waits on a lock (at most the ledger's WRITER_BUSY_MS per try),
new records wait in the ledger's queue: memory grows by at most the call rate times that.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["BATCH_MAX", "MAX_HELD", "Backlog", "spill_path"]

log = logging.getLogger("synapse.usage")

#: Rows in one INSERT transaction.
BATCH_MAX = 1000
#: Rows a failing database may hold in memory before the rest are moved to its spill file.
MAX_HELD = 10_000
RETRY_BASE = 0.1
RETRY_CAP = 5.0

Row = dict[str, Any]
Insert = Callable[[str, list[Row]], None]


def spill_path(url: str, settings: Mapping[str, Any] | None) -> Path:
    """Where rows for `url` wait while that database is unavailable: the settings' data folder."""
    folder_of = getattr(settings, "path", None)
    if folder_of is not None:
        folder = Path(folder_of).parent
    else:
        from ..settings import data_dir

        folder = data_dir()
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return folder / f"usage-pending-{digest}.jsonl"


def _shown(url: str) -> str:
    """The URL for a log line: never its password."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def _is_bad_row(exc: BaseException) -> bool:
    """The database refused the data itself: retrying the same row cannot help."""
    try:
        from sqlalchemy.exc import DataError, IntegrityError
    except ImportError:  # pragma: no cover - SQLAlchemy is a dependency
        return False
    return isinstance(exc, (IntegrityError, DataError))


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An advisory lock shared by every process using this spill file."""
    import fcntl

    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class Backlog:
    """Rows waiting for one database, oldest first: a spill file, then memory."""

    def __init__(self, url: str, spill: Path) -> None:
        self.url = url
        self.spill = spill
        #: (sequence number, row), oldest first; all of them newer than the spill file's rows.
        self.rows: deque[tuple[int, Row]] = deque()
        #: Rows in the spill file (this process's and any an earlier process left).
        self.spilled = _count_lines(spill)
        #: Smallest sequence number in the spill file: -1 for rows an earlier process left.
        self.spilled_seq: int | None = -1 if self.spilled else None
        self.failures = 0
        self.retry_at = 0.0
        self._since = 0.0
        self._said: set[str] = set()  # what this failure episode has logged already
        self._spill_ok = True  # False after the disk refused the spill file, until the next retry

    # --- state ---------------------------------------------------------------------

    def oldest_seq(self) -> int | None:
        """The sequence number of the oldest row not yet written (flush waits on it)."""
        if self.spilled_seq is not None:
            return self.spilled_seq
        return self.rows[0][0] if self.rows else None

    def failing(self) -> bool:
        return self.failures > 0

    def due(self, now: float) -> bool:
        return bool(self.rows or self.spilled) and now >= self.retry_at

    def held(self) -> int:
        return len(self.rows)

    # --- writing -------------------------------------------------------------------

    def add(self, seq: int, row: Row) -> None:
        self.rows.append((seq, row))
        if self.failures and self._spill_ok and len(self.rows) > MAX_HELD:
            self.spill_out()

    def write(self, insert: Insert) -> tuple[int, int]:
        """Write what is waiting, oldest first. Returns (rows written, rows given up).

        On a failure the rows not yet committed stay, a retry is scheduled and, past the
        memory bound, the held rows move to the spill file."""
        written = dropped = 0
        try:
            if self.spilled:
                w, d = self._replay(insert)
                written, dropped = written + w, dropped + d
            while self.rows:
                chunk = [row for _, row in itertools.islice(self.rows, BATCH_MAX)]
                w, d = self._insert(insert, chunk)
                for _ in range(len(chunk)):
                    self.rows.popleft()
                written, dropped = written + w, dropped + d
        except Exception as exc:
            self._failed(exc)
            return written, dropped
        if self.failures:
            log.warning("usage ledger: %s takes writes again after %.1f s; the held rows are written",
                        _shown(self.url), time.monotonic() - self._since)
        self.failures = 0
        self.retry_at = 0.0
        self._said.clear()
        return written, dropped

    def _insert(self, insert: Insert, rows: list[Row]) -> tuple[int, int]:
        """One transaction; a row the database rejects as invalid is given up alone."""
        try:
            insert(self.url, rows)
            return len(rows), 0
        except Exception as exc:
            if not _is_bad_row(exc):
                raise
        written = dropped = 0
        for row in rows:
            try:
                insert(self.url, [row])
                written += 1
            except Exception as exc:
                if not _is_bad_row(exc):
                    raise
                dropped += 1
                log.error("usage ledger: %s rejected a row, which is given up: %s (%s)",
                          _shown(self.url), row, type(exc).__name__)
        return written, dropped

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if not self.failures:
            self._since = now
            log.warning("usage ledger: cannot write to %s (%s: %s); keeping %d row(s) in order and retrying",
                        _shown(self.url), type(exc).__name__, str(exc).splitlines()[0][:200],
                        len(self.rows) + self.spilled)
        self.failures += 1
        self.retry_at = now + min(RETRY_CAP, RETRY_BASE * 2 ** (self.failures - 1))
        self._spill_ok = True
        if len(self.rows) > MAX_HELD:
            self.spill_out()

    # --- the spill file --------------------------------------------------------------

    def spill_out(self) -> bool:
        """Move every row held in memory to the end of the spill file. False if the disk refused."""
        if not self.rows:
            return True
        import orjson

        data = b"".join(orjson.dumps(row) + b"\n" for _, row in self.rows)
        try:
            self.spill.parent.mkdir(parents=True, exist_ok=True)
            with _locked(self.spill):
                fd = os.open(self.spill, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)
        except OSError as exc:
            self._spill_ok = False
            if "no-spill" not in self._said:
                self._said.add("no-spill")
                log.error("usage ledger: cannot write the spill file %s either (%s); holding %d row(s) in memory",
                          self.spill, exc.strerror or exc, len(self.rows))
            return False
        if "spill" not in self._said:
            self._said.add("spill")
            log.warning("usage ledger: %s is still unavailable; %d row(s) moved to %s until it is back",
                        _shown(self.url), len(self.rows), self.spill)
        if self.spilled_seq is None:
            self.spilled_seq = self.rows[0][0]
        self.spilled += len(self.rows)
        self.rows.clear()
        return True

    def _replay(self, insert: Insert) -> tuple[int, int]:
        """Write the spill file, oldest first; keep what was not written."""
        import orjson

        written = dropped = 0
        with _locked(self.spill):
            try:
                fh = open(self.spill, "rb")
            except FileNotFoundError:  # another process replayed it
                self.spilled, self.spilled_seq = 0, None
                return 0, 0
            with fh:
                while True:
                    lines = list(itertools.islice(fh, BATCH_MAX))
                    if not lines:
                        break
                    rows = []
                    for line in lines:
                        try:
                            row = orjson.loads(line)
                            row.setdefault("call_id", None)  # a file an older Synapse spilled
                            row.setdefault("estimated", False)
                            rows.append(row)
                        except orjson.JSONDecodeError:  # a line cut short by a kill -9 while spilling
                            dropped += 1
                    try:
                        w, d = self._insert(insert, rows)
                    except Exception:
                        self._keep_rest(fh, lines)
                        raise
                    written, dropped = written + w, dropped + d
                    self.spilled = max(0, self.spilled - len(lines))
            self.spill.unlink()
        self.spilled, self.spilled_seq = 0, None
        return written, dropped

    def _keep_rest(self, fh: Any, unwritten: list[bytes]) -> None:
        """Replace the spill file by the rows not written yet (the lock is held)."""
        tmp = self.spill.with_name(self.spill.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"".join(unwritten))
            while chunk := fh.read(1 << 20):
                os.write(fd, chunk)
        finally:
            os.close(fd)
        os.replace(tmp, self.spill)


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    except OSError:
        return 0
