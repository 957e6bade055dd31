"""Anthropic's memory tool (`memory_20250818`): a `/memories` folder of files per agent.

Claude issues the commands (view, create, str_replace, insert, delete, rename) as tool
calls; Synapse runs them on `<data folder>/memories/<agent id>/`, which the model sees
as `/memories`. The answers have the shapes Anthropic's reference implementation gives
(the model was trained on them).

Nothing outside that folder can be reached: a path must be `/memories` or start with
`/memories/`; `..`, `.`, hidden names (`.x`, where temporary files live) and control
characters are refused before the file system is touched; no part of the path may be a
symbolic link (only someone on the machine can make one; the model cannot); and the
resolved path must still lie inside the folder. Files are written atomically with mode
0600, folders 0700, like the rest of the data folder.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..agents.tools import FunctionTool, ToolError

__all__ = ["MemoryFolder", "ROOT", "folder_for", "memory_tool"]

#: How the model names the folder.
ROOT = "/memories"
#: The tool type and the name Anthropic requires for it.
NATIVE_TYPE = "memory_20250818"
TOOL_NAME = "memory"
#: Largest file the tool writes (bytes), and the most the whole folder may hold.
MAX_FILE_BYTES = 256 * 1024
MAX_FOLDER_BYTES = 20 * 1024 * 1024
_LINE_WIDTH = 6
_COMMANDS = ("view", "create", "str_replace", "insert", "delete", "rename")

#: The function-tool form, for a provider that does not know the native type.
_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "command": {"type": "string", "enum": list(_COMMANDS)},
        "path": {"type": "string", "description": "a path under /memories"},
        "view_range": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
        "file_text": {"type": "string"},
        "old_str": {"type": "string"},
        "new_str": {"type": "string"},
        "insert_line": {"type": "integer"},
        "insert_text": {"type": "string"},
        "old_path": {"type": "string"},
        "new_path": {"type": "string"},
    },
    "required": ["command"],
}


def folder_for(settings: Mapping[str, Any], agent_id: str) -> Path:
    """`<data folder>/memories/<agent id>`: the folder the agent's `/memories` is."""
    path = getattr(settings, "path", None)
    if path is not None:
        data = Path(path).parent
    else:
        from ..settings import data_dir

        data = data_dir()
    if not agent_id or "/" in agent_id or agent_id.startswith("."):
        raise ToolError(f"no memory folder for agent {agent_id!r}")
    return data / "memories" / agent_id


def _size(n: int) -> str:
    """Bytes as the listing shows them: 0B, 512B, 1.5K, 2M."""
    value, unit = float(n), 0
    while value >= 1024 and unit < 3:
        value, unit = value / 1024, unit + 1
    text = f"{int(value)}" if value == int(value) else f"{value:.1f}"
    return text + "BKMG"[unit]


