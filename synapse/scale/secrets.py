"""Provider keys at rest in scale mode: Fernet (AES-128-CBC + HMAC-SHA256, from
`cryptography`) under SYNAPSE_SECRET_KEY.

SYNAPSE_SECRET_KEY holds one Fernet key, or several separated by commas: the first
encrypts, every one decrypts (`MultiFernet`). Rotating is: put a new key first and keep
the old one after it, run `synapse secrets rotate` (every stored secret is re-encrypted
with the new key in one transaction), then drop the old key. A value no key can open
stops the rotation before anything is written, so no key is ever lost.

The same first key also signs the web app's CSRF tokens (`csrf_secret`), so every
instance accepts the tokens any instance made.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import TYPE_CHECKING

from ..errors import SettingsError

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

__all__ = ["ENV", "SecretKeyError", "csrf_secret", "decrypt", "encrypt", "fernet", "make_key", "missing_message"]

ENV = "SYNAPSE_SECRET_KEY"


class SecretKeyError(SettingsError):
    """SYNAPSE_SECRET_KEY is missing or malformed, or cannot open a stored value."""

    kind = "secret_key"


def missing_message() -> str:
    return (
        f"scale mode (a PostgreSQL database_url) keeps provider keys encrypted in the database and needs {ENV}: "
        f"make one with `synapse secrets new` (or: python -c \"from cryptography.fernet import Fernet; "
        f"print(Fernet.generate_key().decode())\"), then set {ENV} to it in the environment of every instance "
        "(the same value everywhere), and start again"
    )


def make_key() -> str:
    """A new random Fernet key (32 bytes, URL-safe base64)."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode("ascii")


def _keys() -> list[str]:
    raw = os.environ.get(ENV, "")
    return [k.strip() for k in raw.split(",") if k.strip()]


_cache: tuple[str, "MultiFernet"] | None = None


def fernet() -> "MultiFernet":
    """The MultiFernet of SYNAPSE_SECRET_KEY (first key encrypts), or SecretKeyError."""
    global _cache
    raw = os.environ.get(ENV, "")
    if _cache is not None and _cache[0] == raw:
        return _cache[1]
    keys = _keys()
    if not keys:
        raise SecretKeyError(missing_message())
    try:
        from cryptography.fernet import Fernet, MultiFernet
    except ImportError:
        raise SettingsError("scale mode needs the scale extra: pip install -r requirements-scale.lock "
                            "(or 'synapse-llm[scale]')") from None
    made = []
    for i, key in enumerate(keys, 1):
        try:
            made.append(Fernet(key.encode("ascii")))
        except (ValueError, UnicodeEncodeError):
            raise SecretKeyError(
                f"{ENV}: key {i} of {len(keys)} is not a Fernet key (32 bytes in URL-safe base64, 44 characters): "
                "make one with `synapse secrets new`"
            ) from None
    multi = MultiFernet(made)
    _cache = (raw, multi)
    return multi


def encrypt(plain: str) -> str:
    return fernet().encrypt(plain.encode("utf-8")).decode("ascii")


def decrypt(token: str, what: str = "a stored secret") -> str:
    from cryptography.fernet import InvalidToken

    try:
        return fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise SecretKeyError(
            f"{ENV} cannot open {what}: it was encrypted with another key. Put that key in {ENV} too "
            "(new key first, old keys after it, separated by commas) and run `synapse secrets rotate`"
        ) from None


def csrf_secret() -> bytes:
    """A key for the web app's CSRF tokens, derived from the first secret key (shared by every instance)."""
    keys = _keys()
    if not keys:
        raise SecretKeyError(missing_message())
    return hmac.new(keys[0].encode("ascii", "replace"), b"synapse csrf tokens", hashlib.sha256).digest()
