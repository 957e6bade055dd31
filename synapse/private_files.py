"""The data folder and the files in it are the user's alone: folder 0700, files 0600.

settings.json and users.json hold keys and password hashes, csrf.key the web app's
signing key; synapse.db and the response cache hold prompts' usage and reply text. Each
is created private here rather than chmod-ed after the fact, so no other user can open
it in between. `problems()` and `fix()` are what `synapse doctor [--fix]` and the
every-command warning use.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import SettingsError

__all__ = ["create_private", "create_private_once", "ensure_dir", "fix", "loose_mode", "problems", "remove_temp_files", "write_private"]

_DIR_MODE = 0o700
_FILE_MODE = 0o600


def ensure_dir(path: Path) -> Path:
    """Create `path` if it is missing; a clear error when it is not a folder.

    Every folder created on the way gets mode 0700 (`mkdir -p` would give the missing
    parents the default mode, and the data folder is often one of them).
    """
    try:
        missing = []
        here = path
        while not here.exists() and here != here.parent:
            missing.append(here)
            here = here.parent
        for folder in reversed(missing):
            folder.mkdir(mode=_DIR_MODE, exist_ok=True)
    except FileExistsError:
        raise SettingsError(
            f"the data folder {path} is a file, not a folder: move the file away or point "
            "SYNAPSE_DATA_DIR at a folder"
        ) from None
    except NotADirectoryError:
        raise SettingsError(
            f"cannot create the data folder {path}: part of that path is a file; point SYNAPSE_DATA_DIR at a folder"
        ) from None
    except PermissionError:
        raise SettingsError(
            f"cannot create the data folder {path}: permission denied; point SYNAPSE_DATA_DIR at a folder you own"
        ) from None
    if not path.is_dir():
        raise SettingsError(
            f"the data folder {path} is a file, not a folder: move the file away or point SYNAPSE_DATA_DIR at a folder"
        )
    return path


def create_private(path: Path) -> None:
    """Create an empty file with mode 0600 unless it exists (before SQLite opens it).

    SQLite gives its -wal and -shm files the database file's mode, so they follow.
    """
    ensure_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically (temp file, fsync, rename), mode 0600.

    Readers see the old file or the new one, never half of either. A symlinked file is
    written through to its target (the link stays a link). Used for every file that
    holds secrets: settings.json and the web app's users file.
    """
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    ensure_dir(target.parent)
    tmp = _written_beside(target, text)
    try:
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _written_beside(target: Path, text: str) -> str:
    """A new temporary file `.NAME.*.tmp` beside `target` holding `text`, mode 0600, on disk."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def create_private_once(path: Path, text: str) -> str:
    """Create `path` holding `text` (mode 0600) unless it exists; return what it holds.

    Many processes may call this at once (the workers of `synapse serve --workers N`):
    the file is written whole under a temporary name, then linked into place, which fails
    when another process got there first, so every caller returns the same text and no
    reader ever sees half a file.
    """
    ensure_dir(path.parent)
    if not path.exists():
        tmp = _written_beside(path, text)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: its text wins
        finally:
            os.unlink(tmp)
    return path.read_text(encoding="utf-8")


def remove_temp_files(path: Path) -> list[Path]:
    """Delete `.NAME.*.tmp` files a killed save left beside `path` (or its link's target).

    Call it only while holding the save lock of `path`: then no save is writing one.
    """
    target = Path(os.path.realpath(path))
    removed = []
    try:
        candidates = list(target.parent.glob(f".{target.name}.*.tmp"))
    except OSError:
        return []
    for tmp in candidates:
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def loose_mode(path: Path) -> int | None:
    """The mode of `path` when others (group or world) may use it, else None."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    return mode if mode & 0o077 else None


def _private_paths(folder: Path) -> list[tuple[Path, int]]:
    """The data folder and every file in it that must be private, with the mode it needs."""
    out: list[tuple[Path, int]] = [(folder, _DIR_MODE)]
    names = ("settings.json", "users.json", "csrf.key", "synapse.db", "synapse.db-wal", "synapse.db-shm")
    out += [(folder / n, _FILE_MODE) for n in names if (folder / n).exists()]
    cache = folder / "cache"
    if cache.is_dir():
        out.append((cache, _DIR_MODE))
        out += [(p, _FILE_MODE) for p in sorted(cache.iterdir()) if p.is_file()]
    return out


def problems(folder: Path) -> list[tuple[Path, int, int]]:
    """(path, current mode, wanted mode) for each private path others can read."""
    out: list[tuple[Path, int, int]] = []
    if not folder.is_dir():
        return out
    for path, wanted in _private_paths(folder):
        mode = loose_mode(path)
        if mode is not None:
            out.append((path, mode, wanted))
    return out


def fix(folder: Path) -> list[tuple[Path, int, int]]:
    """chmod what `problems()` lists; returns what was changed."""
    changed = []
    for path, mode, wanted in problems(folder):
        os.chmod(path, wanted)  # follows a symlinked settings.json to its target
        changed.append((path, mode, wanted))
    return changed
