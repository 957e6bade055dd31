"""`synapse user set USERNAME` / `user list` / `user remove USERNAME`: logins for the web app.

A login is needed when `synapse serve` listens on an address other than loopback.
The password is read from a hidden prompt (asked twice), or from standard input when
that is not a terminal (`echo "$PW" | synapse user set admin`), never from the command line.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

__all__ = ["cmd_user", "register"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `user` command to `synapse`'s subparsers."""
    p = subparsers.add_parser("user", help="logins for the web app when it serves beyond this machine")
    usub = p.add_subparsers(dest="user_action", metavar="ACTION", required=True)
    s = usub.add_parser("set", help="create a login or change its password (asks for the password)")
    s.add_argument("username", help="letters, digits and . _ - @")
    usub.add_parser("list", help="list the logins")
    r = usub.add_parser("remove", help="remove a login")
    r.add_argument("username", help="the login to remove")
    p.set_defaults(func=cmd_user)
    return p


def _read_password() -> str:
    if sys.stdin is not None and sys.stdin.isatty():
        first = getpass.getpass("Password (8+ characters): ")
        second = getpass.getpass("Repeat it: ")
        if first != second:
            raise ValueError("the two passwords differ; nothing was changed")
        return first
    line = sys.stdin.readline() if sys.stdin is not None else ""
    return line.rstrip("\r\n")


def cmd_user(args: argparse.Namespace) -> int:
    from .auth import user_store, validate_username

    store = user_store()
    action = args.user_action
    try:
        if action == "list":
            names = store.names()
            print("\n".join(names) if names else "no logins yet: add one with `synapse user set USERNAME`")
            return 0
        if action == "remove":
            if not store.remove(args.username):
                print(f"synapse: no login named {args.username!r}", file=sys.stderr)
                return 1
            print(f"login {args.username} removed")
            return 0
        username = validate_username(args.username)
        password = _read_password()
        store.set(username, password)
    except ValueError as exc:
        print(f"synapse: {exc}", file=sys.stderr)
        return 2
    print(f"login {username} saved in {store.path}")
    return 0
