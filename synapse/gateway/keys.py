"""Gateway API keys: create, list, revoke, and check the key a request carries.

A key is `sk-syn-` and 43 random URL-safe characters (256 bits), shown once when it is
made. The `api_keys` table keeps its SHA-256 (a fast hash is enough for a random key
of that length: there is nothing to guess), its first characters to recognise it,
model patterns (`claude-*,gpt-5*`; empty allows every model), a budget in USD and an
expiry. Spend and last use are not stored twice: they are the key's rows in the usage
ledger (`usage_calls.key_name`).

Checking a key is on every /v1 request, so it rarely waits on the database: the table
is read at most once a `TABLE_TTL` per process (a revoke elsewhere takes effect within
it; a revoke in this process at once; a key unknown to the copy re-reads it at most
once a `MISS_RELOAD`), and a budgeted key's spend is the ledger's sum
read once a `SPEND_TTL` plus what this process recorded since, which the ledger adds to
the key's `CallContext` as it writes. A budget is therefore enforced within the ledger's
write delay (about 0.2 s), and across `--workers` within `SPEND_TTL`. With Redis (scale
mode), budgets and per-key rate limits are counted there, atomically across instances
(synapse/scale/limits.py), and this per-process reckoning is the fallback.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..client import CallContext
from ..errors import SynapseError

__all__ = [
    "KEY_PREFIX",
    "KeyCommandError",
    "KeyInfo",
    "KeyRejected",
    "any_keys",
    "authenticate",
    "check",
    "create",
    "key_from_headers",
    "list_keys",
    "revoke",
]

KEY_PREFIX = "sk-syn-"
#: Characters of the key kept in clear, to tell keys apart in lists (`sk-syn-AbC12`).
SHOWN_CHARS = len(KEY_PREFIX) + 5
#: Seconds a process trusts its copy of the key table.
TABLE_TTL = 1.0
#: An unknown key re-reads the table if the last read is this old (a key made by another
#: process works at once; a flood of wrong keys costs at most 1/MISS_RELOAD reads a second).
MISS_RELOAD = 0.2
#: Seconds between re-reading a budgeted key's spend from the ledger.
SPEND_TTL = 30.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class KeyRejected(SynapseError):
    """A /v1 request without a usable key; `reason` is missing, invalid, revoked or expired."""

    kind = "gateway_key"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class KeyCommandError(SynapseError):
    """A `synapse keys` command that cannot be done as asked (bad name, unknown key)."""

    kind = "bad_request"


@dataclass(slots=True)
class KeyInfo:
    """One key as the gateway sees it (never the key itself)."""

    name: str
    prefix: str
    models: tuple[str, ...]
    budget_usd: float | None
    created: float
    expires: float | None
    revoked: float | None
    #: Requests a minute this key may make (None: no limit); see synapse/scale/limits.py.
    rpm: int | None = None
    #: Carries the key's name into the usage ledger; the ledger adds each call's cost to it.
    context: CallContext = field(repr=False, default_factory=CallContext)
    #: The ledger's spend for this key when last read, and `context.spent_usd` at that moment.
    spend_base: float = 0.0
    spend_mark: float = 0.0
    spend_read: float = 0.0

    def allows(self, *names: str) -> bool:
        """Whether any of `names` (the model asked for, the model an alias points at) matches."""
        if not self.models:
            return True
        return any(fnmatch.fnmatchcase(n, p) for p in self.models for n in names if n)

    def spent(self) -> float:
        return self.spend_base + (self.context.spent_usd - self.spend_mark)

    def over_budget(self) -> bool:
        return self.budget_usd is not None and self.spent() >= self.budget_usd


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_patterns(text: str | Iterable[str] | None) -> tuple[str, ...]:
    items = text.split(",") if isinstance(text, str) else list(text or ())
    return tuple(dict.fromkeys(p.strip() for p in items if p and p.strip()))


# --- the per-process copy of the table ------------------------------------------------------


class _Table:
    """The key table of one database, as this process last read it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.by_hash: dict[str, KeyInfo] = {}
        self.contexts: dict[str, CallContext] = {}
        self.loaded = 0.0
        self.lock = threading.Lock()
        self.down = False

    def fresh(self, now: float) -> bool:
        return now - self.loaded < TABLE_TTL

    def load(self) -> None:
        import sqlalchemy as sa

        from .. import storage
        from ..storage.tables import api_keys

        with self.lock:
            now = time.monotonic()
            if self.fresh(now):
                return
            try:
                eng = storage.engine(self.url)
                with eng.connect() as conn:
                    rows = conn.execute(sa.select(api_keys)).mappings().all()
            except Exception as exc:
                if not self.by_hash and not self.loaded:
                    raise  # nothing to go on: the request fails and says why
                # The database is down (scale mode: PostgreSQL restarting): keep checking keys
                # against the copy read last, and try again after TABLE_TTL. Logged once.
                if not self.down:
                    self.down = True
                    import logging

                    logging.getLogger("synapse.gateway").warning(
                        "API keys: cannot read the key table (%s); using the copy read %.0f s ago until the database "
                        "is back", type(exc).__name__, now - self.loaded)
                self.loaded = now
                return
            if self.down:
                self.down = False
                import logging

                logging.getLogger("synapse.gateway").warning("API keys: the key table is readable again")
            old = {info.name: info for info in self.by_hash.values()}
            table: dict[str, KeyInfo] = {}
            for r in rows:
                ctx = self.contexts.get(r["name"])
                if ctx is None:
                    ctx = self.contexts[r["name"]] = CallContext(key=r["name"])
                info = KeyInfo(r["name"], r["prefix"], parse_patterns(r["models"]), r["budget_usd"], r["created"],
                               r["expires"], r["revoked"], r["rpm"], ctx)
                prev = old.get(info.name)
                if prev is not None:  # keep the spend already read
                    info.spend_base, info.spend_mark, info.spend_read = prev.spend_base, prev.spend_mark, prev.spend_read
                table[r["hash"]] = info
            self.by_hash = table
            self.loaded = now

    def refresh_spend(self, info: KeyInfo, now: float) -> None:
        from ..usage.ledger import key_spend

        mark = info.context.spent_usd
        try:
            info.spend_base = key_spend(info.name, self.url)
        except Exception:  # the database is down: the spend read last, plus what this process recorded
            info.spend_read = now
            return
        info.spend_mark = mark
        info.spend_read = now


