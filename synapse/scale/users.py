"""Web logins in the database (the `users` table), shared by every instance in scale mode;
on a single instance they are users.json (`server/auth.py`). Same scrypt hashes, same checks."""

from __future__ import annotations

import time
from typing import Any

from ..server.auth import _dummy_hash, check_password, hash_password, validate_password, validate_username

__all__ = ["DatabaseUsers"]


class DatabaseUsers:
    """The UserStore interface over the `users` table of the shared database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = "the users table of the shared database"

    def _engine(self) -> Any:
        from .. import storage

        return storage.engine(self.url)

    def names(self) -> list[str]:
        import sqlalchemy as sa

        from ..storage.tables import users

        with self._engine().connect() as conn:
            return sorted(conn.execute(sa.select(users.c.name)).scalars())

    def has_users(self) -> bool:
        return bool(self.names())

    def set(self, username: str, password: str) -> None:
        from .settings_store import _upsert_users

        username = validate_username(username)
        validate_password(password)
        eng = self._engine()
        with eng.begin() as conn:
            conn.execute(_upsert_users(eng.dialect.name),
                         {"name": username, "password": hash_password(password), "updated_at": time.time()})

    def remove(self, username: str) -> bool:
        from ..storage.tables import users

        with self._engine().begin() as conn:
            return bool(conn.execute(users.delete().where(users.c.name == username)).rowcount)

    def check(self, username: str, password: str) -> bool:
        import sqlalchemy as sa

        from ..storage.tables import users

        with self._engine().connect() as conn:
            stored = conn.execute(sa.select(users.c.password).where(users.c.name == username)).scalar()
        if not isinstance(stored, str):
            check_password(password, _dummy_hash())  # same work for an unknown user
            return False
        return check_password(password, stored)
