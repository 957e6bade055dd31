"""settings.json: defaults, then environment fallbacks, then the file; checked, atomic saves; masking.

The file holds flat keys exactly as a user writes them by hand. Reading merges it over
the defaults; a key the file leaves empty is filled from the standard environment
variable for it. Saving re-reads the file under a lock, applies only the changed keys
(so two saves at once never lose either change, and keys Synapse does not know are
kept), writes a temporary file with mode 0600 and renames it over the old one.
A malformed file is never overwritten. What each key means, its default and how a value
is checked live in `settings_schema.py`; files are made private by `private_files.py`.

Scale mode (a PostgreSQL `database_url`, SYNAPSE_DATABASE_URL winning): `load()` returns the
shared `settings` table instead, seeded from this file, and `update()` writes there and tells
every instance (synapse/scale/settings_store.py); `database_url` and `redis_url` stay here.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._env import getenv
from .errors import SettingsError
from .private_files import ensure_dir, remove_temp_files, write_private
from .settings_schema import SCHEMA, validate

__all__ = [
    "DEFAULTS",
    "ENV_FALLBACKS",
    "Settings",
    "data_dir",
    "file_settings",
    "is_secret",
    "load",
    "mask",
    "remove_stale_temp_files",
    "settings_path",
    "shown",
    "update",
    "validate",
    "write_private",
]

#: Every setting's default, from the schema (synapse/settings_schema.py).
DEFAULTS: dict[str, Any] = {s.key: s.default for s in SCHEMA}

#: Setting -> environment variables that fill it when the file leaves it empty.
ENV_FALLBACKS: dict[str, tuple[str, ...]] = {s.key: s.env for s in SCHEMA if s.env}

_BOOL_KEYS = frozenset(k for k, v in DEFAULTS.items() if isinstance(v, bool))
_SECRET_SUFFIXES = ("_key", "_secret", "_token", "_password")
_KEY_PREFIXES = ("sk-ant-api03-", "sk-ant-", "sk-proj-", "sk-", "AIza", "xai-", "absk-", "ABSK")

_save_lock = threading.Lock()
_MISSING = object()


def data_dir() -> Path:
    """SYNAPSE_DATA_DIR, else the per-user data folder."""
    env = os.environ.get("SYNAPSE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("synapse", appauthor=False))


def settings_path() -> Path:
    return data_dir() / "settings.json"


def is_secret(key: str) -> bool:
    return key.endswith(_SECRET_SUFFIXES)


def mask(value: str) -> str:
    """`sk-ant-api03-abcdef…a1b2` -> `sk-ant-…a1b2`: the key's kind and its last 4 characters."""
    if not value:
        return ""
    if len(value) < 12:
        return "…" + "*" * 4
    prefix = next((p for p in _KEY_PREFIXES if value.startswith(p)), "")
    if prefix.startswith("sk-ant-"):
        prefix = "sk-ant-"
    return f"{prefix}…{value[-4:]}"


_URL_PASSWORD = re.compile(r"(://[^/:@\s]*:)[^@/\s]+@")


def shown(key: str, value: Any) -> Any:
    """A setting's value as it may be displayed: secrets masked, URL passwords hidden."""
    if isinstance(value, str) and value:
        if is_secret(key):
            return mask(value)
        if "://" in value and "@" in value:
            return _URL_PASSWORD.sub(r"\1****@", value)
    return value


def coerce(key: str, value: Any) -> Any:
    """The stored form of a value typed on the command line or sent by a form.

    Known keys go through their schema check; a custom key keeps its JSON value.
    """
    return validate(key, value, custom_ok=True)


@dataclass(frozen=True, slots=True)
class Settings(Mapping[str, Any]):
    """One read of the settings: file values merged over defaults, env filling the gaps."""

    path: Path
    file_values: Mapping[str, Any] = field(repr=False)  # holds keys: never in a repr

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        """Like Mapping.get, without raising and catching KeyError on the way: the call
        path reads a dozen settings a request, most of them defaults."""
        value = self.file_values.get(key)
        if value is not None and value != "":
            return value
        for env in ENV_FALLBACKS.get(key, ()):
            env_value = getenv(env)
            if env_value:
                return env_value
        if key in DEFAULTS:
            return DEFAULTS[key]
        return default

    def __iter__(self) -> Iterator[str]:
        yield from DEFAULTS
        for key in self.file_values:
            if key not in DEFAULTS:
                yield key

    def __len__(self) -> int:
        return len(DEFAULTS) + sum(1 for k in self.file_values if k not in DEFAULTS)

    def get_str(self, key: str) -> str:
        value = self.get(key, "")
        return "" if value is None else str(value).strip()

    def get_bool(self, key: str) -> bool:
        value = self.get(key, False)
        if isinstance(value, bool):
            return value
        if key in _BOOL_KEYS:
            try:
                return bool(coerce(key, value))
            except SettingsError:
                return bool(DEFAULTS[key])  # a hand-edited "maybe": the default (`synapse doctor` reports it)
        return bool(value)

    def get_list(self, key: str) -> list[str]:
        """A comma-separated setting as a list (`a, b` -> ["a", "b"])."""
        value = self.get(key, "")
        if isinstance(value, list):
            return [str(v).strip() for v in value if str(v).strip()]
        return [v.strip() for v in str(value or "").split(",") if v.strip()]

    def source(self, key: str) -> str:
        """Where the effective value comes from: file, env:NAME, or default."""
        if self.file_values.get(key) not in (None, ""):
            return "file"
        for env in ENV_FALLBACKS.get(key, ()):
            if os.environ.get(env):
                return f"env:{env}"
        return "default"

    def masked(self) -> dict[str, Any]:
        """Every effective value, secrets masked: safe to print or send to a browser."""
        return {k: shown(k, v) for k, v in self.items()}