_tables: dict[str, _Table] = {}
#: The last settings snapshot seen and its table (a request path must not rebuild the URL).
_last: tuple[Any, _Table | None] = (None, None)


def _table(settings: Mapping[str, Any] | None) -> _Table:
    global _last
    if settings is not None and _last[0] is settings and _last[1] is not None:
        return _last[1]
    from .. import storage

    url = storage.database_url(settings)
    table = _tables.get(url)
    if table is None:
        table = _tables.setdefault(url, _Table(url))
    _last = (settings, table)
    return table


def _forget(settings: Mapping[str, Any] | None) -> None:
    _table(settings).loaded = 0.0


# --- checking a request's key -----------------------------------------------------------------


def key_from_headers(headers: Mapping[str, str]) -> str | None:
    """The key of `Authorization: Bearer KEY` or `x-api-key: KEY` (header names lower-case)."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


def check(headers: Mapping[str, str], settings: Mapping[str, Any] | None = None) -> KeyInfo:
    """The key this request carries, or KeyRejected saying why (missing, invalid, revoked, expired).

    The message never repeats the key, not even masked: a key pasted in the wrong place
    should not travel further in an error body or a log line.
    """
    key = key_from_headers(headers)
    if key is None:
        raise KeyRejected(
            "no API key: send a Synapse key (sk-syn-…) as `Authorization: Bearer KEY` or `x-api-key: KEY`; "
            "make one with `synapse keys create NAME` or in Settings → API Keys",
            "missing",
        )
    table = _table(settings)
    now = time.monotonic()
    if not table.fresh(now):
        table.load()
    digest = _digest(key)
    info = table.by_hash.get(digest)
    if info is None and now - table.loaded >= MISS_RELOAD:  # made by `synapse keys create` a moment ago?
        table.loaded = 0.0
        table.load()
        info = table.by_hash.get(digest)
    if info is None:
        hint = "" if key.startswith(KEY_PREFIX) else " (Synapse keys start with sk-syn-; a provider's own key does not work here)"
        raise KeyRejected(f"invalid API key{hint}: check it, or make a new one with `synapse keys create NAME`", "invalid")
    if info.revoked is not None:
        raise KeyRejected(f"the API key {info.name!r} was revoked: make a new one with `synapse keys create NAME`", "revoked")
    if info.expires is not None and info.expires <= time.time():
        raise KeyRejected(f"the API key {info.name!r} has expired: make a new one with `synapse keys create NAME`", "expired")
    if info.budget_usd is not None and now - info.spend_read >= SPEND_TTL:
        table.refresh_spend(info, now)
    return info


def authenticate(headers: Mapping[str, str], settings: Mapping[str, Any] | None = None) -> KeyInfo | None:
    """The valid key a request carries, or None: for callers that only need yes or no
    (the /api/v1 routes off loopback). `headers` keys must be lower-case."""
    try:
        return check(headers, settings)
    except KeyRejected:
        return None


def any_keys(settings: Mapping[str, Any] | None = None) -> bool:
    """Whether the key table holds a key that could still be used (not revoked)."""
    table = _table(settings)
    if not table.fresh(time.monotonic()):
        table.load()
    return any(info.revoked is None for info in table.by_hash.values())


# --- managing keys --------------------------------------------------------------------------------


def _engine(settings: Mapping[str, Any] | None) -> Any:
    from .. import settings as settings_mod
    from .. import storage

    return storage.engine(settings=settings if settings is not None else settings_mod.load())


def create(
    name: str,
    models: str | Iterable[str] | None = None,
    budget_usd: float | None = None,
    expires_days: float | None = None,
    settings: Mapping[str, Any] | None = None,
    rpm: int | None = None,
) -> tuple[str, dict[str, Any]]:
    """Make a key. Returns the key (the only time it exists outside the caller) and its listing."""
    import sqlalchemy as sa

    from ..storage.tables import api_keys

    name = (name or "").strip()
    if not _NAME.match(name):
        raise KeyCommandError(
            f"a key name is 1-64 letters, digits, '.', '_', '-' or '@', starting with a letter or digit, not {name[:80]!r}"
        )
    if budget_usd is not None and not budget_usd > 0:
        raise KeyCommandError("--budget-usd must be a positive number of US dollars (e.g. 5 or 0.50)")
    if expires_days is not None and not expires_days > 0:
        raise KeyCommandError("--expires must be a positive number of days")
    if rpm is not None and (isinstance(rpm, bool) or not isinstance(rpm, int) or not 1 <= rpm <= 1_000_000):
        raise KeyCommandError("--rpm must be a whole number of requests a minute, 1 to 1000000")
    patterns = parse_patterns(models)
    for p in patterns:
        if any(c.isspace() for c in p) or len(p) > 200:
            raise KeyCommandError(f"model pattern {p[:80]!r} has spaces or is too long: write e.g. claude-*,gpt-5*")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    now = time.time()
    row = {
        "name": name,
        "prefix": key[:SHOWN_CHARS],
        "hash": _digest(key),
        "models": ",".join(patterns),
        "budget_usd": budget_usd,
        "created": now,
        "expires": now + expires_days * 86400 if expires_days is not None else None,
        "revoked": None,
        "rpm": rpm,
    }
    eng = _engine(settings)
    with eng.begin() as conn:
        if conn.execute(sa.select(api_keys.c.id).where(api_keys.c.name == name)).first() is not None:
            raise KeyCommandError(
                f"there is already a key named {name!r} (revoked keys keep their name, so their usage stays "
                "theirs): pick another name"
            )
        conn.execute(api_keys.insert().values(**row))
    _forget(settings)
    return key, _listing(row, 0.0, None)


def revoke(name: str, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Revoke a key by name: it stops working at once in this process, within TABLE_TTL elsewhere."""
    import sqlalchemy as sa

    from ..storage.tables import api_keys

    eng = _engine(settings)
    with eng.begin() as conn:
        row = conn.execute(sa.select(api_keys).where(api_keys.c.name == name)).mappings().first()
        if row is None:
            raise KeyCommandError(f"no key named {name!r}: `synapse keys list` shows them")
        row = dict(row)
        if row["revoked"] is None:
            row["revoked"] = time.time()
            conn.execute(api_keys.update().where(api_keys.c.name == name).values(revoked=row["revoked"]))
    _forget(settings)
    return _listing(row, None, None)


