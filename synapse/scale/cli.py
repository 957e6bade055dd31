"""`synapse db upgrade` and `synapse secrets new|rotate`: scale mode by hand."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("db", help="the database: apply its migrations by hand",
                              description="Instances migrate the database when they start (under a lock, so "
                              "several at once are safe); `synapse db upgrade` does it before any starts.")
    dsub = p.add_subparsers(dest="db_action", metavar="ACTION", required=True)
    dsub.add_parser("upgrade", help="apply every migration this version has (no-op when already there)")
    p.set_defaults(func=cmd_db)

    p = subparsers.add_parser("secrets", help="the key that encrypts provider keys in scale mode (SYNAPSE_SECRET_KEY)")
    ssub = p.add_subparsers(dest="secrets_action", metavar="ACTION", required=True)
    ssub.add_parser("new", help="print a new random key for SYNAPSE_SECRET_KEY")
    ssub.add_parser("rotate", help="re-encrypt every stored secret with the first key of SYNAPSE_SECRET_KEY "
                    "(new key first, old keys after it, comma-separated); then the old keys can go")
    p.set_defaults(func=cmd_secrets)


def cmd_db(args: argparse.Namespace) -> int:
    from .. import settings as settings_mod
    from .. import storage

    url = storage.database_url(settings_mod.file_settings())
    shown = settings_mod.shown("database_url", url)
    import sqlalchemy as sa

    eng = sa.create_engine(url) if url.startswith("sqlite") else storage._server_engine(url)
    try:
        before = storage.migrate(eng)
        after = storage.current_revision(eng)
    except Exception as exc:
        from ..errors import SettingsError

        raise SettingsError(f"cannot migrate {shown}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from None
    finally:
        eng.dispose()
    if before is None:
        print(f"{shown}: already at revision {after}")
    else:
        print(f"{shown}: migrated from {before or '(empty)'} to revision {after}")
    return 0


def cmd_secrets(args: argparse.Namespace) -> int:
    from .secrets import ENV, fernet, make_key

    if args.secrets_action == "new":
        print(make_key())
        print(f"set {ENV} to this value in the environment of every instance (keep it secret; "
              "losing it loses the stored provider keys)", file=sys.stderr)
        return 0
    from .. import settings as settings_mod
    from .settings_store import scale_url, store_for

    file_settings = settings_mod.file_settings()
    url = scale_url(file_settings.file_values)
    if not url:
        from ..errors import SettingsError

        raise SettingsError("`synapse secrets rotate` is for scale mode (a PostgreSQL database_url): "
                            "here settings.json holds the keys, unencrypted, at mode 0600")
    fernet()
    store = store_for(url)
    store.values(file_settings.file_values)
    count = store.rotate()
    keys = len([k for k in __import__("os").environ.get(ENV, "").split(",") if k.strip()])
    tail = " You can now remove the old keys from it." if keys > 1 else ""
    print(f"{count} stored secret(s) re-encrypted with the first key of {ENV}.{tail}")
    return 0
