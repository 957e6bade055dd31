"""Anthropic's memory tool: the commands on a per-agent /memories folder, nothing outside it
reachable (`..`, absolute paths, symbolic links), and the tool on the wire (its own type,
the beta header the fake requires like the real API) through an agent's turn."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from synapse.agents import Agent
from synapse.agents.store import AgentStore
from synapse.agents.tools import ToolError
from synapse.memory.files import MAX_FILE_BYTES, MemoryFolder, folder_for
from tests.fakes.base import FakeReply, FakeToolCall


@pytest.fixture
def folder(tmp_path: Path) -> MemoryFolder:
    return MemoryFolder(tmp_path / "data" / "memories" / "agent-1")


def test_create_view_edit_rename_delete(folder: MemoryFolder) -> None:
    assert folder.run({"command": "create", "path": "/memories/notes.md", "file_text": "tea\ncoffee\n"}) == \
        "File created successfully at: /memories/notes.md"
    assert stat.S_IMODE(os.stat(folder.root / "notes.md").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder.root).st_mode) == 0o700
    assert folder.run({"command": "view", "path": "/memories/notes.md"}) == \
        "Here's the content of /memories/notes.md with line numbers:\n     1\ttea\n     2\tcoffee\n     3\t"
    assert folder.run({"command": "view", "path": "/memories/notes.md", "view_range": [2, 2]}).endswith("     2\tcoffee")
    folder.run({"command": "str_replace", "path": "/memories/notes.md", "old_str": "coffee", "new_str": "cocoa"})
    folder.run({"command": "insert", "path": "/memories/notes.md", "insert_line": 0, "insert_text": "drinks:"})
    assert (folder.root / "notes.md").read_text() == "drinks:\ntea\ncocoa\n"
    folder.run({"command": "create", "path": "/memories/people/claire.md", "file_text": "sister, Lyon"})
    listing = folder.run({"command": "view", "path": "/memories"})
    assert listing.splitlines()[0] == "Here're the files and directories up to 2 levels deep in /memories, excluding hidden items:"
    assert [line.split("\t")[1] for line in listing.splitlines()[1:]] == [
        "/memories", "/memories/notes.md", "/memories/people/", "/memories/people/claire.md"]
    assert folder.run({"command": "rename", "old_path": "/memories/people", "new_path": "/memories/family"}) == \
        "Successfully renamed /memories/people to /memories/family"
    assert (folder.root / "family" / "claire.md").read_text() == "sister, Lyon"
    assert folder.run({"command": "delete", "path": "/memories/family"}) == "Successfully deleted /memories/family"
    assert sorted(p.name for p in folder.root.iterdir()) == ["notes.md"]
    assert [f["path"] for f in folder.files()] == ["/memories/notes.md"]


def test_refusals_say_what_is_wrong(folder: MemoryFolder) -> None:
    folder.run({"command": "create", "path": "/memories/a.md", "file_text": "x\nx\n"})
    cases = [
        ({"command": "create", "path": "/memories/a.md", "file_text": "y"}, "File /memories/a.md already exists"),
        ({"command": "str_replace", "path": "/memories/a.md", "old_str": "x", "new_str": "y"},
         "Multiple occurrences of old_str `x` in lines: 1, 2"),
        ({"command": "str_replace", "path": "/memories/a.md", "old_str": "zz", "new_str": "y"}, "did not appear verbatim"),
        ({"command": "insert", "path": "/memories/a.md", "insert_line": 9, "insert_text": "y"}, "range [0, 2]"),
        ({"command": "view", "path": "/memories/missing.md"}, "does not exist"),
        ({"command": "delete", "path": "/memories"}, "Cannot delete the /memories directory itself"),
        ({"command": "create", "path": "/memories/big.md", "file_text": "x" * (MAX_FILE_BYTES + 1)}, "at most"),
        ({"command": "shred", "path": "/memories/a.md"}, "unknown command 'shred'"),
    ]
    for args, message in cases:
        with pytest.raises(ToolError, match=message.replace("[", r"\[").replace("(", r"\(")):
            folder.run(args)
    assert (folder.root / "a.md").read_text() == "x\nx\n"


@pytest.mark.parametrize("path", [
    "/memories/../secret.txt", "/memories/a/../../secret.txt", "/memories/..", "/etc/passwd", "memories/a.md",
    "/memoriesX/a.md", "/memories/.hidden", "/memories/a\x00b", "",
])
def test_paths_outside_the_folder_are_refused(folder: MemoryFolder, path: str) -> None:
    outside = folder.root.parent / "secret.txt"
    for command in ({"command": "create", "path": path, "file_text": "pwned"}, {"command": "view", "path": path},
                    {"command": "delete", "path": path}):
        with pytest.raises(ToolError):
            folder.run(command)
    with pytest.raises(ToolError):
        folder.run({"command": "rename", "old_path": "/memories", "new_path": path})
    assert not outside.exists()


def test_symbolic_links_are_never_followed(folder: MemoryFolder, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "private.txt").write_text("the user's diary")
    folder.run({"command": "create", "path": "/memories/ok.md", "file_text": "fine"})
    (folder.root / "link").symlink_to(elsewhere)  # a link someone on the machine made
    (folder.root / "file-link.md").symlink_to(elsewhere / "private.txt")
    for args in (
        {"command": "view", "path": "/memories/link/private.txt"},
        {"command": "view", "path": "/memories/file-link.md"},
        {"command": "create", "path": "/memories/link/new.md", "file_text": "x"},
        {"command": "str_replace", "path": "/memories/file-link.md", "old_str": "diary", "new_str": "x"},
        {"command": "delete", "path": "/memories/link/private.txt"},
        {"command": "rename", "old_path": "/memories/ok.md", "new_path": "/memories/link/ok.md"},
    ):
        with pytest.raises(ToolError, match="symbolic link"):
            folder.run(args)
    assert (elsewhere / "private.txt").read_text() == "the user's diary"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["private.txt"]
    assert "diary" not in folder.run({"command": "view", "path": "/memories"})


def test_a_folder_that_is_a_link_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "memories").mkdir()
    (tmp_path / "memories" / "agent-1").symlink_to(target)
    with pytest.raises(ToolError, match="symbolic link"):
        MemoryFolder(tmp_path / "memories" / "agent-1").run({"command": "view", "path": "/memories"})


async def test_claude_uses_the_tool_through_a_turn(anthropic: Any, fresh_db: Any) -> None:
    spec = AgentStore().create({"name": "Noter", "model": "claude-sonnet-4-5", "memory_tool": True})
    anthropic.reply(FakeReply(tool_calls=[FakeToolCall("toolu_1", "memory", {"command": "view", "path": "/memories"})]))
    anthropic.reply(FakeReply(tool_calls=[FakeToolCall("toolu_2", "memory", {
        "command": "create", "path": "/memories/user.md", "file_text": "Prefers tea.\n"})]))
    anthropic.reply(FakeReply(tool_calls=[FakeToolCall("toolu_3", "memory", {
        "command": "view", "path": "/memories/../../settings.json"})]))
    anthropic.reply(FakeReply(text="Noted: tea."))
    events = [e async for e in Agent.from_spec(spec).astream("I prefer tea.")]
    first = anthropic.requests[0]
    assert first.json()["tools"] == [{"type": "memory_20250818", "name": "memory"}]
    assert "context-management-2025-06-27" in first.headers["anthropic-beta"]
    results = [e for e in events if e.type == "tool_result"]
    assert [r.is_error for r in results] == [False, False, True]
    assert "would escape /memories" in results[2].content
    root = folder_for(__import__("synapse").settings.load(), spec.id)
    assert (root / "user.md").read_text() == "Prefers tea.\n"
    outcome = next(e for e in events if e.type == "memory")
    assert outcome.status == "off" and outcome.changes == [
        {"op": "create", "path": "/memories/user.md", "by": "memory_tool"}]


async def test_the_fake_refuses_the_tool_without_its_beta_header(anthropic: Any, fresh_db: Any) -> None:
    import synapse
    from synapse.errors import SynapseError
    from synapse.providers.anthropic import NATIVE_TOOLS
    from synapse.types import Tool

    saved = dict(NATIVE_TOOLS)
    NATIVE_TOOLS["memory_20250818"] = None  # as if the adapter forgot the beta
    try:
        with pytest.raises(SynapseError, match="memory_20250818"):
            await synapse.achat("claude-sonnet-4-5", "hi", tools=[Tool("memory", native="memory_20250818")])
    finally:
        NATIVE_TOOLS.update(saved)


async def test_the_tool_is_offered_only_to_claude_over_the_anthropic_api(openai: Any, fresh_db: Any) -> None:
    spec = AgentStore().create({"name": "NotClaude", "model": "gpt-4.1", "memory_tool": True})
    openai.reply(FakeReply(text="hi"))
    [e async for e in Agent.from_spec(spec).astream("hello")]
    assert "tools" not in openai.last.json()