def list_keys(settings: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every key, newest first: name, prefix, created, last used, spend, budget, models, status."""
    import sqlalchemy as sa

    from ..storage.tables import api_keys, usage_calls
    from ..usage.ledger import flush

    flush(10)
    eng = _engine(settings)
    u = usage_calls
    with eng.connect() as conn:
        rows = conn.execute(sa.select(api_keys).order_by(api_keys.c.created.desc(), api_keys.c.id.desc())).mappings().all()
        usage = {
            r[0]: (float(r[1] or 0.0), r[2])
            for r in conn.execute(
                sa.select(u.c.key_name, sa.func.sum(u.c.cost_usd), sa.func.max(u.c.ts))
                .where(u.c.key_name.is_not(None))
                .group_by(u.c.key_name)
            )
        }
    return [_listing(dict(r), *usage.get(r["name"], (0.0, None))) for r in rows]


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _listing(row: Mapping[str, Any], spend: float | None, last_used: float | None) -> dict[str, Any]:
    status = "active"
    if row["revoked"] is not None:
        status = "revoked"
    elif row["expires"] is not None and row["expires"] <= time.time():
        status = "expired"
    elif row["budget_usd"] is not None and spend is not None and spend >= row["budget_usd"]:
        status = "budget spent"
    return {
        "name": row["name"],
        "prefix": row["prefix"] + "…",
        "models": list(parse_patterns(row["models"])),
        "budget_usd": row["budget_usd"],
        "rpm": row.get("rpm"),
        "spend_usd": None if spend is None else round(spend, 10),
        "created": _iso(row["created"]),
        "last_used": _iso(last_used),
        "expires": _iso(row["expires"]),
        "revoked": _iso(row["revoked"]),
        "status": status,
    }