class MemoryFolder:
    """One agent's `/memories`, on disk at `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # --- paths --------------------------------------------------------------------------

    def resolve(self, path: Any) -> Path:
        """The file-system path for a `/memories/...` path, or ToolError saying why not."""
        if not isinstance(path, str) or not path:
            raise ToolError("give a path under /memories, e.g. /memories/notes.md")
        if path != ROOT and not path.startswith(ROOT + "/"):
            raise ToolError(f"The path {path} is outside /memories: every path must start with /memories")
        parts = [p for p in path[len(ROOT):].split("/") if p]
        for part in parts:
            if part in (".", ".."):
                raise ToolError(f"The path {path} would escape /memories: '..' and '.' are not allowed")
            if part.startswith(".") or any(ord(c) < 32 or c == "\x7f" for c in part):
                raise ToolError(f"The path {path} has a hidden or unprintable name: use plain file names")
        self._ensure_root()
        here = self.root
        for part in parts:
            here = here / part
            try:
                mode = os.lstat(here).st_mode
            except FileNotFoundError:
                break
            except NotADirectoryError:
                raise ToolError(f"The path {path} does not exist. Please provide a valid path.") from None
            if stat.S_ISLNK(mode):
                raise ToolError(f"The path {path} goes through a symbolic link, which the memory tool does not follow")
        target = self.root.joinpath(*parts)
        real_root = os.path.realpath(self.root)
        real = os.path.realpath(target)
        if real != real_root and not real.startswith(real_root + os.sep):
            raise ToolError(f"The path {path} would escape /memories")
        return target

    def _ensure_root(self) -> None:
        from ..private_files import ensure_dir

        if self.root.is_symlink():
            raise ToolError("the memory folder is a symbolic link: Synapse will not follow it")
        ensure_dir(self.root)

    def _display(self, target: Path) -> str:
        rel = target.relative_to(self.root).as_posix()
        return ROOT if rel == "." else f"{ROOT}/{rel}"

    def _read(self, target: Path, path: str) -> str:
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            raise ToolError(f"The path {path} does not exist. Please provide a valid path.") from None
        except IsADirectoryError:
            raise ToolError(f"The path {path} is a directory, not a file.") from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"The file {path} is not UTF-8 text") from None

    def _write(self, target: Path, text: str, path: str, replacing: int = 0) -> None:
        from ..private_files import ensure_dir, write_private

        data = text.encode("utf-8")
        if len(data) > MAX_FILE_BYTES:
            raise ToolError(f"{path} would be {len(data):,} bytes; a memory file holds at most {MAX_FILE_BYTES:,}: "
                            "keep notes short, or split them into files")
        if self.used() - replacing + len(data) > MAX_FOLDER_BYTES:
            raise ToolError(f"/memories is full ({MAX_FOLDER_BYTES // (1024 * 1024)} MB): delete or shorten files first")
        ensure_dir(target.parent)
        write_private(target, text)

    def used(self) -> int:
        """Bytes in the folder's files."""
        total = 0
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                try:
                    total += os.lstat(os.path.join(dirpath, name)).st_size
                except OSError:
                    pass
        return total

    # --- commands -------------------------------------------------------------------------

    def run(self, args: Mapping[str, Any]) -> str:
        """Run one command (the tool call's input); ToolError for anything refused."""
        command = args.get("command")
        if command not in _COMMANDS:
            raise ToolError(f"unknown command {command!r}: use one of {', '.join(_COMMANDS)}")
        handler = getattr(self, command)
        result: str = handler(args)
        return result

    def view(self, args: Mapping[str, Any]) -> str:
        path = args.get("path", ROOT)
        target = self.resolve(path)
        try:
            mode = os.lstat(target).st_mode
        except (FileNotFoundError, NotADirectoryError):
            raise ToolError(f"The path {path} does not exist. Please provide a valid path.") from None
        if stat.S_ISDIR(mode):
            lines = [f"{_size(os.lstat(target).st_size)}\t{path}"]
            for rel, size, is_dir in self._listing(target, depth=2):
                lines.append(f"{_size(size)}\t{path.rstrip('/')}/{rel}{'/' if is_dir else ''}")
            return (f"Here're the files and directories up to 2 levels deep in {path}, excluding hidden items:\n"
                    + "\n".join(lines))
        text = self._read(target, path)
        lines = text.split("\n")
        start, shown = 1, lines
        rng = args.get("view_range")
        if rng is not None:
            if (not isinstance(rng, list) or len(rng) != 2 or not all(isinstance(x, int) and not isinstance(x, bool)
                                                                         for x in rng)):
                raise ToolError("view_range is two line numbers, [first, last] (last -1: to the end)")
            start = max(1, rng[0])
            end = len(lines) if rng[1] == -1 else rng[1]
            shown = lines[start - 1:end]
        numbered = [f"{str(i + start).rjust(_LINE_WIDTH)}\t{line}" for i, line in enumerate(shown)]
        return f"Here's the content of {path} with line numbers:\n" + "\n".join(numbered)

    def _listing(self, folder: Path, depth: int, prefix: str = "") -> list[tuple[str, int, bool]]:
        out: list[tuple[str, int, bool]] = []
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return out
        for entry in entries:
            if entry.name.startswith(".") or entry.is_symlink():
                continue
            rel = f"{prefix}{entry.name}"
            st = entry.stat(follow_symlinks=False)
            if entry.is_dir(follow_symlinks=False):
                out.append((rel, st.st_size, True))
                if depth > 1:
                    out.extend(self._listing(Path(entry.path), depth - 1, rel + "/"))
            elif entry.is_file(follow_symlinks=False):
                out.append((rel, st.st_size, False))
        return out

    def create(self, args: Mapping[str, Any]) -> str:
        path = args.get("path")
        text = _text(args, "file_text")
        target = self.resolve(path)
        if target == self.root:
            raise ToolError("/memories is the folder itself: give a file path such as /memories/notes.md")
        if os.path.lexists(target):
            raise ToolError(f"File {path} already exists")
        self._write(target, text, str(path))
        return f"File created successfully at: {path}"

    def str_replace(self, args: Mapping[str, Any]) -> str:
        path = str(args.get("path"))
        old, new = _text(args, "old_str"), _text(args, "new_str")
        target = self.resolve(path)
        content = self._read(target, path)
        count = content.count(old) if old else 0
        if count == 0:
            raise ToolError(f"No replacement was performed, old_str `{old}` did not appear verbatim in {path}.")
        if count > 1:
            lines, at = [], content.find(old)
            while at != -1:
                lines.append(content[:at].count("\n") + 1)
                at = content.find(old, at + 1)
            raise ToolError(f"No replacement was performed. Multiple occurrences of old_str `{old}` in lines: "
                            f"{', '.join(map(str, lines))}. Please ensure it is unique")
        at = content.find(old)
        updated = content.replace(old, new, 1)
        self._write(target, updated, path, replacing=len(content.encode("utf-8")))
        row = content[:at].count("\n")
        new_lines = updated.split("\n")
        first, last = max(0, row - 2), min(len(new_lines), row + 3)
        snippet = [f"{str(n + 1).rjust(_LINE_WIDTH)}\t{new_lines[n]}" for n in range(first, last)]
        return "The memory file has been edited. Here is the snippet showing the change (with line numbers):\n" + \
            "\n".join(snippet)

    def insert(self, args: Mapping[str, Any]) -> str:
        path = str(args.get("path"))
        text = _text(args, "insert_text")
        line = args.get("insert_line")
        if not isinstance(line, int) or isinstance(line, bool):
            raise ToolError("insert_line is a whole number: the line to insert after (0: at the top)")
        target = self.resolve(path)
        content = self._read(target, path)
        lines = content.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if not 0 <= line <= len(lines):
            raise ToolError(f"Invalid `insert_line` parameter: {line}. It should be within the range [0, {len(lines)}].")
        lines.insert(line, text.rstrip("\n"))
        self._write(target, "\n".join(lines) + "\n", path, replacing=len(content.encode("utf-8")))
        return f"The file {path} has been edited."

    def delete(self, args: Mapping[str, Any]) -> str:
        path = str(args.get("path"))
        target = self.resolve(path)
        if target == self.root:
            raise ToolError("Cannot delete the /memories directory itself")
        try:
            mode = os.lstat(target).st_mode
        except FileNotFoundError:
            raise ToolError(f"The path {path} does not exist") from None
        if stat.S_ISDIR(mode):
            shutil.rmtree(target)
        else:
            os.unlink(target)
        return f"Successfully deleted {path}"

    def rename(self, args: Mapping[str, Any]) -> str:
        old_path, new_path = args.get("old_path"), args.get("new_path")
        source, dest = self.resolve(old_path), self.resolve(new_path)
        if source == self.root or dest == self.root:
            raise ToolError("Cannot rename the /memories directory itself")
        if not os.path.lexists(source):
            raise ToolError(f"The path {old_path} does not exist")
        if os.path.lexists(dest):
            raise ToolError(f"The destination {new_path} already exists")
        if os.path.isdir(source) and (str(dest) + os.sep).startswith(str(source) + os.sep):
            raise ToolError(f"Cannot move {old_path} into itself")
        from ..private_files import ensure_dir

        ensure_dir(dest.parent)
        os.rename(source, dest)
        return f"Successfully renamed {old_path} to {new_path}"

    # --- for people (the Memory page) -------------------------------------------------------

    def files(self) -> list[dict[str, Any]]:
        """Every file, as `{path, size, text}` (text: None when it is not UTF-8)."""
        if not self.root.is_dir() or self.root.is_symlink():
            return []
        out = []
        for rel, size, is_dir in self._listing(self.root, depth=64):
            if is_dir:
                continue
            try:
                text: str | None = (self.root / rel).read_bytes().decode("utf-8")
            except (OSError, UnicodeDecodeError):
                text = None
            out.append({"path": f"{ROOT}/{rel}", "size": size, "text": text})
        return out

    def clear(self) -> int:
        """Delete the whole folder; how many files were in it."""
        if self.root.is_symlink():
            self.root.unlink()
            return 0
        if not self.root.is_dir():
            return 0
        count = sum(1 for _, _, is_dir in self._listing(self.root, depth=64) if not is_dir)
        shutil.rmtree(self.root)
        return count


def _text(args: Mapping[str, Any], key: str) -> str:
    value = args.get(key)
    if not isinstance(value, str):
        raise ToolError(f"{key} is required (text)")
    return value


def memory_tool(folder: MemoryFolder, on_change: Any = None) -> FunctionTool:
    """The tool the model calls as `memory`; `on_change(command, args)` after each write."""
    import asyncio

    async def memory(**args: Any) -> str:
        result = await asyncio.to_thread(folder.run, args)
        if on_change is not None and args.get("command") != "view":
            on_change(args)
        return result

    return FunctionTool(TOOL_NAME, "Anthropic's memory tool: files in /memories that persist across conversations.",
                        _SCHEMA, memory, native=NATIVE_TYPE)
