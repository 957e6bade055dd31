"""The key the web app signs CSRF tokens with, one per data folder.

A token is an HMAC of the cookie's random id (auth.SessionStore), so every process that
serves the pages must hold the same key: the workers of `synapse serve --workers N`, and
the same server after a restart (a page left open keeps working). The key is made once,
in `<data folder>/csrf.key` (mode 0600, created whole by whichever process comes first:
`private_files.create_private_once`). In scale mode SYNAPSE_SECRET_KEY derives it instead
(scale/secrets.py), because instances on other machines have other data folders.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from ..errors import SettingsError

__all__ = ["FILE_NAME", "csrf_key", "key_path"]

FILE_NAME = "csrf.key"
_HEX_CHARS = frozenset("0123456789abcdef")

log = logging.getLogger("synapse.server")


def key_path() -> Path:
    from ..settings import data_dir

    return data_dir() / FILE_NAME


def read_or_make(path: Path) -> bytes:
    """The key in `path`, made first if missing (64 hex digits: 32 random bytes)."""
    from ..private_files import create_private_once

    try:
        text = create_private_once(path, secrets.token_hex(32) + "\n").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read or create the web app's signing key ({exc})") from None
    if len(text) != 64 or not set(text) <= _HEX_CHARS:
        raise SettingsError(
            f"{path} is not a key Synapse made (64 hex digits expected): delete it and start again "
            "(open pages will ask to be reloaded once)"
        )
    return bytes.fromhex(text)


def csrf_key() -> bytes:
    """The data folder's key; a key of this process alone when the folder cannot hold one
    (logged: then each worker has its own, and a page's saves can fail on another worker)."""
    try:
        return read_or_make(key_path())
    except SettingsError as exc:
        log.warning("%s; CSRF tokens are signed with a key of this process only", exc)
        return secrets.token_bytes(32)
