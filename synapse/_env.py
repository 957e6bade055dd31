"""`os.environ.get` for lookups made on every call.

Settings fall back to environment variables, and most of the names looked up are not
set. `os.environ.get` pays for a missing name with a KeyError raised and caught inside
`os.environ` (about 1.5 µs); the gateway made a dozen such lookups a request. This reads
the same mapping `os.environ` keeps (so `os.environ[...] = ...` and pytest's monkeypatch
are seen at once) without the exception.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["getenv"]

_data: Any = getattr(os.environ, "_data", None)
_encodekey: Any = getattr(os.environ, "encodekey", None)
_decodevalue: Any = getattr(os.environ, "decodevalue", None)
_keys: dict[str, Any] = {}


def getenv(name: str) -> str | None:
    """The value of environment variable `name`, or None: exactly `os.environ.get(name)`."""
    if _data is None or _encodekey is None or _decodevalue is None:  # not CPython's os.environ
        return os.environ.get(name)
    key = _keys.get(name)
    if key is None:
        key = _keys[name] = _encodekey(name)
    raw = _data.get(key)
    return None if raw is None else str(_decodevalue(raw))