_cache: dict[Path, tuple[tuple[int, int], Settings]] = {}
#: For `load(max_age=...)`: the data folder (as given) -> when it was last checked, and what it held.
_recent: dict[Any, tuple[float, Settings]] = {}


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except NotADirectoryError:
        ensure_dir(path.parent)  # raises: the data folder is a file
        raise
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); fix or remove the file") from None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read it ({exc.strerror})") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(
            f"{path}: line {exc.lineno}, column {exc.colno}: {exc.msg}. "
            "Fix the JSON (Synapse will not overwrite the file until it parses)."
        ) from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: must hold a JSON object ({{...}}), not {type(data).__name__}")
    return data


def load(path: Path | None = None, *, max_age: float = 0.0) -> Settings:
    """The current settings. Re-reads the file only when it changed (one stat per call).

    `max_age` > 0 skips even the stat when the file was checked less than that many
    seconds ago: for request paths (the /v1 gateway) where a stat per request is the
    largest single cost. A save through `update()` is seen at once either way; a hand
    edit or another process's save within `max_age`.
    """
    if max_age > 0:
        import time

        now = time.monotonic()
        folder = getenv("SYNAPSE_DATA_DIR") if path is None else path
        recent = _recent.get(folder)
        if recent is not None and now - recent[0] < max_age and _cache.get(recent[1].path, (None, None))[1] is recent[1]:
            return recent[1]
        settings = load(path)
        _recent[folder] = (now, settings)
        return settings
    path = path or settings_path()
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:  # missing, or a data folder that is a file: _read_file says which
        stamp = (0, -1)
    cached = _cache.get(path)
    if cached is not None and cached[0] == stamp:
        settings = cached[1]
    else:
        settings = Settings(path, _read_file(path))
        _cache[path] = (stamp, settings)
    if _scale_of(settings) is not None:
        return _shared(settings)
    return settings


def file_settings(path: Path | None = None) -> Settings:
    """settings.json alone (no shared table even in scale mode): where the shared state is."""
    path = path or settings_path()
    return Settings(path, _read_file(path))


#: Scale mode: settings.json path -> (the table's decoded values it was built from, the Settings).
_scale_cache: dict[Path, tuple[Any, Settings]] = {}


def _scale_of(settings: Settings) -> Any:
    """The shared settings store when these settings (or the environment) are in scale mode."""
    if not settings.file_values.get("database_url") and not getenv("SYNAPSE_DATABASE_URL"):
        return None
    from .scale.settings_store import scale_url, store_for

    url = scale_url(settings.file_values)
    return store_for(url) if url else None


def _shared(file_settings: Settings) -> Settings:
    """Scale mode: the `settings` table (seeded from settings.json), plus where the shared
    state is (database_url, redis_url) from the file. See synapse/scale/settings_store.py."""
    from .scale.secrets import fernet
    from .scale.settings_store import BOOTSTRAP

    fernet()  # no SYNAPSE_SECRET_KEY: refuse, and say how to make one
    store = _scale_of(file_settings)
    values = store.values(file_settings.file_values)
    cached = _scale_cache.get(file_settings.path)
    if cached is not None and cached[0] is values and cached[1].file_values.get("database_url") == \
            file_settings.file_values.get("database_url"):
        return cached[1]
    merged = {k: v for k, v in values.items() if k not in BOOTSTRAP}
    merged.update({k: file_settings.file_values[k] for k in BOOTSTRAP if k in file_settings.file_values})
    shared = Settings(file_settings.path, merged)
    _scale_cache[file_settings.path] = (values, shared)
    return shared


def update(changes: Mapping[str, Any], path: Path | None = None) -> Settings:
    """Apply `changes` to settings.json atomically (in scale mode: to the shared table, except
    `database_url` and `redis_url`). A value of None removes the key.

    Each value goes through its schema check first (nothing is written if one fails).
    Holds an exclusive lock on `settings.json.lock` while it re-reads, merges and
    replaces the file, so concurrent saves (threads or processes) each keep their
    change; under that lock, temp files a killed save left behind are removed.
    """
    import fcntl

    path = path or settings_path()
    clean = {k: (None if v is None else coerce(k, v)) for k, v in changes.items()}
    current_settings = load(path)
    store = _scale_of(current_settings)
    if store is not None:  # scale mode: the table, and a notice to every instance
        from .scale.settings_store import BOOTSTRAP

        shared = {k: v for k, v in clean.items() if k not in BOOTSTRAP}
        if shared:
            store.write(shared)
        clean = {k: v for k, v in clean.items() if k in BOOTSTRAP}
        if not clean:
            return load(path)
    ensure_dir(path.parent)
    with _save_lock, open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            current = _read_file(path)  # raises on a malformed file: never overwrite it
            for key, value in clean.items():
                if value is None:
                    current.pop(key, None)
                else:
                    current[key] = value
            remove_temp_files(path)
            write_private(path, json.dumps(current, indent=2, ensure_ascii=False) + "\n")
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    _cache.pop(path, None)
    if any(k in ("database_url", "redis_url") for k in clean):
        try:
            return load(path)
        except SettingsError:  # saved; scale mode's own needs (the secret key, the server) are told next time
            return file_settings(path)
    return load(path)


def remove_stale_temp_files(path: Path | None = None) -> list[Path]:
    """At start: remove temp files a killed save left, unless a save holds the lock now."""
    import fcntl

    path = path or settings_path()
    lock_path = path.with_name(path.name + ".lock")
    if not lock_path.exists():
        return []
    try:
        with _save_lock, open(lock_path, "a") as lock:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return []  # a save is running: its temp file is not stale
            try:
                return remove_temp_files(path)
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    except OSError:
        return []
