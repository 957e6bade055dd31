"""settings.json: defaults, then environment fallbacks, then the file; atomic saves; masking.

The file holds flat keys exactly as a user writes them by hand. Reading merges it over
the defaults; a key the file leaves empty is filled from the standard environment
variable for it. Saving re-reads the file under a lock, applies only the changed keys
(so two saves at once never lose either change, and keys Synapse does not know are
kept), writes a temporary file with mode 0600 and renames it over the old one.
A malformed file is never overwritten.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SettingsError

__all__ = [
    "DEFAULTS",
    "ENV_FALLBACKS",
    "Settings",
    "data_dir",
    "is_secret",
    "load",
    "mask",
    "settings_path",
    "shown",
    "update",
    "write_private",
]

DEFAULTS: dict[str, Any] = {
    "mode": "cloud",
    "model": "",
    "anthropic_key": "",
    "openai_key": "",
    "gemini_key": "",
    "grok_key": "",
    "deepseek_key": "",
    "bedrock_api_key": "",
    "aws_region": "us-east-1",
    "bedrock_inference_profile": "",
    "embedding_model": "",
    "openai_compatible_key": "",
    "openai_compatible_base_url": "",
    "openai_compatible_models": "",
    "openai_compatible_embed_models": "",
    "ollama_base_url": "http://127.0.0.1:11434",
    "local_compatible_base_url": "",
    "local_compatible_key": "",
    "local_compatible_models": "",
    "local_compatible_embed_models": "",
    "prompt_cache_enabled": True,
    # Base-URL overrides (corporate proxies, tests). OpenAI and xAI end in /v1;
    # Anthropic, Gemini and DeepSeek are the bare origin.
    "anthropic_base_url": "",
    "openai_base_url": "",
    "gemini_base_url": "",
    "grok_base_url": "",
    "deepseek_base_url": "",
    "bedrock_runtime_url": "",
    "bedrock_control_url": "",
    # Call behaviour.
    "request_timeout": 120,
    "max_retries": 2,
    # Storage and caches.
    "database_url": "",
    "response_cache_ttl": 3600,
    "response_cache_similarity": 0.95,
    "trusted_proxies": "",  # web app: IPs/CIDRs whose X-Forwarded-For/-Proto are believed
}

#: Setting -> environment variables that fill it when the file leaves it empty.
ENV_FALLBACKS: dict[str, tuple[str, ...]] = {
    "anthropic_key": ("ANTHROPIC_API_KEY",),
    "openai_key": ("OPENAI_API_KEY",),
    "gemini_key": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "grok_key": ("XAI_API_KEY",),
    "deepseek_key": ("DEEPSEEK_API_KEY",),
    "bedrock_api_key": ("AWS_BEARER_TOKEN_BEDROCK",),
    "aws_region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "ollama_base_url": ("OLLAMA_BASE_URL",),
    "anthropic_base_url": ("ANTHROPIC_BASE_URL",),
    "openai_base_url": ("OPENAI_BASE_URL",),
}

_BOOL_KEYS = frozenset(k for k, v in DEFAULTS.items() if isinstance(v, bool))
_SECRET_SUFFIXES = ("_key", "_secret", "_token", "_password")
_KEY_PREFIXES = ("sk-ant-api03-", "sk-ant-", "sk-proj-", "sk-", "AIza", "xai-", "absk-", "ABSK")

_save_lock = threading.Lock()


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
    """Turn a value typed on the command line or sent by a form into the stored type."""
    if key in _BOOL_KEYS:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{key} must be true or false, not {value!r}")
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v).strip() for v in value if str(v).strip())
    if isinstance(value, (str, int, float)):
        return str(value).strip() if isinstance(value, str) else value
    raise SettingsError(f"{key} must be a string, not {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class Settings(Mapping[str, Any]):
    """One read of the settings: file values merged over defaults, env filling the gaps."""

    path: Path
    file_values: Mapping[str, Any] = field(repr=False)  # holds keys: never in a repr

    def __getitem__(self, key: str) -> Any:
        value = self.file_values.get(key)
        if value not in (None, ""):
            return value
        for env in ENV_FALLBACKS.get(key, ()):
            env_value = os.environ.get(env)
            if env_value:
                return env_value
        if key in DEFAULTS:
            return DEFAULTS[key]
        raise KeyError(key)

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
        return bool(coerce(key, value)) if key in _BOOL_KEYS else bool(value)

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


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
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


def load(path: Path | None = None) -> Settings:
    """The current settings. Re-reads the file only when it changed (one stat per call)."""
    path = path or settings_path()
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except FileNotFoundError:
        stamp = (0, -1)
    cached = _cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    settings = Settings(path, _read_file(path))
    _cache[path] = (stamp, settings)
    return settings


def update(changes: Mapping[str, Any], path: Path | None = None) -> Settings:
    """Apply `changes` to settings.json atomically. A value of None removes the key.

    Holds an exclusive lock on `settings.json.lock` while it re-reads, merges and
    replaces the file, so concurrent saves (threads or processes) each keep their change.
    """
    import fcntl

    path = path or settings_path()
    clean = {k: (None if v is None else coerce(k, v)) for k, v in changes.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with _save_lock, open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            current = _read_file(path)  # raises on a malformed file: never overwrite it
            for key, value in clean.items():
                if value is None:
                    current.pop(key, None)
                else:
                    current[key] = value
            write_private(path, json.dumps(current, indent=2, ensure_ascii=False) + "\n")
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    _cache.pop(path, None)
    return load(path)


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically (temp file, fsync, rename), mode 0600.

    Readers see the old file or the new one, never half of either. Used for every file
    that holds secrets: settings.json and the web app's users file.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
